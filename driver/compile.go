package driver

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"sort"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/codegen"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/passes"
)

// CompileRequest is everything `of3c compile` needs besides the output path.
type CompileRequest struct {
	Source  string // path of the ONNX model
	Options artifact.CompileOptions
	Buckets []int64
	DumpDir string
	// Of3cVersion is recorded in the manifest.
	Of3cVersion string
	// OnExternalFile, when set, is called with each external data file
	// the model reads (importer.Options.OnExternalFile).
	OnExternalFile func(path string)
}

// Compile imports an ONNX model, optimizes it and checks that every op can
// be lowered to MLX. It returns the optimized graph and its manifest; it
// writes nothing except the optional pass dumps.
func Compile(req CompileRequest) (*graph.Graph, *artifact.Manifest, error) {
	o := req.Options
	lo := codegen.Options{Device: o.Device, Precision: o.Precision, Budgeted: o.MemoryBudget > 0}
	if err := lo.Validate(); err != nil {
		return nil, nil, err
	}
	o.Device, o.Precision = lo.Device, lo.Precision
	src, err := importer.ReadModelFile(req.Source)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(src)
	// External data is held to the memory this process may use.
	g, err := importer.Load(src, filepath.Dir(req.Source), importer.Options{
		MaxExternalBytes: AvailableMemory(), OnExternalFile: req.OnExternalFile})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", req.Source, err)
	}
	buckets, err := NormalizeBuckets(req.Buckets)
	if err != nil {
		return nil, nil, err
	}
	tokenDims := TokenDims(g)
	popts := passes.Options{
		Passes: o.Passes, DumpDir: req.DumpDir, Verify: true,
		MemoryBudget: o.MemoryBudget, ChunkThreshold: o.ChunkThreshold, ChunkSize: o.ChunkSize, LMAKVChunk: o.LMAKVChunk,
		Device: o.Device,
	}
	// On the GPU, a compile with buckets and no budget is planned lean
	// (passes.Options.Lean): regions and row-chunkable ops chunked until
	// each working set is about its largest input, the memory of
	// OpenFold3's own chunked path rather than PyTorch eager's.
	lean := o.Device == "gpu" && o.MemoryBudget == 0 && len(buckets) > 0
	lo.Budgeted = o.MemoryBudget > 0 || lean // planned: codegen keeps to the plan's memory (paths, run limit)
	if o.MemoryBudget > 0 || lean {
		// The plan is made for the largest size the artifact will run at.
		if len(buckets) == 0 {
			return nil, nil, fmt.Errorf("--memory-budget needs --buckets: the planner must know the largest %v to plan for", tokenDims)
		}
		popts.Lean = lean
		popts.LeanBlock = LeanBlock()
		popts.Dims = map[string]int64{}
		for _, d := range tokenDims {
			popts.Dims[d] = buckets[len(buckets)-1]
		}
		if len(o.Passes) > 0 && !slices.Contains(o.Passes, "plan-memory") {
			popts.Passes = append(append([]string{}, o.Passes...), "plan-memory")
		}
	}
	log, err := passes.Run(g, popts)
	if err != nil {
		return nil, nil, err
	}
	if err := codegen.CheckLowerable(g); err != nil {
		return nil, nil, err
	}
	lowerings, err := codegen.PlanLowerings(g, lo)
	if err != nil {
		return nil, nil, err
	}
	if len(buckets) > 0 && len(tokenDims) == 0 {
		return nil, nil, fmt.Errorf("--buckets given, but no graph input has a symbolic token dim to pad")
	}
	m := &artifact.Manifest{
		FormatVersion: artifact.FormatVersion, Of3cVersion: req.Of3cVersion, MLXVersion: mlx.Version(),
		SourceName: filepath.Base(req.Source), SourceSHA256: hex.EncodeToString(sum[:]), SourceBytes: int64(len(src)),
		Options: o, Buckets: buckets, TokenDims: tokenDims, OpCounts: g.OpCounts(),
	}
	if len(buckets) == 0 {
		m.TokenDims = tokenDims // recorded for `run --buckets`
	}
	for _, l := range lowerings {
		m.Lowerings = append(m.Lowerings, artifact.Lowering{Node: l.Node, Op: l.Op, Path: string(l.Path)})
	}
	for _, v := range g.Inputs {
		m.Inputs = append(m.Inputs, artifact.SigOf(v))
	}
	for _, v := range g.Outputs {
		m.Outputs = append(m.Outputs, artifact.SigOf(v))
	}
	if m.PassLog, err = json.Marshal(log); err != nil {
		return nil, nil, err
	}
	if log.Plan != nil {
		if m.MemoryPlan, err = json.Marshal(log.Plan); err != nil {
			return nil, nil, err
		}
	}
	return g, m, nil
}

// EncodeArtifact encodes the artifact of a compiled graph and decodes it
// back as `of3c run` will, so that compile refuses what the loader would
// reject (e.g. a shape beyond the importer's element limit) instead of
// writing an artifact that cannot be run.
func EncodeArtifact(m *artifact.Manifest, g *graph.Graph) ([]byte, error) {
	data, err := artifact.Encode(m, g)
	if err != nil {
		return nil, err
	}
	if _, err := artifact.Decode(data); err != nil {
		return nil, fmt.Errorf("the compiled artifact would not load: %w", err)
	}
	return data, nil
}

// NormalizeBuckets sorts and dedupes bucket sizes, refusing non-positive ones.
func NormalizeBuckets(b []int64) ([]int64, error) {
	out := append([]int64{}, b...)
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	var res []int64
	for _, v := range out {
		if v <= 0 {
			return nil, fmt.Errorf("bucket size %d: want > 0", v)
		}
		if len(res) == 0 || res[len(res)-1] != v {
			res = append(res, v)
		}
	}
	return res, nil
}

// TokenDims are the symbolic dims that bucketing pads: "N" (OF3's token
// count) when an input has it, otherwise every symbol that appears as a
// whole dim of the inputs.
func TokenDims(g *graph.Graph) []string {
	seen := map[string]bool{}
	var all []string
	for _, v := range g.Inputs {
		for _, d := range v.Type.Shape {
			if d.IsSymbolic() && len(graph.DimSymbols(d)) == 1 && graph.DimSymbols(d)[0] == d.Sym && !seen[d.Sym] {
				seen[d.Sym] = true
				all = append(all, d.Sym)
			}
		}
	}
	if seen["N"] {
		return []string{"N"}
	}
	sort.Strings(all)
	return all
}

package passes

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/runtime/ref"
)

var updateShard = flag.Bool("update-shard", false, "rewrite passes/testdata/shard/*.plan")

// simulateShards runs a sharded graph as parts ranks in one process: every
// ordinary node through the reference kernels on each rank's values, the
// collectives by moving the ranks' tensors here.
func simulateShards(t *testing.T, g *graph.Graph, parts int, in map[string]*graph.Tensor) map[string]*graph.Tensor {
	t.Helper()
	env := make([]map[*graph.Value]*graph.Tensor, parts)
	for r := range env {
		env[r] = map[*graph.Value]*graph.Tensor{}
		for _, v := range g.Inputs {
			env[r][v] = in[v.Name]
		}
		for _, c := range g.Consts {
			env[r][c] = c.Const
		}
	}
	get := func(r int, v *graph.Value) *graph.Tensor {
		if v == nil {
			return nil
		}
		if v.Const != nil {
			return v.Const
		}
		x, ok := env[r][v]
		if !ok {
			t.Fatalf("rank %d: %s not computed", r, v.Name)
		}
		return x
	}
	for _, n := range g.Nodes {
		switch n.QualifiedOp() {
		case "of3c.ShardSlice":
			ax := int(n.AttrInt("axis", 0))
			for r := 0; r < parts; r++ {
				env[r][n.Outputs[0]] = chunkOf(t, get(r, n.Inputs[0]), ax, parts, r)
			}
		case "of3c.AllGather":
			ax := int(n.AttrInt("axis", 0))
			var all []*graph.Tensor
			for r := 0; r < parts; r++ {
				all = append(all, get(r, n.Inputs[0]))
			}
			whole := concatOf(t, all, ax)
			for r := 0; r < parts; r++ {
				env[r][n.Outputs[0]] = whole
			}
		case "of3c.AllSum":
			var sum []float64
			for r := 0; r < parts; r++ {
				v, err := get(r, n.Inputs[0]).Float64s()
				if err != nil {
					t.Fatal(err)
				}
				if sum == nil {
					sum = make([]float64, len(v))
				}
				for i := range v {
					sum[i] += v[i]
				}
			}
			x := get(0, n.Inputs[0])
			tot, err := graph.NewTensorFromFloat64s(x.DType, x.Shape, sum)
			if err != nil {
				t.Fatal(err)
			}
			for r := 0; r < parts; r++ {
				env[r][n.Outputs[0]] = tot
			}
		case "of3c.AllToAll":
			sa, ca := int(n.AttrInt("split_axis", 0)), int(n.AttrInt("concat_axis", 0))
			for r := 0; r < parts; r++ {
				var pieces []*graph.Tensor
				for q := 0; q < parts; q++ {
					pieces = append(pieces, chunkOf(t, get(q, n.Inputs[0]), sa, parts, r))
				}
				env[r][n.Outputs[0]] = concatOf(t, pieces, ca)
			}
		default:
			for r := 0; r < parts; r++ {
				ins := make([]*graph.Tensor, len(n.Inputs))
				for i, v := range n.Inputs {
					ins[i] = get(r, v)
				}
				outs, err := ref.EvalNode(n, ins)
				if err != nil {
					t.Fatalf("rank %d: %s: %v", r, n, err)
				}
				for i, o := range n.Outputs {
					if o != nil {
						env[r][o] = outs[i]
					}
				}
			}
		}
	}
	out := map[string]*graph.Tensor{}
	for _, o := range g.Outputs {
		out[o.Name] = get(0, o)
		for r := 1; r < parts; r++ { // every rank ends with the same outputs
			if d, err := maxDiff(map[string]*graph.Tensor{o.Name: out[o.Name]}, map[string]*graph.Tensor{o.Name: get(r, o)}, false); err != nil || d != 0 {
				t.Fatalf("output %s differs between rank 0 and %d: %v %v", o.Name, r, d, err)
			}
		}
	}
	return out
}

// strides of a row-major shape around axis: outer × dim × inner.
func around(shape []int64, ax int) (outer, dim, inner int64) {
	outer, inner = 1, 1
	for i, d := range shape {
		switch {
		case i < ax:
			outer *= d
		case i > ax:
			inner *= d
		}
	}
	return outer, shape[ax], inner
}

func chunkOf(t *testing.T, x *graph.Tensor, ax, parts, r int) *graph.Tensor {
	t.Helper()
	vals, err := x.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	outer, dim, inner := around(x.Shape, ax)
	// Rank r's rows: [min(r·c, n), min((r+1)·c, n)), c = ⌈n/parts⌉.
	c := (dim + int64(parts) - 1) / int64(parts)
	lo, hi := min(int64(r)*c, dim), min(int64(r+1)*c, dim)
	var out []float64
	for o := int64(0); o < outer; o++ {
		base := o * dim * inner
		out = append(out, vals[base+lo*inner:base+hi*inner]...)
	}
	shape := append([]int64(nil), x.Shape...)
	shape[ax] = hi - lo
	res, err := graph.NewTensorFromFloat64s(x.DType, shape, out)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func concatOf(t *testing.T, xs []*graph.Tensor, ax int) *graph.Tensor {
	t.Helper()
	all := make([][]float64, len(xs))
	for i, x := range xs {
		v, err := x.Float64s()
		if err != nil {
			t.Fatal(err)
		}
		all[i] = v
	}
	outer, _, inner := around(xs[0].Shape, ax)
	var out []float64
	total := int64(0)
	for _, x := range xs {
		total += x.Shape[ax]
	}
	for o := int64(0); o < outer; o++ {
		for i, v := range all {
			d := xs[i].Shape[ax]
			out = append(out, v[o*d*inner:(o+1)*d*inner]...)
		}
	}
	shape := append([]int64(nil), xs[0].Shape...)
	shape[ax] = total
	res, err := graph.NewTensorFromFloat64s(xs[0].DType, shape, out)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func pairformerFixtures(t *testing.T) []fixture {
	var fs []fixture
	for _, f := range loadFixtures(t) {
		if f.Name == "pairformer_block_tiny_torchscript" || f.Name == "pairformer_block_tiny_dynamo" {
			fs = append(fs, f)
		}
	}
	if len(fs) != 2 {
		t.Fatalf("want both pairformer_block_tiny fixtures, found %d", len(fs))
	}
	return fs
}

// The sharded graph of the real PairFormerBlock, simulated on 2, 3 and 4
// ranks, gives the unsharded graph's outputs (and PyTorch's) on both
// fixture sets (N = 12 splits evenly; N = 19 leaves shorter last chunks);
// the plan is a golden file.
func TestShardPairFormerBlock(t *testing.T) {
	for _, f := range pairformerFixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			base := loadFixtureGraph(t, f)
			if _, err := Run(base, Options{Verify: true}); err != nil {
				t.Fatal(err)
			}
			for _, parts := range []int{2, 3, 4} {
				g := loadFixtureGraph(t, f)
				log, err := Run(g, Options{Verify: true, Shards: parts})
				if err != nil {
					t.Fatal(err)
				}
				if log.Shard == nil || len(log.Shard.Collectives) == 0 {
					t.Fatalf("P=%d: no shard plan", parts)
				}
				if parts == 2 {
					checkShardGolden(t, f.Name, log.Shard.Format(map[string]int64{"N": 2048}))
				}
				ran := 0
				for _, set := range f.Sets {
					ran++
					in, torch := readSet(t, base, filepath.Join(filepath.Dir(fixtureIndex), f.Path, set.Dir), set.NInputs, set.NOutputs)
					want, err := ref.Run(base, in)
					if err != nil {
						t.Fatal(err)
					}
					got := simulateShards(t, g, parts, in)
					d, err := maxDiff(want, got, false)
					if err != nil || d > 1e-5 {
						t.Errorf("P=%d %s: sharded vs unsharded max diff %g (%v)", parts, set.Dir, d, err)
					}
					if d, err := maxDiff(torch, got, false); err != nil || d > 1e-4 {
						t.Errorf("P=%d %s: sharded vs PyTorch max diff %g (%v)", parts, set.Dir, d, err)
					}
				}
				if ran != 2 {
					t.Errorf("ran %d test sets, want 2", ran)
				}
			}
		})
	}
}

func checkShardGolden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "shard", name+".plan")
	if *updateShard {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (go test ./passes -run Shard -update-shard writes it)", err)
	}
	if string(want) != got {
		t.Errorf("plan differs from %s (-update-shard rewrites it):\n%s", p, got)
	}
}

func shardSmall(t *testing.T, src string, parts int) (*graph.Graph, *ShardPlan) {
	t.Helper()
	g, err := graph.Parse(src)
	if err != nil {
		t.Fatal(err)
	}
	log, err := Run(g, Options{Verify: true, Passes: []string{"infer-shapes", "shard-pair"}, Shards: parts})
	if err != nil {
		t.Fatal(err)
	}
	return g, log.Shard
}

func collectiveKinds(p *ShardPlan) string {
	var ks []string
	for _, c := range p.Collectives {
		ks = append(ks, fmt.Sprintf("%s:%d>%d", c.Kind, c.From, c.To))
	}
	return strings.Join(ks, " ")
}

// Unit rules on small graphs: what runs sharded, which collectives appear.
func TestShardRules(t *testing.T) {
	cases := []struct {
		name, src, want string
	}{
		{"row-wise chain stays local; output gathered", `graph g opsets(ai.onnx=17) {
  input %z:f32[N,N,4]
  %w:f32[4,4] = const [1,0,0,0, 0,1,0,0, 0,0,1,0, 0,0,0,1]
  %y:f32[N,N,4] = MatMul(%z, %w)
  %s:f32[N,N,4] = Sigmoid(%y)
  output %s
}`, "shard_slice:-1>0 all_gather:0>-1"},
		{"transpose of rows and columns is an all-to-all", `graph g opsets(ai.onnx=17) {
  input %z:f32[N,N,4]
  %t:f32[N,N,4] = Transpose(%z) {perm=[1,0,2]}
  %s:f32[N,N,4] = Sigmoid(%t)
  output %s
}`, "shard_slice:-1>0 shard_slice:-1>1 all_gather:0>-1"},
		{"transpose of a computed pair value moves data", `graph g opsets(ai.onnx=17) {
  input %z:f32[N,N,4]
  %e:f32[N,N,4] = Exp(%z)
  %t:f32[N,N,4] = Transpose(%e) {perm=[1,0,2]}
  output %t
}`, "shard_slice:-1>0 all_to_all:0>1 all_gather:0>-1"},
		{"reduction over the sharded axis gathers", `graph g opsets(ai.onnx=17) {
  input %z:f32[N,N,4]
  %ax:i64[1] = const [0]
  %e:f32[N,N,4] = Exp(%z)
  %m:f32[N,4] = ReduceSum(%e, %ax) {keepdims=0}
  output %m
}`, "shard_slice:-1>0 all_gather:0>-1"},
		{"a replicated operand of full size is sliced locally", `graph g opsets(ai.onnx=17) {
  input %z:f32[N,N,4]
  input %s:f32[N,4]
  %one:i64[1] = const [1]
  %e:f32[N,N,4] = Exp(%z)
  %u:f32[N,1,4] = Unsqueeze(%s, %one)
  %a:f32[N,N,4] = Add(%e, %u)
  output %a
}`, "shard_slice:-1>0 shard_slice:-1>0 all_gather:0>-1"},
		{"outgoing triangle multiplication gathers b", trimulSrc("f32", "outgoing"), "shard_slice:-1>0 all_gather:0>-1 all_gather:0>-1"},
		{"incoming triangle multiplication sums partial products", trimulSrc("f32", "incoming"), "shard_slice:-1>0 all_sum:-1>-1 shard_slice:-1>0"},
		{"f16 triangle multiplication runs whole on gathered x", trimulSrc("f16", "outgoing"), "shard_slice:-1>0 all_gather:0>-1 shard_slice:-1>0"},
		{"single representation alone stays replicated", `graph g opsets(ai.onnx=17) {
  input %z:f32[N,N,4]
  input %s:f32[N,4]
  %e:f32[N,4] = Exp(%s)
  output %e, %z
}`, "shard_slice:-1>0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, plan := shardSmall(t, c.src, 2)
			if got := collectiveKinds(plan); got != c.want {
				t.Errorf("collectives %q, want %q\n%s\n%s", got, c.want, plan.Format(nil), graph.Format(g))
			}
		})
	}
}

func TestShardErrors(t *testing.T) {
	g, err := graph.Parse(`graph g opsets(ai.onnx=17) {
  input %s:f32[N,4]
  %e:f32[N,4] = Exp(%s)
  output %e
}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(g, Options{Passes: []string{"infer-shapes", "shard-pair"}, Shards: 2}); err == nil || !strings.Contains(err.Error(), "no pair input") {
		t.Errorf("no pair input: %v", err)
	}
	if _, err := Run(g, Options{Passes: []string{"shard-pair"}}); err == nil || !strings.Contains(err.Error(), "Shards") {
		t.Errorf("no Shards: %v", err)
	}
}

func trimulSrc(dt, dir string) string {
	return `graph g opsets(ai.onnx=17, of3c=1) {
  input %z:` + dt + `[N,N,4]
  %w:` + dt + `[4,16] = const [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
  %e:` + dt + `[N,N,4] = Exp(%z)
  %p:` + dt + `[N,N,4] = of3c.TriangleMultiplication(%e, _, %w) {direction="` + dir + `"}
  output %p
}`
}

// Other pair-stack fixtures, simulated on 2 ranks: the template pair block
// (pair input [B, T, N, N, c], sliced per template), the MSA module block
// (outer product mean replicated) and the pairformer stack.
func TestShardOtherFixtures(t *testing.T) {
	want := map[string]bool{}
	for _, p := range []string{"template_pair_block_tiny", "msa_module_block_tiny", "pairformer_stack_tiny"} {
		want[p+"_torchscript"], want[p+"_dynamo"] = true, true
	}
	found := 0
	for _, f := range loadFixtures(t) {
		if !want[f.Name] {
			continue
		}
		found++
		t.Run(f.Name, func(t *testing.T) {
			base := loadFixtureGraph(t, f)
			if _, err := Run(base, Options{Verify: true}); err != nil {
				t.Fatal(err)
			}
			g := loadFixtureGraph(t, f)
			log, err := Run(g, Options{Verify: true, Shards: 2})
			if err != nil {
				t.Fatal(err)
			}
			sharded := 0
			for _, n := range log.Shard.Nodes {
				if n.Axis >= 0 {
					sharded++
				}
			}
			if sharded == 0 {
				t.Errorf("no node runs sharded:\n%s", log.Shard.Format(nil))
			}
			for _, set := range f.Sets {
				in, _ := readSet(t, base, filepath.Join(filepath.Dir(fixtureIndex), f.Path, set.Dir), set.NInputs, set.NOutputs)
				ref1, err := ref.Run(base, in)
				if err != nil {
					t.Fatal(err)
				}
				got := simulateShards(t, g, 2, in)
				if d, err := maxDiff(ref1, got, false); err != nil || d > 1e-5 {
					t.Errorf("%s: sharded vs unsharded max diff %g (%v)", set.Dir, d, err)
				}
			}
		})
	}
	if found != len(want) {
		t.Errorf("found %d of the %d fixtures", found, len(want))
	}
}

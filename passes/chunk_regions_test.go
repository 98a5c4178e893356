package passes

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/runtime/ref"
)

// setRegionChunk sets chunk on every of3c.ChunkMap (a size that divides no
// fixture's N evenly, so the last chunk is short).
func setRegionChunk(g *graph.Graph, chunk int64) int {
	k := 0
	for _, n := range g.Nodes {
		if n.QualifiedOp() == "of3c.ChunkMap" {
			n.SetAttr("chunk", graph.Attr{Kind: graph.AttrInt, Int: chunk})
			k++
		}
	}
	return k
}

// TestRegionsMatchUnchunked: on every fixture, the default pipeline plus
// form-regions, with every region chunked by 1, 3 and 5 rows, gives exactly
// (≤ 1e-6: the same ops on slices; only MatMul blocking may reorder sums)
// the default pipeline's outputs on the reference executor.
func TestRegionsMatchUnchunked(t *testing.T) {
	regions := map[string]int{}
	for _, f := range loadFixtures(t) {
		if testing.Short() && !strings.HasPrefix(f.Name, "pairformer_block") {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			g := loadFixtureGraph(t, f)
			if _, err := Run(g, Options{Verify: true}); err != nil {
				t.Fatal(err)
			}
			rg := graph.Clone(g)
			if _, err := Run(rg, Options{Verify: true, Passes: []string{"form-regions"}}); err != nil {
				t.Fatal(err)
			}
			regions[f.Name] = setRegionChunk(rg, 0)
			set := f.Sets[0]
			dir := filepath.Join(filepath.Dir(fixtureIndex), f.Path, set.Dir)
			ins, _ := readSet(t, g, dir, set.NInputs, set.NOutputs)
			want, err := ref.Run(g, ins)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []int64{0, 1, 3, 5} {
				setRegionChunk(rg, c)
				got, err := ref.Run(rg, ins)
				if err != nil {
					t.Fatalf("chunk %d: %v", c, err)
				}
				if d, err := maxDiff(want, got, false); err != nil || d > 1e-6 {
					t.Errorf("chunk %d: max diff %g %v", c, d, err)
				}
			}
		})
	}
	t.Logf("regions per fixture: %v", regions)
}

// The same regions form in an export with fixed sizes (N bound to 12 in the
// inputs' types before the passes): the seeds' row axis is then the first
// axis larger than 1; chunked by 5 the graph matches the unchunked one.
func TestRegionsStaticShapes(t *testing.T) {
	for _, f := range loadFixtures(t) {
		if !strings.HasPrefix(f.Name, "pairformer_block_tiny") {
			continue
		}
		t.Run(f.Name, func(t *testing.T) {
			g := loadFixtureGraph(t, f)
			for _, v := range g.Inputs {
				for k, d := range v.Type.Shape {
					if d.Sym == "N" {
						v.Type.Shape[k] = graph.Dim{Val: 12}
					}
				}
			}
			if _, err := Run(g, Options{Verify: true}); err != nil {
				t.Fatal(err)
			}
			rg := graph.Clone(g)
			if _, err := Run(rg, Options{Verify: true, Passes: []string{"form-regions"}}); err != nil {
				t.Fatal(err)
			}
			if k := setRegionChunk(rg, 5); k < 4 {
				t.Errorf("%d regions with fixed sizes, want ≥ 4", k)
			}
			set := f.Sets[0]
			ins, _ := readSet(t, g, filepath.Join(filepath.Dir(fixtureIndex), f.Path, set.Dir), set.NInputs, set.NOutputs)
			want, err := ref.Run(g, ins)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ref.Run(rg, ins)
			if err != nil {
				t.Fatal(err)
			}
			if d, err := maxDiff(want, got, false); err != nil || d > 1e-6 {
				t.Errorf("max diff %g %v", d, err)
			}
		})
	}
}

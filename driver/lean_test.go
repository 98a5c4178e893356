package driver

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/of3c/of3c/artifact"
	"github.com/of3c/of3c/codegen"
)

// A GPU artifact compiled without --buckets is planned per size at run time
// (lean.go). The planning is the GPU's, so it is exercised here on the CPU
// executor (leanDevice): the first run at a size plans it (and says so),
// the next run at that size reuses the plan, the planned graph is what ran
// (its regions are lowered), its outputs equal the unplanned graph's, and a
// third size closes the least recently used program.
func TestSessionPlansEachSizeLean(t *testing.T) {
	// The tiny fixture's working sets are far below the default block
	// floor, which would leave every region whole.
	t.Setenv("OF3C_GPU_LEAN_BLOCK", "1KiB")
	fx := "../models/of3/testdata/pairformer_block_tiny_torchscript"
	g, m, err := Compile(CompileRequest{Source: filepath.Join(fx, "model.onnx"),
		Options: artifact.CompileOptions{Device: "gpu", Precision: "fp32"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.MemoryPlan) != 0 || len(m.TokenDims) == 0 {
		t.Fatalf("want an unplanned artifact with token dims, got plan %q dims %v", m.MemoryPlan, m.TokenDims)
	}
	defer func(prev string) { leanDevice = prev }(leanDevice)
	leanDevice = "cpu"
	lean, err := New(g, m, Options{Device: "cpu", MemoryLimit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer lean.Close()
	t.Setenv("OF3C_GPU_LEAN", "off")
	plain, err := New(g, m, Options{Device: "cpu", MemoryLimit: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if !lean.lean || plain.lean {
		t.Fatalf("lean sessions: %v / %v, want true / false (OF3C_GPU_LEAN=off)", lean.lean, plain.lean)
	}
	// A size planned by the memory estimate before it runs is still
	// reported by its first run.
	if lean.EstimatePeak(map[string]int64{m.TokenDims[0]: 40}) <= 0 {
		t.Fatal("no estimate at N=40")
	}
	for i, n := range []int64{48, 48, 40, 56} {
		in, err := RandomInputs(g.Inputs, map[string]int64{m.TokenDims[0]: n}, uint64(n))
		if err != nil {
			t.Fatal(err)
		}
		got, st, err := lean.Run(in)
		if err != nil {
			t.Fatalf("N=%d: %v", n, err)
		}
		if fresh := i != 1; (st.Planned != "") != fresh || (fresh && !strings.Contains(st.Planned, "planned lean for")) {
			t.Errorf("run %d (N=%d): Planned %q, want a plan line only on a size's first run", i, n, st.Planned)
		}
		regions := 0
		for _, l := range lean.Lowerings() {
			if l.Path == codegen.RegionSequenced {
				regions++
			}
		}
		if regions == 0 {
			t.Errorf("N=%d: no region ran row-chunked: %v", n, lean.Lowerings())
		}
		want, _, err := plain.Run(in)
		if err != nil {
			t.Fatal(err)
		}
		for name, w := range want {
			if d, err := tensorDiff(got[name], w); err != nil || d > 1e-5 {
				t.Errorf("N=%d %s: lean plan differs from the unplanned graph by %g (%v)", n, name, d, err)
			}
		}
	}
	if len(lean.plans) != leanPrograms {
		t.Errorf("%d plans kept, want %d", len(lean.plans), leanPrograms)
	}
	for _, lp := range lean.plans {
		if strings.Contains(lp.key, "48") {
			t.Errorf("the least recently used size (48) was kept: %v", lp.key)
		}
	}
}

// Only an unplanned GPU artifact with token dims is planned per size.
func TestPlansPerShapeConditions(t *testing.T) {
	base := artifact.Manifest{Options: artifact.CompileOptions{Device: "gpu"}, TokenDims: []string{"N"}}
	if !plansPerShape("gpu", &base) {
		t.Error("unplanned GPU artifact: not planned per size")
	}
	if plansPerShape("cpu", &base) {
		t.Error("a CPU session planned per size")
	}
	budget := base
	budget.Options.MemoryBudget = 1 << 30
	planned := base
	planned.MemoryPlan = []byte(`{}`)
	static := base
	static.TokenDims = nil
	for name, m := range map[string]*artifact.Manifest{"budget": &budget, "planned": &planned, "no token dims": &static} {
		if plansPerShape("gpu", m) {
			t.Errorf("%s: planned per size", name)
		}
	}
	t.Setenv("OF3C_GPU_LEAN", "off")
	if plansPerShape("gpu", &base) {
		t.Error("OF3C_GPU_LEAN=off: planned per size")
	}
}

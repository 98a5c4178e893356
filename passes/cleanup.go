package passes

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/runtime/ref"
)

// Cleanup passes: what real exports need before any fusion can see the
// computation (they are full of shape arithmetic, Identity nodes and Casts).

// maxFoldGrowth bounds constant folding: a node whose folded output would be
// larger than its inputs by more than this many elements (Expand,
// ConstantOfShape, Tile of a scalar) stays a node, or folding would write
// activation-sized tensors into the weights.
const maxFoldGrowth = 1 << 16

// maxSweeps bounds the fixed-point loops of the cleanup passes. Each sweep
// rewrites everything it can, so real graphs settle in two or three; the
// bound turns a pair of rules that undo each other into a logged stop
// instead of a hang.
const maxSweeps = 32

// foldConstants evaluates nodes whose inputs are all known: constants through
// the reference executor, and int64 shape values that shape inference knows
// statically (Shape(x) for x: f32[N,4,32] → Gather(…, 1) = 4 folds even
// though N is symbolic). Chains that stay symbolic keep their ShapeValue, so
// a Reshape whose target is known up to symbols is still typed exactly.
func foldConstants(c *Context) error {
	g := c.G
	symbolicReshapes := 0
	for sweep, changed := 0, true; changed; sweep++ {
		if sweep == maxSweeps {
			c.Notef("stopped after %d sweeps without reaching a fixed point", maxSweeps)
			break
		}
		changed = false
		r := newReplacer(g)
		for _, n := range append([]*graph.Node(nil), g.Nodes...) {
			r.prepare(n)
			if len(n.Outputs) == 0 {
				continue
			}
			ok, err := foldNode(g, n, r)
			if err != nil {
				return err
			}
			if ok {
				c.Count("fold:" + n.QualifiedOp())
				changed = true
			}
		}
		r.finish()
		if _, err := removeDead(g); err != nil {
			return err
		}
	}
	for _, n := range append([]*graph.Node(nil), g.Nodes...) {
		if n.Op != "Reshape" || n.Domain != graph.DefaultDomain {
			continue
		}
		s := n.Input(1)
		if s == nil || s.IsConst() || s.ShapeValue == nil || !shapeValueKnown(s.ShapeValue) {
			continue
		}
		if t := symbolicReshapeTarget(n); t != nil {
			n.Inputs[1] = g.AddConst(g.UniqueName(s.Name+"_target"), t)
			// allowzero only changes the meaning of zeros in the target, and
			// the constant's zeros are copies by construction.
			if _, ok := n.Attrs["allowzero"]; ok {
				n.SetAttr("allowzero", graph.Attr{Kind: graph.AttrInt, Int: 0})
			}
			c.Count("reshape-target-to-const")
			continue
		}
		symbolicReshapes++
	}
	if _, err := removeDead(g); err != nil {
		return err
	}
	if symbolicReshapes > 0 {
		c.Notef("%d Reshape targets are known only symbolically (kept as shape chains)", symbolicReshapes)
	}
	return nil
}

// symbolicReshapeTarget writes a Reshape target known only symbolically
// (e.g. [N, N, 2, 32] from a Shape/Gather/Concat chain) as a constant, using
// Reshape's own placeholders: 0 copies the input's dim at the same index, -1
// is inferred. The shape chain then dies. Nil when the target cannot be
// written so (two dims neither static nor copied).
func symbolicReshapeTarget(n *graph.Node) *graph.Tensor {
	x, sv, out := n.Input(0), n.Input(1).ShapeValue, n.Outputs[0]
	if !x.Type.Ranked || !out.Type.Ranked || out.Type.Rank() != len(sv) {
		return nil
	}
	vals := make([]int64, len(sv))
	inferred := false
	for i, d := range sv {
		if v, ok := graph.DimInt(d); ok {
			if v == 0 {
				return nil // a literal 0 would read as "copy" (and allowzero would matter)
			}
			vals[i] = v
			continue
		}
		if i < x.Type.Rank() && x.Type.Shape[i].Equal(d) {
			vals[i] = 0
			continue
		}
		if inferred {
			return nil
		}
		inferred = true
		vals[i] = -1
	}
	t := graph.NewTensorI64([]int64{int64(len(vals))}, vals)
	// The rule must give the same type as the chain did.
	attrs := cloneAttrs(n.Attrs)
	delete(attrs, "allowzero")
	probe := &graph.Node{Domain: n.Domain, Op: n.Op, Inputs: []*graph.Value{x, {Name: "target", Type: t.Type(), Const: t}},
		Outputs: []*graph.Value{{Name: "probe"}}, Attrs: attrs, Opset: n.Opset}
	types, _, err := graph.InferNode(probe)
	if err != nil || !types[0].Equal(out.Type) {
		return nil
	}
	return t
}

func shapeValueKnown(s graph.Shape) bool {
	for _, d := range s {
		if d.IsUnknown() {
			return false
		}
	}
	return true
}

// foldNode replaces n's outputs with constants when it can.
func foldNode(g *graph.Graph, n *graph.Node, r *replacer) (bool, error) {
	if n.Domain == graph.DefaultDomain {
		switch n.Op {
		case "Constant":
			// Constant nodes become constants with no evaluation at all.
		case "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli":
			return false, nil
		}
	}
	// Shape values known statically.
	if foldShapeValue(g, n, r) {
		return true, nil
	}
	var ins []*graph.Tensor
	var inElems int64
	for _, in := range n.Inputs {
		if in == nil {
			ins = append(ins, nil)
			continue
		}
		if !in.IsConst() {
			return false, nil
		}
		ins = append(ins, in.Const)
		inElems += in.Const.NumElements()
	}
	if !ref.HasKernel(n.QualifiedOp()) {
		return false, nil
	}
	for _, o := range n.Outputs {
		if o == nil {
			continue
		}
		if !o.Type.Ranked {
			return false, nil
		}
		ne, ok := o.Type.Shape.NumElements()
		if !ok || ne > inElems+maxFoldGrowth {
			return false, nil
		}
	}
	outs, err := ref.EvalNode(n, ins)
	if err != nil {
		// A node the reference executor rejects is left for the runtime to
		// report with its own context; folding is an optimization.
		return false, nil
	}
	for i, o := range n.Outputs {
		if o == nil || outs[i] == nil {
			continue
		}
		nv := g.AddConst(g.UniqueName(o.Name+"_folded"), outs[i])
		replaceConstOutput(r, o, nv)
	}
	return true, nil
}

// foldShapeValue replaces a one-output node whose int64 result shape
// inference knows exactly (e.g. Gather(Shape(x), 1) = 4) with a constant.
func foldShapeValue(g *graph.Graph, n *graph.Node, r *replacer) bool {
	if len(n.Outputs) != 1 || n.Outputs[0] == nil {
		return false
	}
	o := n.Outputs[0]
	if o.ShapeValue == nil || !o.Type.Ranked || o.Type.DType != graph.Int64 || o.Type.Rank() > 1 {
		return false
	}
	vals, ok := staticShapeValue(o.ShapeValue)
	if !ok {
		return false
	}
	var shape []int64
	switch o.Type.Rank() {
	case 0:
		if len(vals) != 1 {
			return false
		}
	case 1:
		if d := o.Type.Shape[0]; !d.IsUnknown() && !d.Equal(graph.D(int64(len(vals)))) {
			return false
		}
		shape = []int64{int64(len(vals))}
	}
	nv := g.AddConst(g.UniqueName(o.Name+"_folded"), graph.NewTensorI64(shape, vals))
	nv.ShapeValue = o.ShapeValue
	replaceConstOutput(r, o, nv)
	return true
}

// replaceConstOutput makes readers of o read the constant nv. A graph output
// keeps its name: the constant takes it over.
func replaceConstOutput(r *replacer, o, nv *graph.Value) {
	if r.isOutput(o) {
		name := o.Name
		o.Name = r.g.UniqueName(name + "_replaced")
		nv.Name = name
	}
	r.redirect(o, nv)
}

func staticShapeValue(s graph.Shape) ([]int64, bool) {
	vals := make([]int64, len(s))
	for i, d := range s {
		v, ok := graph.DimInt(d)
		if !ok {
			if d.Sym != "" {
				return nil, false
			}
			if d.Val < 0 {
				return nil, false
			}
			v = d.Val
		}
		vals[i] = v
	}
	return vals, true
}

// usesWithNested is Graph.Uses plus, for values read inside nested graphs,
// the node owning the nested graph.
func usesWithNested(g *graph.Graph) map[*graph.Value][]*graph.Node {
	uses := g.Uses()
	for _, n := range g.Nodes {
		for _, a := range n.Attrs {
			if a.Kind != graph.AttrGraph || a.Graph == nil {
				continue
			}
			sub := &graph.Graph{Nodes: []*graph.Node{{Attrs: map[string]graph.Attr{"g": a}}}}
			for _, v := range outerRefs(sub) {
				uses[v] = append(uses[v], n)
			}
		}
	}
	return uses
}

// readOrOutput reports whether n's first output is read or is a graph
// output. A rewrite redirects only that output's readers; redirecting a
// value nobody reads changes nothing, and counting it as a change would
// never reach the fixed point (a node kept alive by a second output).
// uses may be stale within one sweep: a value redirected earlier in it is
// then still listed, which only costs a wasted attempt.
func readOrOutput(g *graph.Graph, uses map[*graph.Value][]*graph.Node, n *graph.Node) bool {
	if len(n.Outputs) == 0 || n.Outputs[0] == nil {
		return false
	}
	o := n.Outputs[0]
	return g.IsOutput(o) || len(uses[o]) > 0
}

// removeNoops drops nodes that compute their input.
func removeNoops(c *Context) error {
	g := c.G
	for sweep, changed := 0, true; changed; sweep++ {
		if sweep == maxSweeps {
			c.Notef("stopped after %d sweeps without reaching a fixed point", maxSweeps)
			break
		}
		changed = false
		uses := usesWithNested(g)
		r := newReplacer(g)
		for _, n := range append([]*graph.Node(nil), g.Nodes...) {
			r.prepare(n)
			if !readOrOutputR(r, uses, n) {
				continue // only other outputs keep it alive: nothing to redirect
			}
			rule, repl, err := noopReplacement(g, n, uses, r)
			if err != nil {
				return err
			}
			if repl == nil {
				continue
			}
			repl = r.resolve(repl)
			if out := n.Outputs[0]; r.isOutput(out) && (repl.Producer == nil || r.isOutput(repl)) {
				// The output's name is the model's interface; a graph input
				// or another output cannot take it over, so one Identity
				// stays to carry it.
				if n.Op == "Identity" {
					continue
				}
				id, err := addOp(g, "Identity", nil, repl)
				if err != nil {
					return err
				}
				repl = id
			}
			r.replaceValue(n.Outputs[0], repl)
			c.Count(rule)
			changed = true
		}
		r.finish()
		if changed {
			if _, err := removeDead(g); err != nil {
				return err
			}
		}
	}
	return nil
}

// readOrOutputR is readOrOutput with the graph outputs of a replacer.
func readOrOutputR(r *replacer, uses map[*graph.Value][]*graph.Node, n *graph.Node) bool {
	if len(n.Outputs) == 0 || n.Outputs[0] == nil {
		return false
	}
	o := n.Outputs[0]
	return r.isOutput(o) || len(uses[o]) > 0
}

// noopReplacement says what n's first output can be replaced with (nil:
// nothing). uses may be stale (it is only consulted to keep nodes); r
// knows the current graph outputs.
func noopReplacement(g *graph.Graph, n *graph.Node, uses map[*graph.Value][]*graph.Node, r *replacer) (string, *graph.Value, error) {
	if n.Domain != graph.DefaultDomain || len(n.Outputs) == 0 || n.Outputs[0] == nil {
		return "", nil, nil
	}
	out, in := n.Outputs[0], n.Input(0)
	if in == nil {
		return "", nil, nil
	}
	sameType := in.Type.Ranked && out.Type.Ranked && in.Type.Equal(out.Type) && shapeValueKnown(in.Type.Shape)
	switch n.Op {
	case "Identity":
		return "identity", in, nil
	case "Dropout":
		// Inference: the data passes through. The mask output, when read,
		// would need building; such graphs keep the node.
		if len(n.Outputs) > 1 && n.Outputs[1] != nil && (len(uses[n.Outputs[1]]) > 0 || r.isOutput(n.Outputs[1])) {
			return "", nil, nil
		}
		if tm := n.Input(2); tm != nil {
			if !tm.IsConst() {
				return "", nil, nil
			}
			if v, ok := scalarValue(tm.Const); !ok || v != 0 {
				return "", nil, nil
			}
		}
		return "dropout", in, nil
	case "Cast", "CastLike":
		if in.Type.DType == out.Type.DType && in.Type.DType != graph.Undefined {
			return "cast-same-type", in, nil
		}
	case "Reshape", "Expand", "Squeeze", "Unsqueeze", "Flatten":
		if sameType {
			return strings.ToLower(n.Op) + "-same-shape", in, nil
		}
	case "Transpose":
		perm, ok := permOf(n)
		if !ok {
			return "", nil, nil
		}
		if isIdentityPerm(perm) {
			return "transpose-identity", in, nil
		}
		if p := in.Producer; p != nil && p.Op == "Transpose" && p.Domain == graph.DefaultDomain {
			inner, ok := permOf(p)
			if !ok {
				return "", nil, nil
			}
			composed := composePerm(inner, perm)
			if isIdentityPerm(composed) {
				return "transpose-inverse-pair", p.Inputs[0], nil
			}
			v, err := addOp(g, "Transpose", map[string]graph.Attr{"perm": {Kind: graph.AttrInts, Ints: composed}}, p.Inputs[0])
			if err != nil {
				return "", nil, err
			}
			return "transpose-compose", v, nil
		}
	case "Reshape_":
	}
	// Reshape of a Reshape: only the last target matters.
	if n.Op == "Reshape" {
		if p := in.Producer; p != nil && p.Op == "Reshape" && p.Domain == graph.DefaultDomain && n.Input(1) != nil &&
			n.AttrInt("allowzero", 0) == 0 && !hasZeroOrUnknownTarget(n.Input(1)) {
			v, err := addOp(g, "Reshape", nil, p.Inputs[0], n.Input(1))
			if err != nil {
				return "", nil, nil // a target that only makes sense for the middle shape
			}
			if !v.Type.Equal(out.Type) {
				removeNode(g, v.Producer)
				return "", nil, nil
			}
			return "reshape-of-reshape", v, nil
		}
	}
	return "", nil, nil
}

// hasZeroOrUnknownTarget: a 0 in a Reshape target copies the input's dim, so
// skipping the middle Reshape would change what it copies.
func hasZeroOrUnknownTarget(v *graph.Value) bool {
	if v.IsConst() {
		vals, err := v.Const.Int64s()
		if err != nil {
			return true
		}
		for _, x := range vals {
			if x == 0 {
				return true
			}
		}
		return false
	}
	if v.ShapeValue == nil {
		return true
	}
	for _, d := range v.ShapeValue {
		if x, ok := graph.DimInt(d); (ok && x == 0) || d.IsUnknown() {
			return true
		}
	}
	return false
}

// canonicalize puts equivalent computations into one form so the fusion
// patterns need to know only that form.
func canonicalize(c *Context) error {
	g := c.G
	for sweep, changed := 0, true; changed; sweep++ {
		if sweep == maxSweeps {
			c.Notef("stopped after %d sweeps without reaching a fixed point", maxSweeps)
			break
		}
		changed = false
		uses := usesWithNested(g)
		r := newReplacer(g)
		for _, n := range append([]*graph.Node(nil), g.Nodes...) {
			r.prepare(n)
			if !readOrOutputR(r, uses, n) {
				continue
			}
			rule, repl, err := canonicalForm(g, n)
			if err != nil {
				return err
			}
			if repl == nil {
				continue
			}
			r.replaceValue(n.Outputs[0], repl)
			c.Count(rule)
			changed = true
		}
		r.finish()
		if changed {
			if _, err := removeDead(g); err != nil {
				return err
			}
		}
	}
	return nil
}

// RewriteRule is a local rewrite as data: the ops it applies to and a
// function that returns the value replacing the node's output (nil: not
// applicable). Its name is counted in the pass log. canonicalize tries the
// rules in table order and applies the first that fires.
type RewriteRule struct {
	Name  string
	Ops   []string
	Apply func(*graph.Graph, *graph.Node) (string, *graph.Value, error)
}

// canonicalRules are canonicalize's rewrites, in the order they are tried.
// Each Apply returns its own counter name (a rule can have variants).
var canonicalRules = []RewriteRule{
	{Name: "div-const-to-mul", Ops: []string{"Div"}, Apply: divByConst},
	{Name: "sub-from-zero-to-neg", Ops: []string{"Sub"}, Apply: subFromZero},
	{Name: "gemm-to-matmul", Ops: []string{"Gemm"}, Apply: gemmToMatMul},
	{Name: "einsum-to-matmul", Ops: []string{"Einsum"}, Apply: einsumToMatMul},
	{Name: "f16-inf-mask", Ops: []string{"Mul"}, Apply: f16InfMask},
	{Name: "splat-to-scalar", Ops: []string{"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"}, Apply: splatToScalar},
}

// canonicalRulesByOp indexes canonicalRules by op, keeping their order.
var canonicalRulesByOp = func() map[string][]RewriteRule {
	m := map[string][]RewriteRule{}
	for _, r := range canonicalRules {
		for _, op := range r.Ops {
			m[op] = append(m[op], r)
		}
	}
	return m
}()

func canonicalForm(g *graph.Graph, n *graph.Node) (string, *graph.Value, error) {
	if n.Domain != graph.DefaultDomain || len(n.Outputs) != 1 || n.Outputs[0] == nil {
		return "", nil, nil
	}
	for _, r := range canonicalRulesByOp[n.Op] {
		if name, v, err := r.Apply(g, n); err != nil || v != nil {
			return name, v, err
		}
	}
	return "", nil, nil
}

// f16InfMask repairs OF3's mask bias in float16 exports. The model writes
// 1e9·(mask − 1); in f16 the constant 1e9 overflows to +inf, so the exported
// graph computes 0·inf = NaN for every unmasked element, where PyTorch (which
// multiplies by the Python float in f32 and rounds after) gives 0 — and −inf
// for masked ones. So x·(±inf) with an infinite splat f16 constant becomes
// Where(x = 0, 0, x·(±inf)): exactly PyTorch's result. The −inf that remains
// is what of3c.Attention reads as −1e9 (docs/ops.md), which makes a fully
// masked row uniform, as in the f32 model. (1e9·mask − 1e9 is NaN in PyTorch
// f16 too, inf − inf, and is left as it is.)
func f16InfMask(g *graph.Graph, n *graph.Node) (string, *graph.Value, error) {
	out := n.Outputs[0]
	if n.Op != "Mul" || out.Type.DType != graph.Float16 || len(n.Inputs) != 2 {
		return "", nil, nil
	}
	for i, cv := range n.Inputs {
		x := n.Inputs[1-i]
		if cv == nil || x == nil || !cv.IsConst() || cv.Const.DType != graph.Float16 {
			continue
		}
		v, ok := splatValue(cv.Const)
		if !ok || !math.IsInf(v, 0) || !x.Type.Ranked || !out.Type.Equal(x.Type) {
			continue
		}
		if p := out; len(g.Uses()[p]) == 1 && g.Uses()[p][0].Op == "Where" {
			continue // already repaired
		}
		zero, err := scalarConst(g, "f16_zero", graph.Float16, 0)
		if err != nil {
			return "", nil, err
		}
		isZero, err := addOp(g, "Equal", nil, x, zero)
		if err != nil {
			return "", nil, err
		}
		prod, err := addOp(g, "Mul", nil, x, cv)
		if err != nil {
			return "", nil, err
		}
		res, err := addOp(g, "Where", nil, isZero, zero, prod)
		if err != nil {
			return "", nil, err
		}
		return "f16-inf-mask", res, nil
	}
	return "", nil, nil
}

// divByConst: x / c → x · (1/c): one op for the patterns to know, and a
// multiply is cheaper. Rounding differs by at most an ulp.
func divByConst(g *graph.Graph, n *graph.Node) (string, *graph.Value, error) {
	out := n.Outputs[0]
	x, d := n.Input(0), n.Input(1)
	if x == nil || d == nil || !out.Type.DType.IsFloat() {
		return "", nil, nil
	}
	vals, ok := finiteFloatConst(d)
	if !ok {
		return "", nil, nil
	}
	rec := make([]float64, len(vals))
	for i, v := range vals {
		if v == 0 {
			return "", nil, nil
		}
		rec[i] = 1 / v
	}
	t, err := graph.NewTensorFromFloat64s(d.Const.DType, d.Const.Shape, rec)
	if err != nil {
		return "", nil, err
	}
	rc := g.AddConst(g.UniqueName(d.Name+"_reciprocal"), t)
	v, err := addOp(g, "Mul", nil, x, rc)
	if err != nil {
		return "", nil, err
	}
	return "div-const-to-mul", v, nil
}

// subFromZero: 0 − x → Neg(x), when the zero does not widen the result.
func subFromZero(g *graph.Graph, n *graph.Node) (string, *graph.Value, error) {
	out := n.Outputs[0]
	z, x := n.Input(0), n.Input(1)
	if z == nil || x == nil || !z.IsConst() {
		return "", nil, nil
	}
	if v, ok := splatValue(z.Const); !ok || v != 0 {
		return "", nil, nil
	}
	if !x.Type.Ranked || !out.Type.Equal(x.Type) {
		return "", nil, nil
	}
	v, err := addOp(g, "Neg", nil, x)
	if err != nil {
		return "", nil, err
	}
	return "sub-from-zero-to-neg", v, nil
}

// splatToScalar: a constant operand whose elements are all equal and which
// does not decide the output shape becomes a rank-0 scalar, so every scale
// and epsilon looks alike to the patterns.
func splatToScalar(g *graph.Graph, n *graph.Node) (string, *graph.Value, error) {
	out := n.Outputs[0]
	for i := 0; i < 2; i++ {
		cv, x := n.Input(i), n.Input(1-i)
		if cv == nil || x == nil || !cv.IsConst() || len(cv.Const.Shape) == 0 {
			continue
		}
		if !x.Type.Ranked || !out.Type.Equal(x.Type) {
			continue
		}
		sv, ok := splatValue(cv.Const)
		if !ok {
			continue
		}
		sc, err := scalarConst(g, cv.Name+"_scalar", cv.Const.DType, sv)
		if err != nil {
			return "", nil, nil
		}
		ins := []*graph.Value{n.Inputs[0], n.Inputs[1]}
		ins[i] = sc
		v, err := addOp(g, n.Op, cloneAttrs(n.Attrs), ins...)
		if err != nil {
			return "", nil, err
		}
		return "splat-to-scalar", v, nil
	}
	return "", nil, nil
}

func cloneAttrs(a map[string]graph.Attr) map[string]graph.Attr {
	if a == nil {
		return nil
	}
	out := make(map[string]graph.Attr, len(a))
	for k, v := range a {
		out[k] = v
	}
	return out
}

// gemmToMatMul rewrites Gemm (what torch exports for a 2-D Linear) as
// MatMul + Add, so projections look the same at every rank.
func gemmToMatMul(g *graph.Graph, n *graph.Node) (string, *graph.Value, error) {
	a, b, bias := n.Input(0), n.Input(1), n.Input(2)
	if a == nil || b == nil || n.AttrFloat("alpha", 1) != 1 || n.AttrInt("transA", 0) != 0 {
		return "", nil, nil
	}
	if bias != nil && n.AttrFloat("beta", 1) != 1 {
		return "", nil, nil
	}
	var err error
	if n.AttrInt("transB", 0) != 0 {
		if b, err = transposeOf(g, b, []int64{1, 0}); err != nil {
			return "", nil, err
		}
	}
	v, err := addOp(g, "MatMul", nil, a, b)
	if err != nil {
		return "", nil, err
	}
	if bias != nil {
		if v, err = addOp(g, "Add", nil, v, bias); err != nil {
			return "", nil, err
		}
	}
	if !v.Type.Equal(n.Outputs[0].Type) {
		return "", nil, nil
	}
	return "gemm-to-matmul", v, nil
}

// einsumToMatMul rewrites a two-operand Einsum that is a batched matrix
// product (batch labels in both operands and the output, one contracted
// label, one free label per operand) as Transposes around a MatMul. MatMul is
// the form the attention pattern and the MLX lowering know.
func einsumToMatMul(g *graph.Graph, n *graph.Node) (string, *graph.Value, error) {
	if len(n.Inputs) != 2 || n.Inputs[0] == nil || n.Inputs[1] == nil {
		return "", nil, nil
	}
	a, b := n.Inputs[0], n.Inputs[1]
	if !a.Type.Ranked || !b.Type.Ranked {
		return "", nil, nil
	}
	eq := strings.ReplaceAll(n.AttrString("equation", ""), " ", "")
	lhs, rhs, ok := strings.Cut(eq, "->")
	if !ok {
		return "", nil, nil
	}
	ops := strings.Split(lhs, ",")
	if len(ops) != 2 {
		return "", nil, nil
	}
	la, lb, lo, ok := expandEllipsis(ops[0], ops[1], rhs, a.Type.Rank(), b.Type.Rank())
	if !ok {
		return "", nil, nil
	}
	if len(la) != a.Type.Rank() || len(lb) != b.Type.Rank() || hasRepeat(la) || hasRepeat(lb) || hasRepeat(lo) {
		return "", nil, nil
	}
	var batch, contract, freeA, freeB []byte
	for i := 0; i < len(la); i++ {
		l := la[i]
		inB, inO := strings.IndexByte(lb, l) >= 0, strings.IndexByte(lo, l) >= 0
		switch {
		case inB && inO:
			batch = append(batch, l)
		case inB && !inO:
			contract = append(contract, l)
		case !inB && inO:
			freeA = append(freeA, l)
		default:
			return "", nil, nil // summed over one operand only
		}
	}
	for i := 0; i < len(lb); i++ {
		l := lb[i]
		if strings.IndexByte(la, l) < 0 {
			if strings.IndexByte(lo, l) < 0 {
				return "", nil, nil
			}
			freeB = append(freeB, l)
		}
	}
	if len(contract) != 1 || len(freeA) != 1 || len(freeB) != 1 || len(lo) != len(batch)+2 {
		return "", nil, nil
	}
	// Batch dims: equal, or — for dims an ellipsis covers — 1 on one side:
	// Einsum broadcasts those as numpy does, and MatMul broadcasts its batch
	// dims the same way. Explicitly labelled dims must agree.
	for _, l := range batch {
		da := a.Type.Shape[strings.IndexByte(la, l)]
		db := b.Type.Shape[strings.IndexByte(lb, l)]
		fromEllipsis := !strings.ContainsRune(ops[0]+ops[1], rune(l))
		if !da.Equal(db) && !(fromEllipsis && (da.Equal(graph.D(1)) || db.Equal(graph.D(1)))) {
			return "", nil, nil
		}
	}
	order := func(labels string, want []byte) []int64 {
		p := make([]int64, len(want))
		for i, l := range want {
			p[i] = int64(strings.IndexByte(labels, l))
		}
		return p
	}
	aWant := append(append(append([]byte{}, batch...), freeA...), contract...)
	bWant := append(append(append([]byte{}, batch...), contract...), freeB...)
	ta, err := transposeOf(g, a, order(la, aWant))
	if err != nil {
		return "", nil, err
	}
	tb, err := transposeOf(g, b, order(lb, bWant))
	if err != nil {
		return "", nil, err
	}
	mm, err := addOp(g, "MatMul", nil, ta, tb)
	if err != nil {
		return "", nil, err
	}
	// MatMul gives batch ++ freeA ++ freeB; permute to the equation's output.
	mmLabels := string(batch) + string(freeA) + string(freeB)
	res, err := transposeOf(g, mm, order(mmLabels, []byte(lo)))
	if err != nil {
		return "", nil, err
	}
	if !res.Type.Equal(n.Outputs[0].Type) {
		return "", nil, nil
	}
	return "einsum-to-matmul", res, nil
}

// expandEllipsis replaces "..." in an equation by explicit labels (upper
// case letters not used elsewhere), right-aligned as Einsum broadcasts them.
// Both operands must cover the same number of dims with it: differing counts
// would broadcast, which the MatMul rewrite does not take on.
func expandEllipsis(la, lb, lo string, ra, rb int) (string, string, string, bool) {
	if !strings.Contains(la+lb+lo, "...") {
		return la, lb, lo, true
	}
	na := ra - (len(la) - 3)
	nb := rb - (len(lb) - 3)
	if !strings.Contains(la, "...") || !strings.Contains(lb, "...") || !strings.Contains(lo, "...") || na != nb || na < 0 {
		return "", "", "", false
	}
	var fresh []byte
	for c := byte('A'); c <= 'Z' && len(fresh) < na; c++ {
		if !strings.ContainsRune(la+lb+lo, rune(c)) {
			fresh = append(fresh, c)
		}
	}
	if len(fresh) < na {
		return "", "", "", false
	}
	rep := func(s string) string { return strings.Replace(s, "...", string(fresh), 1) }
	return rep(la), rep(lb), rep(lo), true
}

func hasRepeat(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(s[i+1:], s[i]) >= 0 {
			return true
		}
	}
	return false
}

// cse merges equal constants and nodes with the same op, attributes and
// inputs, in one walk over the topological order.
func cse(c *Context) error {
	g := c.G
	// Constants: small ones by content. Large weights are compared only when
	// their hashes agree, which is cheap.
	r := newReplacer(g)
	byKey := map[string][]*graph.Value{}
	for _, v := range g.Consts {
		k := constKey(v.Const)
		dup := false
		for _, w := range byKey[k] {
			if w.Type.Equal(v.Type) && string(w.Const.Data) == string(v.Const.Data) && !r.isOutput(v) {
				r.redirect(v, w)
				c.Count("cse-const")
				dup = true
				break
			}
		}
		if !dup {
			byKey[k] = append(byKey[k], v)
		}
	}
	seen := map[string]*graph.Node{}
	for _, n := range g.Nodes {
		r.prepare(n)
		if !cseable(n) {
			continue
		}
		k := nodeKey(n)
		m, ok := seen[k]
		if !ok {
			seen[k] = n
			continue
		}
		for i, o := range n.Outputs {
			if o != nil && m.Outputs[i] != nil {
				r.replaceValue(o, m.Outputs[i])
			}
		}
		c.Count("cse-node")
	}
	r.finish()
	if _, err := removeDead(g); err != nil {
		return err
	}
	return nil
}

func cseable(n *graph.Node) bool {
	if n.Domain == graph.DefaultDomain {
		switch n.Op {
		case "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout":
			return false
		}
	}
	for _, a := range n.Attrs {
		if a.Kind == graph.AttrGraph {
			return false // subgraph equality is not worth deciding here
		}
	}
	return true
}

func constKey(t *graph.Tensor) string {
	h := fnv.New64a()
	h.Write(t.Data)
	return fmt.Sprintf("%d%v#%x", t.DType, t.Shape, h.Sum64())
}

func nodeKey(n *graph.Node) string {
	var b strings.Builder
	b.WriteString(n.Domain + "." + n.Op + "/" + strconv.FormatInt(int64(len(n.Outputs)), 10) + "(")
	for _, in := range n.Inputs {
		if in == nil {
			b.WriteString("_,")
		} else {
			fmt.Fprintf(&b, "%p,", in)
		}
	}
	b.WriteString("){")
	names := make([]string, 0, len(n.Attrs))
	for k := range n.Attrs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.WriteString(k + "=" + attrKey(n.Attrs[k]) + ";")
	}
	b.WriteString("}")
	return b.String()
}

func attrKey(a graph.Attr) string {
	switch a.Kind {
	case graph.AttrFloat:
		return "f" + strconv.FormatUint(uint64(math.Float32bits(a.Float)), 16)
	case graph.AttrInt:
		return "i" + strconv.FormatInt(a.Int, 10)
	case graph.AttrString:
		return "s" + strconv.Quote(a.Str)
	case graph.AttrFloats:
		var b strings.Builder
		for _, f := range a.Floats {
			b.WriteString(strconv.FormatUint(uint64(math.Float32bits(f)), 16) + ",")
		}
		return "F" + b.String()
	case graph.AttrInts:
		return "I" + fmt.Sprint(a.Ints)
	case graph.AttrStrings:
		return "S" + strconv.Quote(strings.Join(a.Strings, "\x00"))
	case graph.AttrTensor:
		if a.Tensor == nil {
			return "t-nil"
		}
		var sz [8]byte
		binary.LittleEndian.PutUint64(sz[:], uint64(len(a.Tensor.Data)))
		return "t" + constKey(a.Tensor) + string(sz[:]) + string(a.Tensor.Data)
	}
	return fmt.Sprintf("k%d", a.Kind)
}

func dce(c *Context) error {
	n, err := removeDead(c.G)
	if err != nil {
		return err
	}
	if n > 0 {
		c.Count("dead-node")
		c.entry.Rewrites["dead-node"] = n
	}
	return nil
}

func lateCleanup(c *Context) error {
	for _, f := range []func(*Context) error{removeNoops, cse, dce} {
		if err := f(c); err != nil {
			return err
		}
	}
	return nil
}

package main

import (
	"errors"
	"strings"

	"github.com/of3c/of3c/codegen"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/internal/mlx"
	"github.com/of3c/of3c/tests/conformance"
)

// The MLX backend: codegen's lowering, compiled and run per test on the CPU
// in fp32 (the parity configuration). Only this command links it, so the
// conformance library stays free of cgo.
func init() {
	lowered := map[string]bool{}
	for _, op := range codegen.LoweredOps() {
		lowered[op] = true
	}
	conformance.Register("mlx", mlxBackend{lowered: lowered})
}

type mlxBackend struct{ lowered map[string]bool }

func (b mlxBackend) Ready() error {
	if !mlx.Available() {
		return errors.New("MLX is not available in this build (cgo off or -tags nomlx)")
	}
	return nil
}

func (b mlxBackend) CheckNode(n *graph.Node) error {
	if !b.lowered[n.QualifiedOp()] {
		return &graph.UnsupportedOpError{Domain: n.Domain, Op: n.Op, Opset: n.Opset, Node: n.Name, Reason: "no MLX lowering"}
	}
	return nil
}

func (b mlxBackend) Run(g *graph.Graph, inputs map[string]*graph.Tensor) (map[string]*graph.Tensor, error) {
	out, err := runMLX(g, inputs)
	if err != nil && strings.Contains(err.Error(), "must be known when the graph is compiled") {
		// MLX graphs have static shapes, so a model that takes a shape,
		// axes, sizes or a range's bounds as a runtime input is compiled for
		// the given values: integer inputs and one-element inputs become
		// constants, as a deployment would fix them. The data tensors stay
		// inputs, so MLX still computes the result.
		sg, rest := specialize(g, inputs)
		return runMLX(sg, rest)
	}
	return out, err
}

func runMLX(g *graph.Graph, inputs map[string]*graph.Tensor) (map[string]*graph.Tensor, error) {
	p, err := codegen.NewProgram(g, codegen.Options{Device: "cpu", Precision: "fp32"})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	out, _, err := p.Run(inputs)
	return out, err
}

// specialize returns a copy of g whose integer and one-element inputs are
// constants holding the given values, and the inputs that remain.
func specialize(g *graph.Graph, inputs map[string]*graph.Tensor) (*graph.Graph, map[string]*graph.Tensor) {
	c := graph.Clone(g)
	rest := map[string]*graph.Tensor{}
	var keep []*graph.Value
	for _, v := range c.Inputs {
		t := inputs[v.Name]
		if t != nil && (t.DType.IsInt() || t.NumElements() <= 1) {
			v.Const = t
			v.Type = t.Type()
			c.Consts = append(c.Consts, v)
			continue
		}
		keep = append(keep, v)
		if t != nil {
			rest[v.Name] = t
		}
	}
	c.Inputs = keep
	// Shape values derived from the new constants become known.
	_ = graph.InferShapes(c)
	return c, rest
}

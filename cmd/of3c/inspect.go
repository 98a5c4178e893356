package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/graph"
	"github.com/of3c/of3c/importer"
)

func cmdInspect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("inspect", stderr, "inspect MODEL.onnx [--format text|dot|json] [--stats] [--after PASS|all]\n       of3c inspect MODEL.of3 [--format text|json] [--graph] [--stats] [--export-onnx OUT.onnx]")
	format := fs.String("format", "text", "output format: text, dot or json")
	stats := fs.Bool("stats", false, "print statistics (node and op counts, inputs, outputs, params) instead of the graph")
	full := fs.Bool("full", false, "print every constant value in full (text format)")
	showGraph := fs.Bool("graph", false, "for an .of3 artifact: print its optimized graph (in --format) instead of the manifest")
	exportONNX := fs.String("export-onnx", "", "for an .of3 artifact: write its optimized graph as an ONNX model to `FILE` (fused ops as ONNX functions)")
	after := addPassFlags(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one model file, got %d arguments", len(pos))
	}
	switch *format {
	case "text", "dot", "json":
	default:
		return usagef("--format %q: want text, dot or json", *format)
	}

	isArt, err := driver.IsArtifact(pos[0])
	if err != nil {
		return err
	}
	if isArt {
		if after.set() {
			return usagef("%s is a compiled artifact (already optimized): --after, --passes, --explain, --memory and the other pass options apply to ONNX models", pos[0])
		}
		return inspectArtifact(pos[0], *format, *stats, *showGraph, *full, *exportONNX, stdout)
	}
	if *exportONNX != "" || *showGraph {
		return usagef("--export-onnx and --graph apply to .of3 artifacts; %s is not one", pos[0])
	}

	// Unsupported ops don't stop inspect: showing the graph is how a user
	// finds out what is unsupported. Compile and run refuse them.
	g, err := importer.LoadFile(pos[0], importer.Options{AllowUnsupported: true})
	if err != nil {
		return err
	}
	if unsupported := unsupportedOps(g); len(unsupported) > 0 {
		fmt.Fprintf(stderr, "of3c inspect: note: unsupported ops (compile would refuse them): %s\n", strings.Join(unsupported, ", "))
	}
	g, err = after.apply(g, stdout, stderr)
	if err != nil {
		return err
	}
	if g == nil { // the pass flags printed what was asked (e.g. a memory plan)
		return nil
	}

	if *stats {
		st := graph.ComputeStats(g)
		switch *format {
		case "json":
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(st)
		default:
			printStats(stdout, st)
			return nil
		}
	}
	switch *format {
	case "dot":
		_, err = io.WriteString(stdout, graph.FormatDOT(g))
	case "json":
		var b []byte
		b, err = graph.FormatJSON(g)
		if err == nil {
			_, err = stdout.Write(append(b, '\n'))
		}
	default:
		opts := graph.FormatOptions{}
		if *full {
			opts.InlineMax = -1
		}
		_, err = io.WriteString(stdout, graph.FormatWith(g, opts))
	}
	return err
}

// unsupportedOps lists the distinct ops of g that of3c cannot compile.
func unsupportedOps(g *graph.Graph) []string {
	seen := map[string]bool{}
	var out []string
	for _, n := range g.Nodes {
		if err := graph.CheckSupported(n); err != nil {
			if _, ok := err.(*graph.UnsupportedOpError); ok && !seen[n.QualifiedOp()] {
				seen[n.QualifiedOp()] = true
				out = append(out, n.QualifiedOp())
			}
		}
	}
	return out
}

func printStats(w io.Writer, st graph.Stats) {
	fmt.Fprintf(w, "nodes      %d\n", st.Nodes)
	fmt.Fprintf(w, "params     %d (%d bytes in %d constants)\n", st.Params, st.ParamBytes, st.Constants)
	for _, v := range st.Inputs {
		fmt.Fprintf(w, "input      %s %s%s\n", v.Name, v.DType, shapeText(v.Shape))
	}
	for _, v := range st.Outputs {
		fmt.Fprintf(w, "output     %s %s%s\n", v.Name, v.DType, shapeText(v.Shape))
	}
	fmt.Fprintln(w, "op counts:")
	for _, op := range sortedKeys(st.OpCounts) {
		fmt.Fprintf(w, "  %-28s %d\n", op, st.OpCounts[op])
	}
}

func shapeText(dims []any) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = fmt.Sprint(d)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

package main

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/of3c/of3c/driver"
	"github.com/of3c/of3c/graph"
)

// inspectArtifact prints a .of3 artifact's manifest (text or JSON), its
// optimized graph (--graph, in --format), statistics (--stats), or exports
// the graph as ONNX (--export-onnx).
func inspectArtifact(path, format string, stats, showGraph, full bool, exportONNX string, stdout io.Writer) error {
	info, a, err := driver.InspectArtifact(path)
	if err != nil {
		return err
	}
	if exportONNX != "" {
		if err := driver.ExportONNX(a, exportONNX); err != nil {
			return fmt.Errorf("--export-onnx: %w", err)
		}
		fmt.Fprintf(stdout, "wrote %s (the optimized graph; fused ops as ONNX functions in domain %q)\n", exportONNX, graph.FusedDomain)
		return nil
	}
	if stats {
		st := graph.ComputeStats(a.Graph)
		if format == "json" {
			return writeJSON(stdout, st)
		}
		printStats(stdout, st)
		return nil
	}
	if showGraph || format == "dot" {
		return printGraph(stdout, a.Graph, format, full)
	}
	if format == "json" {
		return writeJSON(stdout, info)
	}
	info.Format(stdout)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func printGraph(w io.Writer, g *graph.Graph, format string, full bool) error {
	var err error
	switch format {
	case "dot":
		_, err = io.WriteString(w, graph.FormatDOT(g))
	case "json":
		var b []byte
		b, err = graph.FormatJSON(g)
		if err == nil {
			_, err = w.Write(append(b, '\n'))
		}
	default:
		opts := graph.FormatOptions{}
		if full {
			opts.InlineMax = -1
		}
		_, err = io.WriteString(w, graph.FormatWith(g, opts))
	}
	return err
}

// set reports whether any optimization flag was given (they apply to ONNX
// models; an artifact is already optimized).
func (p *passFlags) set() bool {
	return *p.after != "" || *p.passList != "" || *p.explain || *p.showLog || *p.dumpDir != "" ||
		*p.memory != "" || *p.budget != "" || *p.device != "" || *p.threshold != 0 || *p.chunk != 0 || *p.lmaKV != 0
}

// Command of3c compiles AlphaFold3-class ONNX models to MLX and runs them.
//
//	of3c compile MODEL.onnx -o MODEL.of3 [options]
//	of3c run MODEL.of3 --inputs DIR|FILE.npz|--shapes N=SIZE [-o OUT] [--check DIR|FILE.npz] [options]
//	of3c inspect MODEL.onnx|MODEL.of3 [--format text|dot|json] [--stats] [--after PASS|all]
//	of3c version (also of3c --version)
//
// Exit status: 0 success, 1 error (a failed `run --check` included), 2 usage.
//
// The command is thin: it parses flags and calls the packages that do the
// work (importer, passes, codegen, runtime).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// version is the of3c release; overridden at link time by `-X main.version=...`.
var version = "0.1.0-dev"

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"compile", "compile an ONNX model into a .of3 artifact", cmdCompile},
		{"run", "run a compiled artifact (or an ONNX model) on inputs", cmdRun},
		{"inspect", "print a model's graph, statistics or memory plan", cmdInspect},
		{"version", "print the of3c and MLX versions and MLX's devices", cmdVersion},
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: of3c <command> [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run `of3c <command> -h` for a command's options; `of3c --version` is `of3c version`.")
	fmt.Fprintln(w, "Exit status: 0 success, 1 error (including a failed `run --check`), 2 usage error.")
}

func main() {
	cleanupOnSignal()
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

// realMain returns the process exit status: 0 ok, 1 error, 2 usage error.
func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	if args[0] == "--version" || args[0] == "-version" {
		args = append([]string{"version"}, args[1:]...)
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdout, stderr)
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(stderr, "of3c %s: %v\n", c.name, err)
			return 2
		default:
			fmt.Fprintf(stderr, "of3c %s: %v\n", c.name, oneLine(err))
			return 1
		}
	}
	fmt.Fprintf(stderr, "of3c: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

// usageError marks bad command-line usage (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

// oneLine keeps error output to one line per error: wrapped errors from deep
// inside (e.g. MLX messages) sometimes carry newlines.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// newFlags makes a FlagSet that reports errors instead of exiting, so that
// realMain decides the exit status.
func newFlags(name string, stderr io.Writer, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: of3c %s\n\noptions:\n", synopsis)
		fs.PrintDefaults()
	}
	if flagSetMade != nil {
		flagSetMade(fs, synopsis)
	}
	return fs
}

// flagSetMade, when set (by TestCLIDoc, which renders docs/cli.md), is
// given every flag set as it is made; the test reads its flags after the
// command has defined them and stopped at -h.
var flagSetMade func(fs *flag.FlagSet, synopsis string)

// parseInterleaved parses flags that may come before or after positional
// arguments (`of3c run model.of3 --inputs d` and `of3c run --inputs d model.of3`).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

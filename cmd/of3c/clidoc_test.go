package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

var updateCLIDoc = flag.Bool("update", false, "rewrite docs/cli.md from the commands' flag sets")

const cliDocPath = "../../docs/cli.md"

// renderCLIDoc renders every command's synopsis and flags, from the flag
// sets the commands define (each is run with -h, which stops after parsing).
func renderCLIDoc(t *testing.T) string {
	var b strings.Builder
	b.WriteString(`# of3c command line

<!-- Generated from the commands' flag sets: go test ./cmd/of3c -run TestCLIDoc -update
     (or make docs). TestCLIDoc fails when this file and the code disagree; do not edit by hand. -->

` + "```" + `
of3c <command> [arguments]
` + "```" + `

Flags may come before or after the positional arguments and take one or two dashes (` + "`-o`, `--device`" + `).
Exit status: 0 success, 1 error (one line on stderr, ` + "`of3c <command>: …`" + `), 2 usage error.
Sizes (` + "`--memory-budget`, `--budget`" + `) read K, M, G, T and KiB … TiB as powers of 1024 and KB, MB, GB, TB as
powers of 1000 (` + "`internal/units`" + `).

| command | what it does |
|---|---|
`)
	for _, c := range commands() {
		fmt.Fprintf(&b, "| [`%s`](#of3c-%s) | %s |\n", c.name, c.name, c.summary)
	}
	defer func() { flagSetMade = nil }()
	for _, c := range commands() {
		var sets []*flag.FlagSet
		var synopses []string
		flagSetMade = func(fs *flag.FlagSet, synopsis string) {
			sets = append(sets, fs)
			synopses = append(synopses, synopsis)
		}
		if err := c.run([]string{"-h"}, io.Discard, io.Discard); err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("%s -h: %v", c.name, err)
		}
		fmt.Fprintf(&b, "\n## of3c %s\n\n%s.\n\n", c.name, strings.ToUpper(c.summary[:1])+c.summary[1:])
		if len(sets) == 0 {
			b.WriteString("No flags.\n")
			continue
		}
		for i, fs := range sets {
			fmt.Fprintf(&b, "```\nof3c %s\n```\n\n", synopses[i])
			n := 0
			fs.VisitAll(func(*flag.Flag) { n++ })
			if n == 0 {
				b.WriteString("No flags.\n")
				continue
			}
			b.WriteString("| flag | value | default | meaning |\n|---|---|---|---|\n")
			fs.VisitAll(func(f *flag.Flag) {
				name, usage := flag.UnquoteUsage(f)
				if name == "" {
					name = "—"
				}
				def := f.DefValue
				if name == "—" && def == "false" { // a switch
					def = ""
				}
				if def != "" {
					def = "`" + def + "`"
				}
				dash := "--"
				if len(f.Name) == 1 {
					dash = "-"
				}
				fmt.Fprintf(&b, "| `%s%s` | %s | %s | %s |\n", dash, f.Name, name, def, strings.ReplaceAll(usage, "|", `\|`))
			})
		}
	}
	return b.String()
}

// docs/cli.md is the rendering of the current flag sets.
func TestCLIDoc(t *testing.T) {
	got := renderCLIDoc(t)
	if *updateCLIDoc {
		if err := os.WriteFile(cliDocPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(cliDocPath)
	if err != nil {
		t.Fatalf("%v (generate it: go test ./cmd/of3c -run TestCLIDoc -update)", err)
	}
	if string(want) != got {
		wl, gl := strings.Split(string(want), "\n"), strings.Split(got, "\n")
		for i := 0; i < max(len(wl), len(gl)); i++ {
			var w, g string
			if i < len(wl) {
				w = wl[i]
			}
			if i < len(gl) {
				g = gl[i]
			}
			if w != g {
				t.Fatalf("docs/cli.md is stale (regenerate: go test ./cmd/of3c -run TestCLIDoc -update); first difference at line %d:\n  file: %s\n  code: %s", i+1, w, g)
			}
		}
	}
}

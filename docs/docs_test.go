// Package docs holds only tests: they keep the generated parts of the docs
// current and check the hand-written ones against the code.
package docs

import (
	"flag"
	"fmt"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/of3c/of3c/codegen"
	"github.com/of3c/of3c/passes"
)

var update = flag.Bool("update", false, "rewrite the generated sections of docs/architecture.md")

const archPath = "architecture.md"

// section replaces the text between "<!-- BEGIN name" and "<!-- END name
// -->" lines with body.
func section(doc, name, body string) (string, error) {
	b := strings.Index(doc, "<!-- BEGIN "+name+" ")
	e := strings.Index(doc, "<!-- END "+name+" -->")
	if b < 0 || e < b {
		return "", fmt.Errorf("no BEGIN/END %s markers", name)
	}
	b += strings.Index(doc[b:], "\n") + 1
	return doc[:b] + body + doc[e:], nil
}

func escape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func passTable() string {
	var b strings.Builder
	b.WriteString("| # | pass | default | after | what it does |\n|---|---|---|---|---|\n")
	for i, p := range passes.Table() {
		def := "yes"
		if !p.Default {
			def = "on request"
		}
		after := make([]string, len(p.After))
		for k, a := range p.After {
			after[k] = "`" + a + "`"
		}
		fmt.Fprintf(&b, "| %d | `%s` | %s | %s | %s |\n", i+1, p.Name, def, strings.Join(after, ", "), escape(p.Desc))
	}
	return b.String()
}

func pathTable() string {
	var b strings.Builder
	b.WriteString("| op | path | device | taken when | runs |\n|---|---|---|---|---|\n")
	for _, p := range codegen.PathTable {
		fmt.Fprintf(&b, "| `%s` | `%s` | %s | %s | %s |\n", p.Op, p.Path, p.Devices, escape(p.When), escape(p.Does))
	}
	return b.String()
}

// docs/architecture.md's pass table and lowering-path table are the code's.
func TestArchitectureDoc(t *testing.T) {
	data, err := os.ReadFile(archPath)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	got, err := section(doc, "passes", passTable())
	if err == nil {
		got, err = section(got, "lowering-paths", pathTable())
	}
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(archPath, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != doc {
		t.Errorf("docs/architecture.md's generated tables are stale: make docs (or go test ./docs -run TestArchitectureDoc -update)")
	}
}

// goPackages maps each package directory of the module (relative, slash
// separated) to the module packages its non-test files import.
func goPackages(t *testing.T, root string) map[string][]string {
	pkgs := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		if _, ok := pkgs[rel]; !ok {
			pkgs[rel] = nil
		}
		for _, im := range f.Imports {
			p, _ := strconv.Unquote(im.Path.Value)
			if im, ok := strings.CutPrefix(p, "github.com/of3c/of3c/"); ok && !slices.Contains(pkgs[rel], im) {
				pkgs[rel] = append(pkgs[rel], im)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// layers reads the package map of docs/architecture.md: "| `pkg` | layer |".
func layers(t *testing.T) map[string]int {
	data, err := os.ReadFile(archPath)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z0-9_/.]+)` \\| (\\d+) \\|").FindAllStringSubmatch(string(data), -1) {
		n, _ := strconv.Atoi(m[2])
		out[m[1]] = n
	}
	if len(out) == 0 {
		t.Fatal("no package map in docs/architecture.md")
	}
	return out
}

func layerOf(table map[string]int, pkg string) (int, bool) {
	if n, ok := table[pkg]; ok {
		return n, true
	}
	for k, n := range table {
		if base, ok := strings.CutSuffix(k, "/..."); ok && strings.HasPrefix(pkg, base+"/") {
			return n, true
		}
	}
	return 0, false
}

// No package imports one of its own or a higher layer, and the package map
// lists every package.
func TestLayering(t *testing.T) {
	table := layers(t)
	pkgs := goPackages(t, "..")
	names := make([]string, 0, len(pkgs))
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		lp, ok := layerOf(table, p)
		if !ok {
			t.Errorf("package %s is not in docs/architecture.md's package map: add it with its layer", p)
			continue
		}
		for _, im := range pkgs[p] {
			li, ok := layerOf(table, im)
			if ok && li >= lp {
				t.Errorf("%s (layer %d) imports %s (layer %d): packages import only lower layers", p, lp, im, li)
			}
		}
	}
	for k := range table {
		if base, ok := strings.CutSuffix(k, "/..."); ok {
			k = base
		}
		if _, err := os.Stat(filepath.Join("..", k)); err != nil {
			t.Errorf("docs/architecture.md lists %s, which does not exist", k)
		}
	}
}

// envReads finds the environment variables the Go and C/C++ sources read by
// name (os.Getenv, os.LookupEnv, getenv), with the files that read them.
func envReads(t *testing.T, root string) map[string][]string {
	re := regexp.MustCompile(`\b(?:Getenv|LookupEnv|getenv)\(\s*"([A-Za-z_][A-Za-z0-9_]*)"`)
	out := map[string][]string{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		switch filepath.Ext(path) {
		case ".go", ".cc", ".c", ".cpp", ".h":
		default:
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			rel, _ := filepath.Rel(root, path)
			out[m[1]] = append(out[m[1]], filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// docs/configuration.md documents every environment variable the code reads,
// and no OF3C_ variable the code does not read.
func TestConfigurationDoc(t *testing.T) {
	data, err := os.ReadFile("configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_][A-Z0-9_]*)`").FindAllStringSubmatch(doc, -1) {
		documented[m[1]] = true
	}
	reads := envReads(t, "..")
	if len(reads) == 0 {
		t.Fatal("found no environment reads: the scan is broken")
	}
	for name, files := range reads {
		if !documented[name] {
			t.Errorf("%s is read (%s) but has no row in docs/configuration.md", name, strings.Join(files, ", "))
		}
	}
	for name := range documented {
		if strings.HasPrefix(name, "OF3C_") && reads[name] == nil {
			t.Errorf("docs/configuration.md documents %s, which no source reads", name)
		}
	}
}

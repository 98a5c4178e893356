package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"

	"of3c/tests/conformance"
)

func TestRunPrintsClosingLine(t *testing.T) {
	if _, err := os.Stat(conformance.DefaultDebianDir); err != nil {
		t.Skip("no node tests")
	}
	var out, errOut bytes.Buffer
	code := run([]string{"-run", "^test_(add|relu)$", "-expected", "../expected_failures.txt"}, &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out.String(), errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	last := lines[len(lines)-1]
	if last != "conformance: 2 passed, 0 failed, 0 skipped" {
		t.Fatalf("closing line %q", last)
	}
	if !regexp.MustCompile(`(?m)^Add\s+1\s+0\s+0$`).MatchString(out.String()) {
		t.Fatalf("no per-op row for Add:\n%s", out.String())
	}
}

func TestRunFailsOnUnexpectedPass(t *testing.T) {
	if _, err := os.Stat(conformance.DefaultDebianDir); err != nil {
		t.Skip("no node tests")
	}
	list := t.TempDir() + "/x.txt"
	os.WriteFile(list, []byte("test_add a stale entry\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"-run", "^test_add$", "-expected", list}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out.String())
	}
	if !strings.Contains(out.String(), "XPASS test_add") {
		t.Fatalf("no XPASS line:\n%s", out.String())
	}
}

func TestBadFlags(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"-backend", "nope"}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "unknown backend") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if code := run([]string{"-run", "("}, &out, &errOut); code != 2 {
		t.Fatalf("bad regexp: exit %d", code)
	}
}

// Package docs_test keeps docs/THREATS.md true: every test it names exists.
package docs_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestThreatsNameRealTests reads the last column of every table row in
// THREATS.md and checks that each Go test, fuzz target or conformance case
// it names is defined somewhere in the repository.
func TestThreatsNameRealTests(t *testing.T) {
	doc, err := os.ReadFile("THREATS.md")
	if err != nil {
		t.Fatal(err)
	}
	var src strings.Builder
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			src.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	code := src.String()
	name := regexp.MustCompile(`\b(Test|Fuzz|Example|Benchmark)?[A-Z][A-Za-z0-9_]+\b`)
	rows := 0
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || strings.HasPrefix(strings.TrimSpace(cells[1]), "---") || strings.TrimSpace(cells[1]) == "threat" {
			continue
		}
		rows++
		tests := cells[len(cells)-2]
		found := 0
		for _, n := range name.FindAllString(tests, -1) {
			found++
			if !strings.Contains(code, "func "+n+"(") && !strings.Contains(code, `"`+n+`"`) {
				t.Errorf("THREATS.md names %s, which no Go file defines (row: %s)", n, strings.TrimSpace(cells[1]))
			}
		}
		if found == 0 && !strings.Contains(tests, "scripts/") {
			t.Errorf("THREATS.md row %q names no test", strings.TrimSpace(cells[1]))
		}
	}
	if rows < 20 {
		t.Fatalf("only %d threat rows read: is the table format still | threat | defence | test |?", rows)
	}
}

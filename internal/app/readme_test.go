package app_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/voicebroker/voicebroker/config"
	"github.com/voicebroker/voicebroker/internal/testenv"
)

// TestREADMEListsEveryVariable: the README's configuration table names
// every variable the broker reads (config.LoadEnv, through a recording
// getenv), and no row names a variable the broker does not read.
func TestREADMEListsEveryVariable(t *testing.T) {
	read := map[string]bool{}
	config.LoadEnv(func(name string) string { read[name] = true; return "" })
	if len(read) == 0 {
		t.Fatal("LoadEnv read no variable")
	}

	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Configuration reference\n")
	if !ok {
		t.Fatal("README.md has no \"## Configuration reference\" section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	documented := map[string]bool{}
	name := regexp.MustCompile(`\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b`)
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 3 || !strings.HasPrefix(line, "| ") {
			continue
		}
		for _, v := range name.FindAllString(cells[1], -1) {
			documented[v] = true
		}
	}

	var missing, unread []string
	for v := range read {
		if !documented[v] {
			missing = append(missing, v)
		}
	}
	for v := range documented {
		if !read[v] {
			unread = append(unread, v)
		}
	}
	slices.Sort(missing)
	slices.Sort(unread)
	if len(missing) > 0 {
		t.Errorf("read by the broker but not in the README's configuration table: %v", missing)
	}
	if len(unread) > 0 {
		t.Errorf("in the README's configuration table but never read by the broker: %v", unread)
	}
}

// TestREADMELinksResolve: every relative link in the README and in
// deploy/README.md points at a file or directory of the repository.
func TestREADMELinksResolve(t *testing.T) {
	root := testenv.RepoRoot(t)
	link := regexp.MustCompile(`\]\(([^)\s]+)\)`)
	for _, doc := range []string{"README.md", "deploy/README.md"} {
		data, err := os.ReadFile(filepath.Join(root, doc))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(data), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(root, filepath.Dir(doc), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist", doc, m[1])
			}
		}
	}
}

// TestREADMETenantsExampleParses: the README's example tenants file, with
// real hashes in place of its placeholders, passes the broker's own check,
// and so does it with its optional lines uncommented.
func TestREADMETenantsExampleParses(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Tenants file\n")
	if !ok {
		t.Fatal("README.md has no \"## Tenants file\" section")
	}
	_, example, ok := strings.Cut(section, "```yaml\n")
	example, _, ok2 := strings.Cut(example, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block under \"## Tenants file\"")
	}
	n := 0
	example = regexp.MustCompile(`"sha256:<64 hex>"`).ReplaceAllStringFunc(example, func(string) string {
		n++
		return `"` + hashOf(fmt.Sprintf("key-%d", n)) + `"`
	})
	if n == 0 {
		t.Fatal("the example has no hash placeholders")
	}
	if _, err := config.Parse([]byte(example)); err != nil {
		t.Fatalf("the README's tenants example: %v", err)
	}
	optional := regexp.MustCompile(`(?m)^(\s*)# ([a-z_]+: .*?)\s+# .*$`)
	uncommented := optional.ReplaceAllString(example, "$1$2")
	if uncommented == example {
		t.Fatal("no commented optional lines found")
	}
	if _, err := config.Parse([]byte(uncommented)); err != nil {
		t.Fatalf("the README's tenants example with its optional lines: %v", err)
	}
}

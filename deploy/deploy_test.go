// Package deploy holds the Kubernetes manifests; this test parses them.
package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/voicebroker/voicebroker/config"
)

// TestManifestsParse: every manifest is valid YAML with apiVersion, kind
// and metadata.name; the set has the kinds a multi-replica deployment
// needs; the probes point at /healthz and /readyz; the ConfigMap's tenants
// file passes the broker's own check.
func TestManifestsParse(t *testing.T) {
	files, _ := filepath.Glob("kubernetes/*.yaml")
	if len(files) == 0 {
		t.Fatal("no manifests")
	}
	kinds := map[string]map[string]any{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			kind, _ := doc["kind"].(string)
			md, _ := doc["metadata"].(map[string]any)
			if doc["apiVersion"] == nil || kind == "" || md["name"] == nil {
				t.Fatalf("%s: missing apiVersion, kind or metadata.name", f)
			}
			kinds[kind] = doc
		}
	}
	for _, k := range []string{"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap"} {
		if kinds[k] == nil {
			t.Errorf("no %s", k)
		}
	}
	// The Secret is made by the operator (kubectl create secret): one
	// among the manifests would replace the real keys with its
	// placeholders at every `kubectl apply -f deploy/kubernetes/`.
	if kinds["Secret"] != nil {
		t.Error("a Secret among the manifests kubectl apply reads: its placeholders would overwrite the real one")
	}
	dep, _ := yaml.Marshal(kinds["Deployment"])
	for _, want := range []string{"path: /healthz", "path: /readyz", "BROKER_ENV", "production", "runAsNonRoot: true"} {
		if !strings.Contains(string(dep), want) {
			t.Errorf("Deployment lacks %q", want)
		}
	}
	tenants := kinds["ConfigMap"]["data"].(map[string]any)["tenants.yaml"].(string)
	if _, err := config.Parse([]byte(tenants)); err != nil {
		t.Errorf("ConfigMap tenants file: %v", err)
	}
}

// TestSecretExample: the example Secret is where `kubectl apply -f
// deploy/kubernetes/` does not look (kubectl reads only .json, .yaml and
// .yml files of a directory), and it names the Secret the Deployment reads
// with every key the Deployment takes from it, so that it stays a true
// example of what to create.
func TestSecretExample(t *testing.T) {
	const example = "kubernetes/secret.yaml.example"
	for _, ext := range []string{".json", ".yaml", ".yml"} {
		if strings.HasSuffix(example, ext) {
			t.Fatalf("%s would be applied by kubectl apply -f kubernetes/", example)
		}
	}
	data, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	var secret struct {
		Kind     string
		Metadata struct{ Name string }
		Data     map[string]string `yaml:"stringData"`
	}
	if err := yaml.Unmarshal(data, &secret); err != nil {
		t.Fatal(err)
	}
	if secret.Kind != "Secret" {
		t.Fatalf("%s: kind %q", example, secret.Kind)
	}
	dep, err := os.ReadFile("kubernetes/deployment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Every secretKeyRef and the keys volume's items name this Secret and
	// one of its keys.
	refs := regexp.MustCompile(`secretKeyRef: \{name: ([^,\s]+), key: ([^}\s]+)\}|secretName: (\S+)|\{key: ([^,\s]+), path: `).FindAllStringSubmatch(string(dep), -1)
	if len(refs) < 3 {
		t.Fatalf("found %d references to the Secret in deployment.yaml", len(refs))
	}
	for _, m := range refs {
		name, key := m[1]+m[3], m[2]+m[4]
		if name != "" && name != secret.Metadata.Name {
			t.Errorf("deployment.yaml reads Secret %q; the example is %q", name, secret.Metadata.Name)
		}
		if _, ok := secret.Data[key]; key != "" && !ok {
			t.Errorf("deployment.yaml reads key %q, which the example Secret lacks", key)
		}
	}
}

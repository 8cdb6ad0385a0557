// Package deploy holds the Kubernetes manifests; this test parses them.
package deploy_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
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
	for _, k := range []string{"Deployment", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "ConfigMap", "Secret"} {
		if kinds[k] == nil {
			t.Errorf("no %s", k)
		}
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

package registry

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"gopkg.in/yaml.v3"

	"github.com/voicebroker/voicebroker/config"
)

// ParseFile reads and checks a tenants file for import: config.Parse's
// checks and messages (field paths such as orgs[0].keys[1].hash), and the
// file as written. Relative paths in it are read from the working
// directory; a file read from disk goes through ParseFileIn.
func ParseFile(data []byte) (*config.File, error) { return ParseFileIn(data, "") }

// ParseFileIn is ParseFile for a tenants file in directory dir: the
// relative paths it names (api_secret_file, public_key_file) are resolved
// against dir, as config.ParseIn resolves them for the broker, so that an
// import reads the same files as serving the file would.
func ParseFileIn(data []byte, dir string) (*config.File, error) {
	if _, err := config.ParseIn(data, dir); err != nil {
		return nil, err
	}
	var f config.File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("tenants file: %w", err)
	}
	f.ResolvePaths(dir)
	return &f, nil
}

// MarshalFile writes f as a tenants file, leaving out fields at their zero
// value (an empty public.keys list stays: it is public mode with no key).
func MarshalFile(f *config.File) ([]byte, error) {
	var doc yaml.Node
	if err := doc.Encode(f); err != nil {
		return nil, err
	}
	prune(&doc, "")
	var b bytes.Buffer
	b.WriteString("# voicebroker tenants file, exported from the tenant registry.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// prune drops mapping entries whose value is null, "", false, 0 or an
// empty list, except public.keys.
func prune(n *yaml.Node, parent string) {
	if n.Kind == yaml.MappingNode {
		var keep []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			prune(v, k.Value)
			if zero(v) && !(parent == "public" && k.Value == "keys") {
				continue
			}
			keep = append(keep, k, v)
		}
		n.Content = keep
		return
	}
	for _, c := range n.Content {
		prune(c, parent)
	}
}

func zero(v *yaml.Node) bool {
	switch v.Kind {
	case yaml.ScalarNode:
		switch v.Tag {
		case "!!null":
			return true
		case "!!str":
			return v.Value == ""
		case "!!bool":
			return v.Value == "false"
		case "!!int":
			return v.Value == "0"
		}
	case yaml.SequenceNode, yaml.MappingNode:
		return len(v.Content) == 0
	}
	return false
}

// specJSON encodes v (an agent or an issuer) as JSON with the tenants
// file's field names, for a jsonb column: fields the file gains later are
// kept without a schema change.
func specJSON(v any) ([]byte, error) {
	y, err := yaml.Marshal(v)
	if err != nil {
		return nil, err
	}
	var generic any
	if err := yaml.Unmarshal(y, &generic); err != nil {
		return nil, err
	}
	return json.Marshal(generic)
}

// specFromJSON decodes what specJSON wrote into v, refusing unknown fields.
func specFromJSON(data []byte, v any) error {
	var generic any
	if err := json.Unmarshal(data, &generic); err != nil {
		return err
	}
	y, err := yaml.Marshal(generic)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(y))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// EncodeAgent and the functions below are specJSON and specFromJSON for
// the database: an agent without publishable keys, and a JWT issuer.
func EncodeAgent(a config.Agent) ([]byte, error) {
	a = cloneAgent(a)
	if a.Public != nil {
		a.Public.KeyHash, a.Public.Keys = "", nil
	}
	return specJSON(a)
}

// DecodeAgent reads what EncodeAgent wrote.
func DecodeAgent(data []byte) (config.Agent, error) {
	var a config.Agent
	err := specFromJSON(data, &a)
	return a, err
}

// EncodeIssuer encodes a JWT issuer for the database.
func EncodeIssuer(is config.JWTIssuer) ([]byte, error) { return specJSON(is) }

// DecodeIssuer reads what EncodeIssuer wrote.
func DecodeIssuer(data []byte) (config.JWTIssuer, error) {
	var is config.JWTIssuer
	err := specFromJSON(data, &is)
	return is, err
}

package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// strictValues walks a parsed tenants file along the schema's Go types and
// refuses every value yaml.v3 would otherwise convert or drop without a
// word:
//
//   - numbers other than plain decimal whole numbers (1.5 becomes 1, 1e3,
//     0x10, 0o17, 012, 1_000 and +5 are read as other numbers);
//   - booleans other than true and false (YAML 1.1's yes, no, on, off, y
//     and n are read as booleans, True and FALSE too);
//   - empty values (null, ~ or nothing) in any field, which would leave a
//     string, list, mapping or date unset, and empty list items, which
//     would be dropped (allowed_ips: [~] would allow every address);
//   - dates that are not RFC 3339 with a zone (a bare 2027-06-01 or a time
//     without a zone would be read as UTC midnight or UTC);
//   - explicit YAML tags, on values and on keys (!!binary would decode
//     base64 into an id, or into a field's name);
//   - empty keys, which the decoder drops with their values.
//
// An alias used as a key (*k : ...) is checked as the field it names: the
// decoder reads it so.
//
// Shapes the decoder itself refuses (a list where a string goes, unknown
// fields) are left to it. Each problem names the field path and its line.
func strictValues(data []byte) []string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return nil // the decoder reports the syntax error
	}
	w := &strictWalker{budget: maxStrictNodes}
	w.walk(&doc, reflect.TypeFor[File](), "")
	return w.problems
}

// maxStrictNodes bounds the walk: aliases can make a small file a large
// tree, and the decoder refuses excessive aliasing on its own.
const maxStrictNodes = 1 << 20

type strictWalker struct {
	problems []string
	budget   int
}

var (
	timeType  = reflect.TypeFor[time.Time]()
	reDecimal = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
	// YAML 1.1 booleans that yaml.v3 still reads into a bool field.
	oldBools = map[string]bool{"y": true, "yes": true, "n": true, "no": true, "on": true, "off": true}
)

func (w *strictWalker) add(at string, n *yaml.Node, reason string) {
	if at == "" {
		at = "(top level)"
	}
	w.problems = append(w.problems, fmt.Sprintf("%s: %s (line %d)", at, reason, n.Line))
}

func (w *strictWalker) walk(n *yaml.Node, t reflect.Type, at string) {
	if w.budget--; w.budget < 0 {
		if w.budget == -1 {
			w.problems = append(w.problems, "(top level): too many nodes through aliases")
		}
		return
	}
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 1 {
			w.walk(n.Content[0], t, at)
		}
		return
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Style&yaml.TaggedStyle != 0 {
		w.add(at, n, fmt.Sprintf("YAML tags such as %s are not accepted; write the value plainly (in quotes for a string)", truncate(n.Tag)))
		return
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		w.add(at, n, "empty; write a value, or remove the field")
		return
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		w.timestamp(n, at)
	case t.Kind() == reflect.Struct:
		w.mapping(n, t, at)
	case t.Kind() == reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, c := range n.Content {
			item := fmt.Sprintf("%s[%d]", at, i)
			if c.Kind == yaml.ScalarNode && c.ShortTag() == "!!null" && c.Style&yaml.TaggedStyle == 0 {
				w.add(item, c, "an empty list item; remove it or write a value")
				continue
			}
			w.walk(c, t.Elem(), item)
		}
	case t.Kind() == reflect.Bool:
		if n.Kind != yaml.ScalarNode {
			return
		}
		if n.Style != 0 || (n.Value != "true" && n.Value != "false") {
			reason := fmt.Sprintf("must be true or false, not %q", truncate(n.Value))
			if oldBools[strings.ToLower(n.Value)] {
				reason += " (YAML 1.1 spellings such as yes, no, on and off are not accepted)"
			} else if n.Style != 0 {
				reason += " (unquoted)"
			}
			w.add(at, n, reason)
		}
	case t.Kind() == reflect.Int:
		if n.Kind != yaml.ScalarNode {
			return
		}
		if _, err := strconv.Atoi(n.Value); n.Style != 0 || !reDecimal.MatchString(n.Value) || err != nil {
			reason := fmt.Sprintf("must be a whole number, not %q", truncate(n.Value))
			if n.Style == 0 && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
				reason += " (write it in plain decimal digits, such as 600)"
			}
			w.add(at, n, reason)
		}
	}
}

// mapping walks the fields of a struct, following merge keys; unknown
// fields are the decoder's to report.
func (w *strictWalker) mapping(n *yaml.Node, t reflect.Type, at string) {
	if n.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		// An alias as a key (*k : [chat, ~]) names the field its anchor
		// spells, for the decoder as for a plain YAML reading: it is
		// checked as that key, and its value as that field's.
		key := k
		if key.Kind == yaml.AliasNode && key.Alias != nil {
			key = key.Alias
		}
		if key.Style&yaml.TaggedStyle != 0 {
			// A tag on a key changes which field it names (!!binary
			// decodes base64 into a field name) and what a plain YAML
			// reading of the file sees.
			w.add(at, k, fmt.Sprintf("YAML tags such as %s are not accepted on keys; write the field name plainly", truncate(key.Tag)))
			continue
		}
		if key.Kind == yaml.ScalarNode && key.ShortTag() == "!!null" {
			// The decoder drops an empty key and its value without a word.
			w.add(at, k, "an empty key (~, null or nothing before the colon); write a field name, or remove the line")
			continue
		}
		if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.Style == 0 {
			w.merge(v, t, at)
			continue
		}
		f, ok := fieldByTag(t, key.Value)
		if !ok {
			continue
		}
		field := key.Value
		if at != "" {
			field = at + "." + key.Value
		}
		w.walk(v, f.Type, field)
	}
}

// merge walks the mapping (or list of mappings) of a << merge key as
// fields of the mapping that holds it.
func (w *strictWalker) merge(v *yaml.Node, t reflect.Type, at string) {
	if v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	switch v.Kind {
	case yaml.MappingNode:
		w.mapping(v, t, at)
	case yaml.SequenceNode:
		for _, c := range v.Content {
			w.merge(c, t, at)
		}
	}
}

// timestamp accepts RFC 3339 with a zone only, quoted or not.
func (w *strictWalker) timestamp(n *yaml.Node, at string) {
	if n.Kind != yaml.ScalarNode {
		return
	}
	if _, err := time.Parse(time.RFC3339Nano, n.Value); err != nil {
		w.add(at, n, fmt.Sprintf("must be a date and time such as 2027-06-01T00:00:00Z (RFC 3339, with Z or an offset such as +02:00), not %q", truncate(n.Value)))
	}
}

func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag == name && tag != "" && tag != "-" {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

package config

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// yamlProblems turns a YAML decoding error into problems that name the
// field path first (orgs[0].keys[1].revoked: …) and say what is expected in
// the tenants file's words, not Go's; the line follows as extra help.
func yamlProblems(data []byte, err error) *ValidationError {
	var pe *time.ParseError
	if errors.As(err, &pe) {
		// A timestamp the decoder gave up on: find it by its value.
		reason := fmt.Sprintf("must be %s, not %q", expected("time.Time"), truncate(pe.Value))
		for line, refs := range indexLines(data) {
			for _, r := range refs {
				if !r.key && r.value == pe.Value {
					return &ValidationError{Problems: []string{fmt.Sprintf("%s: %s (line %d)", r.path, reason, line)}}
				}
			}
		}
		return &ValidationError{Problems: []string{"a timestamp " + reason}}
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return &ValidationError{Problems: []string{syntaxProblem(data, err)}}
	}
	idx := indexLines(data)
	problems := make([]string, 0, len(te.Errors))
	for _, msg := range te.Errors {
		problems = append(problems, typeProblem(idx, msg))
	}
	return &ValidationError{Problems: problems}
}

var (
	reUnknownField = regexp.MustCompile("^line (\\d+): field (.+) not found in type (\\S+)$")
	reWrongType    = regexp.MustCompile("(?s)^line (\\d+): cannot unmarshal (\\S+)(?: `(.*)`)? into (.+)$")
	reDuplicateKey = regexp.MustCompile(`^line (\d+): mapping key (".*") already defined at line (\d+)$`)
	reFieldTwice   = regexp.MustCompile(`^line (\d+): field (.+) already set in type (\S+)$`)
	reSyntax       = regexp.MustCompile(`^yaml: line (\d+): (.+)$`)
)

func typeProblem(idx lineIndex, msg string) string {
	if m := reUnknownField.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		reason := "unknown field"
		if known := knownFields(m[3]); known != "" {
			reason += "; expected one of " + known
		}
		return idx.at(line, m[2], true, "", reason)
	}
	if m := reWrongType.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		got := describeYAML(m[2], m[3])
		return idx.at(line, m[3], false, m[2], fmt.Sprintf("must be %s, not %s", expected(m[4]), got))
	}
	if m := reDuplicateKey.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		key, _ := strconv.Unquote(m[2])
		return idx.at(line, key, true, "", "set twice in one mapping, first at line "+m[3])
	}
	if m := reFieldTwice.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return idx.at(line, m[2], true, "", "set twice in one mapping")
	}
	if line, _, ok := strings.Cut(msg, ":"); ok && strings.HasPrefix(line, "line ") {
		return line + ": a value that does not fit the tenants file here"
	}
	return "a value that does not fit the tenants file"
}

// syntaxProblem reports a YAML syntax error with the last field that
// parsed before it, when there is one.
func syntaxProblem(data []byte, err error) string {
	m := reSyntax.FindStringSubmatch(err.Error())
	if m == nil {
		return "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")
	}
	line, _ := strconv.Atoi(m[1])
	reason := m[2]
	lines := strings.SplitAfter(string(data), "\n")
	if line >= 1 && line <= len(lines) && strings.Contains(lines[line-1], "\t") {
		reason += " (YAML indentation must use spaces, not tabs)"
	}
	near := ""
	for k := min(line-1, len(lines)); k >= 1 && k >= line-3; k-- {
		if p := indexLines([]byte(strings.Join(lines[:k], ""))).last(); p != "" {
			near = " after " + p
			break
		}
	}
	return fmt.Sprintf("not valid YAML at line %d%s: %s", line, near, reason)
}

// lineIndex maps a line to the keys and values that start on it, with the
// field path of each.
type lineIndex map[int][]nodeRef

type nodeRef struct {
	path  string
	key   bool
	value string
	tag   string
}

func indexLines(data []byte) lineIndex {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return nil
	}
	idx := lineIndex{}
	idx.walk(&doc, "")
	return idx
}

func (idx lineIndex) walk(n *yaml.Node, at string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			idx.walk(c, at)
		}
	case yaml.MappingNode:
		idx[n.Line] = append(idx[n.Line], nodeRef{path: at, tag: "!!map"})
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" { // a merge key: its fields are this mapping's
				idx.walk(v, at)
				continue
			}
			field := k.Value
			if at != "" {
				field = at + "." + k.Value
			}
			idx[k.Line] = append(idx[k.Line], nodeRef{path: field, key: true, value: k.Value})
			idx.walk(v, field)
		}
	case yaml.SequenceNode:
		idx[n.Line] = append(idx[n.Line], nodeRef{path: at, tag: "!!seq"})
		for i, c := range n.Content {
			idx.walk(c, fmt.Sprintf("%s[%d]", at, i))
		}
	case yaml.ScalarNode:
		idx[n.Line] = append(idx[n.Line], nodeRef{path: at, value: n.Value, tag: n.ShortTag()})
	}
}

// at finds the key (or value) on line matching value and formats the
// problem with its path; without a match, the line alone.
func (idx lineIndex) at(line int, value string, key bool, tag, reason string) string {
	for _, r := range idx[line] {
		if r.key != key {
			continue
		}
		if key && r.value != value {
			continue
		}
		if !key && !valueMatches(r, value, tag) {
			continue
		}
		p := r.path
		if p == "" {
			p = "(top level)"
		}
		return fmt.Sprintf("%s: %s (line %d)", p, reason, line)
	}
	return fmt.Sprintf("line %d: %s", line, reason)
}

// valueMatches compares a value as yaml.v3 quotes it in its errors: the
// first 7 bytes and "..." when longer than 10.
func valueMatches(r nodeRef, quoted, tag string) bool {
	if tag == "!!seq" || tag == "!!map" {
		return r.tag == tag
	}
	if r.tag == "!!seq" || r.tag == "!!map" {
		return false
	}
	if len(r.value) > 10 {
		return strings.HasSuffix(quoted, "...") && strings.HasPrefix(r.value, strings.TrimSuffix(quoted, "..."))
	}
	return r.value == quoted
}

// last returns the path of the last field of the document.
func (idx lineIndex) last() string {
	best, line := "", 0
	for l, refs := range idx {
		for _, r := range refs {
			if r.path != "" && l >= line {
				best, line = r.path, l
			}
		}
	}
	return best
}

// schema maps the type names in yaml.v3 errors to the file's types.
var schema = map[string]reflect.Type{
	"config.File":       reflect.TypeFor[File](),
	"config.Org":        reflect.TypeFor[Org](),
	"config.Key":        reflect.TypeFor[Key](),
	"config.JWTIssuer":  reflect.TypeFor[JWTIssuer](),
	"config.Agent":      reflect.TypeFor[Agent](),
	"config.Public":     reflect.TypeFor[Public](),
	"config.OrgLiveKit": reflect.TypeFor[OrgLiveKit](),
}

func knownFields(typeName string) string {
	t, ok := schema[strings.TrimPrefix(typeName, "*")]
	if !ok {
		return ""
	}
	var names []string
	for i := range t.NumField() {
		// api_secret is decoded only to be refused: never suggest it.
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" && tag != "-" && tag != "api_secret" {
			names = append(names, tag)
		}
	}
	return strings.Join(names, ", ")
}

func expected(goType string) string {
	switch goType = strings.TrimPrefix(goType, "*"); goType {
	case "bool":
		return "true or false"
	case "int", "int64", "uint32":
		return "a whole number"
	case "string", "config.Scope", "config.Channel":
		return "a string"
	case "[]string", "[]config.Scope", "[]config.Channel":
		return "a list of strings"
	case "time.Time":
		return "a date and time such as 2027-06-01T00:00:00Z"
	case "config.File":
		return "a mapping with the key orgs"
	}
	if strings.HasPrefix(goType, "[]") {
		return "a list"
	}
	if _, ok := schema[goType]; ok {
		return "a mapping of fields"
	}
	return "a value of another kind"
}

func describeYAML(tag, value string) string {
	switch tag {
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!null":
		return "empty"
	}
	if !strings.HasPrefix(tag, "!!") {
		return "a value tagged " + tag
	}
	return strconv.Quote(value)
}

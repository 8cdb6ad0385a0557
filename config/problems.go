package config

import (
	"bytes"
	"cmp"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// This file makes one reading of a tenants file report every problem it
// can, in the order of the file's lines: what the YAML decoder refuses,
// what the strict check refuses, and what validation finds in the rest.
// A YAML syntax error, a second document or an oversized file still stops
// the reading (ParseIn), since there is then no one document to check.

// blankUnreadableTimes returns data with every expires_at value that is
// not an RFC 3339 time replaced by ~ and spaces of the same extent, so that
// the decoder, which gives up on the whole file at the first time it
// cannot read, goes on to the rest of it. The strict check reads the
// original data and reports each such value; no line moves, so the
// decoder's other messages keep their line numbers. A value this cannot
// blank safely (a plain or block scalar over several lines, or one not
// found where the parser put it) is left alone: the decoder then stops
// there, as before.
func blankUnreadableTimes(data []byte) []byte {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return data
	}
	out := []byte(nil)
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		if depth > 64 {
			return // aliases and deep nesting: the decoder reports them
		}
		for i, c := range n.Content {
			if n.Kind == yaml.MappingNode && i%2 == 1 && n.Content[i-1].Value == "expires_at" &&
				c.Kind == yaml.ScalarNode && c.Tag != "!!null" {
				if _, err := time.Parse(time.RFC3339Nano, c.Value); err != nil {
					if out == nil {
						out = slices.Clone(data)
					}
					blankScalar(out, c)
				}
				continue
			}
			if c.Kind != yaml.AliasNode {
				walk(c, depth+1)
			}
		}
	}
	walk(&doc, 0)
	if out == nil {
		return data
	}
	return out
}

// blankScalar overwrites the scalar n in data with ~ and spaces, keeping
// its line breaks, and reports whether it did.
func blankScalar(data []byte, n *yaml.Node) bool {
	start := 0
	for line := 1; line < n.Line; line++ {
		i := bytes.IndexByte(data[start:], '\n')
		if i < 0 {
			return false
		}
		start += i + 1
	}
	// yaml.v3 counts columns in characters.
	for col := 1; col < n.Column; col++ {
		if start >= len(data) || data[start] == '\n' {
			return false
		}
		_, size := utf8.DecodeRune(data[start:])
		start += size
	}
	rest := data[start:]
	var width int
	switch n.Style {
	case 0:
		if strings.Contains(n.Value, "\n") || !bytes.HasPrefix(rest, []byte(n.Value)) {
			return false
		}
		width = len(n.Value)
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		q := byte('\'')
		if n.Style == yaml.DoubleQuotedStyle {
			q = '"'
		}
		if len(rest) == 0 || rest[0] != q {
			return false
		}
		end := closingQuote(rest, q)
		if end < 0 {
			return false
		}
		width = end + 1
	default:
		return false
	}
	rest[0] = '~'
	for i := 1; i < width; i++ {
		if rest[i] != '\n' {
			rest[i] = ' '
		}
	}
	return true
}

// closingQuote is the index of the quote that ends the quoted scalar at
// the start of s, or -1.
func closingQuote(s []byte, q byte) int {
	for i := 1; i < len(s); i++ {
		switch {
		case q == '"' && s[i] == '\\':
			i++
		case s[i] == q && q == '\'' && i+1 < len(s) && s[i+1] == '\'':
			i++
		case s[i] == q:
			return i
		}
	}
	return -1
}

// problemPath is the field path a problem starts with.
func problemPath(p string) string {
	at, _, _ := strings.Cut(p, ": ")
	return at
}

// under reports whether path is at or below one of the paths in reported:
// validation of a value the decoder or the strict check refused only
// repeats that refusal in other words.
func under(path string, reported map[string]bool) bool {
	for p := path; p != ""; p = parentPath(p) {
		if reported[p] {
			return true
		}
	}
	return false
}

// parentPath drops the last .field or [index] of a field path.
func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return ""
	}
	return p[:i]
}

// reProblemLine finds the line a problem names itself: "… (line 12)" or
// "line 12: …".
var reProblemLine = regexp.MustCompile(`^line (\d+): |\(line (\d+)\)$`)

// inLineOrder sorts problems by the line of the field each names (a field
// the file lacks sorts at the line of its nearest parent that it has), so
// that the list reads alongside the file, and adds the line to those that
// do not say it. Problems without a field, and ties, keep their order.
func inLineOrder(data []byte, problems []string) {
	first := map[string]int{}
	for line, refs := range indexLines(data) {
		for _, r := range refs {
			if l, ok := first[r.path]; !ok || line < l {
				first[r.path] = line
			}
		}
	}
	lineOf := func(p string) int {
		if m := reProblemLine.FindStringSubmatch(p); m != nil {
			l, _ := strconv.Atoi(m[1] + m[2])
			return l
		}
		for at := problemPath(p); at != ""; at = parentPath(at) {
			if l, ok := first[at]; ok {
				return l
			}
		}
		return 0
	}
	type placed struct {
		line    int
		problem string
	}
	all := make([]placed, len(problems))
	for i, p := range problems {
		all[i] = placed{lineOf(p), p}
		// A problem found by validation names its field; where the file
		// has that field, say its line too, as the decoder's problems do.
		if l, ok := first[problemPath(p)]; ok && l > 0 && !reProblemLine.MatchString(p) {
			all[i].problem = fmt.Sprintf("%s (line %d)", p, l)
		}
	}
	slices.SortStableFunc(all, func(a, b placed) int { return cmp.Compare(a.line, b.line) })
	for i := range all {
		problems[i] = all[i].problem
	}
}

// ResolvePaths makes every relative path the file names
// (jwt_issuers[].public_key_file, livekit.api_secret_file) relative to
// dir, the tenants file's directory, as a reader of the file expects: the
// file then means the same wherever the broker is started from. An empty
// dir leaves them relative to the working directory.
func (f *File) ResolvePaths(dir string) {
	if dir == "" {
		return
	}
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	for i := range f.Orgs {
		o := &f.Orgs[i]
		for j := range o.JWTIssuers {
			o.JWTIssuers[j].PublicKeyFile = abs(o.JWTIssuers[j].PublicKeyFile)
		}
		if o.LiveKit != nil {
			o.LiveKit.APISecretFile = abs(o.LiveKit.APISecretFile)
		}
	}
}

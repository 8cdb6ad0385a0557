// Package strictjson checks that a JSON document reads the same to every
// parser: valid UTF-8, no key twice in an object (also not under Unicode
// case folding), field names matched exactly, numbers a double can hold,
// bounded nesting. It decodes nothing itself: a caller checks, then
// decodes with encoding/json, which would otherwise keep the last of two
// duplicate keys and match field names case-insensitively.
package strictjson

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/voicebroker/voicebroker/internal/jsonscan"
)

// MaxDepth bounds the nesting of objects and arrays.
const MaxDepth = 32

// jsonError is a body the strict checker refuses; msg names the place at
// fault and never repeats a value.
type jsonError struct{ msg string }

func (e *jsonError) Error() string { return e.msg }

// Check is the strict half of decoding (the contract's §5): data must be
// one JSON value with only whitespace around it, such that every reader of
// it (the broker, the delegated auth service, a voice server in another
// language) reads the same thing:
//   - valid UTF-8 everywhere, and no \u escape that is a lone surrogate;
//   - no object with two keys that are equal, or equal under Unicode case
//     folding (the matching encoding/json applies to field names), at any
//     depth, metadata included;
//   - where t (the Go type the value is decoded into) is a struct, a key
//     names a field exactly, case included; with strict set, a key that
//     names no field is refused too;
//   - numbers within the range of a float64 (I-JSON);
//   - objects and arrays nest at most MaxDepth deep.
//
// t may be nil: then only the type-free rules apply. The error's message
// names the place at fault (a key, when KeyName allows it, and its path)
// and never repeats a value.
func Check(data []byte, t reflect.Type, strict bool) error {
	_, _, err := CheckMembers(data, t, strict)
	return err
}

// MaxMembers is how many members of an object CheckMembers returns.
const MaxMembers = 8

// Member is one member of a JSON object: its key, decoded, and its
// value's text, a slice of the document.
type Member struct {
	Key   string
	Value []byte
}

// CheckMembers is Check that also returns, when data is a JSON object of
// at most MaxMembers members, the first n of members: the object's own
// members, in order, read in the same pass as the check. n is -1 when
// the object has more, or data is not an object.
func CheckMembers(data []byte, t reflect.Type, strict bool) (members [MaxMembers]Member, n int, err error) {
	if !utf8.Valid(data) {
		return members, -1, &jsonError{"the body is not valid UTF-8"}
	}
	p := &jsonParser{data: data, strict: strict, ntop: -1}
	p.ws()
	var steps [8]step // the path's, for all but deep documents (which grow it)
	if err := p.value(t, steps[:0], 0); err != nil {
		return members, -1, err
	}
	p.ws()
	if p.pos != len(p.data) {
		return members, -1, &jsonError{"unexpected data after the JSON value"}
	}
	return p.top, p.ntop, nil
}

type jsonParser struct {
	data   []byte
	pos    int
	strict bool
	// top holds the first ntop members of the outermost object; ntop is
	// -1 when it has more, or the document is no object.
	top  [MaxMembers]Member
	ntop int
}

func (p *jsonParser) syntax() error {
	return &jsonError{fmt.Sprintf("malformed JSON at byte %d", p.pos)}
}

func (p *jsonParser) ws() { p.pos = jsonscan.Space(p.data, p.pos) }

// value reads the value at p.pos, at path (a step for each object or array
// it is in, for an error's message).
func (p *jsonParser) value(t reflect.Type, path []step, depth int) error {
	if p.pos >= len(p.data) {
		return p.syntax()
	}
	switch c := p.data[p.pos]; {
	case c == '{':
		return p.object(t, path, depth+1)
	case c == '[':
		return p.array(t, path, depth+1)
	case c == '"':
		_, err := p.scanStr(false) // a value's text is checked, never kept
		return err
	case c == 't':
		return p.literal("true")
	case c == 'f':
		return p.literal("false")
	case c == 'n':
		return p.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return p.number()
	}
	return p.syntax()
}

func (p *jsonParser) literal(lit string) error {
	if !strings.HasPrefix(string(p.data[p.pos:min(len(p.data), p.pos+len(lit))]), lit) {
		return p.syntax()
	}
	p.pos += len(lit)
	return nil
}

// number accepts RFC 8259's grammar, -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?,
// within the range of an IEEE 754 double (as I-JSON, RFC 7493, requires):
// 1e999 is Infinity to JavaScript and an error to encoding/json.
func (p *jsonParser) number() error {
	start := p.pos
	end, ok := jsonscan.Number(p.data, p.pos)
	p.pos = end
	if !ok {
		return p.syntax()
	}
	if _, err := strconv.ParseFloat(string(p.data[start:p.pos]), 64); err != nil {
		return &jsonError{fmt.Sprintf("a number at byte %d is out of range", start)}
	}
	return nil
}

// key reads a string at p.pos and returns it decoded: a key. The raw bytes
// are valid UTF-8 already (checked once for the whole body). A key without
// escapes is a slice of the document, with them a buffer of its own; either
// way the caller may keep it only as long as the document.
func (p *jsonParser) key() ([]byte, error) { return p.scanStr(true) }

// scanStr is key; with keep false it checks the string the same way but
// builds nothing and returns nil.
func (p *jsonParser) scanStr(keep bool) ([]byte, error) {
	p.pos++      // the opening quote
	var b []byte // the decoded string, when it has an escape
	escaped := false
	start := p.pos
	for p.pos < len(p.data) {
		c := p.data[p.pos]
		switch {
		case c == '"':
			var s []byte
			if keep && !escaped {
				s = p.data[start:p.pos:p.pos] // no escape: the document's own bytes
			} else if keep {
				s = append(b, p.data[start:p.pos]...)
			}
			p.pos++
			return s, nil
		case c < 0x20:
			return nil, &jsonError{fmt.Sprintf("malformed JSON at byte %d: control character in a string", p.pos)}
		case c != '\\':
			p.pos++
			continue
		}
		if keep {
			b = append(b, p.data[start:p.pos]...)
		}
		escaped = true
		p.pos++
		if p.pos >= len(p.data) {
			return nil, p.syntax()
		}
		var r rune
		switch e := p.data[p.pos]; e {
		case '"', '\\', '/':
			r = rune(e)
		case 'b':
			r = '\b'
		case 'f':
			r = '\f'
		case 'n':
			r = '\n'
		case 'r':
			r = '\r'
		case 't':
			r = '\t'
		case 'u':
			var ok bool
			r, ok = p.hex4(p.pos + 1)
			if !ok {
				return nil, p.syntax()
			}
			p.pos += 4
			if utf16.IsSurrogate(r) {
				// Only a high surrogate followed by an escaped low one is a character.
				lo, ok := rune(-1), false
				if p.pos+2 < len(p.data) && p.data[p.pos+1] == '\\' && p.data[p.pos+2] == 'u' {
					lo, ok = p.hex4(p.pos + 3)
				}
				dec := utf16.DecodeRune(r, lo)
				if !ok || dec == unicode.ReplacementChar {
					return nil, &jsonError{fmt.Sprintf("malformed JSON at byte %d: a \\u escape is a lone surrogate, not a character", p.pos)}
				}
				p.pos += 6
				r = dec
			}
		default:
			return nil, p.syntax()
		}
		if keep {
			b = utf8.AppendRune(b, r)
		}
		p.pos++
		start = p.pos
	}
	return nil, p.syntax()
}

func (p *jsonParser) hex4(at int) (rune, bool) {
	if at+4 > len(p.data) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(p.data[at:at+4]), 16, 32)
	if err != nil {
		return 0, false
	}
	return rune(v), true
}

// smallObject is how many keys of an object are compared pairwise before
// object indexes them by Fold.
const smallObject = 8

func (p *jsonParser) object(t reflect.Type, path []step, depth int) error {
	if depth > MaxDepth {
		return &jsonError{fmt.Sprintf("the JSON nests deeper than %d levels", MaxDepth)}
	}
	t = deref(t)
	var fields map[string]reflect.Type
	var folded map[string]string
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields, folded = structFields(t)
	case t.Kind() == reflect.Map:
	case t.Kind() == reflect.Interface:
		t = nil
	default:
		// encoding/json reports the type mismatch; keep checking the rest untyped.
		t = nil
	}
	p.pos++ // {
	if depth == 1 {
		p.ntop = 0
	}
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == '}' {
		p.pos++
		return nil
	}
	// The keys so far: the first smallObject in a list, each compared
	// under bytes.EqualFold (equal exactly when their Folds are), the rest
	// by Fold in a map; a small object, every request body, costs no Fold
	// and no map. A key is the document's own bytes unless it has an
	// escape, so it costs nothing to keep.
	var few [smallObject][]byte
	n := 0
	var seen map[string][]byte // folded key -> key as sent
	for {
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != '"' {
			return p.syntax()
		}
		key, err := p.key()
		if err != nil {
			return err
		}
		var prev []byte
		dup := false
		for _, k := range few[:min(n, smallObject)] {
			if bytes.EqualFold(k, key) {
				prev, dup = k, true
				break
			}
		}
		var fk string // key's Fold, once there is a map
		if !dup && n >= smallObject {
			if seen == nil {
				seen = make(map[string][]byte)
			}
			fk = fold(key)
			prev, dup = seen[fk]
		}
		if dup {
			if bytes.Equal(prev, key) {
				return &jsonError{fmt.Sprintf("duplicate key %s%s", KeyName(string(key)), in(path))}
			}
			return &jsonError{fmt.Sprintf("keys %s and %s differ only in case%s", KeyName(string(prev)), KeyName(string(key)), in(path))}
		}
		if n < smallObject {
			few[n] = key
		} else {
			seen[fk] = key
		}
		n++
		var elem reflect.Type
		switch {
		case fields != nil:
			ft, ok := fields[string(key)]
			switch {
			case ok:
				elem = ft
			case folded[fold(key)] != "":
				return &jsonError{fmt.Sprintf("unknown field %s%s: field names are case-sensitive (did you mean %q?)", KeyName(string(key)), in(path), folded[fold(key)])}
			case p.strict:
				return &jsonError{fmt.Sprintf("unknown field %s%s", KeyName(string(key)), in(path))}
			}
		case t != nil && t.Kind() == reflect.Map:
			elem = t.Elem()
		}
		p.ws()
		if p.pos >= len(p.data) || p.data[p.pos] != ':' {
			return p.syntax()
		}
		p.pos++
		p.ws()
		start := p.pos
		if err := p.value(elem, append(path, step{key: key, index: -1}), depth); err != nil {
			return err
		}
		if depth == 1 {
			if p.ntop >= 0 && p.ntop < MaxMembers {
				p.top[p.ntop] = Member{Key: string(key), Value: p.data[start:p.pos]}
				p.ntop++
			} else {
				p.ntop = -1
			}
		}
		if done, err := p.next('}'); done || err != nil {
			return err
		}
	}
}

func (p *jsonParser) array(t reflect.Type, path []step, depth int) error {
	if depth > MaxDepth {
		return &jsonError{fmt.Sprintf("the JSON nests deeper than %d levels", MaxDepth)}
	}
	var elem reflect.Type
	if t = deref(t); t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
		elem = t.Elem()
	}
	p.pos++ // [
	p.ws()
	if p.pos < len(p.data) && p.data[p.pos] == ']' {
		p.pos++
		return nil
	}
	for i := 0; ; i++ {
		p.ws()
		if err := p.value(elem, append(path, step{index: i}), depth); err != nil {
			return err
		}
		if done, err := p.next(']'); done || err != nil {
			return err
		}
	}
}

// next reads what follows a member of an object or an element of an
// array: a comma (another one comes) or end, the closing bracket.
func (p *jsonParser) next(end byte) (done bool, err error) {
	p.ws()
	if p.pos >= len(p.data) {
		return false, p.syntax()
	}
	switch p.data[p.pos] {
	case ',':
		p.pos++
		return false, nil
	case end:
		p.pos++
		return true, nil
	}
	return false, p.syntax()
}

var rawMessageType = reflect.TypeFor[json.RawMessage]()

// deref strips pointers; json.RawMessage (opaque to the type rules) is nil.
func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType {
		return nil
	}
	return t
}

type fieldSet struct {
	exact  map[string]reflect.Type
	folded map[string]string // folded name -> exact name
}

var fieldCache sync.Map // reflect.Type -> fieldSet

// structFields returns the JSON names of t's fields as encoding/json sees
// them (tag name, or the Go name), with their types, and the same names by
// their case fold.
func structFields(t reflect.Type) (map[string]reflect.Type, map[string]string) {
	if fs, ok := fieldCache.Load(t); ok {
		return fs.(fieldSet).exact, fs.(fieldSet).folded
	}
	fs := fieldSet{exact: map[string]reflect.Type{}, folded: map[string]string{}}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				if ft := deref(f.Type); ft != nil && ft.Kind() == reflect.Struct {
					walk(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			fs.exact[name] = f.Type
			fs.folded[Fold(name)] = name
		}
	}
	walk(t)
	fieldCache.Store(t, fs)
	return fs.exact, fs.folded
}

// Fold maps s to a canonical form such that Fold(a) == Fold(b)
// exactly when strings.EqualFold(a, b): every rune becomes the smallest
// rune of its simple case-folding orbit (so K, k and the Kelvin sign K
// meet, as they do in encoding/json's field matching).
func Fold(s string) string { return fold(s) }

// fold is Fold of a key's text, read in place.
func fold[T string | []byte](s T) string {
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range string(s) {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		b.WriteRune(m)
	}
	return b.String()
}

// KeyName quotes a key for a message when it is short and plain, so that a
// message never carries a long or odd string (which could be a credential
// pasted in the wrong place).
func KeyName(k string) string {
	if !plainKey(k) {
		return "(a key)"
	}
	return strconv.Quote(k)
}

// plainKey reports whether KeyName shows k itself.
func plainKey(k string) bool {
	if len(k) == 0 || len(k) > 40 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// step is one step of the path to a value: a member of an object (index
// -1, its key) or an element of an array (its index).
type step struct {
	key   []byte
	index int
}

// in names path in a message: " in " and the path quoted, keys joined by
// dots ("?" for a key KeyName would not show), an element's index in
// brackets; "" at the top. It is spelled out only for an error.
func in(path []step) string {
	var b strings.Builder
	for _, s := range path {
		if s.index >= 0 {
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		if name := string(s.key); plainKey(name) {
			b.WriteString(name)
		} else {
			b.WriteByte('?')
		}
	}
	return quoted(b.String())
}

func quoted(path string) string {
	if path == "" {
		return ""
	}
	if len(path) > 80 {
		path = "…" + path[len(path)-79:]
	}
	return " in " + strconv.Quote(path)
}

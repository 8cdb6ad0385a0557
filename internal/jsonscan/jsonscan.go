// Package jsonscan holds the lexical pieces of RFC 8259 that the broker's
// JSON readers share (strictjson's check and compactjson's compaction):
// where whitespace ends and where a number ends. Both readers' fuzz
// targets (strictjson's FuzzStrictJSON, compactjson's FuzzAppend) hold
// them to encoding/json's verdicts on every input.
package jsonscan

// Space returns the index of the first byte at or after i in b that is
// not JSON whitespace (space, tab, line feed, carriage return), or len(b).
func Space(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Number reads the number at b[i], in the grammar encoding/json reads,
// -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, and returns the index
// just past it. With ok false, end is the index of the byte where the
// grammar failed (len(b) when b ended too soon). It reads no further than
// the grammar: what follows the number is the caller's to judge.
func Number(b []byte, i int) (end int, ok bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	default:
		var n int
		if i, n = digits(b, i); n == 0 {
			return i, false
		}
	}
	if i < len(b) && b[i] == '.' {
		var n int
		if i, n = digits(b, i+1); n == 0 {
			return i, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		var n int
		if i, n = digits(b, i); n == 0 {
			return i, false
		}
	}
	return i, true
}

// digits returns the index past the run of decimal digits at b[i], and
// how many there were.
func digits(b []byte, i int) (end, n int) {
	for end = i; end < len(b) && '0' <= b[end] && b[end] <= '9'; end++ {
	}
	return end, end - i
}

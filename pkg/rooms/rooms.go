// Package rooms is the grammar of the LiveKit room names the broker issues
// tokens for:
//
//	agent_{agentId}_{timestamp}_{random}   agentId [a-z0-9][a-z0-9-]{0,62};
//	                                       timestamp 10 to 13 digits;
//	                                       random 6 to 32 of [A-Za-z0-9]
//	demo_{identifier}                      identifier 1 to 64 of [A-Za-z0-9-]
//
// and nothing else, at most 128 characters. Whether the agent belongs to
// the caller's org, and whether the org may use demo rooms, is the caller's
// check. No HTTP, no I/O: the parser is a plain scanner, no regular expression.
package rooms

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// MaxLength bounds a room name.
const MaxLength = 128

// Kind is the kind of a room name.
type Kind string

// The kinds.
const (
	Agent Kind = "agent"
	Demo  Kind = "demo"
)

// ErrInvalid is wrapped by every Parse error.
var ErrInvalid = errors.New("rooms: invalid room name")

// Name is a parsed room name.
type Name struct {
	Kind       Kind
	AgentID    string // agent rooms
	Timestamp  string // agent rooms: the digits as written
	Random     string // agent rooms
	Identifier string // demo rooms
}

// String returns the room name the parts make.
func (n Name) String() string {
	if n.Kind == Demo {
		return "demo_" + n.Identifier
	}
	return "agent_" + n.AgentID + "_" + n.Timestamp + "_" + n.Random
}

// Time returns an agent room's timestamp, read as Unix seconds (10 digits)
// or milliseconds (13 digits); 11 and 12 digits are read as milliseconds.
func (n Name) Time() time.Time {
	v, _ := strconv.ParseInt(n.Timestamp, 10, 64)
	if len(n.Timestamp) <= 10 {
		return time.Unix(v, 0)
	}
	return time.UnixMilli(v)
}

// Parse splits s into its parts, or returns an error wrapping ErrInvalid
// that says which part is wrong (never echoing more than the name itself).
func Parse(s string) (Name, error) {
	fail := func(why string) (Name, error) { return Name{}, fmt.Errorf("%w: %s", ErrInvalid, why) }
	if len(s) == 0 || len(s) > MaxLength {
		return fail("must be 1 to 128 characters")
	}
	switch {
	case strings.HasPrefix(s, "demo_"):
		id := s[len("demo_"):]
		if len(id) < 1 || len(id) > 64 || !all(id, isAlnumDash) {
			return fail("demo identifier must be 1 to 64 of [A-Za-z0-9-]")
		}
		return Name{Kind: Demo, Identifier: id}, nil
	case strings.HasPrefix(s, "agent_"):
		// The agent id has no underscore, so the three fields split cleanly.
		parts := strings.Split(s[len("agent_"):], "_")
		if len(parts) != 3 {
			return fail("must be agent_{agentId}_{timestamp}_{random}")
		}
		agent, ts, random := parts[0], parts[1], parts[2]
		if !ValidAgentID(agent) {
			return fail("agent id must match [a-z0-9][a-z0-9-]{0,62}")
		}
		if len(ts) < 10 || len(ts) > 13 || !all(ts, isDigit) {
			return fail("timestamp must be 10 to 13 digits")
		}
		if len(random) < 6 || len(random) > 32 || !all(random, isAlnum) {
			return fail("random part must be 6 to 32 of [A-Za-z0-9]")
		}
		return Name{Kind: Agent, AgentID: agent, Timestamp: ts, Random: random}, nil
	}
	return fail("must start with agent_ or demo_")
}

// Valid reports whether s is a room name of the grammar.
func Valid(s string) bool {
	_, err := Parse(s)
	return err == nil
}

// ValidAgentID reports whether id matches [a-z0-9][a-z0-9-]{0,62}.
func ValidAgentID(id string) bool {
	if len(id) < 1 || len(id) > 63 || id[0] == '-' {
		return false
	}
	return all(id, func(c byte) bool { return 'a' <= c && c <= 'z' || isDigit(c) || c == '-' })
}

// Base62 is the alphabet of a room name's random part: digits, then
// upper-case, then lower-case ASCII letters.
const Base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// RandomBase62 returns n characters of Base62 drawn uniformly from
// crypto/rand (log2(62), about 5.95 bits, each): the random part of a
// room name, and of any other name that must be unguessable and plain
// (voicebroker's API keys are made with it too).
func RandomBase62(n int) (string, error) {
	b := make([]byte, n)
	max := big.NewInt(int64(len(Base62)))
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", err
		}
		b[i] = Base62[v.Int64()]
	}
	return string(b), nil
}

// New returns a fresh agent room name for agentID at time now:
// agent_{agentID}_{unix seconds}_{12 base62 characters from crypto/rand}.
func New(agentID string, now time.Time) (string, error) {
	if !ValidAgentID(agentID) {
		return "", fmt.Errorf("%w: agent id must match [a-z0-9][a-z0-9-]{0,62}", ErrInvalid)
	}
	random, err := RandomBase62(12)
	if err != nil {
		return "", err
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	if len(ts) < 10 {
		ts = strings.Repeat("0", 10-len(ts)) + ts
	}
	return "agent_" + agentID + "_" + ts + "_" + random, nil
}

func all(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool     { return '0' <= c && c <= '9' }
func isAlnum(c byte) bool     { return isDigit(c) || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlnumDash(c byte) bool { return isAlnum(c) || c == '-' }

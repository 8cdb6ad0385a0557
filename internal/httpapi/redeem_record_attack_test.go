package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Red-team cases for POST /token/redeem's fast path: respellings of a
// genuine ticket (which the base64 decoder or the JSON body decoder would
// read the same) must be refused as forgeries and must leave the genuine
// ticket redeemable, and of concurrent redemptions exactly one wins.

// respellings are byte-level variants of a genuine ticket that a lenient
// decoder could take for it.
var respellings = []struct {
	name string
	make func(g string) string
}{
	{"newline inside the claims segment", func(g string) string {
		p := strings.Split(g, ".")
		return p[0] + "." + p[1][:10] + "\n" + p[1][10:] + "." + p[2]
	}},
	{"carriage return inside the signature", func(g string) string {
		p := strings.Split(g, ".")
		return p[0] + "." + p[1] + "." + p[2][:5] + "\r" + p[2][5:]
	}},
	{"trailing newline", func(g string) string { return g + "\n" }},
	{"trailing space", func(g string) string { return g + " " }},
	{"padding on the signature", func(g string) string { return g + "==" }},
	{"a fourth segment", func(g string) string { return g + ".AAAA" }},
	{"an empty fourth segment", func(g string) string { return g + "." }},
	{"last signature character with other padding bits", func(g string) string {
		// 64 bytes of signature: 86 characters, the last carrying 4 bits of
		// padding; flipping a low bit keeps the decoded bytes in lax mode.
		last := g[len(g)-1]
		const alpha = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		i := strings.IndexByte(alpha, last)
		return g[:len(g)-1] + string(alpha[i^1])
	}},
	{"upper-cased header", func(g string) string {
		p := strings.SplitN(g, ".", 2)
		return strings.ToUpper(p[0]) + "." + p[1]
	}},
}

func TestRedeemRespelledTicketRefused(t *testing.T) {
	for _, r := range respellings {
		t.Run(r.name, func(t *testing.T) {
			u := newUnit(t, false)
			tok := u.mint(t)
			bad := r.make(tok)
			if bad == tok {
				t.Fatal("the respelling is the ticket")
			}
			a := u.do(t, "POST", "/token/redeem", "sk_any", `{"token":`+jsonQuote(bad)+`}`)
			if a.status == 200 {
				t.Fatalf("a respelled ticket redeemed: %v", a.body)
			}
			a.expect(t, 401, "token_invalid")
			u.do(t, "POST", "/token/redeem", "sk_any", redeemBody(tok)).expect(t, 200, "")
		})
	}
}

// TestRedeemEscapedBody: the body's JSON escapes are decoded before the
// ticket is MACed, so a ticket sent with \u escapes is the ticket itself
// (redeems once), not a second spelling that redeems again.
func TestRedeemEscapedBody(t *testing.T) {
	u := newUnit(t, false)
	tok := u.mint(t)
	var esc strings.Builder
	for _, c := range tok {
		if c == '.' {
			esc.WriteString(`\u002e`)
		} else {
			esc.WriteRune(c)
		}
	}
	u.do(t, "POST", "/token/redeem", "sk_any", `{"token":"`+esc.String()+`"}`).expect(t, 200, "")
	u.do(t, "POST", "/token/redeem", "sk_any", redeemBody(tok)).expect(t, 401, "token_used")
}

// TestRedeemConcurrentOnce: of many concurrent redemptions of one ticket
// (all on the fast path, or some on the slow path with a respelled copy
// that is refused), exactly one is 200 and every other is token_used or
// token_invalid.
func TestRedeemConcurrentOnce(t *testing.T) {
	u := newUnit(t, false)
	tok := u.mint(t)
	const n = 16
	statuses := make([]int, n)
	codes := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a, err := u.tryDo("POST", "/token/redeem", "sk_any", redeemBody(tok))
			if err != nil {
				codes[i] = err.Error()
				return
			}
			statuses[i], codes[i] = a.status, a.body["error"]
		}()
	}
	wg.Wait()
	won := 0
	for i := range n {
		switch {
		case statuses[i] == 200:
			won++
		case statuses[i] == 401 && codes[i] == "token_used":
		default:
			t.Fatalf("redemption %d: %d %v", i, statuses[i], codes[i])
		}
	}
	if won != 1 {
		t.Fatalf("%d redemptions won, want 1", won)
	}
}

// tryDo is do for goroutines other than the test's: it returns its error.
func (u *unit) tryDo(method, path, cred, body string) (answer, error) {
	req, err := http.NewRequest(method, u.URL+path, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+cred)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, header: resp.Header}
	if len(data) > 0 {
		if err := json.Unmarshal(data, &a.body); err != nil {
			return answer{}, err
		}
	}
	return a, nil
}

func jsonQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch c {
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

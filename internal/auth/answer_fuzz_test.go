package auth

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/voicebroker/voicebroker/config"
)

// FuzzServiceAnswer: answerOrg never panics; an org it returns is an org
// id that the answer holds under the exact key auth_id, once, at the top
// of a JSON object; and a body that is not an object names no org and is
// no error.
func FuzzServiceAnswer(f *testing.F) {
	for _, seed := range []string{
		`{"auth_id":"acme"}`, `OK`, ``, `{"auth_id":"acme","auth_id":"globex"}`, `{"AUTH_ID":"globex"}`,
		`{"auth_id":7}`, `{"auth_id":null}`, `{"auth_id":"a","x":{"y":[1,{"z":2,"Z":3}]}}`, ` {"auth_id":"a"} `,
		`{"auth_id":"Acme Corp"}`, `["auth_id","acme"]`, `{"auth_id":"a"}{"auth_id":"b"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, answer []byte) {
		org, err := answerOrg(answer)
		trimmed := bytes.TrimSpace(answer)
		if len(trimmed) == 0 || trimmed[0] != '{' {
			if org != "" || err != nil {
				t.Fatalf("a body that is not an object named %q, %v", org, err)
			}
			return
		}
		if err != nil || org == "" {
			return
		}
		if !config.ValidID(org) {
			t.Fatalf("named %q, not an org id", org)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &m); err != nil {
			t.Fatalf("named %q from an answer encoding/json refuses: %v", org, err)
		}
		var got string
		if json.Unmarshal(m["auth_id"], &got) != nil || got != org {
			t.Fatalf("named %q, the answer's auth_id is %s", org, m["auth_id"])
		}
	})
}

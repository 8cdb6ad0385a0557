package httpapi

import (
	"reflect"

	"github.com/voicebroker/voicebroker/internal/strictjson"
)

// MaxJSONDepth bounds the nesting of objects and arrays in a request body.
const MaxJSONDepth = strictjson.MaxDepth

// checkJSON is strictjson.Check: the strict half of decoding every body
// (the contract's §5). decodeJSON and checkJSONObject turn its error into
// invalid_request.
func checkJSON(data []byte, t reflect.Type, strict bool) error {
	return strictjson.Check(data, t, strict)
}

// foldKey is strictjson.Fold: the key under Unicode case folding.
func foldKey(s string) string { return strictjson.Fold(s) }

// keyName is strictjson.KeyName: a key quoted for a message when it is
// short and plain, else "(a key)".
func keyName(k string) string { return strictjson.KeyName(k) }

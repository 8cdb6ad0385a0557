// Package api holds the broker's OpenAPI 3.1 document, served at
// GET /openapi.yaml and checked against the real server by the tests.
package api

import _ "embed"

// OpenAPI is api/openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte

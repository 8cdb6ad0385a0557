// Package widget holds the demo widget's built page (dist/: index.html,
// widget.css, the bundled widget.js with @voicebroker/client and
// livekit-client included, and the bundled packages' licences in
// THIRD_PARTY_LICENSES.txt), so that a development broker can serve it at
// /demo/ and examples/backend can serve its tokenProvider page, with no
// CDN and no npm at run time. Rebuild with `npm ci && npm run build` in
// this directory.
package widget

import (
	"embed"
	"io/fs"
)

//go:embed dist/index.html dist/widget.css dist/widget.js dist/THIRD_PARTY_LICENSES.txt
var files embed.FS

// FS returns the page's files at its root.
func FS() fs.FS {
	sub, err := fs.Sub(files, "dist")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// Package web is the node's dashboard: a few static files (HTML, CSS,
// JavaScript, no framework and no build step) embedded in the binary and
// served at "/" beside the HTTP API, whose endpoints the page reads. It
// draws the routing table as the Kademlia lookup table, the keys the node
// stores, a lookup's rounds converging on its target, and live charts of
// the node's traffic from its event stream (/api/v1/events). docs/dashboard.md
// describes it.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/dhtkit/dht/api"
)

//go:embed static
var static embed.FS

// contentTypes names the type of every extension the dashboard ships: set
// here rather than taken from the system's MIME tables, which differ from
// machine to machine.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

// csp is the Content-Security-Policy of every file the dashboard serves:
// the page loads nothing but its own files and talks to nothing but its
// own node, runs no inline script, and cannot be framed by another site.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// file is one embedded file, ready to serve.
type file struct {
	name  string // for ServeContent
	data  []byte
	ctype string
	etag  string
}

// files maps request paths ("/app.js"; "/" is index.html) to the files.
var files = load()

func load() map[string]file {
	out := map[string]file{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			panic("web: no content type for embedded file " + p)
		}
		sum := sha256.Sum256(data)
		name := strings.TrimPrefix(p, "static")
		f := file{name: path.Base(p), data: data, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		if name == "/index.html" {
			name = "/" // one address for the page
		}
		out[name] = f
		return nil
	})
	if err != nil {
		panic("web: reading the embedded files: " + err.Error())
	}
	return out
}

// Handler returns the dashboard's handler: GET or HEAD of "/" (the page)
// and of each of its files; 404 for any other path, 405 for any other
// method. Files are revalidated with their ETag (a new binary's files are
// picked up at once) and sent with CSP.
func Handler() http.Handler { return http.HandlerFunc(serve) }

// Mount registers Handler on mux at "/", the pattern that matches what no
// other does: the API's routes (and /metrics) keep theirs. It is meant for
// api.Options.Mux, and marks the dashboard api.Public: its files are the
// binary's own, so that a browser loads the page without the token even
// when the API listens on a public address; the page then asks for the
// token and sends it on every API call and on the event stream.
func Mount(mux *http.ServeMux) { mux.Handle("/", api.Public(Handler())) }

func serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard only answers GET and HEAD", http.StatusMethodNotAllowed)
		return
	}
	f, ok := files[r.URL.Path]
	if !ok {
		http.Error(w, "404 page not found: the dashboard is at /", http.StatusNotFound)
		return
	}
	h.Set("Content-Type", f.ctype)
	h.Set("ETag", f.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", csp)
	h.Set("Referrer-Policy", "no-referrer")
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.data))
}

package web

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/api/apitest"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.Host = "127.0.0.1:8080" // a loopback API reads without a token
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Each file is served as embedded, with the content type a browser needs
// to use it (a stylesheet or a script with the wrong one is refused under
// nosniff) and the headers that keep the page to its own files.
func TestServesEmbeddedFilesWithTheirContentTypes(t *testing.T) {
	want := map[string]string{
		"/":            "text/html; charset=utf-8",
		"/app.js":      "text/javascript; charset=utf-8",
		"/style.css":   "text/css; charset=utf-8",
		"/favicon.svg": "image/svg+xml",
	}
	for p, ctype := range want {
		r := get(t, Handler(), "GET", p, nil)
		if r.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", p, r.StatusCode)
			continue
		}
		if got := r.Header.Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", p, got, ctype)
		}
		name := "static" + p
		if p == "/" {
			name = "static/index.html"
		}
		emb, err := static.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := body(t, r); got != string(emb) {
			t.Errorf("GET %s: the body is not the embedded %s", p, name)
		}
		for h, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Content-Security-Policy": csp, "Cache-Control": "no-cache"} {
			if got := r.Header.Get(h); got != v {
				t.Errorf("GET %s: %s %q, want %q", p, h, got, v)
			}
		}
		if r.Header.Get("ETag") == "" {
			t.Errorf("GET %s: no ETag", p)
		}
	}
	if len(files) != len(want) {
		t.Errorf("the handler serves %d paths, the test knows %d: a new file needs its content type checked here", len(files), len(want))
	}
}

// The page loads only files the binary embeds: no CDN, no other host, so
// that it works offline and shows nothing but its node.
func TestIndexReferencesOnlyEmbeddedAssets(t *testing.T) {
	index, err := static.ReadFile("static/index.html")
	if err != nil {
		t.Fatal(err)
	}
	html := string(index)
	// Every src= and href= of an element that loads something (all but
	// <a>, a link the user follows).
	attr := regexp.MustCompile(`<(\w+)[^>]*?\s(src|href)="([^"]*)"`)
	loads := 0
	for _, m := range attr.FindAllStringSubmatch(html, -1) {
		tag, ref := m[1], m[3]
		if !strings.HasPrefix(ref, "/") || strings.HasPrefix(ref, "//") {
			t.Errorf("<%s %s=%q>: not a path on the node itself", tag, m[2], ref)
			continue
		}
		if tag == "a" {
			continue
		}
		loads++
		if _, ok := files[ref]; !ok {
			t.Errorf("<%s %s=%q>: not an embedded file", tag, m[2], ref)
		}
	}
	if loads < 3 { // the script, the stylesheet, the icon
		t.Errorf("found %d references to assets in index.html; the pattern no longer matches it", loads)
	}
	if strings.Contains(html, "<script>") || strings.Contains(html, "<style") || regexp.MustCompile(`\sstyle=|\son\w+=`).MatchString(html) {
		t.Error("index.html has inline script or style, which the page's CSP refuses")
	}
	for _, name := range []string{"static/index.html", "static/style.css", "static/app.js"} {
		b, _ := static.ReadFile(name)
		s := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "") // a namespace name, never fetched
		if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}[/"']|@import|url\(`).FindString(s); m != "" {
			t.Errorf("%s refers to something outside the node: %q", name, m)
		}
	}
}

// The dashboard calls only routes the API has: a renamed route breaks this
// test, not the page.
func TestScriptCallsOnlyAPIRoutes(t *testing.T) {
	js, err := static.ReadFile("static/app.js")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	calls := regexp.MustCompile(`API \+ '(/[a-z/]+)`).FindAllStringSubmatch(string(js), -1)
	if len(calls) < 5 {
		t.Fatalf("found %d API calls in app.js; the pattern no longer matches it", len(calls))
	}
	for _, m := range calls {
		p := api.Base + m[1]
		if _, ok := doc.Paths[p]; !ok {
			t.Errorf("app.js calls %s, which the API's OpenAPI document does not have", p)
		}
	}
}

func TestAnswersOnlyGETAndHEADOfItsOwnPaths(t *testing.T) {
	h := Handler()
	if r := get(t, h, "POST", "/", nil); r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /: %d, Allow %q", r.StatusCode, r.Header.Get("Allow"))
	}
	for _, p := range []string{"/nope", "/index.html", "/static/app.js", "/app.js/"} {
		if r := get(t, h, "GET", p, nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.StatusCode)
		}
	}
	r := get(t, h, "HEAD", "/app.js", nil)
	if r.StatusCode != http.StatusOK || body(t, r) != "" || r.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Errorf("HEAD /app.js: %d %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
}

// A browser that has the page revalidates it with its ETag and gets 304.
func TestRevalidatesWithETag(t *testing.T) {
	etag := get(t, Handler(), "GET", "/style.css", nil).Header.Get("ETag")
	r := get(t, Handler(), "GET", "/style.css", map[string]string{"If-None-Match": etag})
	if r.StatusCode != http.StatusNotModified {
		t.Errorf("GET /style.css with If-None-Match %s: %d, want 304", etag, r.StatusCode)
	}
}

// Mounted on the API's mux, the dashboard takes "/" and nothing of the
// API's: its routes and its JSON errors for unknown API paths stay.
func TestMountOnTheAPIKeepsTheAPIRoutes(t *testing.T) {
	s := api.New(apitest.New(), api.Options{Token: "t", Mux: Mount})
	if r := get(t, s, "GET", "/", nil); r.StatusCode != http.StatusOK || !strings.Contains(body(t, r), `<script src="/app.js"`) {
		t.Errorf("GET /: %d, not the dashboard", r.StatusCode)
	}
	if r := get(t, s, "GET", api.Base+"/info", nil); r.StatusCode != http.StatusOK || r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET %s/info: %d %s", api.Base, r.StatusCode, r.Header.Get("Content-Type"))
	}
	r := get(t, s, "GET", api.Base+"/nope", nil)
	if b := body(t, r); r.StatusCode != http.StatusNotFound || !strings.Contains(b, `"not_found"`) {
		t.Errorf("GET %s/nope: %d %s, want the API's JSON 404", api.Base, r.StatusCode, b)
	}
	if r := get(t, s, "GET", "/openapi.json", nil); r.StatusCode != http.StatusOK {
		t.Errorf("GET /openapi.json: %d", r.StatusCode)
	}
}

// On a public address every API request needs the token, but the page
// itself must load without it, or nobody could type the token in: each
// embedded file is served as on loopback, and the API behind it still
// refuses every read without the token.
func TestPageLoadsWithoutTheTokenOnAPublicAddress(t *testing.T) {
	s := api.New(apitest.New(), api.Options{Token: "t", RequireAuthForReads: true, Mux: Mount})
	for p, f := range files {
		req := httptest.NewRequest("GET", p, nil)
		req.Host = "192.0.2.10:4001"
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusOK || w.Body.String() != string(f.data) || w.Header().Get("Content-Security-Policy") != csp {
			t.Errorf("GET %s on a public address without the token: %d, not the embedded file with its CSP", p, w.Code)
		}
	}
	for _, p := range []string{api.Base + "/info", api.Base + "/events", api.Base + "/values?key=k", "/openapi.json"} {
		req := httptest.NewRequest("GET", p, nil)
		req.Host = "192.0.2.10:4001"
		w := httptest.NewRecorder()
		s.ServeHTTP(w, req)
		if w.Code != http.StatusUnauthorized {
			t.Errorf("GET %s on a public address without the token: %d, want 401", p, w.Code)
		}
	}
}

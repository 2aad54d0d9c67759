package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/api/apitest"
	"github.com/dhtkit/dht/id"
)

// A loopback API serves reads without the token only to requests whose
// Host names loopback. Every spelling a rebinding page could reach it
// under — a name that merely starts or ends like a loopback one, numeric
// forms that are not addresses to netip, a userinfo trick, a trailing dot
// — needs the token; the loopback spellings do not.
func TestOnlyLoopbackHostsReadWithoutTheToken(t *testing.T) {
	s := api.New(apitest.New(), api.Options{Token: token})
	for host, open := range map[string]bool{
		"127.0.0.1":                   true,
		"127.0.0.1:4001":              true,
		"127.8.9.10:80":               true,
		"localhost:4001":              true,
		"LOCALHOST":                   true,
		"[::1]:4001":                  true,
		"[::ffff:127.0.0.1]:4001":     true,
		"evil.example":                false,
		"localhost.evil.example":      false,
		"127.0.0.1.evil.example:4001": false,
		"evil.localhost.example":      false,
		"localhost.":                  false,
		"2130706433":                  false,
		"0x7f000001":                  false,
		"127.1":                       false,
		"017700000001":                false,
		"[::1].evil.example":          false,
		"[fe80::1%25lo]:4001":         false,
		"[::]:4001":                   false,
		"0.0.0.0:4001":                false,
		"localhost@evil.example":      false,
		"evil.example#@localhost":     false,
	} {
		r := httptest.NewRequest("GET", "http://x/api/v1/info", nil)
		r.Host = host
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if got := w.Code == http.StatusOK; got != open {
			t.Errorf("Host %q: status %d; want a read without the token %v", host, w.Code, map[bool]string{true: "served", false: "refused"}[open])
		}
	}
}

// No spelling of a write gets past the token check on a loopback API:
// lowercase or unknown methods, HEAD and OPTIONS on write routes, POST where
// PUT is meant, method overrides in headers or the query. Whatever the
// server answers, the fake holds no value and withdrew nothing.
func TestNoSpellingOfAWriteSkipsTheToken(t *testing.T) {
	f := apitest.New()
	s := api.New(f, api.Options{Token: token})
	ctx := context.Background()
	if _, err := f.Put(ctx, id.Key("held"), []byte("v"), api.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		header       map[string]string
	}{
		{"put", "/api/v1/values?key=new", nil},
		{"Put", "/api/v1/values?key=new", nil},
		{"PATCH", "/api/v1/values?key=new", nil},
		{"POST", "/api/v1/values?key=new", nil},
		{"OPTIONS", "/api/v1/values?key=new", nil},
		{"HEAD", "/api/v1/values?key=new", nil},
		{"GET", "/api/v1/values?key=new", map[string]string{"X-HTTP-Method-Override": "PUT"}},
		{"GET", "/api/v1/values?key=new&_method=PUT", nil},
		{"delete", "/api/v1/values?key=held", nil},
		{"DELETE", "/api/v1/values?key=held", map[string]string{"Authorization": "Bearer"}},
		{"DELETE", "/api/v1/values?key=held", map[string]string{"Authorization": "Bearer " + token + "x"}},
		{"DELETE", "/api/v1/values?key=held", map[string]string{"Authorization": "bearer " + token}},
		{"DELETE", "/api/v1/values?key=held", map[string]string{"Authorization": "Basic " + token}},
		{"DELETE", "//api/v1/values?key=held", nil},
		{"DELETE", "/api/v1/./values?key=held", nil},
		{"DELETE", "/api/v1/values/?key=held", nil},
		{"DELETE", "/API/v1/values?key=held", nil},
	} {
		r := httptest.NewRequest("GET", "http://127.0.0.1/", strings.NewReader("v"))
		r.Method = c.method
		r.URL.Path, r.URL.RawQuery, _ = strings.Cut(c.path, "?")
		r.RequestURI = c.path
		r.Host = "127.0.0.1:4001"
		for k, v := range c.header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code == http.StatusOK && c.method != "HEAD" && !strings.HasPrefix(c.method, "G") {
			t.Errorf("%s %s %v: status 200 without the token", c.method, c.path, c.header)
		}
	}
	if v, err := f.Get(ctx, id.Key("new")); err == nil {
		t.Errorf("a write without the token stored %+v", v)
	}
	if v, err := f.Get(ctx, id.Key("held")); err != nil || len(v.Values) != 1 {
		t.Errorf("a delete without the token withdrew the held value: %+v, %v", v, err)
	}
}

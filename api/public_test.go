package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// publicServer is an API with a Public handler at "/" (as the dashboard is
// mounted) and a plain one at /metrics, over no backend: a request that
// got past the checks to a route would crash on it, so the test also
// shows that none did.
func publicServer(requireAuth bool) *Server {
	return New(nil, Options{Token: "secret", RequireAuthForReads: requireAuth, Mux: func(m *http.ServeMux) {
		m.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "up 1\n") })
		m.Handle("/", Public(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "page "+r.Method)
		})))
	}})
}

func send(s http.Handler, method, target, host, auth string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader("x"))
	r.Host = host
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	s.ServeHTTP(w, r)
	return w
}

// On a public address the dashboard's files load without the token (the
// page then asks for it), while every API route, with every method it
// has, the OpenAPI document and a mounted handler that is not Public, still
// answer 401 without it or with a wrong one.
func TestPublicHandlerIsTheOnlyThingServedWithoutTheToken(t *testing.T) {
	s := publicServer(true)
	for _, host := range []string{"192.0.2.1:4001", "127.0.0.1:4001", "evil.example"} {
		for _, m := range []string{"GET", "HEAD"} {
			for _, p := range []string{"/", "/app.js", "/anything"} {
				if w := send(s, m, p, host, ""); w.Code != 200 || (m == "GET" && w.Body.String() != "page GET") {
					t.Errorf("%s %s (Host %s) without the token: %d %q, want the public handler", m, p, host, w.Code, w.Body)
				}
			}
		}
		for _, rt := range routes {
			for _, auth := range []string{"", "Bearer wrong", "secret"} {
				w := send(s, rt.method, rt.path+"?key=k", host, auth)
				if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), `"unauthorized"`) {
					t.Errorf("%s %s (Host %s, Authorization %q): %d %s, want the JSON 401", rt.method, rt.path, host, auth, w.Code, w.Body)
				}
			}
		}
		for _, p := range []string{"/metrics", Base + "/nothing", "/api/", "/api/v2/info"} {
			if w := send(s, "GET", p, host, ""); w.Code != http.StatusUnauthorized {
				t.Errorf("GET %s (Host %s) without the token: %d, want 401", p, host, w.Code)
			}
		}
		// Writes to the public handler need the token as any write does.
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS"} {
			if w := send(s, m, "/", host, ""); w.Code != http.StatusUnauthorized {
				t.Errorf("%s / (Host %s) without the token: %d, want 401", m, host, w.Code)
			}
		}
	}
	if w := send(s, "GET", "/metrics", "192.0.2.1:4001", "Bearer secret"); w.Code != 200 {
		t.Errorf("GET /metrics with the token: %d, want 200", w.Code)
	}
}

// A path the mux would clean ("//api/v1/info", "/x/../api/v1/info") is
// answered with its redirect, not by the public handler: the cleaned
// request then comes back through the checks.
func TestUncleanPathsAreNotServedAsPublic(t *testing.T) {
	s := publicServer(true)
	for _, p := range []string{"//api/v1/info", "/x/../api/v1/info", "/./api/v1/info", "//metrics"} {
		w := send(s, "GET", p, "192.0.2.1:4001", "")
		if strings.HasPrefix(w.Body.String(), "page") || (w.Code != http.StatusMovedPermanently && w.Code != http.StatusUnauthorized) {
			t.Errorf("GET %s: %d %q, want a redirect or 401", p, w.Code, w.Body)
		}
	}
}

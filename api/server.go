// Package api is the node's HTTP API: JSON handlers for every operation on
// a node, Server-Sent Events for listening to a key and for the node's own
// event stream, bearer-token auth, and the OpenAPI document that describes
// it all (also kept in docs/openapi.json).
//
// The handlers talk to the node through Backend, an interface in this
// package's own types, so that they are tested against a fake and the node
// adapts its library API to it. Package client is the typed Go client.
package api

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Base is the path every API route starts with.
const Base = "/api/v1"

// OpenAPI is the OpenAPI 3 document of the API, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// Options configure a Server. The zero value serves reads to loopback
// clients and refuses every write (there is no token to check).
type Options struct {
	// Token is the bearer token writes need ("Authorization: Bearer
	// TOKEN"). Empty: nothing that needs a token is allowed.
	Token string
	// RequireAuthForReads makes every request need the token: set it
	// when the API listens on anything but a loopback address (see
	// NeedsAuthForReads).
	RequireAuthForReads bool
	// Mux, when set, is called with the server's mux after the API's
	// routes are registered, to mount more handlers (/metrics, the
	// dashboard at /). They get the same auth checks as the API's, except
	// for GET and HEAD of a handler wrapped in Public.
	Mux func(*http.ServeMux)
	// Timeout bounds each non-streaming request's call to the Backend;
	// zero means 2 minutes.
	Timeout time.Duration
	// KeepAlive is the interval of the comments that keep an idle event
	// stream open through proxies; zero means 15 seconds.
	KeepAlive time.Duration
	// WriteTimeout is how long a write to an event stream may block
	// before the subscriber is dropped as too slow; zero means 10 seconds.
	WriteTimeout time.Duration
	// SubscriberBuffer is how many events wait for one slow subscriber
	// before newer ones are dropped (and counted to it); zero means 64.
	SubscriberBuffer int
	// MaxSubscribers bounds the event streams open at once; past it a new
	// one gets 503 unavailable. Zero means 4096.
	MaxSubscribers int
	// Logger receives internal errors; nil discards them.
	Logger *slog.Logger
}

// Server is the API's http.Handler. Make one with New.
type Server struct {
	b    Backend
	opts Options
	mux  *http.ServeMux

	subscribers  atomic.Int64
	dropped      atomic.Uint64
	disconnected atomic.Uint64
}

// New returns the API over b. Its routes are under Base, plus
// /openapi.json; opts.Mux may add more.
func New(b Backend, opts Options) *Server {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Minute
	}
	if opts.KeepAlive <= 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 10 * time.Second
	}
	if opts.SubscriberBuffer <= 0 {
		opts.SubscriberBuffer = 64
	}
	if opts.MaxSubscribers <= 0 {
		opts.MaxSubscribers = 4096
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{b: b, opts: opts, mux: http.NewServeMux()}
	allowed := map[string][]string{}
	for _, rt := range routes {
		rt := rt
		allowed[rt.path] = append(allowed[rt.path], rt.method)
		s.mux.HandleFunc(rt.method+" "+rt.path, func(w http.ResponseWriter, r *http.Request) {
			q, ok := s.query(w, r, rt.params)
			if !ok {
				return
			}
			rt.h(s, w, r, q)
		})
	}
	// Unknown paths and methods under the API get JSON errors too.
	fallback := func(w http.ResponseWriter, r *http.Request) {
		if ms, ok := allowed[r.URL.Path]; ok {
			w.Header().Set("Allow", strings.Join(ms, ", "))
			writeError(w, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(ms, ", "))}, nil)
			return
		}
		writeError(w, &Error{Code: CodeNotFound, Message: "no such API route: " + r.URL.Path}, nil)
	}
	s.mux.HandleFunc(Base+"/", fallback)
	s.mux.HandleFunc("/openapi.json", fallback)
	if opts.Mux != nil {
		opts.Mux(s.mux)
	}
	return s
}

// NeedsAuthForReads reports whether an API listening on addr ("host:port")
// must check the token on every request: true unless host is a loopback
// address or "localhost".
func NeedsAuthForReads(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return !loopbackHost(host)
}

func loopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// Subscribers is the number of event streams open now.
func (s *Server) Subscribers() int { return int(s.subscribers.Load()) }

// Dropped counts the events dropped because a subscriber was slow.
func (s *Server) Dropped() uint64 { return s.dropped.Load() }

// Disconnected counts the subscribers dropped because a write to them
// blocked longer than Options.WriteTimeout.
func (s *Server) Disconnected() uint64 { return s.disconnected.Load() }

// Public marks a handler mounted through Options.Mux as one whose GET and
// HEAD need no token, whatever address the API listens on: meant for the
// dashboard's static files, which hold nothing the binary does not (no
// data of the node), so that a browser can load the page that then asks
// for the token and sends it on its API calls. Its other methods get the
// usual checks, and it never sees a request for an API route or for
// /openapi.json: those patterns are the server's own, and more specific
// than any it could be mounted at.
func Public(h http.Handler) http.Handler { return public{h} }

type public struct{ http.Handler }

func isPublic(h http.Handler) bool {
	_, ok := h.(public)
	return ok
}

// ServeHTTP checks the request's bounds and auth, then routes it.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(r.URL.RawQuery) > MaxQuery {
		writeError(w, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("the query string has %d bytes; at most %d are allowed", len(r.URL.RawQuery), MaxQuery)}, nil)
		return
	}
	// The mux picks the handler as it would serve it: a path it would
	// redirect to its clean form gets the redirect, which is not Public,
	// so that the cleaned request comes back through the checks.
	if !isWrite(r.Method) && !strings.HasPrefix(r.URL.Path, "/api/") {
		if h, _ := s.mux.Handler(r); isPublic(h) {
			h.ServeHTTP(w, r)
			return
		}
	}
	if msg, ok := s.authorized(r); !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dht"`)
		writeError(w, &Error{Code: CodeUnauthorized, Message: msg}, nil)
		return
	}
	s.mux.ServeHTTP(w, r)
}

// authorized checks the bearer token when r needs it: a write always; a
// read when the API is not on loopback, or when the Host header names
// something else than loopback (a web page whose name was pointed at
// 127.0.0.1, DNS rebinding, must not read the API).
func (s *Server) authorized(r *http.Request) (string, bool) {
	write := isWrite(r.Method)
	if !write && !s.opts.RequireAuthForReads && (r.Host == "" || !NeedsAuthForReads(r.Host)) {
		return "", true
	}
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	switch {
	case s.opts.Token == "":
		return "this API has no token configured, so it accepts no request that needs one", false
	case h == "":
		if write {
			return "writes need the node's token: Authorization: Bearer TOKEN", false
		}
		return "this API needs the node's token on every request: Authorization: Bearer TOKEN", false
	case !ok:
		return "the Authorization header must be: Bearer TOKEN", false
	case subtle.ConstantTimeCompare([]byte(strings.TrimSpace(tok)), []byte(s.opts.Token)) != 1:
		return "wrong token", false
	}
	return "", true
}

// query parses r's query string, refusing parameters the route does not
// take and parameters given twice: a typo is an error, not a default.
func (s *Server) query(w http.ResponseWriter, r *http.Request, params []string) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, &Error{Code: CodeBadRequest, Message: "the query string does not parse: " + err.Error()}, nil)
		return nil, false
	}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !contains(params, k) {
			allowed := "none"
			if len(params) > 0 {
				allowed = strings.Join(params, ", ")
			}
			writeError(w, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("unknown query parameter %q (this route takes: %s)", trim(k), allowed)}, nil)
			return nil, false
		}
		if len(q[k]) > 1 {
			code := CodeBadRequest
			if k == "key" || k == "id" {
				code = CodeBadKey
			}
			writeError(w, &Error{Code: code, Message: fmt.Sprintf("query parameter %q is given %d times", k, len(q[k]))}, nil)
			return nil, false
		}
	}
	return q, true
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
}

// trim shortens what a client sent for an error message.
func trim(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// ctx is the context of a Backend call: the request's, bounded by Options.Timeout.
func (s *Server) ctx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.opts.Timeout)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, &Error{Code: CodeInternal, Message: "encoding the answer: " + err.Error()}, nil)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// writeError sends err as {"error":{"code","message"}}, with result (the
// receipts of a put below its quorum, a lookup's trace...) when not nil.
func writeError(w http.ResponseWriter, err error, result any) {
	code := codeOf(err)
	msg := err.Error()
	if msg == "" {
		msg = string(code)
	}
	body := errorJSON{Error: errorBody{code, msg}}
	if result != nil {
		if b, err := json.Marshal(result); err == nil {
			body.Result = b
		}
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code.Status())
	w.Write(append(b, '\n'))
}

// fail reports a Backend error, logging the internal ones.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, result any) {
	if codeOf(err) == CodeInternal {
		s.opts.Logger.Error("api: internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if errors.Is(r.Context().Err(), context.Canceled) {
		return // the client went away; nobody reads the answer
	}
	writeError(w, err, result)
}

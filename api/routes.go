package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dhtkit/dht/id"
)

// route is one API operation. The OpenAPI test checks this table against
// openapi.json both ways: paths, methods and query parameters.
type route struct {
	method, path string
	params       []string // the query parameters it takes
	h            func(s *Server, w http.ResponseWriter, r *http.Request, q url.Values)
}

var routes = []route{
	{"GET", Base + "/info", nil, (*Server).info},
	{"GET", Base + "/stats", nil, (*Server).stats},
	{"GET", Base + "/table", nil, (*Server).table},
	{"GET", Base + "/keys", []string{"limit", "after"}, (*Server).keys},
	{"GET", Base + "/values", []string{"key", "id"}, (*Server).get},
	{"PUT", Base + "/values", []string{"key", "id", "ttl", "quorum", "publisher", "version", "keep", "envelope"}, (*Server).put},
	{"DELETE", Base + "/values", []string{"key", "id", "publisher", "ttl", "quorum"}, (*Server).del},
	{"GET", Base + "/values/events", []string{"key", "id"}, (*Server).listen},
	{"POST", Base + "/ping", nil, (*Server).ping},
	{"GET", Base + "/nodes", []string{"key", "id"}, (*Server).nodes},
	{"GET", Base + "/lookup", []string{"key", "id", "type"}, (*Server).lookup},
	{"GET", Base + "/events", nil, (*Server).events},
	{"GET", "/openapi.json", nil, (*Server).openapi},
}

// ParseKey parses a request's key: key=STRING (hashed with SHA-1, at most
// MaxKey bytes) or id=40HEX, exactly one of them.
func ParseKey(q url.Values) (id.ID, error) {
	k, hasKey := q["key"]
	x, hasID := q["id"]
	switch {
	case hasKey && hasID:
		return id.ID{}, &Error{Code: CodeBadKey, Message: "give key= or id=, not both"}
	case !hasKey && !hasID:
		return id.ID{}, &Error{Code: CodeBadKey, Message: "missing key=STRING or id=40HEX"}
	case hasID:
		v, err := ParseID(x[0])
		if err != nil {
			return id.ID{}, &Error{Code: CodeBadKey, Message: "id=: " + err.Error()}
		}
		return v, nil
	}
	switch {
	case k[0] == "":
		return id.ID{}, &Error{Code: CodeBadKey, Message: "key= is empty"}
	case len(k[0]) > MaxKey:
		return id.ID{}, &Error{Code: CodeBadKey, Message: fmt.Sprintf("key= has %d bytes; at most %d are allowed", len(k[0]), MaxKey)}
	}
	return id.Key(k[0]), nil
}

func (s *Server) info(w http.ResponseWriter, r *http.Request, _ url.Values) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	v, err := s.b.Info(ctx)
	if err != nil {
		s.fail(w, r, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) stats(w http.ResponseWriter, r *http.Request, _ url.Values) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	v, err := s.b.Stats(ctx)
	if err != nil {
		s.fail(w, r, err, nil)
		return
	}
	if v == nil {
		v = Stats{}
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) table(w http.ResponseWriter, r *http.Request, _ url.Values) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	v, err := s.b.Table(ctx)
	if err != nil {
		s.fail(w, r, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) keys(w http.ResponseWriter, r *http.Request, q url.Values) {
	kq := KeysQuery{Limit: DefaultPage}
	if l, ok := q["limit"]; ok {
		n, err := strconv.Atoi(l[0])
		if err != nil || n < 1 || n > MaxLimit {
			writeError(w, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("limit= must be a whole number from 1 to %d", MaxLimit)}, nil)
			return
		}
		kq.Limit = n
	}
	if a, ok := q["after"]; ok {
		x, err := ParseID(a[0])
		if err != nil {
			writeError(w, &Error{Code: CodeBadRequest, Message: "after=: " + err.Error()}, nil)
			return
		}
		kq.After = &x
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	v, err := s.b.Keys(ctx, kq)
	if err != nil {
		s.fail(w, r, err, nil)
		return
	}
	if len(v.Keys) > kq.Limit { // a backend bug must not break the bound
		v.Keys, v.More = v.Keys[:kq.Limit], true
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, q url.Values) {
	key, err := ParseKey(q)
	if err != nil {
		writeError(w, err, nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	v, err := s.b.Get(ctx, key)
	if err != nil {
		s.fail(w, r, err, nil)
		return
	}
	v.Key = key
	writeJSON(w, http.StatusOK, v)
}

// putOptions parses the options of a put or a delete.
func putOptions(q url.Values) (PutOptions, error) {
	var o PutOptions
	bad := func(format string, args ...any) (PutOptions, error) {
		return PutOptions{}, &Error{Code: CodeBadRequest, Message: fmt.Sprintf(format, args...)}
	}
	if v, ok := q["ttl"]; ok {
		d, err := parseTTL(v[0])
		if err != nil {
			return bad("ttl=: %v", err)
		}
		o.TTL = d
	}
	if v, ok := q["quorum"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 0 || n > 1000 {
			return bad("quorum= must be a whole number from 0 to 1000, not %q", trim(v[0]))
		}
		o.Quorum = n
	}
	if v, ok := q["publisher"]; ok {
		p, err := ParseID(v[0])
		if err != nil {
			return bad("publisher=: %v", err)
		}
		o.Publisher = p
	}
	if v, ok := q["version"]; ok {
		n, err := strconv.ParseUint(v[0], 10, 64)
		if err != nil {
			return bad("version= must be a whole number from 0 to 18446744073709551615, not %q", trim(v[0]))
		}
		o.Version = n
	}
	if v, ok := q["keep"]; ok {
		if v[0] != "0" && v[0] != "1" {
			return bad("keep= must be 0 or 1, not %q", trim(v[0]))
		}
		o.Keep = v[0] == "1"
	}
	if v, ok := q["envelope"]; ok {
		if v[0] != "0" && v[0] != "1" {
			return bad("envelope= must be 0 or 1, not %q", trim(v[0]))
		}
		o.Envelope = v[0] == "1"
	}
	if o.Envelope && (!o.Publisher.IsZero() || o.Keep) {
		return bad("publisher= and keep= do not apply with envelope=1: the envelope names its publisher, and only its signer can renew it")
	}
	return o, nil
}

// parseTTL reads a TTL: whole seconds ("3600") or a Go duration ("1h").
func parseTTL(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 || d > 1<<32*time.Second {
		return 0, fmt.Errorf("want seconds (3600) or a duration (1h, 30m), positive, not %q", trim(s))
	}
	return d, nil
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, q url.Values) {
	key, err := ParseKey(q)
	if err != nil {
		writeError(w, err, nil)
		return
	}
	opts, err := putOptions(q)
	if err != nil {
		writeError(w, err, nil)
		return
	}
	if r.ContentLength > MaxBody {
		writeError(w, tooLarge(r.ContentLength), nil)
		return
	}
	value, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeError(w, tooLarge(-1), nil)
			return
		}
		writeError(w, &Error{Code: CodeBadRequest, Message: "reading the body: " + err.Error()}, nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	res, err := s.b.Put(ctx, key, value, opts)
	res.Key = key
	if err != nil {
		s.fail(w, r, err, putResultIf(res))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// putResultIf returns res to send with an error, or nil when it is empty.
func putResultIf(res PutResult) any {
	if len(res.Receipts) == 0 && res.Stored == 0 {
		return nil
	}
	return res
}

func tooLarge(n int64) *Error {
	if n < 0 {
		return &Error{Code: CodeTooLarge, Message: fmt.Sprintf("the body is over %d bytes", MaxBody)}
	}
	return &Error{Code: CodeTooLarge, Message: fmt.Sprintf("the body has %d bytes; at most %d are allowed", n, MaxBody)}
}

func (s *Server) del(w http.ResponseWriter, r *http.Request, q url.Values) {
	key, err := ParseKey(q)
	if err != nil {
		writeError(w, err, nil)
		return
	}
	opts, err := putOptions(q)
	if err != nil {
		writeError(w, err, nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	res, err := s.b.Delete(ctx, key, opts)
	res.Key = key
	if err != nil {
		var result any
		if len(res.Receipts) > 0 {
			result = res
		}
		s.fail(w, r, err, result)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// pingRequest is the body of POST /ping.
type pingRequest struct {
	Addr string `json:"addr"`
}

func (s *Server) ping(w http.ResponseWriter, r *http.Request, _ url.Values) {
	var req pingRequest
	if err := decodeBody(w, r, &req); err != nil {
		writeError(w, err, nil)
		return
	}
	host, port, err := net.SplitHostPort(req.Addr)
	if err != nil || host == "" {
		writeError(w, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("addr %q is not host:port", trim(req.Addr))}, nil)
		return
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		writeError(w, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("addr %q: the port must be a number from 1 to 65535", trim(req.Addr))}, nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	res, err := s.b.Ping(ctx, req.Addr)
	if err != nil {
		s.fail(w, r, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// decodeBody reads a small JSON object, refusing unknown fields and
// trailing data.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength > MaxBody {
		return tooLarge(r.ContentLength)
	}
	d := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return tooLarge(-1)
		}
		return &Error{Code: CodeBadRequest, Message: "the body is not the JSON object expected: " + err.Error()}
	}
	if d.More() {
		return &Error{Code: CodeBadRequest, Message: "the body has data after its JSON object"}
	}
	return nil
}

func (s *Server) nodes(w http.ResponseWriter, r *http.Request, q url.Values) {
	target, err := ParseKey(q)
	if err != nil {
		writeError(w, err, nil)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	cs, err := s.b.FindNode(ctx, target)
	if err != nil {
		s.fail(w, r, err, nil)
		return
	}
	writeJSON(w, http.StatusOK, nodesJSON{hexID(target), nonNil(cs)})
}

func (s *Server) lookup(w http.ResponseWriter, r *http.Request, q url.Values) {
	target, err := ParseKey(q)
	if err != nil {
		writeError(w, err, nil)
		return
	}
	kind := LookupNode
	if t, ok := q["type"]; ok {
		switch LookupKind(t[0]) {
		case LookupNode, LookupValue:
			kind = LookupKind(t[0])
		default:
			writeError(w, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("type= must be node or value, not %q", trim(t[0]))}, nil)
			return
		}
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	res, err := s.b.Lookup(ctx, target, kind)
	res.Target, res.Kind = target, kind
	if err != nil {
		var result any
		if len(res.Rounds) > 0 {
			result = res
		}
		s.fail(w, r, err, result)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request, _ url.Values) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(OpenAPI)
}

// isWrite reports whether a method changes something (and so needs auth).
func isWrite(method string) bool {
	return !strings.EqualFold(method, http.MethodGet) && !strings.EqualFold(method, http.MethodHead)
}

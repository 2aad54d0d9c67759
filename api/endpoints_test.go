package api_test

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/api/apitest"
)

// endpoint is a valid request to one operation of the API, and the
// Backend method it calls ("" for none).
type endpoint struct {
	method, path, query, body, backend string
}

// endpoints has every operation of the OpenAPI document: the test below
// fails when one is added without its line here.
var endpoints = []endpoint{
	{"GET", "/api/v1/info", "", "", "Info"},
	{"GET", "/api/v1/stats", "", "", "Stats"},
	{"GET", "/api/v1/table", "", "", "Table"},
	{"GET", "/api/v1/keys", "limit=5", "", "Keys"},
	{"GET", "/api/v1/values", "key=k", "", "Get"},
	{"PUT", "/api/v1/values", "key=k", "v", "Put"},
	{"DELETE", "/api/v1/values", "key=k", "", "Delete"},
	{"GET", "/api/v1/values/events", "key=k", "", "Listen"},
	{"POST", "/api/v1/ping", "", `{"addr":"127.0.0.1:4001"}`, "Ping"},
	{"GET", "/api/v1/nodes", "key=k", "", "FindNode"},
	{"GET", "/api/v1/lookup", "key=k", "", "Lookup"},
	{"GET", "/api/v1/events", "", "", "Events"},
	{"GET", "/openapi.json", "", "", ""},
}

func (ep endpoint) target(extra string) string {
	q := ep.query
	if extra != "" {
		if q != "" {
			q += "&"
		}
		q += extra
	}
	if q == "" {
		return ep.path
	}
	return ep.path + "?" + q
}

func (ep endpoint) send(e *env, extra, auth string) reply {
	e.t.Helper()
	return e.do(ep.method, ep.target(extra), strings.NewReader(ep.body), auth)
}

func TestEndpointsListEveryOperationOfTheDocument(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(api.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	var inDoc, inTest []string
	for p, ops := range doc.Paths {
		for m := range ops {
			if m != "parameters" {
				inDoc = append(inDoc, strings.ToUpper(m)+" "+p)
			}
		}
	}
	for _, ep := range endpoints {
		inTest = append(inTest, ep.method+" "+ep.path)
	}
	sort.Strings(inDoc)
	sort.Strings(inTest)
	if strings.Join(inDoc, ",") != strings.Join(inTest, ",") {
		t.Errorf("the document's operations %v\nthis test's %v", inDoc, inTest)
	}
}

// The error cases every endpoint shares, each checked on each: a query
// string over the bound, an unknown or repeated parameter, a missing or
// wrong token where one is needed (writes on loopback; everything on a
// public address), a public address with no token configured at all, and
// the node failing underneath (unavailable, or a bug: 500 with the
// message, never a crash or a 200).
func TestEveryEndpointsErrorCases(t *testing.T) {
	loop := newEnv(t, api.Options{})
	public := newEnv(t, api.Options{RequireAuthForReads: true})
	// newEnv fills in a token; this one has none.
	f := apitest.New()
	s := api.New(f, api.Options{RequireAuthForReads: true})
	srv := httptest.NewServer(s)
	defer srv.Close()
	noToken := &env{t, f, s, srv}
	for _, ep := range endpoints {
		name := ep.method + " " + ep.path
		write := ep.method != "GET"
		t.Run(name, func(t *testing.T) {
			loop.t, public.t, noToken.t = t, t, t
			auth := "Bearer " + token
			ep.send(loop, strings.Repeat("x", api.MaxQuery+1), auth).fails(t, 413, api.CodeTooLarge)
			ep.send(loop, "colour=blue", auth).fails(t, 400, api.CodeBadRequest)
			if ep.query != "" {
				q, _, _ := strings.Cut(ep.query, "=")
				ep.send(loop, q+"=again", auth).fails(t, 400, map[bool]api.Code{true: api.CodeBadKey, false: api.CodeBadRequest}[q == "key"])
			}
			for _, bad := range []string{"", "Bearer wrong", "Bearer", token, "Basic " + token} {
				if write {
					ep.send(loop, "", bad).fails(t, 401, api.CodeUnauthorized)
				}
				ep.send(public, "", bad).fails(t, 401, api.CodeUnauthorized)
				ep.send(noToken, "", bad).fails(t, 401, api.CodeUnauthorized)
			}
			ep.send(noToken, "", auth).fails(t, 401, api.CodeUnauthorized)
			if ep.backend == "" {
				return
			}
			for err, code := range map[error]api.Code{api.ErrUnavailable: api.CodeUnavailable, errors.New("disk on fire"): api.CodeInternal} {
				loop.f.Fail(ep.backend, err)
				r := ep.send(loop, "", auth)
				loop.f.Fail(ep.backend, nil)
				body := r.fails(t, code.Status(), code)
				if code == api.CodeInternal && !strings.Contains(body.Error.Message, "disk on fire") {
					t.Errorf("internal error %q does not say what failed", body.Error.Message)
				}
			}
			// And with the token, on either address, it works (an event
			// stream does not end: the stream tests open them).
			if strings.HasSuffix(ep.path, "/events") {
				return
			}
			for _, e := range []*env{loop, public} {
				r := ep.send(e, "", auth)
				if r.status != 200 && !(ep.backend == "Get" && r.status == 404) && !(ep.backend == "Delete" && r.status == 404) {
					t.Errorf("%s with the token: %d %s", name, r.status, r.body)
				}
			}
		})
	}
}

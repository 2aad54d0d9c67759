package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/api/apitest"
	"github.com/dhtkit/dht/id"
)

const token = "0123456789abcdef"

// wait is how long a test waits for something that should happen at once.
const wait = 10 * time.Second

type env struct {
	t   *testing.T
	f   *apitest.Fake
	s   *api.Server
	srv *httptest.Server
}

func newEnv(t *testing.T, opts api.Options) *env {
	t.Helper()
	if opts.Token == "" {
		opts.Token = token
	}
	f := apitest.New()
	s := api.New(f, opts)
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &env{t, f, s, srv}
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

// do sends a request; auth is the Authorization header ("" for none).
func (e *env) do(method, path string, body io.Reader, auth string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

func (e *env) get(path string) reply { e.t.Helper(); return e.do("GET", path, nil, "") }

func (e *env) write(method, path, body string) reply {
	e.t.Helper()
	return e.do(method, path, strings.NewReader(body), "Bearer "+token)
}

// ok decodes a 200 answer into v.
func (r reply) ok(t *testing.T, v any) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("status %d, want 200: %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("%v: %s", err, r.body)
	}
}

type errorBody struct {
	Error struct {
		Code    api.Code `json:"code"`
		Message string   `json:"message"`
	} `json:"error"`
	Result json.RawMessage `json:"result"`
}

// fails checks r is the JSON error of code with status, and returns it.
func (r reply) fails(t *testing.T, status int, code api.Code) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("status %d, error body does not parse (%v): %s", r.status, err, r.body)
	}
	if r.status != status || e.Error.Code != code {
		t.Fatalf("got %d %s (%s), want %d %s", r.status, e.Error.Code, e.Error.Message, status, code)
	}
	if e.Error.Message == "" {
		t.Errorf("%s error without a message", code)
	}
	if r.header.Get("Content-Type") != "application/json" {
		t.Errorf("error Content-Type %q", r.header.Get("Content-Type"))
	}
	return e
}

func TestInfoDescribesTheNode(t *testing.T) {
	e := newEnv(t, api.Options{})
	var got api.Info
	e.get("/api/v1/info").ok(t, &got)
	want, _ := e.f.Info(context.Background())
	if !reflect.DeepEqual(got, want) {
		t.Errorf("info:\n got %+v\nwant %+v", got, want)
	}
	// The JSON names are the documented ones.
	var raw map[string]any
	json.Unmarshal(e.get("/api/v1/info").body, &raw)
	for _, k := range []string{"id", "version", "addrs", "network", "uptime_seconds", "joined", "seeds", "contacts", "records", "bytes"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("info has no %q: %v", k, raw)
		}
	}
	e.f.Fail("Info", api.ErrUnavailable)
	e.get("/api/v1/info").fails(t, 503, api.CodeUnavailable)
}

func TestStatsAreTheNodesCounters(t *testing.T) {
	e := newEnv(t, api.Options{})
	var got api.Stats
	e.get("/api/v1/stats").ok(t, &got)
	if !reflect.DeepEqual(got, e.f.StatsV) {
		t.Errorf("stats %v, want %v", got, e.f.StatsV)
	}
	e.f.Fail("Stats", errors.New("disk on fire"))
	r := e.get("/api/v1/stats").fails(t, 500, api.CodeInternal)
	if !strings.Contains(r.Error.Message, "disk on fire") {
		t.Errorf("internal error message %q does not say what failed", r.Error.Message)
	}
}

func TestTableHasOneBucketPerDistanceRange(t *testing.T) {
	e := newEnv(t, api.Options{})
	var got api.Table
	r := e.get("/api/v1/table")
	r.ok(t, &got)
	if !reflect.DeepEqual(got.Buckets[:2], e.f.TableV.Buckets[:2]) || got.Buckets[2].Index != 159 || !got.Buckets[2].LookedUp {
		t.Errorf("table:\n got %+v\nwant %+v", got, e.f.TableV)
	}
	var raw struct {
		Buckets []map[string]any `json:"buckets"`
	}
	json.Unmarshal(r.body, &raw)
	if raw.Buckets[0]["count"] != 1.0 || raw.Buckets[0]["last_lookup_seconds"] != nil || raw.Buckets[1]["last_lookup_seconds"] != 120.0 {
		t.Errorf("bucket JSON: %v", raw.Buckets)
	}
	e.f.Fail("Table", api.ErrUnavailable)
	e.get("/api/v1/table").fails(t, 503, api.CodeUnavailable)
}

func (e *env) putValue(key, value string) api.PutResult {
	e.t.Helper()
	var res api.PutResult
	e.write("PUT", "/api/v1/values?key="+url.QueryEscape(key), value).ok(e.t, &res)
	return res
}

func TestKeysPagesThroughStoredKeysInOrder(t *testing.T) {
	e := newEnv(t, api.Options{})
	for i := range 5 {
		e.putValue(fmt.Sprint("k", i), "v")
	}
	var all []id.ID
	after := ""
	for pages := 0; ; pages++ {
		if pages > 5 {
			t.Fatal("pagination does not end")
		}
		r := e.get("/api/v1/keys?limit=2" + after)
		var p api.KeysPage
		r.ok(t, &p)
		var raw struct {
			Next string `json:"next"`
		}
		json.Unmarshal(r.body, &raw)
		for _, k := range p.Keys {
			all = append(all, k.Key)
			if k.Records != 1 || k.Bytes != 1 || k.EarliestExpiry != time.Hour {
				t.Errorf("key %v", k)
			}
		}
		if !p.More {
			if raw.Next != "" {
				t.Errorf("next %q on the last page", raw.Next)
			}
			break
		}
		if len(p.Keys) != 2 || raw.Next != p.Keys[1].Key.String() {
			t.Fatalf("page %+v next %q", p, raw.Next)
		}
		after = "&after=" + raw.Next
	}
	if len(all) != 5 {
		t.Fatalf("listed %d keys, want 5", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i-1].Compare(all[i]) >= 0 {
			t.Errorf("keys out of order: %v", all)
		}
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "after=xyz", "after=" + strings.Repeat("0", 39)} {
		e.get("/api/v1/keys?"+q).fails(t, 400, api.CodeBadRequest)
	}
}

// badKeys are the ways a request can get its key wrong.
var badKeys = map[string]string{
	"none":          "",
	"both":          "key=a&id=" + strings.Repeat("ab", 20),
	"bad hex":       "id=" + strings.Repeat("zz", 20),
	"short id":      "id=abcd",
	"long id":       "id=" + strings.Repeat("ab", 21),
	"key too long":  "key=" + strings.Repeat("k", api.MaxKey+1),
	"empty key":     "key=",
	"key twice":     "key=a&key=b",
	"id twice":      "id=" + strings.Repeat("ab", 20) + "&id=" + strings.Repeat("cd", 20),
	"key and empty": "key=a&id=",
}

// Every route that takes a key refuses each bad one with bad_key, before
// asking the node anything (and before auth-free reads reach the Backend).
func TestEveryKeyedRouteRefusesBadKeys(t *testing.T) {
	e := newEnv(t, api.Options{})
	for _, rt := range []struct{ method, path string }{
		{"GET", "/api/v1/values"}, {"PUT", "/api/v1/values"}, {"DELETE", "/api/v1/values"},
		{"GET", "/api/v1/values/events"}, {"GET", "/api/v1/nodes"}, {"GET", "/api/v1/lookup"},
	} {
		for name, q := range badKeys {
			t.Run(rt.method+" "+rt.path+" "+name, func(t *testing.T) {
				r := e.do(rt.method, rt.path+"?"+q, strings.NewReader("v"), "Bearer "+token)
				r.fails(t, 400, api.CodeBadKey)
			})
		}
	}
	// The longest key allowed is fine, and is the SHA-1 of the string.
	long := strings.Repeat("k", api.MaxKey)
	res := e.putValue(long, "v")
	if res.Key != id.Key(long) {
		t.Errorf("key= is not hashed with SHA-1")
	}
	var got api.GetResult
	e.get("/api/v1/values?id="+strings.ToUpper(id.Key(long).String())).ok(t, &got)
	if len(got.Values) != 1 {
		t.Errorf("id= in upper case does not name the same key")
	}
}

func TestPutThenGetReturnsValuesWithMetadata(t *testing.T) {
	e := newEnv(t, api.Options{})
	e.f.NoAnswer = 3
	res := e.putValue("alice@id.example.org:address", "203.0.113.7:4000")
	if res.Stored != 17 || len(res.Receipts) != 20 || res.Key != id.Key("alice@id.example.org:address") || res.Asked != time.Hour {
		t.Errorf("put result %+v", res)
	}
	bin := string([]byte{0, 1, 0xff, '\n'})
	pub := strings.Repeat("ab", 20)
	var res2 api.PutResult
	e.write("PUT", "/api/v1/values?key=alice%40id.example.org%3Aaddress&ttl=2h&publisher="+pub+"&version=99", bin).ok(t, &res2)
	if res2.Publisher.String() != pub || res2.Version != 99 || res2.Asked != 2*time.Hour || res2.Receipts[19].TTL != 2*time.Hour {
		t.Errorf("put options not passed: %+v", res2)
	}
	r := e.get("/api/v1/values?key=alice%40id.example.org%3Aaddress")
	var got api.GetResult
	r.ok(t, &got)
	if len(got.Values) != 2 || string(got.Values[0].Data) != bin || got.Values[0].Version != 99 || string(got.Values[1].Data) != "203.0.113.7:4000" || got.Holders != 17 {
		t.Fatalf("get %+v", got)
	}
	// Text beside base64 only for printable values.
	var raw struct {
		Values []map[string]any `json:"values"`
	}
	json.Unmarshal(r.body, &raw)
	if _, ok := raw.Values[0]["text"]; ok {
		t.Errorf("a binary value has text: %v", raw.Values[0])
	}
	if raw.Values[1]["text"] != "203.0.113.7:4000" || raw.Values[1]["data"] != "MjAzLjAuMTEzLjc6NDAwMA==" || raw.Values[1]["ttl_seconds"] != 3600.0 {
		t.Errorf("a text value: %v", raw.Values[1])
	}
}

func TestGetTellsNotFoundFromNoPeers(t *testing.T) {
	e := newEnv(t, api.Options{})
	e.get("/api/v1/values?key=nobody").fails(t, 404, api.CodeNotFound)
	// A get with nobody to ask wraps both: no peers wins.
	e.f.Fail("Get", fmt.Errorf("get: %w (%w)", api.ErrNoPeers, api.ErrNotFound))
	e.get("/api/v1/values?key=nobody").fails(t, 503, api.CodeNoPeers)
	e.f.Fail("Get", context.DeadlineExceeded)
	e.get("/api/v1/values?key=nobody").fails(t, 504, api.CodeTimeout)
	e.f.Fail("Get", &api.Error{Code: api.CodeBadRequest, Message: "custom"})
	if r := e.get("/api/v1/values?key=nobody").fails(t, 400, api.CodeBadRequest); r.Error.Message != "custom" {
		t.Errorf("a Backend's *Error message is not sent: %q", r.Error.Message)
	}
}

// A Backend call that does not return is cut at Options.Timeout, with 504.
func TestSlowBackendCallTimesOut(t *testing.T) {
	e := newEnv(t, api.Options{Timeout: 10 * time.Millisecond})
	e.f.Block("Get")
	e.get("/api/v1/values?key=k").fails(t, 504, api.CodeTimeout)
}

func TestPutBelowQuorumFailsWithTheReceipts(t *testing.T) {
	e := newEnv(t, api.Options{})
	e.f.NoAnswer, e.f.Refuse = 3, 2
	r := e.write("PUT", "/api/v1/values?key=k&quorum=16", "v")
	body := r.fails(t, 502, api.CodeQuorumNotReached)
	var res api.PutResult
	if err := json.Unmarshal(body.Result, &res); err != nil {
		t.Fatalf("no result with the error: %s", r.body)
	}
	if res.Stored != 15 || res.Quorum != 16 || len(res.Receipts) != 20 || res.Receipts[0].Outcome != api.NoAnswer || res.Receipts[3].Reason == "" {
		t.Errorf("receipts %+v", res)
	}
	// At the quorum, it succeeds.
	var ok api.PutResult
	e.write("PUT", "/api/v1/values?key=k&quorum=15", "v").ok(t, &ok)
}

func TestPutRefusesBadOptions(t *testing.T) {
	e := newEnv(t, api.Options{})
	for _, q := range []string{"ttl=0s", "ttl=-1h", "ttl=soon", "quorum=-1", "quorum=1001", "quorum=x",
		"publisher=abc", "version=-1", "version=x", "color=red", "ttl=1h&ttl=2h"} {
		r := e.write("PUT", "/api/v1/values?key=k&"+q, "v")
		r.fails(t, 400, api.CodeBadRequest)
	}
	for _, ttl := range []string{"3600", "1h"} {
		var res api.PutResult
		e.write("PUT", "/api/v1/values?key=k&ttl="+ttl, "v").ok(t, &res)
		if res.Asked != time.Hour {
			t.Errorf("ttl=%s asked %v", ttl, res.Asked)
		}
	}
}

// A body over 1 MiB is refused with 413, whether its length is announced
// or it is streamed; 1 MiB exactly is fine.
func TestPutBodyIsBounded(t *testing.T) {
	e := newEnv(t, api.Options{})
	big := strings.Repeat("x", api.MaxBody+1)
	e.write("PUT", "/api/v1/values?key=k", big).fails(t, 413, api.CodeTooLarge)
	// Chunked: no Content-Length.
	r := e.do("PUT", "/api/v1/values?key=k", io.MultiReader(strings.NewReader(big)), "Bearer "+token)
	r.fails(t, 413, api.CodeTooLarge)
	var res api.PutResult
	e.write("PUT", "/api/v1/values?key=k", big[1:]).ok(t, &res)
	e.do("POST", "/api/v1/ping", io.MultiReader(strings.NewReader(`{"addr":"`+big+`"}`)), "Bearer "+token).fails(t, 413, api.CodeTooLarge)
}

func TestQueryStringIsBounded(t *testing.T) {
	e := newEnv(t, api.Options{})
	e.get("/api/v1/keys?limit=1&"+strings.Repeat("x", api.MaxQuery)).fails(t, 413, api.CodeTooLarge)
}

func TestDeleteWithdrawsAndSaysWhenNothingWasThere(t *testing.T) {
	e := newEnv(t, api.Options{})
	e.putValue("k", "v")
	var res api.DeleteResult
	e.write("DELETE", "/api/v1/values?key=k", "").ok(t, &res)
	if res.Found != 20 || len(res.Receipts) != 20 || res.Publisher != e.f.Publisher {
		t.Errorf("delete %+v", res)
	}
	e.get("/api/v1/values?key=k").fails(t, 404, api.CodeNotFound)
	body := e.write("DELETE", "/api/v1/values?key=k&publisher="+strings.Repeat("ab", 20), "").fails(t, 404, api.CodeNotFound)
	var nf api.DeleteResult
	if err := json.Unmarshal(body.Result, &nf); err != nil || len(nf.Receipts) != 20 || nf.Found != 0 {
		t.Errorf("not found without its receipts: %s", body.Result)
	}
	e.write("DELETE", "/api/v1/values?key=k&publisher=nobody", "").fails(t, 400, api.CodeBadRequest)
}

func TestPingAnswersWithTheContactAndRTT(t *testing.T) {
	e := newEnv(t, api.Options{})
	var res api.PingResult
	e.write("POST", "/api/v1/ping", `{"addr":"127.0.0.1:4001"}`).ok(t, &res)
	if res.Contact != e.f.Closest[0] || res.RTT != 1500*time.Microsecond {
		t.Errorf("ping %+v", res)
	}
	e.write("POST", "/api/v1/ping", `{"addr":"127.0.0.1:9"}`).fails(t, 504, api.CodeTimeout)
	for _, body := range []string{``, `{}`, `{"addr":"nonsense"}`, `{"addr":"127.0.0.1:0"}`, `{"addr":"127.0.0.1:99999"}`,
		`{"addr":"127.0.0.1:4001","color":1}`, `{"addr":"127.0.0.1:4001"} {}`, `[1]`} {
		e.write("POST", "/api/v1/ping", body).fails(t, 400, api.CodeBadRequest)
	}
	e.f.Fail("Ping", api.ErrNoPeers)
	e.write("POST", "/api/v1/ping", `{"addr":"127.0.0.1:4001"}`).fails(t, 503, api.CodeNoPeers)
}

func TestNodesAreTheClosestThatAnswered(t *testing.T) {
	e := newEnv(t, api.Options{})
	target := e.f.Closest[1].ID
	var res struct {
		Target string        `json:"target"`
		Nodes  []api.Contact `json:"nodes"`
	}
	e.get("/api/v1/nodes?id="+target.String()).ok(t, &res)
	if res.Target != target.String() || len(res.Nodes) != 3 || res.Nodes[0] != e.f.Closest[1] {
		t.Errorf("nodes %+v", res)
	}
	e.f.Fail("FindNode", api.ErrNoPeers)
	e.get("/api/v1/nodes?key=x").fails(t, 503, api.CodeNoPeers)
}

func TestLookupReturnsItsTraceRoundByRound(t *testing.T) {
	e := newEnv(t, api.Options{})
	var res api.LookupResult
	e.get("/api/v1/lookup?key=k").ok(t, &res)
	want, _ := e.f.Lookup(context.Background(), id.Key("k"), api.LookupNode)
	if !reflect.DeepEqual(res.Rounds, want.Rounds) || res.Kind != api.LookupNode || res.Target != id.Key("k") || res.Duration != 40*time.Millisecond {
		t.Errorf("lookup:\n got %+v\nwant %+v", res, want)
	}
	// A value lookup that finds nothing: 404 with the trace.
	body := e.get("/api/v1/lookup?key=k&type=value").fails(t, 404, api.CodeNotFound)
	var nf api.LookupResult
	if err := json.Unmarshal(body.Result, &nf); err != nil || len(nf.Rounds) != 2 || nf.Kind != api.LookupValue {
		t.Errorf("not found without its trace: %s", body.Result)
	}
	e.putValue("k", "v")
	e.get("/api/v1/lookup?key=k&type=value").ok(t, &res)
	if len(res.Values) != 1 || res.Rounds[1].Queries[0].Answer != api.AnswerValues {
		t.Errorf("value lookup %+v", res)
	}
	e.get("/api/v1/lookup?key=k&type=store").fails(t, 400, api.CodeBadRequest)
}

func TestUnknownRoutesAndMethodsGetJSONErrors(t *testing.T) {
	e := newEnv(t, api.Options{})
	e.get("/api/v1/nothing").fails(t, 404, api.CodeNotFound)
	r := e.write("POST", "/api/v1/info", "")
	r.fails(t, 400, api.CodeBadRequest)
	if r.header.Get("Allow") != "GET" {
		t.Errorf("Allow %q", r.header.Get("Allow"))
	}
	if a := e.write("PATCH", "/api/v1/values?key=k", "").header.Get("Allow"); a != "GET, PUT, DELETE" {
		t.Errorf("Allow %q", a)
	}
	e.get("/api/v1/info?verbose=1").fails(t, 400, api.CodeBadRequest)
}

// Writes need the token; reads on loopback do not.
func TestWritesNeedTheToken(t *testing.T) {
	e := newEnv(t, api.Options{})
	for _, w := range []struct{ method, path, body string }{
		{"PUT", "/api/v1/values?key=k", "v"},
		{"DELETE", "/api/v1/values?key=k", ""},
		{"POST", "/api/v1/ping", `{"addr":"127.0.0.1:4001"}`},
	} {
		for _, auth := range []string{"", "Bearer wrong", "Basic " + token, "Bearer", token} {
			r := e.do(w.method, w.path, strings.NewReader(w.body), auth)
			r.fails(t, 401, api.CodeUnauthorized)
			if r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("401 without WWW-Authenticate")
			}
		}
	}
	if _, err := e.f.Get(context.Background(), id.Key("k")); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("an unauthorized put reached the node")
	}
	var info api.Info
	e.get("/api/v1/info").ok(t, &info)
}

// With RequireAuthForReads (an API on a non-loopback address), every
// request needs the token, the OpenAPI document and event streams too.
func TestNonLoopbackAPINeedsTheTokenForEverything(t *testing.T) {
	e := newEnv(t, api.Options{RequireAuthForReads: true})
	for _, p := range []string{"/api/v1/info", "/api/v1/stats", "/api/v1/table", "/api/v1/keys", "/api/v1/values?key=k",
		"/api/v1/values/events?key=k", "/api/v1/nodes?key=k", "/api/v1/lookup?key=k", "/api/v1/events", "/openapi.json", "/api/v1/nothing"} {
		e.get(p).fails(t, 401, api.CodeUnauthorized)
		e.do("GET", p, nil, "Bearer nope").fails(t, 401, api.CodeUnauthorized)
	}
	var info api.Info
	e.do("GET", "/api/v1/info", nil, "Bearer "+token).ok(t, &info)
	if !api.NeedsAuthForReads("0.0.0.0:8080") || !api.NeedsAuthForReads(":8080") || !api.NeedsAuthForReads("192.0.2.1:80") ||
		api.NeedsAuthForReads("127.0.0.1:8080") || api.NeedsAuthForReads("[::1]:8080") || api.NeedsAuthForReads("localhost:1") {
		t.Errorf("NeedsAuthForReads misjudges an address")
	}
}

// A server told it is not on loopback but given no token refuses
// everything: it fails closed rather than open.
func TestNoTokenMeansNothingThatNeedsOne(t *testing.T) {
	f := apitest.New()
	srv := httptest.NewServer(api.New(f, api.Options{RequireAuthForReads: true}))
	defer srv.Close()
	e := &env{t, f, nil, srv}
	e.get("/api/v1/info").fails(t, 401, api.CodeUnauthorized)
	e.do("GET", "/api/v1/info", nil, "Bearer ").fails(t, 401, api.CodeUnauthorized)
	e.write("PUT", "/api/v1/values?key=k", "v").fails(t, 401, api.CodeUnauthorized)
}

// A page whose host name was pointed at 127.0.0.1 (DNS rebinding) reaches
// the loopback API with its own Host header: it gets no read without the
// token.
func TestForeignHostHeaderNeedsTheToken(t *testing.T) {
	e := newEnv(t, api.Options{})
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/info", nil)
	req.Host = "evil.example:80"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("status %d for a foreign Host, want 401", resp.StatusCode)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("status %d for a foreign Host with the token, want 200", resp.StatusCode)
	}
}

// Handlers mounted through Options.Mux get the same checks.
func TestMountedHandlersGetTheSameAuth(t *testing.T) {
	e := newEnv(t, api.Options{RequireAuthForReads: true, Mux: func(m *http.ServeMux) {
		m.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "up 1\n") })
	}})
	e.get("/metrics").fails(t, 401, api.CodeUnauthorized)
	if r := e.do("GET", "/metrics", nil, "Bearer "+token); r.status != 200 || string(r.body) != "up 1\n" {
		t.Errorf("mounted /metrics: %d %s", r.status, r.body)
	}
}

// sse is a client's view of an event stream.
type sse struct {
	t      *testing.T
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

func (e *env) stream(path string) *sse {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	e.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", e.srv.URL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		e.t.Fatalf("stream %s: %d %s", path, resp.StatusCode, b)
	}
	return &sse{e.t, resp, bufio.NewReader(resp.Body), cancel}
}

// next reads the next block (an event or a comment) of the stream, as its
// lines.
func (s *sse) next() []string {
	s.t.Helper()
	var lines []string
	for {
		l, err := s.r.ReadString('\n')
		if err != nil {
			if len(lines) == 0 && l == "" {
				return nil
			}
			s.t.Fatalf("stream broken in an event: %v (%q)", err, lines)
		}
		l = strings.TrimSuffix(l, "\n")
		if l == "" {
			return lines
		}
		lines = append(lines, l)
	}
}

// event reads blocks until an event (not a comment) and returns its name
// and data.
func (s *sse) event() (string, string) {
	s.t.Helper()
	for {
		b := s.next()
		if b == nil {
			s.t.Fatal("stream ended")
		}
		if strings.HasPrefix(b[0], ":") {
			continue
		}
		var name, data string
		for _, l := range b {
			if v, ok := strings.CutPrefix(l, "event: "); ok {
				name = v
			} else if v, ok := strings.CutPrefix(l, "data: "); ok {
				data += v
			} else {
				s.t.Fatalf("malformed event line %q", l)
			}
		}
		return name, data
	}
}

func TestListenStreamsPutReplaceAndDeleteAndStopsWhenTheClientLeaves(t *testing.T) {
	e := newEnv(t, api.Options{})
	s := e.stream("/api/v1/values/events?key=k")
	if b := s.next(); len(b) != 1 || !strings.HasPrefix(b[0], ":") {
		t.Fatalf("the stream does not open with a comment: %q", b)
	}
	if !e.f.WaitSubscribed(1, wait) {
		t.Fatal("the stream did not subscribe")
	}
	if e.s.Subscribers() != 1 {
		t.Errorf("Subscribers() = %d", e.s.Subscribers())
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.putValue("other", "not for this stream")
		e.putValue("k", "v1")
		e.putValue("k", "v2")
		e.write("DELETE", "/api/v1/values?key=k", "")
	}()
	for i, want := range []string{"put", "replace", "delete"} {
		name, data := s.event()
		var ev api.ValueEvent
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			t.Fatalf("event data %q: %v", data, err)
		}
		if name != want || ev.Kind != api.EventKind(want) || ev.Key != id.Key("k") {
			t.Errorf("event %d: %s %+v, want %s", i, name, ev, want)
		}
		if i == 1 && string(ev.Value.Data) != "v2" {
			t.Errorf("replace carries %q", ev.Value.Data)
		}
	}
	<-done
	// The client goes away: the node's subscription ends, the handler too.
	s.cancel()
	if !e.f.WaitSubscribed(0, wait) {
		t.Fatal("the subscription outlived the client")
	}
	e.srv.Close() // waits for the handlers
	if e.s.Subscribers() != 0 {
		t.Errorf("Subscribers() = %d after the client left", e.s.Subscribers())
	}
}

func TestNodeEventStreamCarriesStatsSamples(t *testing.T) {
	e := newEnv(t, api.Options{})
	s := e.stream("/api/v1/events")
	if !e.f.WaitSubscribed(1, wait) {
		t.Fatal("the stream did not subscribe")
	}
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	sample := &api.Sample{Interval: time.Second, Rates: map[string]float64{"requests_in": 12.5}, Latency: api.Latency{P50: time.Millisecond, P99: 9 * time.Millisecond}, Drops: map[string]uint64{"malformed": 2}}
	go e.f.Emit(api.NodeEvent{Kind: "stats", Time: at, Sample: sample})
	name, data := s.event()
	var ev api.NodeEvent
	json.Unmarshal([]byte(data), &ev)
	if name != "stats" || !ev.Time.Equal(at) || ev.Sample == nil || ev.Sample.Rates["requests_in"] != 12.5 || ev.Sample.Latency.P99 != 9*time.Millisecond {
		t.Errorf("event %s %s", name, data)
	}
	go e.f.Emit(api.NodeEvent{Kind: "seed_down\nevent: forged", Time: at, Message: "seed 127.0.0.1:4001 does not answer"})
	if name, _ := s.event(); name != "seed_downevent: forged" {
		t.Errorf("an event name with a line break is not kept on one line: %q", name)
	}
}

func TestEventStreamSendsKeepAliveComments(t *testing.T) {
	e := newEnv(t, api.Options{KeepAlive: time.Millisecond})
	s := e.stream("/api/v1/events")
	s.next() // the opening comment
	if b := s.next(); len(b) != 1 || b[0] != ": keep-alive" {
		t.Errorf("block %q, want a keep-alive comment", b)
	}
}

func TestEventStreamEndsWhenTheNodeClosesIt(t *testing.T) {
	src := make(chan api.NodeEvent)
	b := &streamBackend{Fake: apitest.New(), events: src}
	srv := httptest.NewServer(api.New(b, api.Options{Token: token}))
	defer srv.Close()
	e := &env{t, b.Fake, nil, srv}
	s := e.stream("/api/v1/events")
	src <- api.NodeEvent{Kind: "joined"}
	close(src)
	if name, _ := s.event(); name != "joined" {
		t.Errorf("first event %q", name)
	}
	if name, data := s.event(); name != "end" || data != "{}" {
		t.Errorf("last event %q %q, want end", name, data)
	}
	if b := s.next(); b != nil {
		t.Errorf("the stream goes on after end: %q", b)
	}
}

// streamBackend is a Fake whose Events channel the test controls.
type streamBackend struct {
	*apitest.Fake
	events chan api.NodeEvent
}

func (b *streamBackend) Events(context.Context) (<-chan api.NodeEvent, error) { return b.events, nil }

func TestStreamsAreBounded(t *testing.T) {
	e := newEnv(t, api.Options{MaxSubscribers: 1})
	e.stream("/api/v1/events")
	e.get("/api/v1/values/events?key=k").fails(t, 503, api.CodeUnavailable)
	e.f.Fail("Listen", api.ErrUnavailable)
	e.f.Fail("Events", api.ErrUnavailable)
}

func TestStreamErrorsBeforeTheFirstEventAreJSON(t *testing.T) {
	e := newEnv(t, api.Options{})
	e.f.Fail("Listen", api.ErrNoPeers)
	e.get("/api/v1/values/events?key=k").fails(t, 503, api.CodeNoPeers)
}

// envelope=1 reaches the Backend with the signed version, a get says which
// values are envelopes and of which kind, and a plain value's JSON is what
// it always was (no "envelope" or "kind").
func TestEnvelopePutReachesTheBackendAndGetNamesTheKind(t *testing.T) {
	e := newEnv(t, api.Options{})
	var res api.PutResult
	e.write("PUT", "/api/v1/values?key=k&envelope=1&version=7", "\x02signed envelope bytes").ok(t, &res)
	if res.Version != 7 {
		t.Errorf("put result %+v, want version 7", res)
	}
	e.write("PUT", "/api/v1/values?key=k&publisher="+strings.Repeat("cd", 20), "plain").ok(t, &res)
	r := e.get("/api/v1/values?key=k")
	var got api.GetResult
	r.ok(t, &got)
	var signed, plain *api.Value
	for i := range got.Values {
		if got.Values[i].Envelope {
			signed = &got.Values[i]
		} else {
			plain = &got.Values[i]
		}
	}
	if signed == nil || signed.Kind != "signed" || signed.Version != 7 || plain == nil || plain.Kind != "" {
		t.Fatalf("values %+v", got.Values)
	}
	var raw struct {
		Values []map[string]any `json:"values"`
	}
	json.Unmarshal(r.body, &raw)
	for _, v := range raw.Values {
		_, hasEnv := v["envelope"]
		_, hasKind := v["kind"]
		if v["text"] == "plain" && (hasEnv || hasKind) {
			t.Errorf("a plain value's JSON has envelope or kind: %v", v)
		}
		if v["text"] != "plain" && (v["envelope"] != true || v["kind"] != "signed") {
			t.Errorf("an envelope's JSON: %v", v)
		}
	}
	for _, q := range []string{"envelope=2", "envelope=yes", "envelope=1&publisher=" + strings.Repeat("ab", 20), "envelope=1&keep=1"} {
		e.write("PUT", "/api/v1/values?key=k&"+q, "\x02x").fails(t, 400, api.CodeBadRequest)
	}
}

// A record the nodes refuse as invalid answers 422 invalid_record with the
// Backend's reason; a compare-and-swap conflict 409 conflict.
func TestRefusedRecordsHaveTheirOwnCodes(t *testing.T) {
	e := newEnv(t, api.Options{})
	e.f.Fail("Put", fmt.Errorf("dht: put envelope: record: invalid signature: it does not verify (%w)", api.ErrInvalid))
	if b := e.write("PUT", "/api/v1/values?key=k&envelope=1&version=1", "\x02x").fails(t, 422, api.CodeInvalidRecord); !strings.Contains(b.Error.Message, "signature") {
		t.Errorf("the reason is lost: %q", b.Error.Message)
	}
	e.f.Fail("Put", fmt.Errorf("dht: compare-and-swap conflict (%w)", api.ErrConflict))
	e.write("PUT", "/api/v1/values?key=k&envelope=1&version=1", "\x02x").fails(t, 409, api.CodeConflict)
}

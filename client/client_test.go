package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/api/apitest"
	"github.com/dhtkit/dht/client"
	"github.com/dhtkit/dht/id"
)

const token = "t0ken"

const wait = 10 * time.Second

func setup(t *testing.T, opts api.Options) (*apitest.Fake, *client.Client, *httptest.Server) {
	t.Helper()
	f := apitest.New()
	if opts.Token == "" {
		opts.Token = token
	}
	srv := httptest.NewServer(api.New(f, opts))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.Listener.Addr().String(), client.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return f, c, srv
}

var ctx = context.Background()

// What the client returns is what the node's Backend answered: the JSON in
// between loses nothing.
func TestClientReturnsWhatTheBackendAnswered(t *testing.T) {
	f, c, _ := setup(t, api.Options{})
	info, err := c.Info(ctx)
	if want, _ := f.Info(ctx); err != nil || !reflect.DeepEqual(info, want) {
		t.Errorf("Info: %+v %v\nwant %+v", info, err, want)
	}
	stats, err := c.Stats(ctx)
	if err != nil || !reflect.DeepEqual(stats, f.StatsV) {
		t.Errorf("Stats: %v %v", stats, err)
	}
	table, err := c.Table(ctx)
	if err != nil || table.Self != f.TableV.Self || !reflect.DeepEqual(table.Buckets[:2], f.TableV.Buckets[:2]) {
		t.Errorf("Table: %+v %v", table, err)
	}
	nodes, err := c.FindNode(ctx, f.Closest[2].ID)
	if want, _ := f.FindNode(ctx, f.Closest[2].ID); err != nil || !reflect.DeepEqual(nodes, want) {
		t.Errorf("FindNode: %v %v", nodes, err)
	}
	ping, err := c.Ping(ctx, f.Closest[0].Addr.String())
	if err != nil || ping.Contact != f.Closest[0] || ping.RTT != 1500*time.Microsecond {
		t.Errorf("Ping: %+v %v", ping, err)
	}
	lk, err := c.Lookup(ctx, id.Key("k"), api.LookupNode)
	if want, _ := f.Lookup(ctx, id.Key("k"), api.LookupNode); err != nil || !reflect.DeepEqual(lk.Rounds, want.Rounds) || lk.Duration != want.Duration {
		t.Errorf("Lookup: %+v %v", lk, err)
	}
	doc, err := c.OpenAPI(ctx)
	if err != nil || !bytes.Equal(doc, api.OpenAPI) {
		t.Errorf("OpenAPI: %d bytes, %v", len(doc), err)
	}
}

func TestPutGetDeleteThroughTheClient(t *testing.T) {
	f, c, _ := setup(t, api.Options{})
	f.NoAnswer, f.MaxTTL = 3, 12*time.Hour
	key := id.Key("alice")
	pub := id.Key("someone")
	value := []byte{0, 1, 2, 0xff}
	res, err := c.Put(ctx, key, value, api.PutOptions{TTL: 48 * time.Hour, Quorum: 10, Publisher: pub, Version: 7})
	if err != nil || res.Stored != 17 || res.Asked != 48*time.Hour || res.Receipts[5].TTL != 12*time.Hour || res.Publisher != pub || res.Version != 7 || res.Key != key {
		t.Fatalf("Put: %+v %v", res, err)
	}
	if _, err := c.Put(ctx, key, []byte("sub-second ttl"), api.PutOptions{TTL: 1500 * time.Millisecond}); err != nil {
		t.Fatalf("Put with a fractional TTL: %v", err)
	}
	got, err := c.Get(ctx, key)
	if err != nil || len(got.Values) != 2 || !bytes.Equal(got.Values[0].Data, value) || got.Values[0].Publisher != pub || got.Values[1].TTL != 1500*time.Millisecond {
		t.Fatalf("Get: %+v %v", got, err)
	}
	del, err := c.Delete(ctx, key, api.PutOptions{Publisher: pub})
	if err != nil || del.Found != 17 || del.Publisher != pub {
		t.Fatalf("Delete: %+v %v", del, err)
	}
	del, err = c.Delete(ctx, key, api.PutOptions{Publisher: pub})
	if !errors.Is(err, api.ErrNotFound) || len(del.Receipts) != 20 {
		t.Errorf("Delete again: %+v %v, want not found with receipts", del, err)
	}
	page, err := c.Keys(ctx, api.KeysQuery{Limit: 10})
	if err != nil || len(page.Keys) != 1 || page.Keys[0].Key != key || page.More {
		t.Errorf("Keys: %+v %v", page, err)
	}
	after := key
	page, err = c.Keys(ctx, api.KeysQuery{After: &after})
	if err != nil || len(page.Keys) != 0 {
		t.Errorf("Keys after the last: %+v %v", page, err)
	}
}

// An API error comes back as an *api.Error with its code and status, which
// errors.Is matches to the sentinel; a put below its quorum still returns
// its receipts.
func TestErrorsCarryTheAPICode(t *testing.T) {
	f, c, _ := setup(t, api.Options{})
	_, err := c.Get(ctx, id.Key("nobody"))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeNotFound || ae.Status != 404 || !errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrNoPeers) {
		t.Errorf("Get of nothing: %#v", err)
	}
	f.Fail("Get", api.ErrNoPeers)
	if _, err := c.Get(ctx, id.Key("k")); !errors.Is(err, api.ErrNoPeers) {
		t.Errorf("no peers: %v", err)
	}
	f.Refuse = 5
	res, err := c.Put(ctx, id.Key("k"), []byte("v"), api.PutOptions{Quorum: 20})
	if !errors.Is(err, api.ErrQuorum) || res.Stored != 15 || len(res.Receipts) != 20 || res.Receipts[0].Outcome != api.Refused {
		t.Errorf("below quorum: %+v %v", res, err)
	}
	lk, err := c.Lookup(ctx, id.Key("k"), api.LookupValue)
	if !errors.Is(err, api.ErrNotFound) || len(lk.Rounds) != 2 {
		t.Errorf("a value lookup that found nothing: %+v %v", lk, err)
	}
	if _, err := c.Ping(ctx, "nonsense"); !errors.Is(err, api.ErrBadRequest) {
		t.Errorf("bad ping: %v", err)
	}
}

func TestWrongTokenIsUnauthorized(t *testing.T) {
	_, _, srv := setup(t, api.Options{})
	c, _ := client.New(srv.URL, client.Options{Token: "wrong"})
	_, err := c.Put(ctx, id.Key("k"), []byte("v"), api.PutOptions{})
	if !errors.Is(err, api.ErrAuth) {
		t.Errorf("wrong token: %v", err)
	}
	if _, err := c.Info(ctx); err != nil {
		t.Errorf("a read on loopback needs no token: %v", err)
	}
}

// A server that is not the API (another program on the port) still gives
// an *api.Error from its status; a port nobody listens on gives an error
// that is not an *api.Error.
func TestAnswersThatAreNotTheAPIs(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "404 page not found", 404)
	}))
	defer other.Close()
	c, _ := client.New(other.URL, client.Options{})
	_, err := c.Info(ctx)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeNotFound || !strings.Contains(ae.Message, "page not found") {
		t.Errorf("a plain 404: %#v", err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	c, _ = client.New(addr, client.Options{})
	if _, err := c.Info(ctx); err == nil || errors.As(err, &ae) {
		t.Errorf("nobody listening: %#v", err)
	}
	for _, bad := range []string{"ftp://x", "http://", "%zz"} {
		if _, err := client.New(bad, client.Options{}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
}

func TestListenDeliversEventsAndClosesWhenCanceled(t *testing.T) {
	f, c, _ := setup(t, api.Options{})
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	key := id.Key("k")
	ch, err := c.Listen(lctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if !f.WaitSubscribed(1, wait) {
		t.Fatal("not subscribed")
	}
	go c.Put(ctx, key, []byte("v1"), api.PutOptions{})
	select {
	case ev := <-ch:
		if ev.Kind != api.EventPut || string(ev.Value.Data) != "v1" || ev.Key != key {
			t.Errorf("event %+v", ev)
		}
	case <-time.After(wait):
		t.Fatal("no event")
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("an event after cancel")
		}
	case <-time.After(wait):
		t.Fatal("the channel stays open after cancel")
	}
	if !f.WaitSubscribed(0, wait) {
		t.Error("the node's subscription outlived the client's")
	}
}

// Stream.Next tells the node ending the stream (io.EOF) from the
// connection breaking (ErrBroken), and counts what the node dropped.
func TestStreamTellsEndFromBreak(t *testing.T) {
	for _, tc := range []struct {
		body    string
		want    error
		dropped uint64
	}{
		{": open\n\nevent: joined\ndata: {\"kind\":\"joined\",\"time\":\"2025-01-01T00:00:00Z\"}\n\nevent: dropped\ndata: {\"dropped\":4}\n\nevent: end\ndata: {}\n\n", io.EOF, 4},
		{": open\n\nevent: joined\ndata: {\"kind\":\"joined\",\"time\":\"2025-01-01T00:00:00Z\"}\n\nevent: stats\ndata: {\"ki", client.ErrBroken, 0},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, tc.body)
		}))
		c, _ := client.New(srv.URL, client.Options{})
		s, err := c.EventStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := s.Next()
		if err != nil || ev.Kind != "joined" {
			t.Errorf("first: %+v %v", ev, err)
		}
		if _, err := s.Next(); !errors.Is(err, tc.want) {
			t.Errorf("then %v, want %v", err, tc.want)
		}
		if s.Dropped() != tc.dropped {
			t.Errorf("Dropped() = %d, want %d", s.Dropped(), tc.dropped)
		}
		s.Close()
		srv.Close()
	}
}

func TestEventStreamThroughTheAPI(t *testing.T) {
	f, c, _ := setup(t, api.Options{})
	s, err := c.EventStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !f.WaitSubscribed(1, wait) {
		t.Fatal("not subscribed")
	}
	go f.Emit(api.NodeEvent{Kind: "stats", Time: time.Unix(1, 0).UTC(), Sample: &api.Sample{Interval: time.Second, Rates: map[string]float64{"requests_in": 3}}})
	ev, err := s.Next()
	if err != nil || ev.Kind != "stats" || ev.Sample.Rates["requests_in"] != 3 || ev.Sample.Interval != time.Second {
		t.Errorf("%+v %v", ev, err)
	}
}

func TestSSEReaderParsesTheFormat(t *testing.T) {
	in := ": comment\r\n\r\nevent: a\r\ndata: one\r\ndata:two\r\nid: 5\r\nretry: 10\r\n\r\n" + // CRLF, data without space
		"data: plain\rdata: cr\r\r" + // CR line endings, no event name
		": only a comment\n\n" +
		"event: cut\ndata: never finished"
	r := client.NewSSEReader(strings.NewReader(in), 0)
	var got []client.Event
	for {
		ev, err := r.Next()
		if err != nil {
			if !errors.Is(err, io.ErrUnexpectedEOF) && err != io.EOF {
				t.Fatal(err)
			}
			break
		}
		got = append(got, ev)
	}
	want := []client.Event{{Name: "a", Data: "one\ntwo"}, {Name: "message", Data: "plain\ncr"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// An event over the reader's bound is an error, not memory; keep-alive
// comments never add up to one.
func TestSSEReaderBoundsAnEvent(t *testing.T) {
	r := client.NewSSEReader(strings.NewReader("data: "+strings.Repeat("x", 100)+"\n\n"), 50)
	if _, err := r.Next(); err == nil || !strings.Contains(err.Error(), "over 50 bytes") {
		t.Errorf("an oversize event: %v", err)
	}
	r = client.NewSSEReader(strings.NewReader(strings.Repeat(": keep-alive\n\n", 100)+"data: ok\n\n"), 50)
	if ev, err := r.Next(); err != nil || ev.Data != "ok" {
		t.Errorf("after many comments: %+v %v", ev, err)
	}
}

func ExampleClient() {
	f := apitest.New()
	srv := httptest.NewServer(api.New(f, api.Options{Token: "secret"}))
	defer srv.Close()
	c, _ := client.New(srv.URL, client.Options{Token: "secret"})
	key := id.Key("alice@id.example.org:address")
	res, err := c.Put(context.Background(), key, []byte("203.0.113.7:4000"), api.PutOptions{TTL: time.Hour, Quorum: 10})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("stored on %d of %d\n", res.Stored, len(res.Receipts))
	got, _ := c.Get(context.Background(), key)
	fmt.Printf("%s\n", got.Values[0].Data)
	// Output:
	// stored on 20 of 20
	// 203.0.113.7:4000
}

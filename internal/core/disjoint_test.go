package core

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport/memnet"
)

// With DisjointPaths set, Get runs its paths and finds what a plain Get
// finds, in an honest network, at about paths times the requests.
func TestGetOverDisjointPathsFindsTheValue(t *testing.T) {
	tn := newTestNet(t, 61, memnet.Config{})
	for range 80 {
		tn.add(func(c *Config) { c.K = 8 })
	}
	tn.bootstrapAll(50 * time.Millisecond)
	key := id.Key("alice@id.example.org:address")
	_, plain, err := putGet(t, tn, tn.nodes[7], tn.nodes[42], key, []byte("203.0.113.7:4000"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var got *LookupResult
	pending := 1
	tn.nodes[55].GetPaths(key, 3, func(r *LookupResult, err error) {
		if err != nil {
			t.Errorf("disjoint get: %v", err)
		}
		got = r
		pending--
	})
	tn.await(&pending, time.Minute)
	if got == nil || len(got.Values) != 1 || string(got.Values[0]) != "203.0.113.7:4000" {
		t.Fatalf("disjoint get found %+v", got)
	}
	if got.Holders < 3 || got.Queried <= plain.Queried/2 {
		t.Fatalf("disjoint get: %d holders, %d queried (plain get queried %d): want a quorum per path", got.Holders, got.Queried, plain.Queried)
	}
	t.Logf("plain: %d queried, %d messages; 3 paths: %d queried, %d messages, %d holders", plain.Queried, plain.Messages, got.Queried, got.Messages, got.Holders)

	// The config field routes Get through the paths.
	n := tn.add(func(c *Config) { c.K = 8; c.DisjointPaths = 3 })
	pending = 1
	n.Bootstrap([]netip.AddrPort{tn.nodes[0].Addr()}, func(_ *BootstrapResult, err error) {
		if err != nil {
			t.Errorf("bootstrap: %v", err)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	pending = 1
	n.Get(key, func(r *LookupResult, err error) {
		if err != nil || len(r.Values) != 1 {
			t.Errorf("Get with DisjointPaths = 3: %v, %+v", err, r)
		}
		got = r
		pending--
	})
	tn.await(&pending, time.Minute)
	if got.Holders < 3 {
		t.Fatalf("Get with DisjointPaths = 3 heard %d holders", got.Holders)
	}
}

// Canceling a disjoint get reports ErrCanceled once and sends nothing more.
func TestDisjointGetStopsWhenCanceled(t *testing.T) {
	tn := newTestNet(t, 62, memnet.Config{Latency: memnet.Fixed(100 * time.Millisecond)})
	for range 40 {
		tn.add(func(c *Config) { c.K = 8 })
	}
	tn.bootstrapAll(50 * time.Millisecond)
	a := tn.nodes[3]
	calls := 0
	var gotErr error
	cancel := a.GetPaths(id.Key("nothing here"), 4, func(_ *LookupResult, err error) { calls++; gotErr = err })
	tn.clk.RunFor(150 * time.Millisecond) // some answers are in, more requests out
	cancel()
	sent := a.Stats().Requests
	tn.clk.RunFor(time.Minute)
	if calls != 1 || !errors.Is(gotErr, ErrCanceled) {
		t.Fatalf("callback ran %d times with %v; want once with ErrCanceled", calls, gotErr)
	}
	if after := a.Stats().Requests; after != sent {
		t.Fatalf("%d requests sent after the cancel", after-sent)
	}
}

// Paths that disagree are settled by the stores' rule: the higher version
// wins, a tombstone beats the value of its version, and of two conflicting
// copies of one version the first path's stands.
func TestDisjointPathsMergeByTheStoresRule(t *testing.T) {
	n := &Node{cfg: Config{MaxValueSize: 1000}}
	pub := id.Key("publisher")
	rec := func(v uint64, deleted bool, data string) *lookupOp {
		m := &mergedRec{pub: pub, version: v, deleted: deleted, size: uint32(len(data)), ttl: time.Hour, shortest: time.Hour}
		if data != "" {
			m.data = []byte(data)
		}
		return &lookupOp{recs: []*mergedRec{m}}
	}
	for _, tc := range []struct {
		name  string
		paths []*lookupOp
		want  string // version:state of the winner
	}{
		{"higher version wins", []*lookupOp{rec(1, false, "old"), rec(2, false, "new")}, "2:new"},
		{"higher version wins in any order", []*lookupOp{rec(2, false, "new"), rec(1, false, "old")}, "2:new"},
		{"tombstone beats its version's value", []*lookupOp{rec(3, false, "x"), rec(3, true, "")}, "3:deleted"},
		{"value does not beat its version's tombstone", []*lookupOp{rec(3, true, ""), rec(3, false, "x")}, "3:deleted"},
		{"first path's copy stands", []*lookupOp{rec(4, false, "aaaa"), rec(4, false, "bbbbbb")}, "4:aaaa"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			all := &lookupOp{}
			for _, p := range tc.paths {
				all.mergePath(n, p)
			}
			if len(all.recs) != 1 {
				t.Fatalf("%d records, want 1", len(all.recs))
			}
			m := all.recs[0]
			state := string(m.data)
			if m.deleted {
				state = "deleted"
			}
			if got := strings.Join([]string{strconv.FormatUint(m.version, 10), state}, ":"); got != tc.want {
				t.Fatalf("winner %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDisjointPathsConfigIsValidated(t *testing.T) {
	tn := newTestNet(t, 63, memnet.Config{})
	for _, d := range []int{-1, 17} {
		_, err := New(Config{Transport: tn.net.NewEndpoint(), Clock: tn.clk, DisjointPaths: d})
		if err == nil || !strings.Contains(err.Error(), "DisjointPaths") {
			t.Fatalf("DisjointPaths = %d: err %v, want one naming DisjointPaths", d, err)
		}
	}
}

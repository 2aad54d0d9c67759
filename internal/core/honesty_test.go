package core

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// byDistance returns the nodes sorted by distance to key, closest first.
func byDistance(tn *testNet, key id.ID) []*Node {
	ns := slices.Clone(tn.nodes)
	slices.SortFunc(ns, func(a, b *Node) int { return id.CompareDistance(key, a.ID(), b.ID()) })
	return ns
}

// A stale node among the key's closest, holding only an old value, must not
// decide what a get returns: every get merges the values of several holders,
// so the current value is always among them.
func TestOneStaleHolderDoesNotDecideTheAnswer(t *testing.T) {
	tn := newTestNet(t, 101, memnet.Config{})
	for range 40 {
		tn.add(func(c *Config) { c.K = 8 })
	}
	tn.bootstrapAll(20 * time.Millisecond)
	key := id.Key("alice@id.example.org:address")
	now := tn.clk.Now()
	closest := byDistance(tn, key)
	// The closest node, the first any lookup reaches, holds only "stale";
	// the other seven of the K closest hold "current".
	if err := putValue(closest[0].Store(), key, []byte("stale"), netip.Addr{}, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	for _, n := range closest[1:8] {
		if err := putValue(n.Store(), key, []byte("current"), netip.Addr{}, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
	}
	pending := 0
	for i, n := range closest[8:] {
		pending++
		n.Get(key, func(r *LookupResult, err error) {
			pending--
			if err != nil {
				t.Errorf("get from node %d: %v", i, err)
				return
			}
			if !slices.ContainsFunc(r.Values, func(v []byte) bool { return string(v) == "current" }) {
				t.Errorf("get from node %d returned %q from %d holder(s): the current value is missing", i, r.Values, r.Holders)
			}
			if r.Holders < DefaultGetQuorum {
				t.Errorf("get from node %d merged %d holders, want %d", i, r.Holders, DefaultGetQuorum)
			}
		})
	}
	tn.await(&pending, time.Minute)
}

// A holder whose records do not fit one answer sets `more`; the get asks
// it again from the last record it sent (the cursor) until it has them all,
// and fetches in parts the values an answer had no room for.
func TestGetContinuesHoldersWhoseRecordsDoNotFitOneAnswer(t *testing.T) {
	for _, tc := range []struct {
		values int
	}{
		{values: 20},
		{values: 64}, // a full key: 1 value inline per answer, the others to fetch
	} {
		t.Run(fmt.Sprint(tc.values), func(t *testing.T) {
			tn := newTestNet(t, 102, memnet.Config{})
			for range 10 {
				tn.add(nil)
			}
			tn.bootstrapAll(20 * time.Millisecond)
			key := id.Key("crowded")
			now := tn.clk.Now()
			big := func(i int) []byte { return []byte(fmt.Sprintf("%03d%0997d", i, 0)) } // 1000 bytes: one per answer
			for _, n := range tn.nodes[1:] {
				for i := range tc.values {
					if err := putValue(n.Store(), key, big(i), netip.Addr{}, now.Add(time.Hour), now); err != nil {
						t.Fatal(err)
					}
				}
			}
			pending := 1
			tn.nodes[0].Get(key, func(r *LookupResult, err error) {
				pending--
				if err != nil {
					t.Fatal(err)
				}
				if len(r.Values) != tc.values || r.Incomplete != "" {
					t.Errorf("got %d of %d values, incomplete=%q: want them all", len(r.Values), tc.values, r.Incomplete)
				}
			})
			tn.await(&pending, time.Minute)
		})
	}
}

// A node whose every peer has gone cannot claim a put succeeded because it
// kept a copy itself: it fails with ErrNoPeers, and the lookup reports the
// nodes it asked as failed.
func TestIsolatedPutFailsWithErrNoPeers(t *testing.T) {
	tn := newTestNet(t, 103, memnet.Config{})
	for range 6 {
		tn.add(nil)
	}
	tn.bootstrapAll(20 * time.Millisecond)
	a := tn.nodes[0]
	for _, n := range tn.nodes[1:] {
		n.Close()
	}
	pending := 1
	a.Put(id.Key("k"), []byte("v"), time.Hour, func(r *PutResult, err error) {
		pending--
		if !errors.Is(err, ErrNoPeers) {
			t.Errorf("isolated put: %+v, %v; want ErrNoPeers", r, err)
		}
		if r == nil || r.Lookup == nil || r.Lookup.Failed == 0 {
			t.Errorf("isolated put's lookup counts no failures: %+v", r)
		}
	})
	tn.await(&pending, time.Minute)
}

// A node alone in its network (no peers ever) has nobody to store at.
func TestPutWithNoPeersFailsWithErrNoPeers(t *testing.T) {
	tn := newTestNet(t, 104, memnet.Config{})
	a := tn.add(nil)
	pending := 1
	a.Put(id.Key("k"), []byte("v"), time.Hour, func(r *PutResult, err error) {
		pending--
		if !errors.Is(err, ErrNoPeers) {
			t.Errorf("put with no peers: %+v, %v; want ErrNoPeers", r, err)
		}
	})
	tn.await(&pending, time.Minute)
}

// Canceling a put stops it: no STORE goes out afterwards, no node holds the
// value, and the node keeps no request of it in flight.
func TestCanceledPutStoresNothing(t *testing.T) {
	tn := newTestNet(t, 105, memnet.Config{})
	for range 40 {
		tn.add(nil)
	}
	tn.bootstrapAll(20 * time.Millisecond)
	a := tn.nodes[5]
	var gotErr error
	calls := 0
	cancel := a.Put(id.Key("canceled"), []byte("v"), time.Hour, func(_ *PutResult, err error) { calls++; gotErr = err })
	tn.clk.RunFor(5 * time.Millisecond) // its first lookup requests are on the wire
	cancel()
	sent := a.Stats().Requests
	tn.clk.RunFor(time.Minute)
	if calls != 1 || !errors.Is(gotErr, ErrCanceled) {
		t.Fatalf("callback ran %d times with %v; want once with ErrCanceled", calls, gotErr)
	}
	if more := a.Stats().Requests - sent; more != 0 {
		t.Errorf("%d requests sent after cancel", more)
	}
	if st := a.Stats(); st.InFlight != 0 {
		t.Errorf("%d requests still in flight after cancel", st.InFlight)
	}
	for i, n := range tn.nodes {
		if n.Store().Len() != 0 {
			t.Errorf("node %d stored the canceled value", i)
		}
	}
}

// Canceling a get or a find-node whose peers do not answer stops its
// requests at once: no retries, nothing left in flight.
func TestCanceledLookupsSendNothingMore(t *testing.T) {
	for _, op := range []string{"get", "findnode"} {
		t.Run(op, func(t *testing.T) {
			tn := newTestNet(t, 106, memnet.Config{})
			for range 20 {
				tn.add(nil)
			}
			tn.bootstrapAll(20 * time.Millisecond)
			a := tn.nodes[0]
			for _, n := range tn.nodes[1:] {
				n.Close() // nobody answers: the lookup would retry and wait
			}
			var cancel func()
			calls := 0
			if op == "get" {
				cancel = a.Get(id.Key("k"), func(*LookupResult, error) { calls++ })
			} else {
				cancel = a.FindNode(id.Key("k"), func(*LookupResult, error) { calls++ })
			}
			tn.clk.RunFor(100 * time.Millisecond)
			cancel()
			sent := a.Stats().Requests
			if st := a.Stats(); st.InFlight != 0 {
				t.Errorf("%d requests in flight right after cancel", st.InFlight)
			}
			tn.clk.RunFor(time.Minute)
			if more := a.Stats().Requests - sent; more != 0 {
				t.Errorf("%d requests (retries) sent after cancel", more)
			}
			if calls != 1 {
				t.Errorf("callback ran %d times", calls)
			}
		})
	}
}

// A get that has its answer sends nothing more for the requests it no
// longer needs: they are not retried, and they leave the request table by
// the end of their current attempt (their outcome still tells the routing
// table whether the contact is there).
func TestFinishedGetLeavesNothingInFlight(t *testing.T) {
	tn := newTestNet(t, 107, memnet.Config{})
	for range 30 {
		tn.add(nil)
	}
	tn.bootstrapAll(20 * time.Millisecond)
	key := id.Key("k")
	if _, _, err := putGet(t, tn, tn.nodes[1], tn.nodes[2], key, []byte("v"), time.Hour); err != nil {
		t.Fatal(err)
	}
	// Every other one of the ten closest holders leaves, so that some
	// requests of the next get go unanswered while others bring the value.
	ranked := byDistance(tn, key)
	for i := 0; i < 10; i += 2 {
		ranked[i].Close()
	}
	getter := ranked[len(ranked)-1] // holds no copy: it must ask
	pending := 1
	var got *LookupResult
	getter.Get(key, func(r *LookupResult, err error) {
		if err != nil {
			t.Fatal(err)
		}
		got = r
		pending--
	})
	tn.await(&pending, time.Minute)
	if got.Queried <= got.Responded {
		t.Fatalf("the get asked %d and heard from %d: the test needs unanswered requests", got.Queried, got.Responded)
	}
	retries := getter.Stats().Retries
	tn.clk.RunFor(getter.cfg.RequestTimeout)
	if st := getter.Stats(); st.InFlight != 0 {
		t.Errorf("%d requests still in flight a request timeout after the get reported (%d queried, %d responded)", st.InFlight, got.Queried, got.Responded)
	}
	tn.clk.RunFor(time.Minute)
	if r := getter.Stats().Retries; r != retries {
		t.Errorf("%d retries after the get reported", r-retries)
	}
}

// Running out of request slots is this node's limit, not its peers' fault:
// lookups wait for a slot instead of marking contacts failed, so a put on a
// node allowed only 2 requests in flight still stores on exactly the K
// closest nodes, and its lookup counts no failures.
func TestFullRequestTableDelaysLookupsInsteadOfFailingThem(t *testing.T) {
	tn := newTestNet(t, 108, memnet.Config{})
	for range 60 {
		tn.add(func(c *Config) { c.K = 8 })
	}
	tn.bootstrapAll(20 * time.Millisecond)
	busy := tn.add(func(c *Config) { c.K = 8; c.MaxInFlight = 2 })
	// The join itself runs lookups through the narrow request table.
	pending := 1
	busy.Bootstrap([]netip.AddrPort{tn.nodes[0].Addr()}, func(_ *BootstrapResult, err error) {
		if err != nil {
			t.Errorf("join: %v", err)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	for k := range 5 {
		key := id.Key(fmt.Sprint("busy-", k))
		pending = 1
		busy.Put(key, []byte("v"), time.Hour, func(r *PutResult, err error) {
			pending--
			if err != nil {
				t.Fatalf("put %d: %v", k, err)
			}
			if r.Lookup.Failed != 0 || r.Count(NoAnswer) != 0 {
				t.Errorf("put %d: lookup failed %d contacts, %d stores failed; want none", k, r.Lookup.Failed, r.Count(NoAnswer))
			}
		})
		tn.await(&pending, time.Minute)
		for i, n := range byDistance(tn, key) {
			has := len(n.Store().Get(key, tn.clk.Now(), nil)) > 0
			if has != (i < 8) {
				t.Errorf("put %d: node of rank %d holds the value = %v", k, i, has)
			}
		}
	}
	if st := busy.Stats(); st.RPCQueued == 0 || st.RPCFull != 0 {
		t.Errorf("queued %d, refused %d: want requests delayed and none refused", st.RPCQueued, st.RPCFull)
	}
}

// A node whose contacts only ever sent it requests (they joined through it)
// asks them without padding, since they are unverified; an answer held to 3x
// such a request cannot carry a 1000-byte value, so the get asks each such
// holder once more, padded, and gets the value.
func TestGetOfALargeValueFromUnverifiedContactsAsksAgainPadded(t *testing.T) {
	tn := newTestNet(t, 109, memnet.Config{})
	for range 10 {
		tn.add(nil)
	}
	tn.bootstrapAll(20 * time.Millisecond) // all join through node 0
	getter := tn.nodes[0]
	unverified := 0
	for _, e := range getter.Contacts() {
		if !e.Verified {
			unverified++
		}
	}
	if unverified == 0 {
		t.Fatal("the scenario needs unverified contacts")
	}
	key := id.Key("big")
	now := tn.clk.Now()
	value := bytes.Repeat([]byte("v"), 1000)
	for _, n := range tn.nodes[1:] {
		if err := putValue(n.Store(), key, value, netip.Addr{}, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
	}
	pending := 1
	getter.Get(key, func(r *LookupResult, err error) {
		pending--
		if err != nil || len(r.Values) != 1 || !bytes.Equal(r.Values[0], value) {
			t.Fatalf("get: %v, %d values", err, len(r.Values))
		}
		if r.Incomplete != "" {
			t.Errorf("complete answer reported incomplete: %s", r.Incomplete)
		}
	})
	tn.await(&pending, time.Minute)
}

// A hostile holder that answers every GET with a new record and `more`
// would keep a get asking forever: continuations are bounded, and the get
// says its answer may be incomplete.
func TestGetBoundsContinuationsOfAnEndlessHolder(t *testing.T) {
	tn := newTestNet(t, 103, memnet.Config{})
	a := tn.add(nil)
	key := id.Key("endless")
	sid := key
	sid[id.Len-1] ^= 1
	ap := netip.AddrPortFrom(netip.MustParseAddr("127.66.0.9"), 4000)
	asked := 0
	tn.listenPeer(ap, sid, func(req *wire.Message, from netip.AddrPort) *wire.Message {
		if req.Type != wire.Get {
			return answer(req, from, nil)
		}
		asked++
		pub := id.ID{byte(asked), byte(asked >> 8)}
		return &wire.Message{Type: wire.Records, More: true, Records: []wire.Record{{Publisher: pub, Version: uint64(1<<40 - asked), TTL: 60, Size: 1, Data: []byte{1}}}}
	})
	pending := 1
	a.Ping(ap, func(_ id.Contact, err error) { pending-- })
	tn.await(&pending, time.Minute)
	pending = 1
	a.Get(key, func(r *LookupResult, err error) {
		pending--
		if err != nil {
			t.Fatal(err)
		}
		if r.Incomplete == "" {
			t.Errorf("got %d values from an endless holder with no incomplete flag", len(r.Values))
		}
	})
	tn.await(&pending, time.Minute)
	if asked > maxContinuations+2 {
		t.Errorf("the holder was asked %d times; continuations are bounded by %d", asked, maxContinuations)
	}
}

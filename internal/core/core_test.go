package core

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

func TestPingLearnsTheIDAndBothTablesTheContact(t *testing.T) {
	tn := newTestNet(t, 1, memnet.Config{})
	a, b := tn.add(nil), tn.add(nil)
	pending := 1
	var got id.Contact
	a.Ping(b.Addr(), func(c id.Contact, err error) {
		if err != nil {
			t.Fatal(err)
		}
		got = c
		pending--
	})
	tn.await(&pending, time.Second)
	if got.ID != b.ID() || got.Addr != b.Addr() {
		t.Fatalf("ping returned %v, want %v@%v", got, b.ID().Short(), b.Addr())
	}
	if len(a.Closest(b.ID(), 1)) != 1 || len(b.Closest(a.ID(), 1)) != 1 {
		t.Fatal("a ping exchange should put each node in the other's table")
	}
}

func TestReadOnlyNodeStaysOutOfTablesAndServesNothing(t *testing.T) {
	tn := newTestNet(t, 2, memnet.Config{})
	server := tn.add(nil)
	client := tn.add(func(c *Config) { c.ReadOnly = true })
	pending := 1
	client.Bootstrap([]netip.AddrPort{server.Addr()}, func(_ *BootstrapResult, err error) {
		if err != nil {
			t.Error(err)
		}
		pending--
	})
	tn.await(&pending, time.Second)
	if server.Stats().TableSize != 0 {
		t.Fatal("the server added a read-only client to its table")
	}
	if client.Stats().TableSize != 1 {
		t.Fatal("the client should know the server")
	}
	// The client answers nothing, so a ping to it times out.
	pending = 1
	server.Ping(client.Addr(), func(_ id.Contact, err error) {
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("ping of a read-only node: %v, want ErrTimeout", err)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
}

func TestPingOfNobodyTimesOutAfterRetries(t *testing.T) {
	tn := newTestNet(t, 3, memnet.Config{})
	a := tn.add(func(c *Config) { c.Attempts = 3; c.RequestTimeout = 500 * time.Millisecond })
	start := tn.clk.Now()
	pending := 1
	a.Ping(netip.MustParseAddrPort("127.9.9.9:4000"), func(_ id.Contact, err error) {
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("err = %v, want ErrTimeout", err)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	// Three attempts of 500ms each (the timer fires on a 10ms grid).
	if took := tn.clk.Now().Sub(start); took < 1500*time.Millisecond || took > 1600*time.Millisecond {
		t.Fatalf("gave up after %v, want about 1.5s", took)
	}
	if st := a.Stats(); st.Retries != 2 || st.Timeouts != 1 || st.Requests != 3 {
		t.Fatalf("stats %+v: want 3 requests, 2 retries, 1 timeout", st)
	}
}

func TestCancelReportsCanceledOnce(t *testing.T) {
	tn := newTestNet(t, 4, memnet.Config{})
	a := tn.add(nil)
	calls := 0
	var gotErr error
	cancel := a.Ping(netip.MustParseAddrPort("127.9.9.9:4000"), func(_ id.Contact, err error) { calls++; gotErr = err })
	cancel()
	cancel()
	tn.clk.RunFor(time.Minute)
	if calls != 1 || !errors.Is(gotErr, ErrCanceled) {
		t.Fatalf("callback ran %d times with %v; want once with ErrCanceled", calls, gotErr)
	}
}

func TestCloseFailsOperationsInProgress(t *testing.T) {
	tn := newTestNet(t, 5, memnet.Config{})
	a := tn.add(nil)
	var gotErr error
	a.Ping(netip.MustParseAddrPort("127.9.9.9:4000"), func(_ id.Contact, err error) { gotErr = err })
	a.Close()
	if !errors.Is(gotErr, ErrClosed) {
		t.Fatalf("pending ping reported %v on Close, want ErrClosed", gotErr)
	}
	a.Get(id.Key("x"), func(_ *LookupResult, err error) { gotErr = err })
	if !errors.Is(gotErr, ErrClosed) {
		t.Fatalf("Get after Close reported %v, want ErrClosed", gotErr)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// putGet stores key from one node and reads it from another.
func putGet(t *testing.T, tn *testNet, from, to *Node, key id.ID, value []byte, ttl time.Duration) (*PutResult, *LookupResult, error) {
	t.Helper()
	var pr *PutResult
	var gr *LookupResult
	var gerr error
	pending := 1
	from.Put(key, value, ttl, func(r *PutResult, err error) {
		if err != nil {
			t.Fatalf("put: %v", err)
		}
		pr = r
		pending--
	})
	tn.await(&pending, time.Minute)
	pending = 1
	to.Get(key, func(r *LookupResult, err error) { gr, gerr = r, err; pending-- })
	tn.await(&pending, time.Minute)
	return pr, gr, gerr
}

func TestPutStoresOnTheKClosestAndGetFindsIt(t *testing.T) {
	tn := newTestNet(t, 6, memnet.Config{})
	for range 60 {
		tn.add(func(c *Config) { c.K = 8 })
	}
	tn.bootstrapAll(50 * time.Millisecond)
	key := id.Key("alice@id.example.org:address")
	pr, gr, err := putGet(t, tn, tn.nodes[7], tn.nodes[42], key, []byte("203.0.113.7:4000"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if pr.Stored != 8 {
		t.Fatalf("stored on %d nodes, want K=8 (refused %v, failed %d)", pr.Stored, pr.Refusals(), pr.Count(NoAnswer))
	}
	if len(gr.Values) != 1 || string(gr.Values[0]) != "203.0.113.7:4000" {
		t.Fatalf("got %q", gr.Values)
	}
	// The nodes that hold it are exactly the 8 closest to the key.
	ids := make([]id.ID, len(tn.nodes))
	for i, n := range tn.nodes {
		ids[i] = n.ID()
	}
	slices.SortFunc(ids, func(a, b id.ID) int { return id.CompareDistance(key, a, b) })
	for i, n := range tn.nodes {
		has := n.Store().Len() > 0
		closest := slices.Index(ids, n.ID()) < 8
		if has != closest {
			t.Errorf("node %d (rank %d): holds the value = %v", i, slices.Index(ids, n.ID()), has)
		}
	}
}

func TestGetOfAKeyNeverStoredIsNotFound(t *testing.T) {
	tn := newTestNet(t, 7, memnet.Config{})
	for range 30 {
		tn.add(nil)
	}
	tn.bootstrapAll(50 * time.Millisecond)
	pending := 1
	tn.nodes[3].Get(id.Key("never stored"), func(r *LookupResult, err error) {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
		if r == nil || r.Responded == 0 {
			t.Error("a not-found answer should come after asking nodes")
		}
		pending--
	})
	tn.await(&pending, time.Minute)
}

func TestValuesExpireAfterTheirTTL(t *testing.T) {
	tn := newTestNet(t, 8, memnet.Config{})
	for range 20 {
		tn.add(nil)
	}
	tn.bootstrapAll(50 * time.Millisecond)
	key := id.Key("short-lived")
	if _, _, err := putGet(t, tn, tn.nodes[1], tn.nodes[2], key, []byte("v"), 90*time.Second); err != nil {
		t.Fatal(err)
	}
	tn.clk.RunFor(91 * time.Second)
	pending := 1
	tn.nodes[5].Get(key, func(_ *LookupResult, err error) {
		if !errors.Is(err, ErrNotFound) {
			t.Errorf("after its TTL: %v, want ErrNotFound", err)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
}

func TestNodesCapTheTTLTheyGrant(t *testing.T) {
	tn := newTestNet(t, 9, memnet.Config{})
	for range 10 {
		tn.add(func(c *Config) { c.MaxTTL = time.Minute })
	}
	tn.bootstrapAll(50 * time.Millisecond)
	key := id.Key("long")
	if _, _, err := putGet(t, tn, tn.nodes[1], tn.nodes[2], key, []byte("v"), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	tn.clk.RunFor(61 * time.Second)
	for i, n := range tn.nodes {
		if vs := n.Store().Get(key, tn.clk.Now(), nil); len(vs) != 0 {
			t.Errorf("node %d still holds the value past its MaxTTL", i)
		}
	}
}

func TestRefusedStoreTellsThePublisherWhy(t *testing.T) {
	tn := newTestNet(t, 10, memnet.Config{})
	server := tn.add(nil)
	client := tn.add(func(c *Config) { c.ReadOnly = true })
	pending := 1
	client.Bootstrap([]netip.AddrPort{server.Addr()}, func(_ *BootstrapResult, err error) { pending-- })
	tn.await(&pending, time.Second)
	// Fill the server's per-key limit so the next value is refused.
	key := id.Key("crowded")
	for i := range store.DefaultMaxPerKey {
		if err := putValue(server.Store(), key, []byte(fmt.Sprint(i)), netip.Addr{}, tn.clk.Now().Add(time.Hour), tn.clk.Now()); err != nil {
			t.Fatal(err)
		}
	}
	pending = 1
	client.Put(key, []byte("one too many"), time.Hour, func(r *PutResult, err error) {
		if !errors.Is(err, ErrRejected) {
			t.Errorf("err = %v, want ErrRejected", err)
		}
		if r == nil || len(r.Refusals()) != 1 || r.Refusals()[0].Code != wire.CodeFull || !bytes.Contains([]byte(r.Refusals()[0].Reason), []byte(fmt.Sprint(store.DefaultMaxPerKey))) {
			t.Errorf("refusal = %+v, want CodeFull naming the limit", r)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
}

func TestPutRejectsBadArgumentsBeforeSending(t *testing.T) {
	tn := newTestNet(t, 11, memnet.Config{})
	a := tn.add(nil)
	for _, c := range []struct {
		name  string
		value []byte
		ttl   time.Duration
	}{
		{"empty", nil, time.Hour},
		{"too large", make([]byte, wire.MaxValueSize+1), time.Hour},
		{"ttl under a second", []byte("v"), time.Millisecond},
	} {
		var gotErr error
		a.Put(id.Key("k"), c.value, c.ttl, func(_ *PutResult, err error) { gotErr = err })
		if gotErr == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if a.Stats().Requests != 0 {
		t.Fatal("a bad put sent requests")
	}
}

func TestSeparateNetworksNeverMix(t *testing.T) {
	tn := newTestNet(t, 12, memnet.Config{})
	a := tn.add(func(c *Config) { c.Network = 1 })
	b := tn.add(func(c *Config) { c.Network = 2 })
	pending := 1
	a.Ping(b.Addr(), func(_ id.Contact, err error) {
		if !errors.Is(err, ErrTimeout) {
			t.Errorf("cross-network ping: %v, want ErrTimeout", err)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	if b.Stats().WrongNetwork == 0 || b.Stats().TableSize != 0 {
		t.Fatal("b should have dropped and counted a's pings")
	}
}

// The Kademlia paper's claim (section 2.3): an iterative lookup finds a key's
// value in O(log n) rounds. 500 nodes join through one seed, 200 keys are
// stored, and every node looks up every key.
func TestEveryNodeFindsEveryKeyInFiveHundredNodes(t *testing.T) {
	nodes, keys := 500, 200
	if raceEnabled {
		nodes, keys = 150, 20 // see raceEnabled
	}
	tn := newTestNet(t, 13, memnet.Config{})
	for range nodes {
		tn.add(nil)
	}
	tn.bootstrapAll(20 * time.Millisecond)

	pending := keys
	for k := range keys {
		from := tn.nodes[(k*7919)%nodes]
		from.Put(id.Key(fmt.Sprint("key-", k)), []byte(fmt.Sprint("value-", k)), time.Hour, func(r *PutResult, err error) {
			if err != nil || r.Stored < DefaultK {
				t.Errorf("put %d: stored on %v nodes, %v", k, r, err)
			}
			pending--
		})
	}
	tn.await(&pending, time.Minute)

	var found, local, rounds, worst, msgs int
	var hist [16]int
	for k := range keys {
		key, want := id.Key(fmt.Sprint("key-", k)), fmt.Sprint("value-", k)
		pending = nodes
		for i, n := range tn.nodes {
			n.Get(key, func(r *LookupResult, err error) {
				pending--
				if err != nil || len(r.Values) != 1 || string(r.Values[0]) != want {
					t.Errorf("node %d get key %d: %v %v", i, k, r, err)
					return
				}
				found++
				if r.Local {
					local++
					return
				}
				rounds += r.Rounds
				msgs += r.Messages
				worst = max(worst, r.Rounds)
				hist[min(r.Rounds, len(hist)-1)]++
			})
		}
		tn.await(&pending, time.Minute)
	}
	remote := found - local
	mean := float64(rounds) / float64(remote)
	t.Logf("%d/%d lookups found their value (%d from the node's own store); rounds over the %d remote lookups: mean %.2f, worst %d; messages per lookup %.1f; rounds histogram %v",
		found, nodes*keys, local, remote, mean, worst, float64(msgs)/float64(remote), hist[:worst+1])
	if found != nodes*keys {
		t.Fatalf("success %d/%d, want 100%%", found, nodes*keys)
	}
	// O(log n): with K=20 a lookup resolves about log2(K) bits a round, so
	// 500 nodes need a couple of rounds; allow up to log2(500).
	if mean > math.Log2(float64(nodes))/2 || worst > int(math.Log2(float64(nodes))) {
		t.Fatalf("mean rounds %.2f, worst %d: not logarithmic in %d nodes", mean, worst, nodes)
	}
}

// In a network whose nodes have all spoken within the last minute, a full
// bucket does not ping its least-recently-seen contact for every newcomer:
// puts cost their lookup and their STOREs and nothing more.
func TestBusyNetworkSendsNoLivenessPings(t *testing.T) {
	tn := newTestNet(t, 14, memnet.Config{Latency: memnet.Uniform(50*time.Microsecond, 150*time.Microsecond)})
	for range 200 {
		tn.add(nil)
	}
	tn.bootstrapAll(time.Millisecond)
	served := func() map[string]uint64 {
		m := map[string]uint64{}
		for _, n := range tn.nodes {
			for k, v := range n.Stats().Served {
				m[k] += v
			}
		}
		return m
	}
	before := served()
	const puts = 500
	pending := puts
	for i := range puts {
		tn.nodes[(i*7)%200].Put(id.Key(fmt.Sprint(i)), []byte("v"), time.Hour, func(_ *PutResult, err error) {
			if err != nil {
				t.Error(err)
			}
			pending--
		})
	}
	tn.await(&pending, time.Minute)
	after := served()
	pings := after["PING"] - before["PING"]
	findNodes := float64(after["FIND_NODE"]-before["FIND_NODE"]) / puts
	t.Logf("per put: %.1f FIND_NODE, %.1f STORE, %.2f PING", findNodes, float64(after["STORE"]-before["STORE"])/puts, float64(pings)/puts)
	if pings != 0 {
		t.Fatalf("%d liveness pings during %d puts in a network where every contact is fresh", pings, puts)
	}
}

// Lookups that must converge (FIND_NODE) through a network where a third of
// the nodes left without a word: with stall handling, the lookup asks other
// candidates while it waits on dead ones, so their timeouts overlap instead
// of adding up. Same seed both ways; only StallAfter differs.
func TestStalledRequestsDoNotHoldUpLookups(t *testing.T) {
	run := func(stall time.Duration) (found int, total time.Duration, stalls uint64) {
		tn := newTestNet(t, 15, memnet.Config{})
		for range 120 {
			tn.add(func(c *Config) { c.StallAfter = stall })
		}
		tn.bootstrapAll(20 * time.Millisecond)
		pending := 40
		for k := range 40 {
			tn.nodes[k].Put(id.Key(fmt.Sprint(k)), []byte("v"), time.Hour, func(*PutResult, error) { pending-- })
		}
		tn.await(&pending, time.Minute)
		for i := 80; i < 120; i++ { // a third leave, unannounced
			tn.nodes[i].Close()
		}
		pending = 40
		for k := range 40 {
			tn.nodes[40+k].FindNode(id.Key(fmt.Sprint("target", k)), func(r *LookupResult, err error) {
				pending--
				// Right after a mass departure a lookup may return fewer than
				// K: every node still hands out the dead contacts nearest the
				// target, so the live ones just beyond are in nobody's answer
				// until tables learn of the failures. Convergence is the test.
				if err == nil && len(r.Closest) > 0 {
					found++
					total += r.Duration
				}
			})
		}
		tn.await(&pending, 10*time.Minute)
		for _, n := range tn.nodes[:80] {
			stalls += n.Stats().Stalls
		}
		return found, total, stalls
	}
	foundWith, with, stalls := run(0) // the default, RequestTimeout/2
	foundWithout, without, none := run(DefaultRequestTimeout)
	t.Logf("40 lookups with a third of the nodes gone: with stalls %d found in %v in all (%d stalls); without %d found in %v", foundWith, with, stalls, foundWithout, without)
	if foundWith != 40 || foundWithout != 40 {
		t.Fatalf("found %d and %d of 40", foundWith, foundWithout)
	}
	if stalls == 0 || none != 0 {
		t.Fatalf("stalls: %d with, %d without; want some and none", stalls, none)
	}
	if with >= without {
		t.Fatalf("lookups took %v with stall handling and %v without: stalls should save time", with, without)
	}
}

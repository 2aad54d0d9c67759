package core

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

func TestCacheTTLHalvesPerNode(t *testing.T) {
	for _, c := range []struct {
		base time.Duration
		d    int
		want time.Duration
	}{
		{time.Hour, 0, time.Hour},
		{time.Hour, 1, 30 * time.Minute},
		{time.Hour, 3, 450 * time.Second},
		{time.Hour, 10, 3 * time.Second}, // 3.5s, in whole seconds
		{time.Hour, 12, 0},               // under a second
		{24 * time.Hour, 1000, 0},        // no overflow
		{time.Second, 1, 0},              // half a second is no TTL
		{90 * time.Minute, 2, 22*time.Minute + 30*time.Second},
	} {
		if got := cacheTTL(c.base, c.d); got != c.want {
			t.Errorf("cacheTTL(%v, %d) = %v, want %v", c.base, c.d, got, c.want)
		}
	}
}

// The paper's caching (section 2.3): a get that found a value stores a copy
// at the closest node on its path that did not return it, with the TTL
// halved for each node the lookup heard from that is closer to the key;
// the copy keeps its publisher and version. For each key a node that lacks
// the value is placed on the path just before the holder of rank j (0, 1,
// 2): the copy must go to it, with the TTL over 2^j.
func TestPathCacheStoresAtTheClosestNodeWithoutItWithAShrinkingTTL(t *testing.T) {
	tn := newTestNet(t, 51, memnet.Config{})
	for range 60 {
		tn.add(func(c *Config) { c.K = 8 })
	}
	tn.bootstrapAll(20 * time.Millisecond)
	rng := rand.New(rand.NewPCG(51, 2))
	depths := map[int]int{}
	for i := range 12 {
		key := id.Key(fmt.Sprint("cached ", i))
		put, err := putRec(t, tn, tn.nodes[rng.IntN(60)], PutRequest{Key: key, Value: []byte("v"), TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		tn.clk.RunFor(time.Duration(rng.IntN(600)) * time.Second) // values of any remaining TTL
		var holders []id.ID
		for _, n := range tn.nodes {
			if _, ok := n.Store().Lookup(key, put.Publisher, tn.clk.Now()); ok {
				holders = append(holders, n.ID())
			}
		}
		slices.SortFunc(holders, func(a, b id.ID) int { return id.CompareDistance(key, a, b) })
		// A node closer to the key than holder j, and farther than j-1:
		// its distance is holder j's less one.
		j := i % 3
		dist := holders[j].Xor(key)
		for b := len(dist) - 1; b >= 0; b-- {
			if dist[b]--; dist[b] != 0xff {
				break
			}
		}
		lacking := tn.add(func(c *Config) { c.K, c.ID = 8, dist.Xor(key) })
		// A reader that knows it and one node without the value (holders
		// answer with records, not contacts), so that the lacking node is
		// on its path, and that hears from every holder, so that the path
		// is the same whatever order answers come in.
		seed := tn.nodes[slices.IndexFunc(tn.nodes, func(n *Node) bool { return !slices.Contains(holders, n.ID()) })]
		reader := tn.add(func(c *Config) { c.K, c.GetQuorum = 8, 8 })
		reader.run(func(now time.Time, w transport.Writer) {
			reader.table.Verified(id.Contact{ID: lacking.ID(), Addr: lacking.Addr()}, now)
			reader.table.Verified(id.Contact{ID: seed.ID(), Addr: seed.Addr()}, now)
		})
		r, err := get(t, tn, reader, key)
		if err != nil {
			t.Fatal(err)
		}
		at := tn.clk.Now()
		// The cache node is the first on the path without the value: the
		// lacking node, at d = j or less (the seed may not have known a
		// closer holder), unless another node without it (one added for
		// an earlier key) happens to be closer still.
		d := slices.IndexFunc(r.Closest, func(c id.Contact) bool { return !slices.Contains(holders, c.ID) })
		if d < 0 {
			t.Fatalf("key %d: every node on the path holds the value (the test's setup failed)", i)
		}
		var target *Node
		for _, n := range tn.nodes {
			if n.ID() == r.Closest[d].ID {
				target = n
			}
		}
		depths[d]++
		tn.clk.RunFor(2 * time.Second) // the copy's PUT and its answer
		if st := reader.Stats().PathCache; st.Sent != 1 || st.Accepted != 1 {
			t.Fatalf("key %d: path cache stats %+v, want one copy sent and accepted", i, st)
		}
		v, ok := target.Store().Lookup(key, put.Publisher, tn.clk.Now())
		if !ok || v.Version != put.Version || string(v.Data) != "v" {
			t.Fatalf("key %d: the cache node holds %+v (%v), want version %d of %v", i, v, ok, put.Version, put.Publisher)
		}
		want := cacheTTL(r.Records[0].TTL, d)
		if got := v.Expires.Sub(at); got < want-time.Second || got > want+time.Second {
			t.Fatalf("key %d: the copy at d = %d lives %v, want %v (%v / 2^%d)", i, d, got, want, r.Records[0].TTL, d)
		}
		// No other node that lacked it got one.
		for _, n := range tn.nodes {
			_, ok := n.Store().Lookup(key, put.Publisher, tn.clk.Now())
			if ok && n != target && !slices.Contains(holders, n.ID()) {
				t.Fatalf("key %d: node %v, not the cache node, got a copy", i, n.ID().Short())
			}
		}
	}
	t.Logf("copies at depth d: %v", depths)
	if len(depths) < 3 {
		t.Fatalf("copies at depths %v: the test wants depths 0, 1 and 2 to show the TTL shrink", depths)
	}
}

// Adversarial: one hostile holder that invents a record (any publisher, a
// high version, a long TTL) gets it into the get's answer, but this node
// caches only what two hosts returned at the same version, so it never
// carries the invention into an honest node's store.
func TestPathCacheDoesNotLaunderOneHoldersRecords(t *testing.T) {
	key := id.Key("victim")
	tn, put := netWithValue(t, 52, key, "honest")
	// The hostile holder sits at the key itself, so every get asks it
	// first, and claims a newer version of the honest publisher's record.
	evil := netip.MustParseAddrPort("127.66.0.1:4000")
	hostilePeer(t, tn, evil, key, func(m *wire.Message, from netip.AddrPort) *wire.Message {
		switch m.Type {
		case wire.Get:
			return &wire.Message{Type: wire.Records, Records: []wire.Record{
				{Publisher: put.Publisher, Version: put.Version + 1000, TTL: 1 << 30, Size: 4, Data: []byte("evil")},
				{Publisher: id.Key("invented"), Version: 1, TTL: 1 << 30, Size: 4, Data: []byte("junk")},
			}}
		case wire.Ping:
			return &wire.Message{Type: wire.Pong, Observed: from}
		}
		return &wire.Message{Type: wire.Nodes}
	})
	// A reader that knows the hostile holder and one honest node.
	reader := tn.add(func(c *Config) { c.K = 8 })
	reader.run(func(now time.Time, w transport.Writer) {
		reader.table.Verified(id.Contact{ID: key, Addr: evil}, now)
		reader.table.Verified(id.Contact{ID: tn.nodes[0].ID(), Addr: tn.nodes[0].Addr()}, now)
	})
	r, err := get(t, tn, reader, key)
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Records[0].Data) != "evil" {
		t.Fatalf("the hostile record did not reach the answer (%q): the test proves nothing", r.Records[0].Data)
	}
	tn.clk.RunFor(5 * time.Second)
	if s := reader.Stats().PathCache.Sent; s != 0 {
		t.Fatalf("%d cache copies sent of records one host returned", s)
	}
	for _, n := range tn.nodes {
		if v, ok := n.Store().Lookup(key, put.Publisher, tn.clk.Now()); ok && string(v.Data) != "honest" {
			t.Fatalf("node %v holds %q", n.ID().Short(), v.Data)
		}
		if _, ok := n.Store().Lookup(key, id.Key("invented"), tn.clk.Now()); ok {
			t.Fatalf("node %v holds the invented publisher's record", n.ID().Short())
		}
	}
}

// Adversarial: a cache copy is an ordinary PUT at the node that takes it:
// a newer version there refuses it as stale, a full store refuses it, and
// nothing held is changed or evicted.
func TestPathCacheCopyIsHeldToTheStoresRules(t *testing.T) {
	tn := newTestNet(t, 53, memnet.Config{})
	sender := tn.add(nil)
	newer := tn.add(nil)
	full := tn.add(func(c *Config) { c.StoreLimits = store.Limits{MaxValues: 1} })
	empty := tn.add(nil)
	tn.bootstrapAll(20 * time.Millisecond)
	key, pub := id.Key("k"), id.Key("publisher")
	now := tn.clk.Now()
	if err := newer.Store().Put(key, store.Value{Publisher: pub, Version: 5, Expires: now.Add(time.Hour), Data: []byte("v5")}, netip.Addr{}, now); err != nil {
		t.Fatal(err)
	}
	if err := putValue(full.Store(), id.Key("other"), []byte("x"), netip.Addr{}, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	op := &cacheOp{}
	for _, to := range []*Node{newer, full, empty} {
		op.copies = append(op.copies, cacheCopy{to: id.Contact{ID: to.ID(), Addr: to.Addr()}, pub: pub, version: 4, ttl: 600, data: []byte("v4")})
	}
	sender.run(func(now time.Time, w transport.Writer) {
		for i, cp := range op.copies {
			sender.sendReq(pending{to: cp.to, typ: wire.Put, key: key, op: op, slot: int32(i)}, now, w)
		}
	})
	tn.clk.RunFor(3 * time.Second)
	now = tn.clk.Now()
	if v, _ := newer.Store().Lookup(key, pub, now); v.Version != 5 {
		t.Fatalf("a copy of version 4 rolled version 5 back: %+v", v)
	}
	if _, ok := full.Store().Lookup(key, pub, now); ok || full.Store().Len() != 1 {
		t.Fatal("a full store took the copy")
	}
	if v, ok := empty.Store().Lookup(key, pub, now); !ok || v.Version != 4 {
		t.Fatalf("the empty node did not take the copy: %+v", v)
	}
	if st := sender.Stats().PathCache; st.Accepted != 1 || st.Refused != 2 {
		t.Fatalf("path cache stats %+v, want 1 accepted and 2 refused", st)
	}
}

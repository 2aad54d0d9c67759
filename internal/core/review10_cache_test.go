package core

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// A path-cache copy's base TTL is the shortest remaining TTL the holders of
// the version reported (it was the longest: mergeRecords keeps the max for
// the reader, and the copy took it). Otherwise one hostile holder
// that agrees with an honest one on the version, and claims a TTL of 34
// years, would get the copy the cache node's MaxTTL over 2^d, however little the
// honest holders have left: the getter itself would extend somebody else's
// value, under its own address, on every get.
func TestReview10PathCacheTTLIsNotTheLongestClaim(t *testing.T) {
	key := id.Key("expiring")
	tn, put := netWithValue(t, 1013, key, "v")
	tn.clk.RunFor(50 * time.Minute) // 10 minutes left at the honest holders
	// The hostile holder sits at the key, agrees on the version and bytes,
	// and claims the longest TTL.
	evil := netip.MustParseAddrPort("127.66.0.1:4000")
	hostilePeer(t, tn, evil, key, func(m *wire.Message, from netip.AddrPort) *wire.Message {
		switch m.Type {
		case wire.Get:
			return &wire.Message{Type: wire.Records, Records: []wire.Record{
				{Publisher: put.Publisher, Version: put.Version, TTL: 1 << 30, Size: 1, Data: []byte("v")},
			}}
		case wire.Ping:
			return &wire.Message{Type: wire.Pong, Observed: from}
		}
		return &wire.Message{Type: wire.Nodes}
	})
	// A node lacking the value right after the hostile one on the path
	// (d = 1), and a reader that hears from every holder.
	var dist id.ID
	dist[id.Len-1] = 1
	lacking := tn.add(func(c *Config) { c.K, c.ID = 8, dist.Xor(key) })
	var seed *Node
	for _, n := range tn.nodes {
		if _, ok := n.Store().Lookup(key, put.Publisher, tn.clk.Now()); !ok && n != lacking {
			seed = n
			break
		}
	}
	reader := tn.add(func(c *Config) { c.K, c.GetQuorum = 8, 8 })
	reader.run(func(now time.Time, w transport.Writer) {
		reader.table.Verified(id.Contact{ID: key, Addr: evil}, now)
		reader.table.Verified(id.Contact{ID: lacking.ID(), Addr: lacking.Addr()}, now)
		reader.table.Verified(id.Contact{ID: seed.ID(), Addr: seed.Addr()}, now)
	})
	r, err := get(t, tn, reader, key)
	if err != nil {
		t.Fatal(err)
	}
	at := tn.clk.Now()
	tn.clk.RunFor(2 * time.Second)
	if slices.IndexFunc(r.Closest, func(c id.Contact) bool { return c.ID == lacking.ID() }) < 0 {
		t.Fatal("the lacking node is not on the path: the test proves nothing")
	}
	v, ok := lacking.Store().Lookup(key, put.Publisher, tn.clk.Now())
	if !ok {
		t.Fatalf("no copy cached (stats %+v): the test proves nothing", reader.Stats().PathCache)
	}
	if got := v.Expires.Sub(at); got > 10*time.Minute {
		t.Fatalf("the cached copy lives %v; the honest holders keep the value 10 minutes", got)
	}
}

// netWithValue is a network of 30 nodes (K = 8) holding value under key,
// put for an hour by one of them.
func netWithValue(t *testing.T, seed uint64, key id.ID, value string) (*testNet, *PutResult) {
	t.Helper()
	tn := newTestNet(t, seed, memnet.Config{})
	for range 30 {
		tn.add(func(c *Config) { c.K = 8 })
	}
	tn.bootstrapAll(20 * time.Millisecond)
	put, err := putRec(t, tn, tn.nodes[3], PutRequest{Key: key, Value: []byte(value), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tn, put
}

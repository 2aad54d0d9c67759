package core

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// storageNet is a joined network of n nodes with K = k.
func storageNet(t *testing.T, seed uint64, nodes, k int, mc memnet.Config) *testNet {
	t.Helper()
	tn := newTestNet(t, seed, mc)
	for range nodes {
		tn.add(func(c *Config) { c.K = k })
	}
	tn.bootstrapAll(20 * time.Millisecond)
	return tn
}

// putRec runs a PutRecord to the end and returns its outcome.
func putRec(t *testing.T, tn *testNet, from *Node, req PutRequest) (*PutResult, error) {
	t.Helper()
	var res *PutResult
	var rerr error
	pending := 1
	from.PutRecord(req, func(r *PutResult, err error) { res, rerr = r, err; pending-- })
	tn.await(&pending, 5*time.Minute)
	return res, rerr
}

// get runs a Get to the end.
func get(t *testing.T, tn *testNet, from *Node, key id.ID) (*LookupResult, error) {
	t.Helper()
	var res *LookupResult
	var rerr error
	pending := 1
	from.Get(key, func(r *LookupResult, err error) { res, rerr = r, err; pending-- })
	tn.await(&pending, 5*time.Minute)
	return res, rerr
}

// closestNodes returns the network's nodes sorted by distance to key.
func closestNodes(tn *testNet, key id.ID) []*Node {
	ns := slices.Clone(tn.nodes)
	slices.SortFunc(ns, func(a, b *Node) int { return id.CompareDistance(key, a.ID(), b.ID()) })
	return ns
}

// A publisher's value is one record: putting again replaces it, and the
// reader gets the newest version with its publisher and version, not a
// pile of copies.
func TestPutAgainReplacesThePublishersValue(t *testing.T) {
	tn := storageNet(t, 201, 30, 8, memnet.Config{})
	key := id.Key("alice@id.example.org:address")
	pub := id.ID{0xa1}
	for v, addr := range []string{"203.0.113.7:4000", "203.0.113.8:4000"} {
		if _, err := putRec(t, tn, tn.nodes[3], PutRequest{Key: key, Value: []byte(addr), TTL: time.Hour, Publisher: pub, Version: uint64(v + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	other := id.ID{0xb2}
	if _, err := putRec(t, tn, tn.nodes[4], PutRequest{Key: key, Value: []byte("other"), TTL: time.Hour, Publisher: other, Version: 1}); err != nil {
		t.Fatal(err)
	}
	r, err := get(t, tn, tn.nodes[20], key)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Records) != 2 {
		t.Fatalf("got %d records %+v, want one per publisher", len(r.Records), r.Records)
	}
	for _, rec := range r.Records {
		if rec.Publisher == pub && (rec.Version != 2 || string(rec.Data) != "203.0.113.8:4000") {
			t.Errorf("publisher's record is version %d %q; want version 2, the replacement", rec.Version, rec.Data)
		}
	}
	// Newest first: version 2 before version 1.
	if r.Records[0].Version < r.Records[1].Version {
		t.Errorf("records not newest first: %+v", r.Records)
	}
}

// Replicas that saw versions in different orders, or missed the newest,
// never make a reader go back to an older version.
func TestOutOfOrderVersionsFromReplicasNeverRollBack(t *testing.T) {
	for seed := uint64(0); seed < 8; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			tn := storageNet(t, 300+seed, 24, 6, memnet.Config{})
			rng := rand.New(rand.NewPCG(seed, 7))
			key := id.Key(fmt.Sprint("versions-", seed))
			pub := id.ID{0xee}
			holders := closestNodes(tn, key)[:6]
			now := tn.clk.Now()
			// Each replica gets a random subset of versions 1..5, in a
			// random order; at least one holds the newest.
			newest := uint64(5)
			for i, h := range holders {
				vs := rng.Perm(5)
				for _, v := range vs[:1+rng.IntN(5)] {
					ver := uint64(v + 1)
					h.Store().Put(key, store.Value{Publisher: pub, Version: ver, Expires: now.Add(time.Hour), Data: []byte(fmt.Sprint("v", ver))}, netip.Addr{}, now)
				}
				if i == rng.IntN(len(holders)) || i == len(holders)-1 {
					h.Store().Put(key, store.Value{Publisher: pub, Version: newest, Expires: now.Add(time.Hour), Data: []byte(fmt.Sprint("v", newest))}, netip.Addr{}, now)
				}
			}
			// Raise the quorum to every replica, so that the newest one is
			// always among those asked.
			for _, n := range tn.nodes {
				n.cfg.GetQuorum = 6
			}
			r, err := get(t, tn, tn.nodes[0], key)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Records) != 1 || r.Records[0].Version != newest || string(r.Records[0].Data) != "v5" {
				t.Fatalf("got %+v, want only version %d", r.Records, newest)
			}
		})
	}
}

// A withdrawn value stays withdrawn when a replica that missed the
// withdrawal is asked: the tombstones of the others win the merge, and the
// stale replica cannot take the value back to the nodes that withdrew it.
func TestWithdrawnValueStaysWithdrawnWhenAStaleReplicaIsAsked(t *testing.T) {
	tn := storageNet(t, 401, 30, 6, memnet.Config{})
	key := id.Key("bob@id.example.org:incoming")
	pub := id.ID{0xbb}
	if _, err := putRec(t, tn, tn.nodes[5], PutRequest{Key: key, Value: []byte("call me"), TTL: time.Hour, Publisher: pub, Version: 10}); err != nil {
		t.Fatal(err)
	}
	holders := closestNodes(tn, key)[:6]
	// One replica misses the withdrawal: cut it off while it happens.
	stale := holders[0]
	held, ok := stale.Store().Lookup(key, pub, tn.clk.Now())
	if !ok || held.Version != 10 {
		t.Fatalf("the closest node does not hold the value: %+v %v", held, ok)
	}
	tn.net.Partition([]netip.AddrPort{stale.Addr()})
	var dres *DeleteResult
	pending := 1
	tn.nodes[5].Delete(DeleteRequest{Key: key, Publisher: pub, Version: 11}, func(r *DeleteResult, err error) {
		if err != nil {
			t.Errorf("delete: %v", err)
		}
		dres = r
		pending--
	})
	tn.await(&pending, 5*time.Minute)
	tn.net.Heal()
	if dres == nil || dres.Found == 0 {
		t.Fatalf("delete result %+v: want nodes that held the value", dres)
	}
	if v, _ := stale.Store().Lookup(key, pub, tn.clk.Now()); v.Deleted {
		t.Fatal("the partitioned replica saw the withdrawal; the test proves nothing")
	}
	// Every node reads, the stale one's answer included in the merge.
	for _, n := range tn.nodes {
		n.cfg.GetQuorum = 6
	}
	for i, n := range tn.nodes {
		r, err := get(t, tn, n, key)
		if err == nil || !errors.Is(err, ErrNotFound) {
			t.Fatalf("get from node %d: %v, %d values %q; want the value withdrawn", i, err, len(r.Values), r.Values)
		}
	}
	// The stale replica's version cannot come back to a node that keeps
	// the tombstone.
	now := tn.clk.Now()
	err := holders[1].Store().Put(key, store.Value{Publisher: pub, Version: 10, Expires: now.Add(time.Hour), Data: []byte("call me")}, stale.Addr().Addr(), now)
	if !errors.Is(err, store.ErrStale) {
		t.Fatalf("re-storing the withdrawn version: %v, want ErrStale", err)
	}
}

// Delete by anyone but the publisher withdraws nothing: the value stays,
// and the delete says no node held a value of that publisher.
func TestDeleteByAnotherPublisherIsRefused(t *testing.T) {
	tn := storageNet(t, 402, 20, 6, memnet.Config{})
	key := id.Key("carol@id.example.org:identity")
	if _, err := putRec(t, tn, tn.nodes[2], PutRequest{Key: key, Value: []byte("doc"), TTL: time.Hour, Publisher: id.ID{0xc1}}); err != nil {
		t.Fatal(err)
	}
	pending := 1
	tn.nodes[9].Delete(DeleteRequest{Key: key, Publisher: id.ID{0xdd}}, func(r *DeleteResult, err error) {
		if !errors.Is(err, ErrNotFound) || r == nil || r.Found != 0 {
			t.Errorf("delete by another publisher: %v, %+v; want ErrNotFound, nothing found", err, r)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	r, err := get(t, tn, tn.nodes[11], key)
	if err != nil || len(r.Values) != 1 {
		t.Fatalf("after a stranger's delete: %v, %q; want the value still there", err, r.Values)
	}
}

// Every node asked gets a receipt: accepted with the TTL it granted,
// refused with the reason, or no answer; a quorum above what accepts fails
// with the receipts.
func TestPutReceiptsAndQuorum(t *testing.T) {
	// 16 nodes and two scripted peers, all among the K = 20 closest: every
	// one is asked, this node included.
	tn := storageNet(t, 403, 16, 20, memnet.Config{})
	key := id.Key("receipts")
	holders := closestNodes(tn, key)
	from := holders[len(holders)-1]
	// Two of the closest answer lookups but never a PUT; one is full.
	pending := 0
	for i := range 2 {
		sid := key
		sid[id.Len-1] ^= byte(i + 1)
		ap := netip.AddrPortFrom(netip.MustParseAddr("127.77.0.1"), uint16(4000+i))
		tn.listenPeer(ap, sid, func(req *wire.Message, from netip.AddrPort) *wire.Message {
			if req.Type == wire.Put {
				return nil
			}
			return answer(req, from, nil)
		})
		pending++
		from.Ping(ap, func(id.Contact, error) { pending-- })
	}
	tn.await(&pending, time.Minute)
	holders[0].store = store.NewMemory(store.Limits{MaxValues: 1})
	now := tn.clk.Now()
	putValue(holders[0].store, id.Key("filler"), []byte("x"), netip.Addr{}, now.Add(time.Hour), now)

	r, err := putRec(t, tn, from, PutRequest{Key: key, Value: []byte("v"), TTL: 48 * time.Hour, Quorum: 18})
	var qe *QuorumError
	if !errors.As(err, &qe) || !errors.Is(err, ErrQuorum) {
		t.Fatalf("put with quorum 18: %v; want a QuorumError", err)
	}
	if r == nil || len(r.Receipts) != 18 || !r.Local || r.Receipts[0].Node.ID != from.ID() {
		t.Fatalf("receipts %+v: want one per node asked (18), this one first", r)
	}
	if r.Count(Accepted) != 15 || r.Count(NoAnswer) != 2 || r.Count(Refused) != 1 || qe.Got != 15 || r.Stored != 15 {
		t.Fatalf("accepted %d, refused %d, no answer %d (quorum error got %d): want 15, 1, 2; receipts %+v", r.Count(Accepted), r.Count(Refused), r.Count(NoAnswer), qe.Got, r.Receipts)
	}
	for _, rc := range r.Receipts {
		switch rc.Outcome {
		case Accepted:
			if rc.TTL != DefaultMaxTTL {
				t.Errorf("granted %v for 48h asked; want the 24h maximum, said in the receipt", rc.TTL)
			}
		case Refused:
			if rc.Code != wire.CodeFull || rc.Reason == "" {
				t.Errorf("refusal %+v: want CodeFull with the bound named", rc)
			}
		}
	}
	// Below quorum is still a put that others can read.
	if g, err := get(t, tn, tn.nodes[0], key); err != nil || len(g.Values) != 1 {
		t.Fatalf("get after the partial put: %v", err)
	}
}

// A value of 64 KiB travels in parts and reads back whole, with datagrams
// lost on the way.
func TestLargeValuePutAndGetWithLoss(t *testing.T) {
	tn := storageNet(t, 404, 20, 6, memnet.Config{})
	tn.net.SetLoss(0.05)
	value := make([]byte, 64<<10)
	rng := rand.New(rand.NewPCG(4, 4))
	for i := range value {
		value[i] = byte(rng.Uint32())
	}
	key := id.Key("big")
	r, err := putRec(t, tn, tn.nodes[1], PutRequest{Key: key, Value: value, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if r.Stored < 4 {
		t.Fatalf("stored on %d: %+v", r.Stored, r.Receipts)
	}
	for _, n := range []*Node{tn.nodes[7], tn.nodes[13]} {
		g, err := get(t, tn, n, key)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Values) != 1 || !bytes.Equal(g.Values[0], value) {
			t.Fatalf("got %d values (%d bytes), incomplete %q: want the 64 KiB value back", len(g.Values), len(g.Values[0]), g.Incomplete)
		}
	}
}

// A hostile peer sending parts of values that never complete, from many
// addresses and for many keys, leaves the node's reassembly state within
// its fixed bounds.
func TestEndlessPartsLeaveReassemblyBounded(t *testing.T) {
	tn := newTestNet(t, 405, memnet.Config{})
	srv := tn.add(nil)
	rng := rand.New(rand.NewPCG(5, 5))
	part := make([]byte, wire.MaxPart)
	for i := range 20000 {
		m := wire.Message{Type: wire.Put, Network: 0, TxID: uint64(i), Sender: id.ID{byte(i)},
			Target: id.Random(rng), Publisher: id.Random(rng), Version: 1, TTL: 60,
			Size: uint32(wire.MaxPart * (2 + rng.IntN(50))), Offset: uint32(rng.IntN(2)) * wire.MaxPart, Value: part}
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 5, byte(i >> 8), byte(i)}), 4000)
		deliver(t, srv, &m, from)
		if i%1000 == 0 {
			tn.clk.RunFor(time.Second)
		}
		srv.mu.Lock()
		b, l := srv.parts.bytes, len(srv.parts.list)
		srv.mu.Unlock()
		if b > maxPartialBytes || l > maxPartials {
			t.Fatalf("after %d hostile parts: %d bytes in %d partial values; bounds are %d and %d", i+1, b, l, maxPartialBytes, maxPartials)
		}
	}
	// Once the senders stop, the partial values time out.
	tn.clk.RunFor(partTimeout + time.Second)
	m := wire.Message{Type: wire.Put, Target: id.Key("k"), Publisher: id.ID{1}, Version: 1, TTL: 60, Size: 2 * wire.MaxPart, Value: part}
	deliver(t, srv, &m, netip.MustParseAddrPort("127.6.0.1:4000"))
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.parts.list) != 1 {
		t.Fatalf("%d partial values after the timeout; want only the new one", len(srv.parts.list))
	}
}

// deliver hands n a datagram carrying m as if it came from from, and
// discards what n answers.
func deliver(t *testing.T, n *Node, m *wire.Message, from netip.AddrPort) {
	t.Helper()
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	n.HandlePacket(b, from, &discard{})
}

// A listener hears of every put, replacement and withdrawal under its key
// from the key's closest nodes (which it finds by lookup, not knowing
// them), and keeps hearing after those nodes change: its renewal
// registers at the new closest ones.
func TestListenerSeesChangesAndFollowsTheClosestNodes(t *testing.T) {
	t.Run("node", func(t *testing.T) { testListener(t, false) })
	t.Run("read-only client", func(t *testing.T) { testListener(t, true) })
}

func testListener(t *testing.T, readOnly bool) {
	tn := storageNet(t, 406, 30, 6, memnet.Config{})
	key := id.Key("dave@id.example.org:incoming")
	listener, publisher := tn.nodes[17], tn.nodes[23]
	if readOnly {
		listener = tn.add(func(c *Config) { c.K = 6; c.ReadOnly = true })
		pending := 1
		listener.Bootstrap([]netip.AddrPort{tn.nodes[0].Addr()}, func(_ *BootstrapResult, err error) { pending-- })
		tn.await(&pending, time.Minute)
	}
	var events []Event
	cancel := listener.Listen(key, func(e Event) { events = append(events, e) })
	defer cancel()
	tn.clk.RunFor(5 * time.Second)
	if len(events) != 0 {
		t.Fatalf("events before any put: %+v", events)
	}
	pub := id.ID{0xd4}
	step := func(what string, f func()) {
		t.Helper()
		before := len(events)
		f()
		tn.clk.RunFor(5 * time.Second)
		if len(events) == before {
			t.Fatalf("%s: no event", what)
		}
	}
	put := func(v uint64, data string) {
		if _, err := putRec(t, tn, publisher, PutRequest{Key: key, Value: []byte(data), TTL: time.Hour, Publisher: pub, Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	step("put", func() { put(1, "caller 1") })
	step("replace", func() { put(2, "caller 2") })
	step("delete", func() {
		pending := 1
		publisher.Delete(DeleteRequest{Key: key, Publisher: pub, Version: 3}, func(_ *DeleteResult, err error) {
			if err != nil {
				t.Error(err)
			}
			pending--
		})
		tn.await(&pending, time.Minute)
	})
	kinds := []EventKind{}
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	if !slices.Equal(kinds, []EventKind{EventPut, EventReplace, EventDelete}) || string(events[1].Record.Data) != "caller 2" {
		t.Fatalf("events %+v: want put, replace (caller 2), delete, each once", events)
	}

	// New nodes join with IDs closer to the key than any before: they are
	// the key's closest now.
	var fresh []*Node
	for i := range 6 {
		nid := key
		nid[id.Len-1] ^= byte(i + 1)
		fresh = append(fresh, tn.add(func(c *Config) { c.K = 6; c.ID = nid }))
	}
	pending := len(fresh)
	for _, n := range fresh {
		n.Bootstrap([]netip.AddrPort{tn.nodes[0].Addr()}, func(_ *BootstrapResult, err error) { pending-- })
	}
	tn.await(&pending, time.Minute)
	tn.clk.RunFor(listenTTL) // renewals happen at half the lifetime
	events = events[:0]
	step("put after the closest nodes changed", func() { put(4, "caller 4") })
	for _, e := range events {
		if e.Kind != EventPut || string(e.Record.Data) != "caller 4" {
			t.Fatalf("event %+v: want the put of caller 4", e)
		}
		if !slices.ContainsFunc(fresh, func(n *Node) bool { return n.ID() == e.From.ID }) && e.From.ID != listener.ID() {
			t.Errorf("event came from %v, not one of the new closest nodes", e.From)
		}
	}
}

// A traced lookup reports each request it made: whom, in which round, how
// long the answer took, and what it carried; rounds run from 1 (the
// routing table's contacts) up, and every answered query has a duration.
func TestTraceLookupReportsEveryRequest(t *testing.T) {
	tn := storageNet(t, 407, 40, 8, memnet.Config{})
	var res *LookupResult
	pending := 1
	tn.nodes[3].TraceLookup(id.Key("traced"), false, func(r *LookupResult, err error) {
		if err != nil {
			t.Error(err)
		}
		res = r
		pending--
	})
	tn.await(&pending, time.Minute)
	if res == nil || len(res.Trace) != res.Messages {
		t.Fatalf("trace of %d queries for %d requests sent", len(res.Trace), res.Messages)
	}
	rounds := map[int]int{}
	for _, q := range res.Trace {
		if q.Outcome == "answered" && (q.Round < 1 || q.Took <= 0) {
			t.Errorf("answered query %+v: want a round from 1 and a duration", q)
		}
		rounds[q.Round]++
	}
	if rounds[1] == 0 || len(rounds) < 2 {
		t.Errorf("rounds %v: want queries in round 1 and later ones", rounds)
	}
}

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

// replNet is a network of nodes with replication every interval.
func replNet(t *testing.T, seed uint64, nodes, k int, interval time.Duration) *testNet {
	t.Helper()
	tn := newTestNet(t, seed, memnet.Config{})
	for range nodes {
		tn.add(func(c *Config) { c.K, c.ReplicateInterval = k, interval })
	}
	tn.bootstrapAll(20 * time.Millisecond)
	return tn
}

// liveClosest returns the open nodes of tn sorted by distance to key.
func liveClosest(tn *testNet, key id.ID, closed map[*Node]bool) []*Node {
	var ns []*Node
	for _, n := range closestNodes(tn, key) {
		if !closed[n] {
			ns = append(ns, n)
		}
	}
	return ns
}

// triggerPass starts n's periodic pass now, as its timer would.
func triggerPass(n *Node) {
	n.run(func(now time.Time, w transport.Writer) {
		n.repl.due = true
		n.nextPass(now, w)
	})
}

// heldRecords returns n's records under key, tombstones included.
func heldRecords(n *Node, key id.ID, now time.Time) []store.Value {
	return n.Store().Records(key, now, nil)
}

// sameRecords reports whether got holds exactly the records of want, each
// with the same publisher, version, kind and bytes, and an expiry within
// two seconds of want's (the wire carries whole seconds, rounded up).
func sameRecords(got, want []store.Value) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d records, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Publisher != w.Publisher || g.Version != w.Version || g.Deleted != w.Deleted || string(g.Data) != string(w.Data) {
			return fmt.Sprintf("record %d is %s v%d deleted=%v (%d bytes), want %s v%d deleted=%v (%d bytes)",
				i, g.Publisher.Short(), g.Version, g.Deleted, len(g.Data), w.Publisher.Short(), w.Version, w.Deleted, len(w.Data))
		}
		if d := g.Expires.Sub(w.Expires); d < -time.Second || d > 2*time.Second {
			return fmt.Sprintf("record %d expires %v off the original", i, d)
		}
	}
	return ""
}

// The Kademlia paper's re-publishing (section 2.5): nodes holding a record
// copy it to the key's K closest nodes every interval, so a record whose
// closest nodes left lives on at the nodes now closest, with its publisher,
// version, expiry, bytes and tombstones as they were. Values in parts
// (over one datagram) travel whole.
func TestReplicationRestoresReplicasAfterTheClosestNodesLeave(t *testing.T) {
	const k = 4
	tn := replNet(t, 11, 40, k, 10*time.Minute)
	rng := rand.New(rand.NewPCG(11, 1))
	keys := []id.ID{id.Key("r0"), id.Key("r1"), id.Key("r2"), id.Key("r3"), id.Key("r4")}
	for i, key := range keys {
		from := tn.nodes[rng.IntN(len(tn.nodes))]
		size := 20
		if i == 2 {
			size = 3000 // three parts
		}
		for p := range 2 {
			req := PutRequest{Key: key, Value: make([]byte, size), TTL: 6 * time.Hour, Publisher: id.Key(fmt.Sprint("pub", p))}
			req.Value[0] = byte(i)
			if _, err := putRec(t, tn, from, req); err != nil {
				t.Fatal(err)
			}
		}
		if i%2 == 0 { // and a tombstone
			pending := 1
			from.Delete(DeleteRequest{Key: key, Publisher: id.Key("pub1")}, func(_ *DeleteResult, err error) {
				if err != nil {
					t.Error(err)
				}
				pending--
			})
			tn.await(&pending, time.Minute)
		}
	}
	now := tn.clk.Now()
	want := map[id.ID][]store.Value{}
	for _, key := range keys {
		want[key] = heldRecords(closestNodes(tn, key)[0], key, now)
		if len(want[key]) != 2 {
			t.Fatalf("key %s: the closest node holds %d records after the puts, want 2", key.Short(), len(want[key]))
		}
	}
	// Every key loses its k-1 closest nodes; one holder is left.
	closed := map[*Node]bool{}
	for _, key := range keys {
		for _, n := range closestNodes(tn, key)[:k-1] {
			closed[n] = true
		}
	}
	tested := 0
	for _, key := range keys {
		if closed[closestNodes(tn, key)[k-1]] {
			continue // another key's departures took its last holder too
		}
		tested++
	}
	if tested < 3 {
		t.Fatalf("only %d keys keep a holder: pick other keys", tested)
	}
	for n := range closed {
		n.Close()
	}
	tn.clk.RunFor(25 * time.Minute) // two and a half intervals
	for _, key := range keys {
		if closed[closestNodes(tn, key)[k-1]] {
			continue
		}
		for i, n := range liveClosest(tn, key, closed)[:k] {
			if msg := sameRecords(heldRecords(n, key, tn.clk.Now()), want[key]); msg != "" {
				t.Errorf("key %s, live closest #%d: %s", key.Short(), i, msg)
			}
		}
	}
	var passes uint64
	for _, n := range tn.nodes {
		if !closed[n] {
			passes += n.ReplicationStats().Passes
		}
	}
	if passes == 0 {
		t.Fatal("no periodic pass ran in two and a half intervals")
	}
}

// A newcomer that is now among the K closest of keys gets their records
// handed over by the nodes holding them, within the debounce and without
// waiting for the periodic pass; and it gets only those.
func TestHandoverGivesANewcomerTheKeysItIsNowClosestTo(t *testing.T) {
	const k = 4
	tn := replNet(t, 12, 30, k, 24*time.Hour) // no periodic pass in the test
	rng := rand.New(rand.NewPCG(12, 1))
	var keys []id.ID
	for i := range 40 {
		key := id.Key(fmt.Sprint("h", i))
		keys = append(keys, key)
		if _, err := putRec(t, tn, tn.nodes[rng.IntN(len(tn.nodes))], PutRequest{Key: key, Value: []byte("v"), TTL: time.Hour}); err != nil {
			t.Fatal(err)
		}
	}
	// The newcomer's ID is next to keys[0]: it is that key's closest node.
	nid := keys[0]
	nid[id.Len-1] ^= 1
	nc := tn.add(func(c *Config) { c.K, c.ID, c.ReplicateInterval = k, nid, 24*time.Hour })
	pending := 1
	nc.Bootstrap([]netip.AddrPort{tn.nodes[0].Addr()}, func(_ *BootstrapResult, err error) {
		if err != nil {
			t.Error(err)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	tn.clk.RunFor(time.Minute)
	now := tn.clk.Now()
	var should []id.ID
	for _, key := range keys {
		if slices.Contains(closestNodes(tn, key)[:k], nc) {
			should = append(should, key)
		}
	}
	if !slices.Contains(should, keys[0]) {
		t.Fatal("the newcomer is not among the closest of the key next to it")
	}
	for _, key := range keys {
		held := len(nc.Store().Get(key, now, nil)) > 0
		switch among := slices.Contains(should, key); {
		case among && !held:
			t.Errorf("key %s: the newcomer is among its %d closest but was not handed it", key.Short(), k)
		case !among && held:
			t.Errorf("key %s: the newcomer is not among its %d closest but was handed it", key.Short(), k)
		}
	}
	var passes, hand uint64
	for _, n := range tn.nodes {
		st := n.ReplicationStats()
		passes += st.Passes
		hand += st.Newcomers
	}
	if passes != 0 || hand == 0 {
		t.Fatalf("%d periodic passes and %d newcomers noted: the hand-over did not do it", passes, hand)
	}
}

// Replicas from a holder with an older version, or with a value its
// publisher has since withdrawn, never roll a record back: the version
// rule makes the newer record win everywhere. Once they agree, a pass
// exchanges digests only.
func TestReplicationNeverRollsBackAndSettlesOnDigests(t *testing.T) {
	const k = 3
	tn := replNet(t, 13, 12, k, time.Hour)
	pub := id.Key("publisher")
	k1, k2 := id.Key("versions"), id.Key("withdrawn")
	for _, key := range []id.ID{k1, k2} {
		if _, err := putRec(t, tn, tn.nodes[0], PutRequest{Key: key, Value: []byte("old"), TTL: 6 * time.Hour, Publisher: pub, Version: 5}); err != nil {
			t.Fatal(err)
		}
	}
	now := tn.clk.Now()
	c1, c2 := closestNodes(tn, k1)[:k], closestNodes(tn, k2)[:k]
	// Behind the network's back: two of k1's holders get version 6; one
	// of k2's holders gets the tombstone of version 5.
	for _, n := range c1[1:] {
		if err := n.Store().Put(k1, store.Value{Publisher: pub, Version: 6, Expires: now.Add(6 * time.Hour), Data: []byte("new")}, netip.Addr{}, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := c2[0].Store().Put(k2, store.Value{Publisher: pub, Version: 5, Expires: now.Add(6 * time.Hour), Deleted: true}, netip.Addr{}, now); err != nil {
		t.Fatal(err)
	}
	for _, n := range tn.nodes {
		triggerPass(n)
	}
	tn.clk.RunFor(time.Minute)
	now = tn.clk.Now()
	for _, n := range c1 {
		if v, ok := n.Store().Lookup(k1, pub, now); !ok || v.Version != 6 || string(v.Data) != "new" {
			t.Errorf("a holder of k1 has %+v, %v: want version 6", v, ok)
		}
	}
	for _, n := range c2 {
		if v, ok := n.Store().Lookup(k2, pub, now); !ok || !v.Deleted {
			t.Errorf("a holder of k2 has %+v, %v: want the tombstone", v, ok)
		}
	}
	if r, err := get(t, tn, tn.nodes[len(tn.nodes)-1], k2); err == nil && len(r.Values) > 0 {
		t.Errorf("the withdrawn value came back: %q", r.Values)
	}
	// Forget what was received, and pass again: everything offered is
	// held, so only digests travel.
	var before uint64
	for _, n := range tn.nodes {
		n.mu.Lock()
		n.repl.marks = nil
		before += n.repl.stats.Transfers
		n.mu.Unlock()
		triggerPass(n)
	}
	tn.clk.RunFor(time.Minute)
	var after, offers uint64
	for _, n := range tn.nodes {
		st := n.ReplicationStats()
		after += st.Transfers
		offers += st.Offers
	}
	if after != before || offers == 0 {
		t.Fatalf("a pass over agreeing replicas made %d transfers (%d offers), want none", after-before, offers)
	}
}

// One region lookup serves every key whose K closest it provably holds: a
// node holding thousands of records makes far fewer lookups than it holds
// keys, and every key still lands on its brute-force K closest.
func TestPeriodicPassNeedsFarFewerLookupsThanKeys(t *testing.T) {
	const k, nkeys = 5, 3000
	tn := replNet(t, 14, 50, k, time.Hour)
	src := tn.nodes[7]
	now := tn.clk.Now()
	var keys []id.ID
	for i := range nkeys {
		key := id.Key(fmt.Sprint("many ", i))
		keys = append(keys, key)
		if err := src.Store().Put(key, store.Value{Publisher: key, Version: 1, Expires: now.Add(6 * time.Hour), Data: []byte("x")}, netip.Addr{}, now); err != nil {
			t.Fatal(err)
		}
	}
	triggerPass(src)
	tn.clk.RunFor(10 * time.Minute)
	st := src.ReplicationStats()
	if st.Passes != 1 || st.Lookups == 0 || st.Lookups > nkeys/30 {
		t.Fatalf("a pass over %d keys made %d lookups (%d passes), want at most %d", nkeys, st.Lookups, st.Passes, nkeys/30)
	}
	now = tn.clk.Now()
	t.Logf("%+v", st)
	for _, key := range keys {
		for _, n := range closestNodes(tn, key)[:k] {
			if _, ok := n.Store().Lookup(key, key, now); !ok {
				t.Errorf("key %s is not on %s, one of its %d closest", key.Short(), n.ID().Short(), k)
			}
		}
	}
	t.Logf("%d keys: %d lookups (%d requests), %d offers (%d digests, %d bytes), %d transfers",
		nkeys, st.Lookups, st.LookupMessages, st.Offers, st.OfferedDigests, st.OfferBytes, st.Transfers)
}

// A region explored with exact lookups holds the true K closest of every
// key it covers (checked against a brute-force sort of every node, for
// random networks and anchors), it covers its anchor, and it takes few
// lookups.
func TestRegionHoldsTheTrueKClosestOfEveryKeyItCovers(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 1))
	const k = 5
	n := &Node{cfg: Config{K: k}}
	for trial := range 300 {
		nodes := make([]id.Contact, 3+rng.IntN(400))
		for i := range nodes {
			nodes[i].ID = id.Random(rng)
		}
		self := nodes[0]
		anchor := id.Random(rng)
		r := &region{anchor: anchor, bits: id.Bits, probe: true, nodes: []id.Contact{self}, todo: []subtree{{prefix: anchor}}}
		for !r.ready {
			if len(r.todo) == 0 {
				n.widen(r)
				continue
			}
			if r.lookups >= replRegionLookups {
				t.Fatalf("trial %d (%d nodes): the region needed over %d lookups", trial, len(nodes), replRegionLookups)
			}
			x := r.todo[len(r.todo)-1]
			r.todo = r.todo[:len(r.todo)-1]
			target := withPrefix(x.prefix, x.bits, anchor)
			r.lookups++
			// An exact lookup, which never returns the node itself.
			var others []id.Contact
			for _, c := range nodes[1:] {
				others = append(others, c)
			}
			res := &LookupResult{Closest: closestAmong(target, others, k, nil), Responded: 1}
			n.explored(r, x, target, res)
		}
		if !r.covers(anchor) {
			t.Fatalf("trial %d: the region does not cover its anchor", trial)
		}
		for range 100 {
			key := anchor
			for b := r.bits + rng.IntN(id.Bits-r.bits+1); b < id.Bits; b++ {
				setBit(&key, b, rng.IntN(2) == 0)
			}
			if !r.covers(key) {
				t.Fatalf("trial %d: a key under the region's prefix is not covered", trial)
			}
			got := closestAmong(key, r.nodes, k, nil)
			truth := closestAmong(key, nodes, k, nil)
			if !slices.Equal(got, truth) {
				t.Fatalf("trial %d (%d nodes, region /%d, %d lookups): the region's closest to %s differ from the truth",
					trial, len(nodes), r.bits, r.lookups, key.Short())
			}
		}
	}
}

func TestNextIDAndBits(t *testing.T) {
	var top, a id.ID
	for i := range top {
		top[i] = 0xff
	}
	a[19] = 200
	if next, end := nextID(top); !end || !next.IsZero() {
		t.Error("nextID of the last ID does not end the walk")
	}
	if next, end := nextID(a); end || next[19] != 201 {
		t.Error("nextID does not add one")
	}
	var x id.ID
	setBit(&x, 0, true)
	setBit(&x, 159, true)
	if x[0] != 0x80 || x[19] != 1 || !bitOf(x, 0) || bitOf(x, 1) {
		t.Errorf("setBit/bitOf: %x", x)
	}
	if w := withPrefix(top, 4, id.ID{}); w[0] != 0xf0 || w[1] != 0 {
		t.Errorf("withPrefix: %x", w)
	}
}

// A peer that makes requests under ever new IDs cannot make a node send
// its data again and again: hand-over handles each newcomer once an
// interval, and at most replMaxEvents an interval, whether the IDs come
// from one address or from many; the bytes the node sends stay bounded.
func TestHandoverFloodOfFreshIDsStaysBounded(t *testing.T) {
	tn := newTestNet(t, 16, memnet.Config{})
	srv := tn.add(func(c *Config) { c.K = 8 })
	now := tn.clk.Now()
	const nrec = 50
	for i := range nrec {
		// Keys next to the node: any newcomer near it is among their closest.
		key := srv.ID()
		key[id.Len-1] ^= byte(i + 1)
		key[id.Len-2] ^= byte(i * 7)
		if err := srv.Store().Put(key, store.Value{Publisher: key, Version: 1, Expires: now.Add(6 * time.Hour), Data: make([]byte, 500)}, netip.Addr{}, now); err != nil {
			t.Fatal(err)
		}
	}
	received := 0
	greedy := func(req *wire.Message, from netip.AddrPort) *wire.Message {
		received++
		switch req.Type {
		case wire.Offer:
			w := &wire.Message{Type: wire.Want}
			for i := range req.Offers {
				w.Wants = append(w.Wants, uint8(i))
			}
			return w
		}
		return answer(req, from, nil)
	}
	rng := rand.New(rand.NewPCG(16, 2))
	near := func() id.ID {
		x := srv.ID()
		x[id.Len-1], x[id.Len-2], x[id.Len-3] = byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())
		return x
	}
	// From one address: fresh IDs, each a PING and its answer.
	one := tn.listenPeer(netip.MustParseAddrPort("127.50.0.1:4000"), near(), greedy)
	for range 300 {
		sendRaw(t, one, srv.Addr(), wire.Message{Type: wire.Ping, TxID: rng.Uint64(), Sender: near()})
		tn.clk.RunFor(100 * time.Millisecond)
	}
	// From many addresses, each with a fresh ID, for three intervals of
	// the default hour.
	var peers []*peer
	for i := range 400 {
		p := tn.listenPeer(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 51, byte(i / 200), byte(i%200 + 1)}), 4000), near(), greedy)
		peers = append(peers, p)
		sendRaw(t, p, srv.Addr(), wire.Message{Type: wire.Ping, TxID: rng.Uint64()})
		tn.clk.RunFor(20 * time.Second)
	}
	tn.clk.RunFor(time.Minute)
	st := srv.ReplicationStats()
	intervals := uint64(tn.clk.Now().Sub(now)/srv.Config().ReplicateInterval) + 1
	if st.Newcomers > intervals*replMaxEvents {
		t.Fatalf("%d newcomers handled over %d intervals, bound %d each", st.Newcomers, intervals, replMaxEvents)
	}
	if st.Newcomers == 0 {
		t.Fatal("no newcomer handled: the flood tested nothing")
	}
	// Each handled newcomer draws at most every record once: its OFFERs
	// and one PUT per record.
	perNewcomer := uint64(wire.OfferLen(wire.MaxOffer)*(nrec/wire.MaxOffer+1) + nrec*(wire.HeaderLen+62+500))
	if st.OfferBytes+st.TransferBytes > st.Newcomers*perNewcomer {
		t.Fatalf("hand-over sent %d bytes to %d newcomers, bound %d each", st.OfferBytes+st.TransferBytes, st.Newcomers, perNewcomer)
	}
	if st.Transfers > st.Newcomers*nrec {
		t.Fatalf("%d transfers for %d newcomers of %d records", st.Transfers, st.Newcomers, nrec)
	}
	t.Logf("%d newcomers handled, %d dropped, %d transfers, %d bytes", st.Newcomers, st.EventsDropped, st.Transfers, st.OfferBytes+st.TransferBytes)
}

func TestReplicationConfigIsValidated(t *testing.T) {
	tn := newTestNet(t, 17, memnet.Config{})
	for _, c := range []struct {
		interval, debounce time.Duration
		ok                 bool
	}{
		{0, 0, true}, {-1, 0, true}, {time.Minute, 0, true}, {500 * time.Millisecond, 0, false},
		{time.Minute, 2 * time.Minute, false}, {time.Minute, -time.Second, false},
	} {
		cfg := Config{Transport: tn.net.NewEndpoint(), ReplicateInterval: c.interval, ReplicateDebounce: c.debounce}
		err := cfg.Validate()
		if (err == nil) != c.ok {
			t.Errorf("interval %v, debounce %v: %v, want ok=%v", c.interval, c.debounce, err, c.ok)
		}
		if err == nil && c.interval == 0 && (cfg.ReplicateInterval != DefaultReplicateInterval || cfg.ReplicateDebounce != DefaultReplicateDebounce) {
			t.Errorf("defaults: %v, %v", cfg.ReplicateInterval, cfg.ReplicateDebounce)
		}
	}
}

// A record's holders notice within minutes, not an interval, that its
// closest nodes left (the neighbour check pings quiet neighbours; their
// failures trigger an event pass), and copy it to the nodes now closest.
func TestDeparturesAreReReplicatedWithinMinutes(t *testing.T) {
	const k = 4
	tn := replNet(t, 18, 40, k, time.Hour)
	key := id.Key("departures")
	if _, err := putRec(t, tn, tn.nodes[3], PutRequest{Key: key, Value: []byte("kept"), TTL: 6 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	closed := map[*Node]bool{}
	for _, n := range closestNodes(tn, key)[:k-1] {
		closed[n] = true
		n.Close()
	}
	tn.clk.RunFor(20 * time.Minute) // four neighbour checks, a third of the interval
	now := tn.clk.Now()
	var passes, departures uint64
	for _, n := range liveClosest(tn, key, closed)[:k] {
		if len(n.Store().Get(key, now, nil)) == 0 {
			t.Errorf("%s, one of the key's %d closest live nodes, does not hold it 20 minutes after its closest left", n.ID().Short(), k)
		}
	}
	for _, n := range tn.nodes {
		if !closed[n] {
			st := n.ReplicationStats()
			passes += st.Passes
			departures += st.Departures
		}
	}
	if passes != 0 || departures == 0 {
		t.Fatalf("%d periodic passes, %d departures noted: the event pass did not do it", passes, departures)
	}
}

// A departure pass offers a record only to the nodes the departure brought
// among the key's K closest, not to the holders that had it all along,
// except from the eventRepairers holders closest to the key, which offer to
// all of the K closest: one closest node leaving costs each other remaining
// holder one OFFER, to the node that takes its place, where every holder
// offering to every one of the K closest would cost (K-1) x (K-1).
func TestADeparturePassOffersOnlyToTheNodesNewlyAmongTheClosest(t *testing.T) {
	const k = 8
	tn := replNet(t, 19, 60, k, time.Hour)
	key := id.Key("newly among")
	if _, err := putRec(t, tn, tn.nodes[3], PutRequest{Key: key, Value: []byte("kept"), TTL: 6 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	ranked := closestNodes(tn, key)
	before := map[*Node]ReplicationStats{}
	for _, n := range ranked[1:k] {
		before[n] = n.ReplicationStats()
	}
	gone := ranked[0]
	gone.Close()
	tn.clk.RunFor(20 * time.Minute) // four neighbour checks
	now := tn.clk.Now()
	newcomer := ranked[k]
	if len(newcomer.Store().Get(key, now, nil)) == 0 {
		t.Fatalf("%s, now among the %d closest, does not hold the record 20 minutes after %s left", newcomer.ID().Short(), k, gone.ID().Short())
	}
	var offers, departures uint64
	for n, st0 := range before {
		st := n.ReplicationStats()
		offers += st.Offers - st0.Offers
		departures += st.Departures - st0.Departures
		if st.Passes != st0.Passes {
			t.Fatalf("a periodic pass ran: the test is about event passes")
		}
	}
	if departures == 0 {
		t.Fatal("no holder noticed the departure")
	}
	// The departed was the closest, so eventRepairers-1 of the remaining
	// holders repair (K-1 OFFERs each); the others offer to the newcomer.
	limit := uint64((eventRepairers-1)*(k-1) + (k - eventRepairers))
	if offers == 0 || offers > limit {
		t.Fatalf("the %d remaining holders sent %d OFFERs for one key after one departure, want at most %d (%d repairers to the others, the rest to %s only)",
			k-1, offers, limit, eventRepairers-1, newcomer.ID().Short())
	}
}

package core

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// The send queue is a slice consumed from queueHead and compacted only when
// it empties. Under sustained load that always leaves at least one request
// waiting (slow or silent peers holding the request table full), it never
// empties, so the consumed prefix is never given back and the slice grows
// with every request ever queued, past the bound of max(MaxInFlight,
// minQueue) live entries. The queue's memory must stay bounded by its live
// entries however long the load lasts.
func TestSendQueueMemoryStaysBoundedUnderSustainedLoad(t *testing.T) {
	tn := newTestNet(t, 901, memnet.Config{})
	a := tn.add(func(c *Config) {
		c.MaxInFlight = 1
		c.Attempts = 1
	})
	silent := netip.MustParseAddrPort("127.77.0.1:4000") // nothing listens there
	const total = 5000
	started, pending := 0, 0
	maxCap := 0
	var ping func()
	ping = func() {
		started++
		pending++
		a.Ping(silent, func(id.Contact, error) {
			pending--
			a.mu.Lock()
			maxCap = max(maxCap, cap(a.queue))
			a.mu.Unlock()
			if started < total {
				ping()
			}
		})
	}
	// One in flight and two waiting at all times: the queue never empties.
	for range 3 {
		ping()
	}
	tn.await(&pending, total*2*DefaultRequestTimeout)
	if bound := 2 * max(a.cfg.MaxInFlight, minQueue); maxCap > bound {
		t.Errorf("the send queue, never holding more than 3 requests, grew to a capacity of %d entries (bound %d): it grows with the requests ever queued", maxCap, bound)
	}
}

// GetQuorum is meant to make a get hear several holders before it stops, so
// that one holder cannot decide what a get returns. But the quorum counts
// IDs, and one host can answer under as many IDs as it has ports: here one
// IP with five ports, each verified in the getter's table under its own ID
// close to the key, answers every FIND_VALUE with its own value. The get
// stops after three of them, never asks the honest holder, and reports a
// complete answer without the honest value. A quorum must count each host
// (IP address, as the store's quotas do) at most once.
func TestGetQuorumCountsEachHostOnce(t *testing.T) {
	tn := newTestNet(t, 902, memnet.Config{})
	a := tn.add(nil)
	key := id.Key("contested")
	honest := tn.add(nil)
	now := tn.clk.Now()
	if err := putValue(honest.Store(), key, []byte("good"), netip.Addr{}, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	var addrs []netip.AddrPort
	for i := range 5 {
		sid := key
		sid[id.Len-1] ^= byte(i + 1) // far closer to the key than any honest node
		ap := netip.AddrPortFrom(netip.MustParseAddr("127.66.0.1"), uint16(4001+i))
		tn.listenPeer(ap, sid, func(req *wire.Message, from netip.AddrPort) *wire.Message {
			if req.Type == wire.Get {
				return &wire.Message{Type: wire.Records, Records: []wire.Record{{Publisher: id.ID{1}, Version: 1, TTL: 3600, Size: 3, Data: []byte("bad")}}}
			}
			return answer(req, from, nil)
		})
		addrs = append(addrs, ap)
	}
	addrs = append(addrs, honest.Addr())
	pending := len(addrs)
	for _, ap := range addrs {
		a.Ping(ap, func(_ id.Contact, err error) {
			if err != nil {
				t.Errorf("ping %v: %v", ap, err)
			}
			pending--
		})
	}
	tn.await(&pending, time.Minute)

	var res *LookupResult
	pending = 1
	a.Get(key, func(r *LookupResult, err error) {
		if err != nil {
			t.Errorf("get: %v", err)
		}
		res = r
		pending--
	})
	tn.await(&pending, time.Minute)
	if res == nil {
		return
	}
	good := false
	for _, v := range res.Values {
		good = good || bytes.Equal(v, []byte("good"))
	}
	if !good && res.Incomplete == "" {
		t.Errorf("a get counted %d holders, all one host (127.66.0.1), as its quorum: it returned %q as complete without the honest holder's value", res.Holders, res.Values)
	}
}

// Answers to a verified address may take the full 1400 bytes, and a request
// counts as coming from one when its sender ID and source address are those
// of a verified table entry. Both are public: every NODES answer hands them
// out. So anyone can forge a 56-byte FIND_VALUE "from" a DHT node any other
// node has verified, naming that node's ID, and have the answer (here over a
// kilobyte) sent to it: a 20x reflection against every DHT node, through
// every node that knows it. The amplification bound should hold for a
// request whose source is merely claimed, whatever the table knows about
// that address (a cookie echoed by the requester, or a per-address budget
// for answers over the bound, would do).
func TestForgedRequestsInAVerifiedContactsNameAreBoundedByTheRequestSize(t *testing.T) {
	tn := newTestNet(t, 903, memnet.Config{})
	srv := tn.add(nil)
	key := id.Key("big")
	now := tn.clk.Now()
	if err := putValue(srv.Store(), key, make([]byte, 1000), netip.Addr{}, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	vid := id.Key("victim")
	victim := tn.listenPeer(netip.MustParseAddrPort("127.200.0.2:4000"), vid, func(req *wire.Message, from netip.AddrPort) *wire.Message {
		return answer(req, from, nil) // an honest node: it answers pings
	})
	pending := 1
	srv.Ping(victim.ep.LocalAddr(), func(_ id.Contact, err error) {
		if err != nil {
			t.Errorf("ping: %v", err)
		}
		pending--
	})
	tn.await(&pending, time.Minute)

	req := wire.Message{Type: wire.FindValue, Sender: vid, TxID: 9, Target: key}
	b, err := req.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	before := len(victim.sizes)
	srv.HandlePacket(b, victim.ep.LocalAddr(), sendVia{victim.ep})
	tn.clk.RunFor(time.Second)
	got := 0
	for _, s := range victim.sizes[before:] {
		got += s
	}
	if got > wire.AmplificationFactor*len(b) {
		t.Errorf("a forged %d-byte FIND_VALUE naming a verified contact drew %d bytes to it, over %dx", len(b), got, wire.AmplificationFactor)
	}
}

// The scope rule keeps public peers from steering a node's requests into
// networks that are not the public Internet. RFC 6598 shared address space
// (100.64.0.0/10: carrier-grade NAT, and the addresses of overlay networks
// such as Tailscale, and some cloud metadata services, 100.100.100.200) and
// the limited broadcast address are not public, yet count as public scope,
// so any public peer can point a node at them.
func TestNonPublicIPv4RangesAreNotPublicScope(t *testing.T) {
	for _, s := range []string{"100.64.0.1", "100.100.100.200", "100.127.255.254", "255.255.255.255"} {
		if got := scopeOf(netip.MustParseAddr(s)); got == scopePublic {
			t.Errorf("scopeOf(%s) = public: a public peer may steer requests there", s)
		}
	}
}

// A request claiming a new ID from an address a table entry holds makes the
// node ping that address when the entry was not heard from for 5 minutes.
// The ping goes to the request's claimed source, on top of the answer that
// is already held to 3x the request: a forged FIND_NODE "from" a known
// contact draws both, more than the bound in all. Either the ping should
// count against the answer's budget, or it should wait for a verified
// sighting.
func TestForgedRequestFromAKnownAddressDrawsNoMoreThanTheBound(t *testing.T) {
	tn := newTestNet(t, 904, memnet.Config{})
	srv := tn.add(nil)
	for range 25 { // contacts enough that the NODES answer fills its budget
		n := tn.add(nil)
		pending := 1
		n.Ping(srv.Addr(), func(id.Contact, error) { pending-- })
		tn.await(&pending, time.Minute)
	}
	vid := id.Key("victim")
	victim := tn.listenPeer(netip.MustParseAddrPort("127.200.0.3:4000"), vid, nil)
	pending := 1
	victim.script = func(req *wire.Message, from netip.AddrPort) *wire.Message { return answer(req, from, nil) }
	srv.Ping(victim.ep.LocalAddr(), func(id.Contact, error) { pending-- })
	tn.await(&pending, time.Minute)
	victim.script = nil // from now on the victim is not a DHT node: it answers nothing
	tn.clk.RunFor(10 * time.Minute)

	req := wire.Message{Type: wire.FindNode, Sender: id.Key("spoofer"), TxID: 11, Target: id.Key("x")}
	b, err := req.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	before := len(victim.sizes)
	srv.HandlePacket(b, victim.ep.LocalAddr(), sendVia{victim.ep})
	tn.clk.RunFor(time.Minute)
	got := 0
	for _, s := range victim.sizes[before:] {
		got += s
	}
	if got > wire.AmplificationFactor*len(b) {
		t.Errorf("a forged %d-byte FIND_NODE from a known contact's address drew %d bytes (%d datagrams) to it, over %dx", len(b), got, len(victim.sizes)-before, wire.AmplificationFactor)
	}
}

// A forged PING (36 bytes, free to send with any source address) under a
// new ID puts that ID at the forged address in the routing table, as an
// unverified entry that lookups seed from and NODES answers hand out. Every
// lookup that picks it sends it a FIND_NODE padded to 300 bytes, and a
// retry: 600 bytes to the victim for a 36-byte forgery (more from every node
// that learned the contact from us). Unverified entries should not draw
// padded requests (or should be verified with an unpadded PING first).
func TestForgedPingDoesNotDrawLargeRequestsToItsSource(t *testing.T) {
	tn := newTestNet(t, 905, memnet.Config{})
	srv := tn.add(nil)
	for range 3 {
		n := tn.add(nil)
		pending := 1
		n.Ping(srv.Addr(), func(id.Contact, error) { pending-- })
		tn.await(&pending, time.Minute)
	}
	victim := tn.listenPeer(netip.MustParseAddrPort("127.200.0.4:4000"), id.Key("victim"), nil)
	target := id.Key("t")
	forged := target
	forged[id.Len-1] ^= 1 // the closest ID to the next lookup's target
	req := wire.Message{Type: wire.Ping, Sender: forged, TxID: 12}
	b, err := req.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	before := len(victim.sizes)
	srv.HandlePacket(b, victim.ep.LocalAddr(), sendVia{victim.ep})
	pending := 1
	srv.FindNode(target, func(*LookupResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	tn.clk.RunFor(time.Minute)
	got := 0
	for _, s := range victim.sizes[before:] {
		got += s
	}
	if got > wire.AmplificationFactor*len(b) {
		t.Errorf("a forged %d-byte PING drew %d bytes (%d datagrams) to its claimed source, over %dx", len(b), got, len(victim.sizes)-before, wire.AmplificationFactor)
	}
}

// A join refreshes every bucket farther than its closest neighbour. One
// hostile seed that answers with a contact one bit from the joiner's own ID
// (at a second address of its own, which answers under that ID) makes the
// join run a lookup per bucket: 160 lookups of up to 92 queries each, for
// one answer. Honest networks of up to 2^32 nodes need at most 33 (the own
// lookup and one per bit of the closest neighbour's shared prefix); a join
// should not let one peer push it past that.
func TestOneSeedCannotMakeAJoinRunALookupPerBucket(t *testing.T) {
	tn := newTestNet(t, 906, memnet.Config{})
	a := tn.add(nil)
	near := a.ID()
	near[id.Len-1] ^= 1
	twin := netip.MustParseAddrPort("127.201.0.2:4000")
	tn.listenPeer(twin, near, func(req *wire.Message, from netip.AddrPort) *wire.Message {
		return answer(req, from, nil)
	})
	seed := tn.listenPeer(netip.MustParseAddrPort("127.201.0.1:4000"), id.Key("seed"), func(req *wire.Message, from netip.AddrPort) *wire.Message {
		return answer(req, from, []id.Contact{{ID: near, Addr: twin}})
	})
	var res *BootstrapResult
	pending := 1
	a.Bootstrap([]netip.AddrPort{seed.ep.LocalAddr()}, func(r *BootstrapResult, err error) {
		if err != nil {
			t.Errorf("bootstrap: %v", err)
		}
		res = r
		pending--
	})
	tn.await(&pending, 10*time.Minute)
	if res != nil && res.Lookups > 1+32 {
		t.Errorf("one seed's answer made the join run %d lookups (%d requests)", res.Lookups, a.Stats().Requests)
	}
}

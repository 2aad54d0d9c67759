package core

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/routing"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// sendRaw sends m from p's endpoint to a node, as p.
func sendRaw(t *testing.T, p *peer, to netip.AddrPort, m wire.Message) {
	t.Helper()
	if m.Sender.IsZero() {
		m.Sender = p.id
	}
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.ep.Send([]transport.Packet{{Addr: to, Data: b}}); err != nil {
		t.Fatal(err)
	}
}

func entryOf(n *Node, x id.ID) (routing.Entry, bool) {
	for _, e := range n.Contacts() {
		if e.Contact.ID == x {
			return e, true
		}
	}
	return routing.Entry{}, false
}

// The review sent 2,000 PINGs with different IDs from one IP:port and found
// 155 entries in 8 buckets. One address is one entry.
func TestManyIDsFromOneAddressTakeOneTableEntry(t *testing.T) {
	tn := newTestNet(t, 501, memnet.Config{})
	srv := tn.add(nil)
	flood := tn.listenPeer(netip.MustParseAddrPort("127.66.0.1:4000"), id.Key("flood"), nil)
	for i := range 2000 {
		sendRaw(t, flood, srv.Addr(), wire.Message{Type: wire.Ping, TxID: uint64(i + 1), Sender: id.Key(string(rune(i + 1)))})
	}
	tn.clk.RunFor(time.Minute)
	if n := srv.Stats().TableSize; n > 1 {
		t.Fatalf("2,000 IDs from one address took %d routing-table entries, want at most 1", n)
	}
	for i := range srv.table.Buckets() {
		if r := srv.table.Replacements(i); len(r) > 0 && r[0].Contact.Addr == flood.ep.LocalAddr() && len(r) > 1 {
			t.Fatalf("bucket %d caches %d replacements from the flooding address", i, len(r))
		}
	}
}

// A long-lived contact that missed one request cannot be taken over by a
// datagram that claims its ID from another address: the entry keeps its
// address, and moves only when the old address fails a ping and the new one
// answers.
func TestOneFailureDoesNotLetAnotherAddressTakeOverAContact(t *testing.T) {
	tn := newTestNet(t, 502, memnet.Config{})
	victim := tn.add(nil)
	friend := tn.add(nil)
	pending := 1
	victim.Ping(friend.Addr(), func(id.Contact, error) { pending-- }) // friend answers: verified
	tn.await(&pending, time.Minute)
	if e, ok := entryOf(victim, friend.ID()); !ok || !e.Verified {
		t.Fatalf("friend's entry %+v, %v: want verified", e, ok)
	}
	// One request to the friend fails (it is cut off for a moment).
	tn.net.Partition([]netip.AddrPort{friend.Addr()})
	pending = 1
	victim.FindNode(id.Key("t"), func(*LookupResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	// The lookup gives up on the request before its last attempt runs out;
	// the request runs on to its verdict for the routing table.
	tn.clk.RunFor(time.Duration(victim.cfg.Attempts) * victim.cfg.RequestTimeout)
	tn.net.Heal()
	if e, _ := entryOf(victim, friend.ID()); e.Failures == 0 {
		t.Fatalf("the friend's entry records no failure: %+v", e)
	}
	// An attacker claims the friend's ID from its own address, with a
	// request and with a forged "response" (which matches nothing).
	attacker := tn.listenPeer(netip.MustParseAddrPort("127.66.0.2:4000"), friend.ID(), nil)
	for i := range 10 {
		sendRaw(t, attacker, victim.Addr(), wire.Message{Type: wire.Ping, TxID: uint64(100 + i)})
		sendRaw(t, attacker, victim.Addr(), wire.Message{Type: wire.Pong, TxID: uint64(200 + i), Observed: victim.Addr()})
	}
	tn.clk.RunFor(time.Minute)
	e, ok := entryOf(victim, friend.ID())
	if !ok || e.Contact.Addr != friend.Addr() {
		t.Fatalf("after the claims the friend's entry is %+v (present %v); want it still at %v", e, ok, friend.Addr())
	}
}

// Being verified (having answered our requests) exempts no sender from the
// amplification bound, since anyone may forge a request under a verified
// contact's ID and address: unpadded requests get at most 3x their size from
// everyone, and padded ones earn the whole answer from everyone.
func TestVerifiedSendersAreHeldToTheBoundToo(t *testing.T) {
	tn := newTestNet(t, 503, memnet.Config{})
	srv := tn.add(nil)
	for range 25 {
		n := tn.add(nil)
		pending := 1
		n.Ping(srv.Addr(), func(id.Contact, error) { pending-- })
		tn.await(&pending, time.Minute)
	}
	friendID := id.Key("friend")
	friend := tn.listenPeer(netip.MustParseAddrPort("127.66.0.3:4000"), friendID, func(req *wire.Message, from netip.AddrPort) *wire.Message {
		return answer(req, from, nil)
	})
	pending := 1
	srv.Ping(friend.ep.LocalAddr(), func(id.Contact, error) { pending-- }) // the friend answers: verified
	tn.await(&pending, time.Minute)
	if !srv.table.Proven(id.Contact{ID: friendID, Addr: friend.ep.LocalAddr()}) {
		t.Fatal("the friend answered a ping but is not verified")
	}
	friend.script = nil
	req := wire.Message{Type: wire.FindNode, TxID: 9, Target: id.Key("x")}
	sendRaw(t, friend, srv.Addr(), req)
	tn.clk.RunFor(time.Second)
	if got, limit := friend.sizes[len(friend.sizes)-1], wire.AmplificationFactor*(wire.HeaderLen+id.Len); got > limit {
		t.Errorf("the verified sender's unpadded %d-byte request drew %d bytes, over %d", wire.HeaderLen+id.Len, got, limit)
	}
	b, err := req.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := friend.ep.Send([]transport.Packet{{Addr: srv.Addr(), Data: wire.Pad(b, 0, wire.MinFindNodeLen)}}); err != nil {
		t.Fatal(err)
	}
	tn.clk.RunFor(time.Second)
	if got, want := friend.sizes[len(friend.sizes)-1], wire.HeaderLen+1+20*27; got < want {
		t.Errorf("a padded request drew %d bytes, want a full NODES of %d", got, want)
	}
}

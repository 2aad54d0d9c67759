package core

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// A request from an address the node has never verified (it could be forged)
// draws an answer of at most AmplificationFactor times its size: a 56-byte
// FIND_VALUE for a key holding a 1000-byte value gets no more than 168
// bytes back. A request padded as the spec says gets the whole answer.
func TestAnswersToUnverifiedSendersAreBoundedByTheRequestSize(t *testing.T) {
	tn := newTestNet(t, 301, memnet.Config{})
	srv := tn.add(nil)
	for range 25 { // contacts enough that a full NODES is large
		n := tn.add(nil)
		pending := 1
		n.Ping(srv.Addr(), func(id.Contact, error) { pending-- })
		tn.await(&pending, time.Minute)
	}
	key := id.Key("big")
	now := tn.clk.Now()
	if err := putValue(srv.Store(), key, make([]byte, 1000), netip.Addr{}, now.Add(time.Hour), now); err != nil {
		t.Fatal(err)
	}
	victim := tn.listenPeer(netip.MustParseAddrPort("127.200.0.1:4000"), id.Key("victim"), nil)
	for _, c := range []struct {
		name    string
		typ     wire.Type
		target  id.ID
		pad     int
		wantMin int // a full answer is at least this long
	}{
		{"FIND_VALUE", wire.FindValue, key, 0, 0},
		{"FIND_NODE", wire.FindNode, id.Key("x"), 0, 0},
		{"unknown type", 0x7f, id.ID{}, 0, 0},
		{"padded FIND_VALUE", wire.FindValue, key, wire.MinFindValueLen, 1000},
		{"padded FIND_NODE", wire.FindNode, id.Key("x"), wire.MinFindNodeLen, wire.HeaderLen + 1 + 20*27},
	} {
		// The request claims the victim's address as its source: memnet
		// delivers the answer there.
		req := wire.Message{Type: c.typ, Sender: id.Key("spoofer"), TxID: 7, Target: c.target}
		if c.typ == 0x7f {
			req.Type = wire.Ping
		}
		b, err := req.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.typ == 0x7f {
			b[2] = 0x7f // a request type no node knows
		}
		b = wire.Pad(b, 0, c.pad)
		before := len(victim.sizes)
		srv.HandlePacket(b, victim.ep.LocalAddr(), sendVia{victim.ep})
		tn.clk.RunFor(time.Second)
		if len(victim.sizes) != before+1 {
			t.Fatalf("%s: the victim received %d answers, want 1", c.name, len(victim.sizes)-before)
		}
		got := victim.sizes[before]
		if got > wire.AmplificationFactor*len(b) {
			t.Errorf("%s: a %d-byte request drew a %d-byte answer, over %dx", c.name, len(b), got, wire.AmplificationFactor)
		}
		if got < c.wantMin {
			t.Errorf("%s: a padded %d-byte request drew only %d bytes, want the full answer (>= %d)", c.name, len(b), got, c.wantMin)
		}
	}
}

// sendVia is a Writer that sends each datagram at once through a transport:
// it lets a test inject a datagram with any source address.
type sendVia struct{ tr transport.Transport }

func (s sendVia) WriteTo(b []byte, to netip.AddrPort) {
	_ = s.tr.Send([]transport.Packet{{Addr: to, Data: b}})
}

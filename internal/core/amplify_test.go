package core

import (
	"errors"
	"strings"

	"github.com/dhtkit/dht/store"
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

// Everything a request makes the node send to its claimed source — the
// answer, the PING that checks a contact claimed to have moved there, the
// PING that checks a listener's address, and their retries — stays within
// the amplification limit, even for the smallest requests.
func TestRequestsDrawNoMoreThanTheirLimitInAll(t *testing.T) {
	for _, typ := range []wire.Type{wire.Ping, wire.Listen} {
		t.Run(typ.String(), func(t *testing.T) {
			tn := newTestNet(t, 305, memnet.Config{})
			srv := tn.add(nil)
			victim := tn.listenPeer(netip.MustParseAddrPort("127.201.0.1:4000"), id.Key("victim"), nil)
			// The node holds the victim's address under the victim's ID,
			// last heard from long ago.
			sendRaw(t, victim, srv.Addr(), wire.Message{Type: wire.Ping, TxID: 1})
			tn.clk.RunFor(time.Hour)
			victim.sizes = victim.sizes[:0]
			// A request from the victim's address under another ID: the
			// node pings that address to learn who is there now.
			req := wire.Message{Type: typ, Sender: id.Key("someone else"), TxID: 9, Target: id.Key("k"), TTL: 60}
			b, err := req.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			srv.HandlePacket(b, victim.ep.LocalAddr(), sendVia{victim.ep})
			tn.clk.RunFor(10 * time.Second) // retries included
			total := 0
			for _, n := range victim.sizes {
				total += n
			}
			if total > wire.AmplificationFactor*len(b) {
				t.Errorf("a %d-byte %v drew %d bytes in %d datagrams, over %dx", len(b), typ, total, len(victim.sizes), wire.AmplificationFactor)
			}
			if len(victim.sizes) == 0 {
				t.Errorf("no answer at all")
			}
		})
	}
}

// The PING that checks a listener's address does not put the listener in
// the routing table: a listener may be a read-only client.
func TestListenerCheckDoesNotAddTheListenerToTheTable(t *testing.T) {
	tn := newTestNet(t, 306, memnet.Config{})
	srv := tn.add(nil)
	client := tn.add(func(c *Config) { c.ReadOnly = true })
	var events []Event
	cancel := client.Listen(id.Key("k"), func(e Event) { events = append(events, e) })
	defer cancel()
	// The read-only client knows srv only by bootstrapping through it.
	pending := 1
	client.Bootstrap([]netip.AddrPort{srv.Addr()}, func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	cancel()
	client2 := tn.add(func(c *Config) { c.ReadOnly = true })
	pending = 1
	client2.Bootstrap([]netip.AddrPort{srv.Addr()}, func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	stop := client2.Listen(id.Key("k2"), func(Event) {})
	defer stop()
	tn.clk.RunFor(5 * time.Second)
	srv.mu.Lock()
	n := len(srv.listeners)
	srv.mu.Unlock()
	if n == 0 {
		t.Fatal("the listener did not register; the test proves nothing")
	}
	for _, e := range srv.Contacts() {
		if e.Contact.ID == client2.ID() {
			t.Fatalf("the read-only listener %v is in the routing table", e.Contact)
		}
	}
	for i := range srv.table.Buckets() {
		for _, e := range srv.table.Replacements(i) {
			if e.Contact.ID == client2.ID() {
				t.Fatalf("the read-only listener %v is in a replacement cache", e.Contact)
			}
		}
	}
}

// failingDisk is a store whose writes never become durable.
type failingDisk struct {
	store.Store
	synced chan struct{} // a report has been handed to the node
}

func (d failingDisk) Sync(fn func(error)) {
	go func() {
		fn(errors.New("disk error: " + strings.Repeat("x", 400)))
		d.synced <- struct{}{}
	}()
}

// A refusal sent after a failed disk write keeps to the request's budget
// like any answer.
func TestLateRefusalsKeepToTheRequestsBudget(t *testing.T) {
	tn := newTestNet(t, 307, memnet.Config{})
	disk := failingDisk{store.NewMemory(store.Limits{}), make(chan struct{}, 1)}
	srv := tn.add(func(c *Config) { c.Store = disk })
	victim := tn.listenPeer(netip.MustParseAddrPort("127.202.0.1:4000"), id.Key("victim"), nil)
	req := wire.Message{Type: wire.Store, Sender: id.Key("spoofer"), TxID: 3, Target: id.Key("k"), TTL: 60, Value: []byte("v")}
	b, err := req.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.HandlePacket(b, victim.ep.LocalAddr(), sendVia{victim.ep})
	select {
	case <-disk.synced:
	case <-time.After(10 * time.Second):
		t.Fatal("the store's sync never reported")
	}
	tn.clk.RunFor(time.Second) // deliver the refusal
	if len(victim.sizes) != 1 {
		t.Fatalf("%d answers, want the one refusal", len(victim.sizes))
	}
	if got := victim.sizes[0]; got > wire.AmplificationFactor*len(b) {
		t.Errorf("a %d-byte STORE drew a %d-byte refusal, over %dx", len(b), got, wire.AmplificationFactor)
	}
}

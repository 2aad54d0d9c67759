package core

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// A public peer cannot steer a node's requests to loopback or private
// addresses (the node's own services, its LAN): contacts narrower in scope
// than the peer that handed them out are not used. With AnyScope the same
// answers are followed, which shows the test would see the requests.
func TestContactsNarrowerThanTheirSenderAreNotUsed(t *testing.T) {
	for _, anyScope := range []bool{false, true} {
		tn := newTestNet(t, 201, memnet.Config{})
		// The node and its one peer have public addresses.
		ep, err := tn.net.Listen(netip.MustParseAddrPort("198.51.100.7:4000"))
		if err != nil {
			t.Fatal(err)
		}
		a := tn.add(func(c *Config) { c.Transport = ep; c.AnyScope = anyScope })
		internal := map[string]*peer{}
		var steer []id.Contact
		for _, addr := range []string{"127.0.0.1:22", "10.0.0.5:80", "192.168.1.1:53", "172.16.0.1:80"} {
			ap := netip.MustParseAddrPort(addr)
			pid := id.Key(addr)
			internal[addr] = tn.listenPeer(ap, pid, nil)
			steer = append(steer, id.Contact{ID: pid, Addr: ap})
		}
		publicContact := id.Contact{ID: id.Key("public"), Addr: netip.MustParseAddrPort("203.0.113.9:4000")}
		public := tn.listenPeer(publicContact.Addr, publicContact.ID, func(req *wire.Message, from netip.AddrPort) *wire.Message {
			return answer(req, from, nil)
		})
		liar := tn.listenPeer(netip.MustParseAddrPort("203.0.113.5:4000"), id.Key("liar"), func(req *wire.Message, from netip.AddrPort) *wire.Message {
			return answer(req, from, append(append([]id.Contact(nil), steer...), publicContact))
		})
		pending := 1
		a.Bootstrap([]netip.AddrPort{liar.ep.LocalAddr()}, func(*BootstrapResult, error) { pending-- })
		tn.await(&pending, time.Minute)
		for addr, p := range internal {
			if got := p.received > 0; got != anyScope {
				t.Errorf("AnyScope=%v: %s received %d datagrams", anyScope, addr, p.received)
			}
		}
		if public.received == 0 {
			t.Errorf("AnyScope=%v: the public contact was never asked", anyScope)
		}
	}
}

// A node hands a requester only contacts it may use: a public requester
// learns nothing of the node's loopback or private neighbours.
func TestNodesTellPublicRequestersOnlyPublicContacts(t *testing.T) {
	tn := newTestNet(t, 202, memnet.Config{})
	srv := tn.add(nil) // 127.0.0.1: loopback, may know every scope
	for _, addr := range []string{"127.0.0.2:4000", "10.1.1.1:4000", "203.0.113.20:4000"} {
		ep, err := tn.net.Listen(netip.MustParseAddrPort(addr))
		if err != nil {
			t.Fatal(err)
		}
		n := tn.add(func(c *Config) { c.Transport = ep; c.AnyScope = true })
		pending := 1
		n.Ping(srv.Addr(), func(id.Contact, error) { pending-- })
		tn.await(&pending, time.Minute)
	}
	if srv.Stats().TableSize != 3 {
		t.Fatalf("server knows %d contacts, want 3", srv.Stats().TableSize)
	}
	var got []id.Contact
	asker := tn.listenPeer(netip.MustParseAddrPort("198.51.100.1:4000"), id.Key("asker"), func(req *wire.Message, _ netip.AddrPort) *wire.Message {
		if req.Type == wire.Nodes {
			got = append(got, req.Contacts...)
		}
		return nil
	})
	sendRaw(t, asker, srv.Addr(), wire.Message{Type: wire.FindNode, TxID: 1, Target: id.Key("x")})
	tn.clk.RunFor(time.Second)
	if len(got) != 1 || got[0].Addr.String() != "203.0.113.20:4000" {
		t.Fatalf("a public requester was told %v; want only the public contact", got)
	}
}

func TestScopeOfAddresses(t *testing.T) {
	for _, c := range []struct {
		addr string
		want scope
	}{
		{"127.0.0.1", scopeLoopback}, {"127.9.8.7", scopeLoopback}, {"::1", scopeLoopback}, {"::ffff:127.0.0.1", scopeLoopback},
		{"10.0.0.1", scopePrivate}, {"172.16.5.4", scopePrivate}, {"192.168.0.1", scopePrivate},
		{"169.254.1.1", scopePrivate}, {"fd00::1", scopePrivate}, {"fe80::1", scopePrivate},
		{"203.0.113.7", scopePublic}, {"8.8.8.8", scopePublic}, {"2001:db8::1", scopePublic}, {"172.32.0.1", scopePublic},
	} {
		if got := scopeOf(netip.MustParseAddr(c.addr)); got != c.want {
			t.Errorf("scopeOf(%s) = %d, want %d", c.addr, got, c.want)
		}
	}
}

// When the contacts nearest the target are ones a public requester may not
// use, the node looks farther rather than answer with fewer than it could.
func TestPublicRequestersGetTheNearestPublicContactsBeyondPrivateOnes(t *testing.T) {
	tn := newTestNet(t, 203, memnet.Config{})
	target := id.Key("x")
	near := func(b byte) id.ID { x := target; x[19] ^= b; return x }
	far := target
	far[0] ^= 0x80
	srv := tn.add(func(c *Config) { c.K, c.Alpha = 2, 1 })
	for i, addr := range []string{"127.0.9.2:4000", "127.0.9.3:4000", "127.0.9.4:4000", "203.0.113.20:4000", "203.0.113.21:4000"} {
		ep, err := tn.net.Listen(netip.MustParseAddrPort(addr))
		if err != nil {
			t.Fatal(err)
		}
		nid := near(byte(i + 1)) // the loopback ones nearest the target
		if i >= 3 {
			nid = far
			nid[19] ^= byte(i)
		}
		n := tn.add(func(c *Config) { c.Transport = ep; c.AnyScope = true; c.ID = nid })
		pending := 1
		n.Ping(srv.Addr(), func(id.Contact, error) { pending-- })
		tn.await(&pending, time.Minute)
	}
	var got []id.Contact
	asker := tn.listenPeer(netip.MustParseAddrPort("198.51.100.1:4000"), id.Key("asker"), func(req *wire.Message, _ netip.AddrPort) *wire.Message {
		if req.Type == wire.Nodes {
			got = append(got, req.Contacts...)
		}
		return nil
	})
	sendRaw(t, asker, srv.Addr(), wire.Message{Type: wire.FindNode, TxID: 1, Target: target})
	tn.clk.RunFor(time.Second)
	if len(got) != 2 || got[0].Addr.Addr().IsLoopback() || got[1].Addr.Addr().IsLoopback() {
		t.Fatalf("a public requester was told %v; want the two public contacts", got)
	}
}

func TestCutTextKeepsWholeUTF8Sequences(t *testing.T) {
	for _, c := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"}, {"abc", 2, "ab"}, {"abc", 0, ""}, {"abc", -3, ""},
		{"café", 4, "caf"}, {"café", 5, "café"}, {"日本", 4, "日"}, {"日本", 2, ""},
	} {
		if got := string(cutText([]byte(c.in), c.n)); got != c.want {
			t.Errorf("cutText(%q, %d) = %q, want %q", c.in, c.n, got, c.want)
		}
	}
}

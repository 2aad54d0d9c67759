package dht

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/udp"
	"github.com/dhtkit/dht/wire"
)

func canListenIPv6(t *testing.T) {
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("this machine cannot bind [::1]: %v", err)
	}
	c.Close()
}

// A node listening on 127.0.0.1 and [::1] joins an IPv4-only node and an
// IPv6-only node into one network: it hands each the other's contact, whose
// address family the receiver cannot reach, and still relays their values.
func TestDualStackNodeBridgesIPv4AndIPv6(t *testing.T) {
	canListenIPv6(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dual := loopbackNode(t, func(c *Config) { c.Listen = []string{"127.0.0.1:0", "[::1]:0"} })
	v4 := loopbackNode(t, nil)
	v6 := loopbackNode(t, func(c *Config) { c.Listen = []string{"[::1]:0"} })
	var dualV6 string
	for _, a := range dual.Addrs() {
		if a.Addr().Is6() {
			dualV6 = a.String()
		}
	}
	if dualV6 == "" {
		t.Fatalf("dual-stack node has no IPv6 address: %v", dual.Addrs())
	}
	if err := v4.Bootstrap(ctx, dual.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if err := v6.Bootstrap(ctx, dualV6); err != nil {
		t.Fatal(err)
	}
	if _, err := v4.Put(ctx, Key("from v4"), []byte("hello over IPv4"), WithTTL(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, err := v6.Get(ctx, Key("from v4"))
	if err != nil || len(got.Values) != 1 || string(got.Values[0].Data) != "hello over IPv4" {
		t.Fatalf("IPv6 node's get: %+v, %v", got, err)
	}
	// The dual-stack node knows both by their own families.
	fams := map[bool]bool{}
	for _, c := range dual.Contacts() {
		fams[c.Addr.Addr().Is4()] = true
	}
	if !fams[true] || !fams[false] {
		t.Fatalf("dual-stack node's table: %v", dual.Contacts())
	}
}

// A dual-stack node's own lookups reach peers of both families: the
// requests it starts while handling an answer of one family, to contacts of
// the other, leave through the socket of their family. Its sockets refuse
// nothing and every peer is asked.
func TestDualStackNodeLookupsAskPeersOfBothFamilies(t *testing.T) {
	canListenIPv6(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var socks []*udp.Transport
	for _, a := range []string{"127.0.0.1:0", "[::1]:0"} {
		tr, err := udp.Listen(udp.Config{Addr: a})
		if err != nil {
			t.Fatal(err)
		}
		socks = append(socks, tr)
	}
	g := transport.Multi(socks[0], socks[1]).(*transport.Group)
	dual := loopbackNode(t, func(c *Config) { c.Transport = g })
	v4Addr, v6Addr := socks[0].LocalAddr().String(), socks[1].LocalAddr().String()

	const perFamily = 6
	var peers []*Node
	for i := range 2 * perFamily {
		seed, listen := v4Addr, "127.0.0.1:0"
		if i%2 == 1 {
			seed, listen = v6Addr, "[::1]:0"
		}
		p := loopbackNode(t, func(c *Config) { c.Listen = []string{listen} })
		if err := p.Bootstrap(ctx, seed); err != nil {
			t.Fatalf("peer %d (%v): %v", i, p.Addr(), err)
		}
		peers = append(peers, p)
	}
	if n := len(dual.Contacts()); n != len(peers) {
		t.Fatalf("the dual-stack node knows %d contacts, want all %d peers: %v", n, len(peers), dual.Contacts())
	}
	findNode := wire.FindNode.String()
	before := make([]uint64, len(peers))
	for i, p := range peers {
		before[i] = p.Stats().Served[findNode]
	}
	// The only FIND_NODE requests from here on are the dual-stack node's.
	for i := range 5 {
		if _, err := dual.FindNode(ctx, Key(fmt.Sprint("target ", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range socks {
		if st := s.Stats(); st.SendErrors != 0 || st.SendDropped != 0 {
			t.Errorf("socket %v refused datagrams: %+v", s.LocalAddr(), st)
		}
	}
	if d := g.Dropped(); d != 0 {
		t.Errorf("the Group dropped %d datagrams for want of an endpoint", d)
	}
	for i, p := range peers {
		if p.Stats().Served[findNode] == before[i] {
			t.Errorf("peer %v was never asked", p.Addr())
		}
	}
}

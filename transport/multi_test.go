package transport_test

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
)

type seen struct {
	from, to netip.AddrPort
	data     string
}

func listen(t *testing.T, n *memnet.Network, addr string) *memnet.Endpoint {
	t.Helper()
	e, err := n.Listen(netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestMultiRoutesEachDatagramByAddressFamily(t *testing.T) {
	v := clock.NewVirtual(time.Unix(0, 0))
	n := memnet.New(memnet.Config{Clock: v})
	v4, v6 := listen(t, n, "10.0.0.1:4000"), listen(t, n, "[fd00::1]:4000")
	peer4, peer6 := listen(t, n, "10.0.0.2:4000"), listen(t, n, "[fd00::2]:4000")
	var log []seen
	record := func(e *memnet.Endpoint) transport.Handler {
		return transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
			log = append(log, seen{from, e.LocalAddr(), string(data)})
			if string(data) != "reply" {
				w.WriteTo([]byte("reply"), from)
			}
		})
	}
	peer4.Start(record(peer4))
	peer6.Start(record(peer6))

	m := transport.Multi(v4, v6)
	g := m.(*transport.Group)
	if got := g.LocalAddrs(); !slices.Equal(got, []netip.AddrPort{v4.LocalAddr(), v6.LocalAddr()}) {
		t.Fatalf("LocalAddrs() = %v", got)
	}
	if m.LocalAddr() != v4.LocalAddr() {
		t.Fatalf("LocalAddr() = %v, want the first endpoint's", m.LocalAddr())
	}
	var replies []seen
	if err := m.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, _ transport.Writer) {
		replies = append(replies, seen{from: from, data: string(data)})
	})); err != nil {
		t.Fatal(err)
	}
	err := m.Send([]transport.Packet{
		{Addr: peer4.LocalAddr(), Data: []byte("a")},
		{Addr: peer6.LocalAddr(), Data: []byte("b")},
		{Addr: netip.MustParseAddrPort("[::ffff:10.0.0.2]:4000"), Data: []byte("c")},
	})
	if err != nil {
		t.Fatal(err)
	}
	v.RunFor(time.Second)
	want := []seen{
		{v4.LocalAddr(), peer4.LocalAddr(), "a"},
		{v6.LocalAddr(), peer6.LocalAddr(), "b"},
		{v4.LocalAddr(), peer4.LocalAddr(), "c"},
	}
	slices.SortFunc(log, func(a, b seen) int { return int(a.data[0]) - int(b.data[0]) })
	if !slices.Equal(log[:3], want) {
		t.Fatalf("peers saw %+v, want %+v", log[:3], want)
	}
	// Replies come in through both endpoints to the one handler.
	if len(replies) != 3 {
		t.Fatalf("handler got %d replies, want 3 (from both endpoints)", len(replies))
	}

	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v6.Send(nil); !errors.Is(err, transport.ErrClosed) {
		t.Fatal("Close did not close every endpoint")
	}
	if err := m.Send([]transport.Packet{{Addr: peer4.LocalAddr(), Data: []byte("x")}}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
}

func TestMultiDropsDatagramsWithoutAMatchingFamily(t *testing.T) {
	v := clock.NewVirtual(time.Unix(0, 0))
	n := memnet.New(memnet.Config{Clock: v})
	a, b := listen(t, n, "10.0.0.1:4000"), listen(t, n, "10.0.0.2:4000")
	peer := listen(t, n, "10.0.0.3:4000")
	got := 0
	peer.Start(transport.HandlerFunc(func(_ []byte, from netip.AddrPort, _ transport.Writer) {
		got++
		if from != a.LocalAddr() {
			t.Errorf("sent from %v, want the first IPv4 endpoint %v", from, a.LocalAddr())
		}
	}))
	m := transport.Multi(a, b)
	m.Send([]transport.Packet{
		{Addr: netip.MustParseAddrPort("[fd00::9]:1"), Data: []byte("v6")},
		{Addr: peer.LocalAddr(), Data: []byte("v4")},
		{Addr: netip.AddrPort{}, Data: []byte("invalid")},
	})
	v.RunFor(time.Second)
	if got != 1 || m.(*transport.Group).Dropped() != 2 {
		t.Fatalf("delivered %d, dropped %d; want 1 and 2", got, m.(*transport.Group).Dropped())
	}
}

func TestMultiSplitsLargeMixedBatches(t *testing.T) {
	v := clock.NewVirtual(time.Unix(0, 0))
	n := memnet.New(memnet.Config{Clock: v})
	v4, v6 := listen(t, n, "10.0.0.1:4000"), listen(t, n, "[fd00::1]:4000")
	peer4, peer6 := listen(t, n, "10.0.0.2:4000"), listen(t, n, "[fd00::2]:4000")
	got4, got6 := 0, 0
	peer4.Start(transport.HandlerFunc(func([]byte, netip.AddrPort, transport.Writer) { got4++ }))
	peer6.Start(transport.HandlerFunc(func([]byte, netip.AddrPort, transport.Writer) { got6++ }))
	var pkts []transport.Packet
	for i := range 100 {
		to := peer4.LocalAddr()
		if i%3 == 0 {
			to = peer6.LocalAddr()
		}
		pkts = append(pkts, transport.Packet{Addr: to, Data: []byte{byte(i)}})
	}
	if err := transport.Multi(v4, v6).Send(pkts); err != nil {
		t.Fatal(err)
	}
	v.RunFor(time.Second)
	if got4 != 66 || got6 != 34 {
		t.Fatalf("delivered %d IPv4 and %d IPv6, want 66 and 34", got4, got6)
	}
}

func TestMultiSendsIPv4ThroughADualStackEndpoint(t *testing.T) {
	v := clock.NewVirtual(time.Unix(0, 0))
	n := memnet.New(memnet.Config{Clock: v})
	any6 := listen(t, n, "[::]:4000")
	peer := listen(t, n, "10.0.0.2:4000")
	got := 0
	peer.Start(transport.HandlerFunc(func([]byte, netip.AddrPort, transport.Writer) { got++ }))
	transport.Multi(any6).Send([]transport.Packet{{Addr: peer.LocalAddr(), Data: []byte("x")}})
	v.RunFor(time.Second)
	if got != 1 {
		t.Fatal("an IPv4 datagram was not sent through the [::] endpoint")
	}
}

package transport_test

import (
	"errors"
	"net/netip"
	"runtime/debug"
	"slices"
	"strings"
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

// A handler of a Group writes to the Writer its endpoint handed it: what
// that endpoint can send leaves through it (a reply leaves from the address
// the request came to), and the rest through the endpoint of the
// destination's family, as a request started while handling a datagram of
// the other family must.
func TestMultiHandlerWritesLeaveThroughAnEndpointOfTheDestinationsFamily(t *testing.T) {
	v := clock.NewVirtual(time.Unix(0, 0))
	n := memnet.New(memnet.Config{Clock: v})
	v4, v6 := listen(t, n, "10.0.0.1:4000"), listen(t, n, "[fd00::1]:4000")
	peer4, peer6 := listen(t, n, "10.0.0.2:4000"), listen(t, n, "[fd00::2]:4000")
	var log []seen
	record := func(e *memnet.Endpoint) transport.Handler {
		return transport.HandlerFunc(func(data []byte, from netip.AddrPort, _ transport.Writer) {
			log = append(log, seen{from, e.LocalAddr(), string(data)})
		})
	}
	peer4.Start(record(peer4))
	peer6.Start(record(peer6))
	g := transport.Multi(v4, v6).(*transport.Group)
	g.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
		w.WriteTo([]byte("reply to "+string(data)), from)
		w.WriteTo([]byte("v4 after "+string(data)), peer4.LocalAddr())
		w.WriteTo([]byte("v6 after "+string(data)), peer6.LocalAddr())
	}))
	peer6.Send([]transport.Packet{{Addr: v6.LocalAddr(), Data: []byte("six")}})
	peer4.Send([]transport.Packet{{Addr: v4.LocalAddr(), Data: []byte("four")}})
	v.RunFor(time.Second)
	want := []seen{
		{v4.LocalAddr(), peer4.LocalAddr(), "reply to four"},
		{v6.LocalAddr(), peer6.LocalAddr(), "reply to six"},
		{v4.LocalAddr(), peer4.LocalAddr(), "v4 after four"},
		{v4.LocalAddr(), peer4.LocalAddr(), "v4 after six"},
		{v6.LocalAddr(), peer6.LocalAddr(), "v6 after four"},
		{v6.LocalAddr(), peer6.LocalAddr(), "v6 after six"},
	}
	slices.SortFunc(log, func(a, b seen) int { return strings.Compare(a.data, b.data) })
	if !slices.Equal(log, want) {
		t.Fatalf("peers saw (from, at, data)\n%v\nwant\n%v", log, want)
	}
	if g.Dropped() != 0 {
		t.Fatalf("Dropped = %d", g.Dropped())
	}
}

// With two endpoints of one family, a reply still leaves from the one the
// request came to, not from the first of its family that Send would pick.
func TestMultiRepliesLeaveFromTheReceivingEndpoint(t *testing.T) {
	v := clock.NewVirtual(time.Unix(0, 0))
	n := memnet.New(memnet.Config{Clock: v})
	a, b := listen(t, n, "10.0.0.1:4000"), listen(t, n, "10.0.0.2:4000")
	peer := listen(t, n, "10.0.0.3:4000")
	var from netip.AddrPort
	peer.Start(transport.HandlerFunc(func(_ []byte, f netip.AddrPort, _ transport.Writer) { from = f }))
	transport.Multi(a, b).Start(echoHandler)
	peer.Send([]transport.Packet{{Addr: b.LocalAddr(), Data: []byte("x")}})
	v.RunFor(time.Second)
	if from != b.LocalAddr() {
		t.Fatalf("reply from %v, want %v, where the request went", from, b.LocalAddr())
	}
}

var echoHandler = transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
	w.WriteTo(data, from)
})

// fake is a Transport whose deliveries the test makes by hand.
type fake struct {
	addr    netip.AddrPort
	h       transport.Handler
	sent    []transport.Packet
	count   bool // Send only counts, in counted (so as not to allocate)
	counted int
}

func (f *fake) Start(h transport.Handler) error { f.h = h; return nil }
func (f *fake) LocalAddr() netip.AddrPort       { return f.addr }
func (f *fake) Close() error                    { return nil }
func (f *fake) Send(pkts []transport.Packet) error {
	if f.count {
		f.counted += len(pkts)
		return nil
	}
	for _, p := range pkts {
		f.sent = append(f.sent, transport.Packet{Addr: p.Addr, Data: slices.Clone(p.Data)})
	}
	return nil
}

// batchWriter is a BatchHandler that writes each datagram's data to the
// address in it, as a node starts requests while handling a batch.
type batchWriter struct{ single, batches int }

func (b *batchWriter) HandlePacket(data []byte, _ netip.AddrPort, w transport.Writer) {
	b.single++
	w.WriteTo(data, netip.MustParseAddrPort(string(data)))
}

func (b *batchWriter) HandleBatch(pkts []transport.Packet, w transport.Writer) {
	b.batches++
	for _, p := range pkts {
		w.WriteTo(p.Data, netip.MustParseAddrPort(string(p.Data)))
	}
}

func addrs(pkts []transport.Packet) []string {
	var out []string
	for _, p := range pkts {
		out = append(out, p.Addr.String())
	}
	return out
}

// A Group passes a BatchHandler on as one, and routes what it writes like
// a single datagram's writes.
func TestMultiRoutesTheWritesOfABatchHandler(t *testing.T) {
	f4 := &fake{addr: netip.MustParseAddrPort("10.0.0.1:4000")}
	f6 := &fake{addr: netip.MustParseAddrPort("[fd00::1]:4000")}
	h := &batchWriter{}
	g := transport.Multi(f4, f6).(*transport.Group)
	if err := g.Start(h); err != nil {
		t.Fatal(err)
	}
	bh, ok := f6.h.(transport.BatchHandler)
	if !ok {
		t.Fatal("the endpoints got a plain Handler for a BatchHandler")
	}
	to := []string{"10.0.0.9:1", "[fd00::9]:1", "[::ffff:10.0.0.8]:1", "[fd00::8]:1", "10.0.0.7:1"}
	var pkts []transport.Packet
	for _, a := range to {
		pkts = append(pkts, transport.Packet{Addr: netip.MustParseAddrPort("[fd00::2]:1"), Data: []byte(a)})
	}
	var w transport.Batch // f6's own Writer
	bh.HandleBatch(pkts, &w)
	if h.batches != 1 || h.single != 0 {
		t.Fatalf("%d batch calls and %d single ones, want the one batch", h.batches, h.single)
	}
	if got, want := addrs(w.Packets()), []string{"[fd00::9]:1", "[fd00::8]:1"}; !slices.Equal(got, want) {
		t.Fatalf("the IPv6 endpoint's Writer got %v, want %v", got, want)
	}
	if got, want := addrs(f4.sent), []string{"10.0.0.9:1", "[::ffff:10.0.0.8]:1", "10.0.0.7:1"}; !slices.Equal(got, want) {
		t.Fatalf("the IPv4 endpoint sent %v, want %v", got, want)
	}
	if len(f6.sent) != 0 {
		t.Fatalf("the IPv6 endpoint's Send got %v, want nothing (its Writer had them)", addrs(f6.sent))
	}
}

// A write to an address no endpoint serves is dropped and counted, like a
// Send to it.
func TestMultiCountsHandlerWritesNoEndpointServes(t *testing.T) {
	f4 := &fake{addr: netip.MustParseAddrPort("10.0.0.1:4000")}
	g := transport.Multi(f4).(*transport.Group)
	g.Start(transport.HandlerFunc(func(_ []byte, _ netip.AddrPort, w transport.Writer) {
		w.WriteTo([]byte("x"), netip.MustParseAddrPort("[fd00::9]:1"))
		w.WriteTo([]byte("y"), netip.AddrPort{})
	}))
	var w transport.Batch
	f4.h.HandlePacket([]byte("go"), netip.MustParseAddrPort("10.0.0.2:1"), &w)
	if w.Len() != 0 || len(f4.sent) != 0 || g.Dropped() != 2 {
		t.Fatalf("%d written, %d sent, %d dropped; want 0, 0, 2", w.Len(), len(f4.sent), g.Dropped())
	}
}

// raceEnabled reports whether the race detector is on; sync.Pool then
// drops items at random, so allocation counts mean nothing.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// Routing a handler's writes allocates nothing per datagram, whether they
// stay on the receiving endpoint or go to the other.
func TestMultiHandlerRoutingDoesNotAllocate(t *testing.T) {
	if raceEnabled() {
		t.Skip("the race detector makes sync.Pool drop items, so allocation counts mean nothing")
	}
	f4 := &fake{addr: netip.MustParseAddrPort("10.0.0.1:4000")}
	f6 := &fake{addr: netip.MustParseAddrPort("[fd00::1]:4000")}
	g := transport.Multi(f4, f6)
	data := make([]byte, 100)
	peer4, peer6 := netip.MustParseAddrPort("10.0.0.2:1"), netip.MustParseAddrPort("[fd00::2]:1")
	cross := false
	g.Start(transport.HandlerFunc(func(_ []byte, from netip.AddrPort, w transport.Writer) {
		w.WriteTo(data, from)
		if cross {
			w.WriteTo(data, peer4)
		}
	}))
	var w transport.Batch
	f4.count, f6.count = true, true
	for _, c := range []bool{false, true} {
		cross = c
		call := func() {
			f6.h.HandlePacket(data, peer6, &w)
			w.Reset()
		}
		call() // warm up: the Batches grow their buffers once
		if allocs := testing.AllocsPerRun(100, call); allocs > 0 {
			t.Errorf("%.2f allocations per datagram (cross-family write: %v), want 0", allocs, c)
		}
	}
	if f4.counted != 102 || f6.counted != 0 {
		t.Fatalf("the endpoints sent %d and %d, want the 102 cross-family writes through the IPv4 one", f4.counted, f6.counted)
	}
}

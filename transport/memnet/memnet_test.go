package memnet

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/transport"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// arrival is one handler call as a test saw it.
type arrival struct {
	at   time.Duration // virtual time since epoch
	from netip.AddrPort
	to   netip.AddrPort
	data string
}

// logger records every delivery to the endpoints it is started on.
type logger struct {
	v   *clock.Virtual
	mu  sync.Mutex
	log []arrival
}

func (l *logger) start(t *testing.T, e *Endpoint) {
	t.Helper()
	err := e.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, _ transport.Writer) {
		l.mu.Lock()
		l.log = append(l.log, arrival{at: l.v.Now().Sub(epoch), from: from, to: e.LocalAddr(), data: string(data)})
		l.mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
}

func send(t *testing.T, e *Endpoint, to netip.AddrPort, data string) {
	t.Helper()
	if err := e.Send([]transport.Packet{{Addr: to, Data: []byte(data)}}); err != nil {
		t.Fatalf("Send: %v", err)
	}
}

func TestDeliveryArrivesExactlyAfterTheFixedLatency(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v, Latency: Fixed(30 * time.Millisecond)})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	l := &logger{v: v}
	l.start(t, b)
	v.RunFor(5 * time.Millisecond)
	send(t, a, b.LocalAddr(), "hello")
	v.RunUntil(epoch.Add(35*time.Millisecond - 1))
	if len(l.log) != 0 {
		t.Fatalf("delivered early: %+v", l.log)
	}
	v.RunUntil(epoch.Add(35 * time.Millisecond))
	want := []arrival{{at: 35 * time.Millisecond, from: a.LocalAddr(), to: b.LocalAddr(), data: "hello"}}
	if !slices.Equal(l.log, want) {
		t.Fatalf("got %+v, want %+v", l.log, want)
	}
}

func TestZeroLatencyStillGoesThroughTheClock(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	l := &logger{v: v}
	l.start(t, b)
	send(t, a, b.LocalAddr(), "x")
	if len(l.log) != 0 {
		t.Fatal("Send delivered synchronously")
	}
	v.RunFor(0)
	if len(l.log) != 1 || l.log[0].at != 0 {
		t.Fatalf("got %+v, want one delivery at time 0", l.log)
	}
}

func TestHandlerRepliesAreSentFromTheEndpoint(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v, Latency: Fixed(10 * time.Millisecond)})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	if err := b.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
		w.WriteTo(append([]byte("re:"), data...), from)
		w.WriteTo([]byte("second"), from)
	})); err != nil {
		t.Fatal(err)
	}
	l := &logger{v: v}
	l.start(t, a)
	send(t, a, b.LocalAddr(), "ping")
	v.RunFor(time.Second)
	want := []arrival{
		{at: 20 * time.Millisecond, from: b.LocalAddr(), to: a.LocalAddr(), data: "re:ping"},
		{at: 20 * time.Millisecond, from: b.LocalAddr(), to: a.LocalAddr(), data: "second"},
	}
	if !slices.Equal(l.log, want) {
		t.Fatalf("got %+v, want %+v", l.log, want)
	}
}

func TestSendCopiesTheDatagram(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	l := &logger{v: v}
	l.start(t, b)
	buf := []byte("original")
	if err := a.Send([]transport.Packet{{Addr: b.LocalAddr(), Data: buf}}); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXX")
	v.RunFor(time.Second)
	if len(l.log) != 1 || l.log[0].data != "original" {
		t.Fatalf("got %+v, want the datagram as it was at Send", l.log)
	}
}

func TestEveryDatagramSizeArrivesIntact(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	var got [][]byte
	b.Start(transport.HandlerFunc(func(data []byte, _ netip.AddrPort, _ transport.Writer) {
		got = append(got, bytes.Clone(data))
	}))
	var want [][]byte
	for _, size := range []int{0, 1, 255, 256, 257, 1024, 1025, transport.MaxDatagram} {
		d := make([]byte, size)
		for i := range d {
			d[i] = byte(i*7 + size)
		}
		want = append(want, d)
		if err := a.Send([]transport.Packet{{Addr: b.LocalAddr(), Data: d}}); err != nil {
			t.Fatal(err)
		}
	}
	v.RunFor(time.Second)
	if !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatal("datagrams changed in transit")
	}
}

func TestOversizeDatagramsAreRefusedAndCounted(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	l := &logger{v: v}
	l.start(t, b)
	big := make([]byte, transport.MaxDatagram+1)
	a.Send([]transport.Packet{{Addr: b.LocalAddr(), Data: big}, {Addr: b.LocalAddr(), Data: []byte("ok")}})
	v.RunFor(time.Second)
	if s := n.Stats(); s.Oversize != 1 || s.Sent != 1 || s.Delivered != 1 {
		t.Fatalf("stats %+v, want 1 oversize, 1 sent, 1 delivered", s)
	}
}

func TestLossRateMatchesTheConfiguredProbability(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v, Seed: 42, Loss: 0.1})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	var got atomic.Int64
	b.Start(transport.HandlerFunc(func([]byte, netip.AddrPort, transport.Writer) { got.Add(1) }))
	const total = 20000
	pkts := make([]transport.Packet, 100)
	for i := range pkts {
		pkts[i] = transport.Packet{Addr: b.LocalAddr(), Data: []byte{byte(i)}}
	}
	for range total / len(pkts) {
		a.Send(pkts)
	}
	v.RunFor(time.Second)
	s := n.Stats()
	// Binomial(20000, 0.1) has a standard deviation of about 42; allow 4.
	if s.Lost < 1830 || s.Lost > 2170 {
		t.Fatalf("lost %d of %d, want about 2000", s.Lost, total)
	}
	if s.Lost+s.Delivered != total || uint64(got.Load()) != s.Delivered {
		t.Fatalf("lost %d + delivered %d != %d sent (handler saw %d)", s.Lost, s.Delivered, total, got.Load())
	}
}

// scenario runs a chatty workload with random delay, loss and duplication,
// and returns its delivery log.
func scenario(t *testing.T, seed uint64) []arrival {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v, Seed: seed, Latency: Uniform(time.Millisecond, 50*time.Millisecond), Loss: 0.1, Duplicate: 0.1})
	l := &logger{v: v}
	eps := make([]*Endpoint, 10)
	for i := range eps {
		eps[i] = n.NewEndpoint()
		e := eps[i]
		e.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
			l.log = append(l.log, arrival{at: v.Now().Sub(epoch), from: from, to: e.LocalAddr(), data: string(data)})
			if len(data) < 6 {
				w.WriteTo(append(data, '+'), from)
			}
		}))
	}
	for i, e := range eps {
		for j, f := range eps {
			if i != j {
				send(t, e, f.LocalAddr(), fmt.Sprint(i, j))
			}
		}
	}
	v.RunFor(time.Minute)
	return l.log
}

func TestSameSeedGivesTheSameDeliveries(t *testing.T) {
	a, b := scenario(t, 1), scenario(t, 1)
	if len(a) < 300 {
		t.Fatalf("only %d deliveries; the scenario proves little", len(a))
	}
	if !slices.Equal(a, b) {
		t.Fatal("two runs with the same seed delivered differently")
	}
	if c := scenario(t, 2); slices.Equal(a, c) {
		t.Fatal("a different seed delivered identically; the seed is not used")
	}
}

func TestStatsAccountForEveryDatagram(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v, Seed: 5, Latency: Uniform(0, 10*time.Millisecond), Loss: 0.2, Duplicate: 0.2, MaxInFlight: 30})
	eps := make([]*Endpoint, 6)
	for i := range eps {
		eps[i] = n.NewEndpoint()
		eps[i].Start(echo)
	}
	eps[5].Close() // some traffic goes to a closed endpoint
	n.Partition([]netip.AddrPort{eps[0].LocalAddr()})
	check := func() {
		t.Helper()
		s := n.Stats()
		in := s.Sent + s.Duplicated
		out := s.Delivered + s.Lost + s.Partitioned + s.Unreachable + s.Closed + s.Overflow + uint64(n.InFlight())
		if in != out {
			t.Fatalf("sent %d + duplicated %d != %d accounted for: %+v, %d in flight", s.Sent, s.Duplicated, out, s, n.InFlight())
		}
	}
	r := rand.New(rand.NewPCG(1, 1))
	for range 200 {
		from := eps[r.IntN(5)]
		var pkts []transport.Packet
		for range 5 {
			to := eps[r.IntN(6)].LocalAddr()
			if r.IntN(10) == 0 {
				to = ap("192.0.2.7:1")
			}
			pkts = append(pkts, transport.Packet{Addr: to, Data: []byte("x")})
		}
		from.Send(pkts)
		check()
		v.RunFor(time.Duration(r.IntN(3)) * time.Millisecond)
		check()
	}
	// Echoes bounce forever; stop them and let the rest drain.
	for _, e := range eps {
		e.Close()
	}
	v.RunFor(time.Minute)
	check()
	s := n.Stats()
	for name, c := range map[string]uint64{"Lost": s.Lost, "Partitioned": s.Partitioned, "Unreachable": s.Unreachable, "Closed": s.Closed, "Overflow": s.Overflow, "Duplicated": s.Duplicated} {
		if c == 0 {
			t.Errorf("the workload never exercised %s", name)
		}
	}
}

func TestPartitionDropsTrafficBetweenGroupsUntilHeal(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v})
	a, b, c, d, e := n.NewEndpoint(), n.NewEndpoint(), n.NewEndpoint(), n.NewEndpoint(), n.NewEndpoint()
	eps := map[string]*Endpoint{"a": a, "b": b, "c": c, "d": d, "e": e}
	l := &logger{v: v}
	for _, ep := range eps {
		l.start(t, ep)
	}
	// {a, b} | {c} | the rest: {d, e}.
	n.Partition([]netip.AddrPort{a.LocalAddr(), b.LocalAddr()}, []netip.AddrPort{c.LocalAddr()})
	tests := []struct {
		from, to string
		healed   bool
		want     bool
	}{
		{"a", "b", false, true},
		{"b", "a", false, true},
		{"a", "c", false, false},
		{"c", "b", false, false},
		{"a", "d", false, false},
		{"d", "c", false, false},
		{"d", "e", false, true},
		{"c", "c", false, true},
		{"a", "c", true, true},
		{"d", "b", true, true},
	}
	healed := false
	for _, tt := range tests {
		if tt.healed && !healed {
			n.Heal()
			healed = true
		}
		before := len(l.log)
		send(t, eps[tt.from], eps[tt.to].LocalAddr(), tt.from+tt.to)
		v.RunFor(time.Second)
		if got := len(l.log) > before; got != tt.want {
			t.Errorf("%s -> %s (healed=%v): delivered=%v, want %v", tt.from, tt.to, tt.healed, got, tt.want)
		}
	}
	if s := n.Stats(); s.Partitioned != 4 {
		t.Fatalf("Partitioned = %d, want 4", s.Partitioned)
	}
}

func TestPartitionAppliesToEndpointsThatListenLater(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v})
	a := n.NewEndpoint()
	later := ap("10.0.0.1:1")
	n.Partition([]netip.AddrPort{later})
	b, err := n.Listen(later)
	if err != nil {
		t.Fatal(err)
	}
	l := &logger{v: v}
	l.start(t, b)
	send(t, a, later, "x")
	v.RunFor(time.Second)
	if len(l.log) != 0 || n.Stats().Partitioned != 1 {
		t.Fatalf("delivered %d, stats %+v; want the datagram partitioned", len(l.log), n.Stats())
	}
}

func TestDuplicatesAreDeliveredTwiceAndReordered(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v, Seed: 3, Duplicate: 1, Latency: Uniform(0, 100*time.Millisecond)})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	l := &logger{v: v}
	l.start(t, b)
	const count = 50
	for i := range count {
		send(t, a, b.LocalAddr(), fmt.Sprint(i))
	}
	v.RunFor(time.Second)
	seen := map[string]int{}
	for _, x := range l.log {
		seen[x.data]++
	}
	for i := range count {
		if seen[fmt.Sprint(i)] != 2 {
			t.Fatalf("datagram %d delivered %d times, want 2", i, seen[fmt.Sprint(i)])
		}
	}
	if s := n.Stats(); s.Duplicated != count || s.Delivered != 2*count {
		t.Fatalf("stats %+v, want %d duplicated and %d delivered", s, count, 2*count)
	}
	inOrder := slices.IsSortedFunc(l.log, func(x, y arrival) int {
		var i, j int
		fmt.Sscan(x.data, &i)
		fmt.Sscan(y.data, &j)
		return i - j
	})
	if inOrder {
		t.Fatal("random delays never reordered the datagrams")
	}
}

func TestClosedEndpoint(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v, Latency: Fixed(time.Second)})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	l := &logger{v: v}
	l.start(t, b)
	send(t, a, b.LocalAddr(), "in flight")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	v.RunFor(time.Minute)
	if len(l.log) != 0 {
		t.Fatalf("closed endpoint got %+v", l.log)
	}
	if s := n.Stats(); s.Closed != 1 {
		t.Fatalf("Closed = %d, want 1", s.Closed)
	}
	if err := b.Send([]transport.Packet{{Addr: a.LocalAddr(), Data: []byte("x")}}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	if err := b.Start(transport.HandlerFunc(func([]byte, netip.AddrPort, transport.Writer) {})); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
	// The address is free again, and the new endpoint gets new traffic only.
	c, err := n.Listen(b.LocalAddr())
	if err != nil {
		t.Fatalf("Listen on a closed endpoint's address: %v", err)
	}
	l.start(t, c)
	send(t, a, c.LocalAddr(), "new")
	v.RunFor(time.Minute)
	if len(l.log) != 1 || l.log[0].data != "new" {
		t.Fatalf("got %+v, want only the new datagram", l.log)
	}
}

func TestDatagramsBeforeStartAreDropped(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	send(t, a, b.LocalAddr(), "early")
	v.RunFor(time.Second)
	l := &logger{v: v}
	l.start(t, b)
	v.RunFor(time.Second)
	if len(l.log) != 0 || n.Stats().Closed != 1 {
		t.Fatalf("got %+v, stats %+v; want the early datagram dropped and counted", l.log, n.Stats())
	}
	if err := b.Start(transport.HandlerFunc(func([]byte, netip.AddrPort, transport.Writer) {})); err == nil {
		t.Fatal("second Start succeeded")
	}
}

func TestUnknownDestinationIsCounted(t *testing.T) {
	n := New(Config{Clock: clock.NewVirtual(epoch)})
	a := n.NewEndpoint()
	send(t, a, ap("192.0.2.1:9"), "x")
	if s := n.Stats(); s.Unreachable != 1 {
		t.Fatalf("Unreachable = %d, want 1", s.Unreachable)
	}
}

func TestIPv4MappedAddressesReachIPv4Endpoints(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v})
	a := n.NewEndpoint()
	b, err := n.Listen(ap("[::ffff:10.1.2.3]:7"))
	if err != nil {
		t.Fatal(err)
	}
	if b.LocalAddr() != ap("10.1.2.3:7") {
		t.Fatalf("LocalAddr() = %v, want the unmapped address", b.LocalAddr())
	}
	l := &logger{v: v}
	l.start(t, b)
	send(t, a, ap("[::ffff:10.1.2.3]:7"), "x")
	send(t, a, ap("10.1.2.3:7"), "y")
	v.RunFor(time.Second)
	if len(l.log) != 2 {
		t.Fatalf("got %d deliveries, want 2", len(l.log))
	}
}

func TestListenRefusesBadOrTakenAddresses(t *testing.T) {
	n := New(Config{Clock: clock.NewVirtual(epoch)})
	if _, err := n.Listen(ap("10.0.0.1:5")); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []netip.AddrPort{ap("10.0.0.1:5"), ap("[::ffff:10.0.0.1]:5"), ap("10.0.0.1:0"), {}} {
		if _, err := n.Listen(addr); err == nil {
			t.Errorf("Listen(%v) succeeded", addr)
		}
	}
}

func TestNewEndpointHandsOutDistinctAddressesInOrder(t *testing.T) {
	n := New(Config{Clock: clock.NewVirtual(epoch)})
	if _, err := n.Listen(ap("127.0.0.2:4000")); err != nil {
		t.Fatal(err)
	}
	var got []netip.AddrPort
	for range 256 {
		got = append(got, n.NewEndpoint().LocalAddr())
	}
	want := []netip.AddrPort{ap("127.0.0.1:4000"), ap("127.0.0.3:4000")}
	if !slices.Equal(got[:2], want) {
		t.Fatalf("first addresses %v, want %v (127.0.0.2 is taken)", got[:2], want)
	}
	if got[253] != ap("127.0.1.1:4000") {
		t.Fatalf("address 254 is %v, want 127.0.1.1:4000 (host parts 0 and 255 skipped)", got[253])
	}
	// Scale: 200,000 endpoints, all distinct and in 127.0.0.0/8.
	seen := make(map[netip.AddrPort]bool, 200_000)
	for _, a := range got {
		seen[a] = true
	}
	for len(seen) < 200_000 {
		a := n.NewEndpoint().LocalAddr()
		if seen[a] || !netip.MustParsePrefix("127.0.0.0/8").Contains(a.Addr()) {
			t.Fatalf("NewEndpoint returned %v twice or outside 127/8", a)
		}
		seen[a] = true
	}
}

func TestMaxInFlightDropsTheExcess(t *testing.T) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v, MaxInFlight: 10, Latency: Fixed(time.Second)})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	l := &logger{v: v}
	l.start(t, b)
	for i := range 15 {
		send(t, a, b.LocalAddr(), fmt.Sprint(i))
	}
	if n.InFlight() != 10 {
		t.Fatalf("InFlight() = %d, want 10", n.InFlight())
	}
	v.RunFor(time.Minute)
	if s := n.Stats(); s.Overflow != 5 || s.Delivered != 10 || n.InFlight() != 0 {
		t.Fatalf("stats %+v, in flight %d; want 5 overflow, 10 delivered, 0 in flight", s, n.InFlight())
	}
}

func TestCloseWaitsForTheHandlerInProgress(t *testing.T) {
	n := New(Config{Clock: clock.Real{}})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	entered := make(chan struct{})
	release := make(chan struct{})
	var returned atomic.Bool
	b.Start(transport.HandlerFunc(func([]byte, netip.AddrPort, transport.Writer) {
		close(entered)
		<-release
		returned.Store(true)
	}))
	b.closeWaitHook = func() { close(release) } // release only once Close waits
	send(t, a, b.LocalAddr(), "x")
	<-entered
	b.Close()
	if !returned.Load() {
		t.Fatal("Close returned while the handler was still running")
	}
}

func TestCloseFromInsideAHandlerDoesNotDeadlock(t *testing.T) {
	for _, clk := range []struct {
		name string
		c    clock.Clock
	}{{"virtual", clock.NewVirtual(epoch)}, {"real", clock.Real{}}} {
		t.Run(clk.name, func(t *testing.T) {
			n := New(Config{Clock: clk.c})
			a, b := n.NewEndpoint(), n.NewEndpoint()
			done := make(chan error, 1)
			b.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
				w.WriteTo([]byte("bye"), from) // dropped: b closes first
				err := b.Close()
				if err == nil {
					err = a.Close() // another endpoint, also from inside
				}
				done <- err
			}))
			send(t, a, b.LocalAddr(), "x")
			if v, ok := clk.c.(*clock.Virtual); ok {
				v.RunFor(time.Second)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Close from a handler deadlocked")
			}
			if err := a.Send(nil); !errors.Is(err, transport.ErrClosed) {
				t.Fatalf("a.Send after Close = %v", err)
			}
		})
	}
}

func TestRealClockDeliversConcurrently(t *testing.T) {
	n := New(Config{Clock: clock.Real{}, Latency: Uniform(0, time.Millisecond), Seed: 1})
	server := n.NewEndpoint()
	server.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
		w.WriteTo(data, from)
	}))
	const clients, each = 8, 50
	var wg sync.WaitGroup
	for range clients {
		c := n.NewEndpoint()
		got := make(chan struct{}, each)
		c.Start(transport.HandlerFunc(func([]byte, netip.AddrPort, transport.Writer) { got <- struct{}{} }))
		wg.Go(func() {
			for i := range each {
				c.Send([]transport.Packet{{Addr: server.LocalAddr(), Data: []byte{byte(i)}}})
			}
			for range each {
				<-got
			}
			c.Close()
		})
	}
	wg.Wait()
	server.Close()
	if s := n.Stats(); s.Delivered != 2*clients*each {
		t.Fatalf("delivered %d, want %d", s.Delivered, 2*clients*each)
	}
}

func TestLatencyModels(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	a, b := ap("127.0.0.1:1"), ap("127.0.0.2:1")
	if d := Fixed(7*time.Millisecond).Delay(a, b, r); d != 7*time.Millisecond {
		t.Fatalf("Fixed gave %v", d)
	}
	u := Uniform(10*time.Millisecond, 20*time.Millisecond)
	lo, hi := time.Hour, time.Duration(0)
	for range 10000 {
		d := u.Delay(a, b, r)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 10*time.Millisecond || hi > 20*time.Millisecond || hi-lo < 9*time.Millisecond {
		t.Fatalf("Uniform(10ms, 20ms) ranged over [%v, %v]", lo, hi)
	}
	if d := Uniform(5, 5).Delay(a, b, r); d != 5 {
		t.Fatalf("Uniform(5, 5) gave %v", d)
	}
}

func TestLongTailPairDelaysAreStableSymmetricAndJittered(t *testing.T) {
	lt := LongTail(50*time.Millisecond, 0.8, 9).(*longTail)
	r := rand.New(rand.NewPCG(2, 2))
	for i := range 100 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(i)}), 4000)
		b := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 1, byte(i)}), 4000)
		base := lt.base(a, b)
		if lt.base(b, a) != base || lt.base(a, b) != base {
			t.Fatalf("pair %v-%v: base delay not stable and symmetric", a, b)
		}
		for range 20 {
			d := lt.Delay(a, b, r)
			if d < base || float64(d) > float64(base)*(1+JitterFraction)+1 {
				t.Fatalf("Delay %v outside [%v, %v*(1+%v)]", d, base, base, JitterFraction)
			}
		}
	}
	if other := LongTail(50*time.Millisecond, 0.8, 10).(*longTail); other.base(ap("1.1.1.1:1"), ap("2.2.2.2:2")) == lt.base(ap("1.1.1.1:1"), ap("2.2.2.2:2")) {
		t.Fatal("the seed does not change the pair delay")
	}
}

func TestLongTailHasTheConfiguredMedianAndSpread(t *testing.T) {
	const median, sigma = 80 * time.Millisecond, 0.7
	lt := LongTail(median, sigma, 1).(*longTail)
	var logs []float64
	for i := range 20000 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), 4000)
		b := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 2, byte(i), byte(i >> 8)}), 4001)
		logs = append(logs, math.Log(float64(lt.base(a, b))))
	}
	slices.Sort(logs)
	gotMedian := time.Duration(math.Exp(logs[len(logs)/2]))
	if gotMedian < median*95/100 || gotMedian > median*105/100 {
		t.Fatalf("median pair delay %v, want %v within 5%%", gotMedian, median)
	}
	// The 84th percentile of a log-normal is one sigma above the median.
	gotSigma := logs[len(logs)*841/1000] - logs[len(logs)/2]
	if math.Abs(gotSigma-sigma) > 0.05 {
		t.Fatalf("sigma %.3f, want %.3f", gotSigma, sigma)
	}
}

// echo is a handler that sends every datagram back.
var echo = transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
	w.WriteTo(data, from)
})

func TestPingPongDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items on purpose")
	}
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v, Latency: Fixed(time.Millisecond), Loss: 0.01, Duplicate: 0.01, Seed: 1})
	a, b := n.NewEndpoint(), n.NewEndpoint()
	a.Start(echo)
	b.Start(echo)
	for range 8 {
		send(t, a, b.LocalAddr(), "ping pong ping pong")
	}
	v.RunFor(time.Second) // warm the pools
	for range 8 {
		send(t, a, b.LocalAddr(), "ping pong ping pong")
	}
	before := n.Stats().Delivered
	allocs := testing.AllocsPerRun(100, func() { v.RunFor(10 * time.Millisecond) })
	perDatagram := allocs * 100 / float64(n.Stats().Delivered-before)
	// sync.Pool may drop its contents at a GC, so a rare refill is allowed.
	if perDatagram > 0.05 {
		t.Fatalf("%.3f allocations per delivered datagram, want about 0", perDatagram)
	}
}

// BenchmarkPingPong bounces datagrams between two endpoints through a
// virtual clock; one op is one delivered datagram.
func BenchmarkPingPong(b *testing.B) {
	for _, size := range []int{100, 1000} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			v := clock.NewVirtual(epoch)
			n := New(Config{Clock: v, Latency: Uniform(time.Millisecond, 2*time.Millisecond), Seed: 1})
			x, y := n.NewEndpoint(), n.NewEndpoint()
			x.Start(echo)
			y.Start(echo)
			data := make([]byte, size)
			for range 64 { // 64 balls in the air
				x.Send([]transport.Packet{{Addr: y.LocalAddr(), Data: data}})
			}
			b.ReportAllocs()
			for b.Loop() {
				v.Step()
			}
		})
	}
}

// BenchmarkFanOut has one endpoint query 1,000 peers, which answer; one op is
// one delivered datagram.
func BenchmarkFanOut(b *testing.B) {
	v := clock.NewVirtual(epoch)
	n := New(Config{Clock: v, Latency: LongTail(40*time.Millisecond, 0.6, 1), Loss: 0.01, Seed: 1})
	hub := n.NewEndpoint()
	peers := make([]transport.Packet, 1000)
	data := make([]byte, 200)
	for i := range peers {
		p := n.NewEndpoint()
		p.Start(echo)
		peers[i] = transport.Packet{Addr: p.LocalAddr(), Data: data}
	}
	answers := 0
	hub.Start(transport.HandlerFunc(func([]byte, netip.AddrPort, transport.Writer) {
		answers++
		if answers%len(peers) == 0 { // roughly one round answered: next round
			hub.Send(peers)
		}
	}))
	hub.Send(peers)
	b.ReportAllocs()
	for b.Loop() {
		if !v.Step() {
			hub.Send(peers)
		}
	}
}

package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/dhtkit/dht/transport"
)

// wait is how long a test waits for a datagram on loopback before it fails:
// far beyond any real delay, so only a lost or never-sent datagram hits it.
const wait = 10 * time.Second

func listen(t testing.TB, cfg Config) *Transport {
	t.Helper()
	tr, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// inbox is a handler that passes copies of datagrams to a channel.
type inbox chan transport.Packet

func (in inbox) HandlePacket(data []byte, from netip.AddrPort, _ transport.Writer) {
	in <- transport.Packet{Addr: from, Data: append([]byte(nil), data...)}
}

func (in inbox) next(t testing.TB) transport.Packet {
	t.Helper()
	select {
	case p := <-in:
		return p
	case <-time.After(wait):
		t.Fatal("no datagram arrived")
		return transport.Packet{}
	}
}

var echo = transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
	w.WriteTo(data, from)
})

// exchange starts server with handler h and a client on host, sends count
// numbered datagrams from the client to the server, and returns the client
// and the count replies it received.
func exchange(t *testing.T, server *Transport, h transport.Handler, host string, count int) (*Transport, []transport.Packet) {
	t.Helper()
	client := listen(t, Config{Addr: net.JoinHostPort(host, "0")})
	if err := server.Start(h); err != nil {
		t.Fatal(err)
	}
	in := make(inbox, count)
	if err := client.Start(in); err != nil {
		t.Fatal(err)
	}
	pkts := make([]transport.Packet, count)
	for i := range pkts {
		pkts[i] = transport.Packet{Addr: server.LocalAddr(), Data: []byte(fmt.Sprint("datagram ", i))}
	}
	if err := client.Send(pkts); err != nil {
		t.Fatal(err)
	}
	replies := make([]transport.Packet, count)
	for i := range replies {
		replies[i] = in.next(t)
	}
	return client, replies
}

func testEcho(t *testing.T, host string) {
	server := listen(t, Config{Addr: net.JoinHostPort(host, "0")})
	// More datagrams than one batch, to cross batch boundaries both ways.
	const count = 40
	client, replies := exchange(t, server, echo, host, count)
	seen := map[string]bool{}
	for _, p := range replies {
		if p.Addr != server.LocalAddr() {
			t.Fatalf("reply from %v, want %v", p.Addr, server.LocalAddr())
		}
		seen[string(p.Data)] = true
	}
	if len(seen) != count {
		t.Fatalf("%d distinct replies, want %d", len(seen), count)
	}
	// The readers count a batch after handling it and its replies after
	// sending them, so the counts are final only once they have ended.
	for _, tr := range []*Transport{client, server} {
		tr.Close()
		tr.Wait()
	}
	if s := client.Stats(); s.Sent != count || s.Received != count {
		t.Fatalf("client stats %+v, want %d sent and received", s, count)
	}
	if s := server.Stats(); s.Sent != count || s.Received != count {
		t.Fatalf("server stats %+v, want %d sent and received", s, count)
	}
}

func TestEchoOverIPv4Loopback(t *testing.T) { testEcho(t, "127.0.0.1") }

func TestEchoOverIPv6Loopback(t *testing.T) {
	c, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skipf("cannot bind [::1] on this machine (%v): no IPv6 loopback", err)
	}
	c.Close()
	testEcho(t, "::1")
}

func TestLocalAddrHasTheActualPort(t *testing.T) {
	tr := listen(t, Config{Addr: "127.0.0.1:0"})
	a := tr.LocalAddr()
	if a.Addr() != netip.MustParseAddr("127.0.0.1") || a.Port() == 0 {
		t.Fatalf("LocalAddr() = %v, want 127.0.0.1 with a real port", a)
	}
}

func TestDualStackSocketTalksToIPv4(t *testing.T) {
	server, err := Listen(Config{Addr: "[::]:0"})
	if err != nil {
		t.Skipf("no dual-stack socket here: %v", err)
	}
	defer server.Close()
	server.Start(echo)
	client := listen(t, Config{Addr: "127.0.0.1:0"})
	in := make(inbox, 1)
	client.Start(in)
	to := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), server.LocalAddr().Port())
	client.Send([]transport.Packet{{Addr: to, Data: []byte("hi")}})
	p := in.next(t)
	if p.Addr != to {
		t.Fatalf("reply from %v, want %v (unmapped)", p.Addr, to)
	}
}

func TestSocketsShareThePortAndAllReceive(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SO_REUSEPORT load spreading is used on Linux only")
	}
	server := listen(t, Config{Addr: "127.0.0.1:0", Sockets: 2})
	if len(server.socks) != 2 {
		t.Fatalf("%d sockets, want 2", len(server.socks))
	}
	server.Start(echo)
	// The kernel picks a socket by hashing each flow's addresses, so send
	// from new source ports until both sockets have had a datagram. The
	// chance that 64 flows all hash to one socket is 2^-63.
	in := make(inbox, 1)
	for i := 0; i < 64 && (server.socks[0].received.Load() == 0 || server.socks[1].received.Load() == 0); i++ {
		client := listen(t, Config{Addr: "127.0.0.1:0"})
		client.Start(in)
		client.Send([]transport.Packet{{Addr: server.LocalAddr(), Data: []byte("x")}})
		if p := in.next(t); p.Addr != server.LocalAddr() {
			t.Fatalf("reply from %v, want the shared address %v", p.Addr, server.LocalAddr())
		}
		client.Close()
	}
	a, b := server.socks[0].received.Load(), server.socks[1].received.Load()
	if a == 0 || b == 0 {
		t.Fatalf("sockets received %d and %d datagrams; want both used", a, b)
	}
}

func TestOversizeDatagramsAreDroppedAndCounted(t *testing.T) {
	server := listen(t, Config{Addr: "127.0.0.1:0"})
	in := make(inbox, 10)
	server.Start(in)
	raw, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(server.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for _, size := range []int{transport.MaxDatagram + 1, 3000, transport.MaxDatagram} {
		if _, err := raw.Write(make([]byte, size)); err != nil {
			t.Fatal(err)
		}
	}
	if p := in.next(t); len(p.Data) != transport.MaxDatagram {
		t.Fatalf("got a %d-byte datagram, want only the %d-byte one", len(p.Data), transport.MaxDatagram)
	}
	if s := server.Stats(); s.Oversize != 2 {
		t.Fatalf("stats %+v, want 2 oversize", s)
	}
	// Sending one is refused too, and the rest of the batch still goes.
	client := listen(t, Config{Addr: "127.0.0.1:0"})
	client.Send([]transport.Packet{
		{Addr: server.LocalAddr(), Data: make([]byte, transport.MaxDatagram+1)},
		{Addr: server.LocalAddr(), Data: []byte("small")},
	})
	if p := in.next(t); string(p.Data) != "small" {
		t.Fatalf("got %q, want the small datagram", p.Data)
	}
	if s := client.Stats(); s.Oversize != 1 || s.Sent != 1 {
		t.Fatalf("client stats %+v, want 1 oversize and 1 sent", s)
	}
	server.Close()
	server.Wait() // a batch is counted after its handler calls
	if s := server.Stats(); s.Oversize != 2 || s.Received != 2 {
		t.Fatalf("server stats %+v, want 2 oversize and 2 received", s)
	}
}

func TestUnaddressableDatagramsAreSkipped(t *testing.T) {
	server := listen(t, Config{Addr: "127.0.0.1:0"})
	in := make(inbox, 10)
	server.Start(in)
	client := listen(t, Config{Addr: "127.0.0.1:0"})
	client.Send([]transport.Packet{
		{Addr: netip.MustParseAddrPort("[2001:db8::1]:9"), Data: []byte("v6 from a v4 socket")},
		{Addr: netip.AddrPort{}, Data: []byte("nowhere")},
		{Addr: server.LocalAddr(), Data: []byte("ok")},
	})
	if p := in.next(t); string(p.Data) != "ok" {
		t.Fatalf("got %q", p.Data)
	}
	if s := client.Stats(); s.SendErrors != 2 || s.Sent != 1 {
		t.Fatalf("stats %+v, want 2 send errors and 1 sent", s)
	}
}

// blocker is a handler whose first call signals entered and then holds
// until release is closed; later calls only count.
type blocker struct {
	entered, release chan struct{}
	calls            atomic.Int64
	returned         atomic.Bool
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}), release: make(chan struct{})}
}

func (b *blocker) HandlePacket([]byte, netip.AddrPort, transport.Writer) {
	if b.calls.Add(1) == 1 {
		close(b.entered)
		<-b.release
		b.returned.Store(true)
	}
}

// within runs f and fails the test if it has not returned by the deadline.
func within(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatalf("%s did not return", what)
	}
}

// Close cannot tell a handler calling it from another goroutine, so it does
// not wait for a handler call in progress; but once it returns no handler
// call starts, even for datagrams already received.
func TestCloseStartsNoHandlerCallAfterItReturns(t *testing.T) {
	server := listen(t, Config{Addr: "127.0.0.1:0"})
	h := newBlocker()
	server.Start(h)
	client := listen(t, Config{Addr: "127.0.0.1:0"})
	// Loopback queues both at the server before Send returns: the reader
	// gets the second with the first or on its next read.
	client.Send([]transport.Packet{
		{Addr: server.LocalAddr(), Data: []byte("first")},
		{Addr: server.LocalAddr(), Data: []byte("second")},
	})
	select {
	case <-h.entered:
	case <-time.After(wait):
		t.Fatal("the datagram never arrived")
	}
	within(t, "Close during a handler call", func() {
		if err := server.Close(); err != nil {
			t.Error(err)
		}
	})
	close(h.release)
	within(t, "Wait", server.Wait)
	if n := h.calls.Load(); n != 1 {
		t.Fatalf("%d handler calls, want 1: one started after Close returned", n)
	}
	if s := server.Stats(); s.Received != 1 {
		t.Fatalf("Received = %d, want 1", s.Received)
	}
}

func TestWaitWaitsForTheHandlerCallInProgress(t *testing.T) {
	server := listen(t, Config{Addr: "127.0.0.1:0"})
	h := newBlocker()
	server.Start(h)
	server.waitHook = sync.OnceFunc(func() { close(h.release) }) // release only once Wait waits
	client := listen(t, Config{Addr: "127.0.0.1:0"})
	client.Send([]transport.Packet{{Addr: server.LocalAddr(), Data: []byte("x")}})
	select {
	case <-h.entered:
	case <-time.After(wait):
		t.Fatal("the datagram never arrived")
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	within(t, "Wait", server.Wait)
	if !h.returned.Load() {
		t.Fatal("Wait returned while the handler was running")
	}
}

func TestCloseFromInsideTheHandlerDoesNotDeadlock(t *testing.T) {
	server := listen(t, Config{Addr: "127.0.0.1:0", Sockets: 2})
	done := make(chan error, 1)
	server.Start(transport.HandlerFunc(func(_ []byte, from netip.AddrPort, w transport.Writer) {
		w.WriteTo([]byte("bye"), from)
		done <- server.Close()
	}))
	client := listen(t, Config{Addr: "127.0.0.1:0"})
	client.Send([]transport.Packet{{Addr: server.LocalAddr(), Data: []byte("x")}})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("no datagram, or Close from the handler deadlocked")
	}
	// A Close from outside still waits for the readers, which end on
	// their own: it must return.
	if err := server.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// The node closes its whole Group from callbacks that run inside handler
// calls, so two endpoints' handlers can close the Group at once, each while
// the other's call is in progress: neither may wait for the other.
func TestGroupClosedFromHandlersOfTwoEndpointsAtOnceDoesNotDeadlock(t *testing.T) {
	a := listen(t, Config{Addr: "127.0.0.1:0"})
	b := listen(t, Config{Addr: "127.0.0.1:0"})
	g := transport.Multi(a, b)
	var inside sync.WaitGroup
	inside.Add(2)
	done := make(chan error, 2)
	g.Start(transport.HandlerFunc(func([]byte, netip.AddrPort, transport.Writer) {
		inside.Done()
		inside.Wait() // both calls are in progress
		done <- g.Close()
	}))
	client := listen(t, Config{Addr: "127.0.0.1:0"})
	client.Send([]transport.Packet{
		{Addr: a.LocalAddr(), Data: []byte("x")},
		{Addr: b.LocalAddr(), Data: []byte("y")},
	})
	for range 2 {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(wait):
			t.Fatal("no datagram, or the handlers' Closes deadlocked")
		}
	}
	within(t, "Wait on the first endpoint", a.Wait)
	within(t, "Wait on the second endpoint", b.Wait)
}

// script is a read function for a reader: it returns the results in turn,
// then net.ErrClosed, as after Close.
func script(results ...error) func() (int, error) {
	return func() (int, error) {
		if len(results) == 0 {
			return 0, net.ErrClosed
		}
		err := results[0]
		results = results[1:]
		return 0, err
	}
}

// A socket that keeps failing is read again after pauses that double from
// 1ms to at most 1s, and a good read starts them over.
func TestFailingReadsBackOffBoundedAndResetAfterAGoodRead(t *testing.T) {
	tr := listen(t, Config{Addr: "127.0.0.1:0"})
	fail := syscall.ENOMEM
	var results []error
	for range 12 {
		results = append(results, fail)
	}
	results = append(results, nil, fail, fail, fail)
	var pauses []time.Duration
	s := tr.socks[0]
	s.read = script(results...)
	s.pause = func(d time.Duration) bool {
		pauses = append(pauses, d)
		return true
	}
	tr.Start(echo)
	within(t, "the reader", tr.Wait) // it ends at the script's end
	ms := time.Millisecond
	want := []time.Duration{1 * ms, 2 * ms, 4 * ms, 8 * ms, 16 * ms, 32 * ms, 64 * ms, 128 * ms, 256 * ms, 512 * ms, time.Second, time.Second,
		1 * ms, 2 * ms, 4 * ms}
	if !slices.Equal(pauses, want) {
		t.Fatalf("pauses after failed reads %v, want %v", pauses, want)
	}
	if got := tr.Stats().ReadErrors; got != 15 {
		t.Fatalf("ReadErrors = %d, want 15", got)
	}
}

// Close ends a reader's pause at once, however long it is.
func TestCloseEndsAReadersPause(t *testing.T) {
	tr := listen(t, Config{Addr: "127.0.0.1:0"})
	s := tr.socks[0]
	s.read = func() (int, error) { return 0, syscall.ENOMEM }
	paused := make(chan struct{})
	s.pause = func(time.Duration) bool {
		close(paused)
		return s.sleep(time.Hour)
	}
	tr.Start(echo)
	select {
	case <-paused:
	case <-time.After(wait):
		t.Fatal("the reader never paused")
	}
	within(t, "Close during an hour-long pause", func() { tr.Close() })
	within(t, "Wait", tr.Wait)
}

func TestClosedTransport(t *testing.T) {
	tr := listen(t, Config{Addr: "127.0.0.1:0"})
	tr.Start(echo)
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := tr.Send([]transport.Packet{{Addr: tr.LocalAddr(), Data: []byte("x")}}); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Send after Close = %v, want ErrClosed", err)
	}
	unstarted := listen(t, Config{Addr: "127.0.0.1:0"})
	unstarted.Close()
	if err := unstarted.Start(echo); !errors.Is(err, transport.ErrClosed) {
		t.Fatalf("Start after Close = %v, want ErrClosed", err)
	}
}

func TestStartTwiceFails(t *testing.T) {
	tr := listen(t, Config{Addr: "127.0.0.1:0"})
	if err := tr.Start(echo); err != nil {
		t.Fatal(err)
	}
	if err := tr.Start(echo); err == nil {
		t.Fatal("second Start succeeded")
	}
}

func TestListenRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"empty address", Config{}},
		{"negative sockets", Config{Addr: "127.0.0.1:0", Sockets: -1}},
		{"negative batch", Config{Addr: "127.0.0.1:0", Batch: -1}},
		{"huge batch", Config{Addr: "127.0.0.1:0", Batch: MaxBatch + 1}},
		{"negative buffer", Config{Addr: "127.0.0.1:0", ReadBuffer: -1}},
		{"no port", Config{Addr: "127.0.0.1"}},
		{"bad port", Config{Addr: "127.0.0.1:99999"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tr, err := Listen(tt.cfg); err == nil {
				tr.Close()
				t.Fatalf("Listen(%+v) succeeded", tt.cfg)
			}
		})
	}
}

// counter is a handler that signals each datagram without allocating.
type counter chan struct{}

func (c counter) HandlePacket([]byte, netip.AddrPort, transport.Writer) {
	select {
	case c <- struct{}{}:
	default:
	}
}

func TestReceiveAndReplyPathsDoNotAllocate(t *testing.T) {
	server := listen(t, Config{Addr: "127.0.0.1:0"})
	server.Start(echo)
	client := listen(t, Config{Addr: "127.0.0.1:0"})
	got := make(counter, 64)
	client.Start(got)
	pkts := make([]transport.Packet, 16)
	for i := range pkts {
		pkts[i] = transport.Packet{Addr: server.LocalAddr(), Data: make([]byte, 100)}
	}
	timer := time.NewTimer(wait)
	lost := 0
	roundTrip := func() {
		client.Send(pkts)
		timer.Reset(wait)
		for range pkts {
			select {
			case <-got:
			case <-timer.C:
				lost++
				return
			}
		}
	}
	roundTrip() // warm up: the reply Batch grows its buffer once
	allocs := testing.AllocsPerRun(200, roundTrip)
	if lost > 0 {
		t.Fatalf("%d rounds lost datagrams on loopback", lost)
	}
	// 32 datagrams per round, both directions, through both transports.
	if allocs > 0.5 {
		t.Fatalf("%.2f allocations per round of 32 datagrams, want 0", allocs)
	}
}

// BenchmarkEcho measures round-trip throughput over loopback: a client keeps
// a window of datagrams in flight to an echo server. One op is one datagram
// echoed.
func BenchmarkEcho(b *testing.B) {
	for _, batch := range []int{1, 16} {
		b.Run(fmt.Sprintf("Batch=%d", batch), func(b *testing.B) {
			server := listen(b, Config{Addr: "127.0.0.1:0", Batch: batch, ReadBuffer: 1 << 20, WriteBuffer: 1 << 20})
			server.Start(echo)
			client := listen(b, Config{Addr: "127.0.0.1:0", Batch: batch, ReadBuffer: 1 << 20, WriteBuffer: 1 << 20})
			got := make(counter, 1024)
			client.Start(got)
			const window = 64
			pkts := make([]transport.Packet, window)
			for i := range pkts {
				pkts[i] = transport.Packet{Addr: server.LocalAddr(), Data: make([]byte, 200)}
			}
			timer := time.NewTimer(time.Second)
			lost := 0
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(window, b.N-done)
				client.Send(pkts[:n])
				timer.Reset(time.Second)
			wait:
				for range n {
					select {
					case <-got:
					case <-timer.C:
						lost++
						break wait
					}
				}
				done += n
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "echoes/s")
			if lost > 0 {
				b.Logf("%d windows lost datagrams", lost)
			}
		})
	}
}

// batchEcho echoes like echo but through HandleBatch, recording batch sizes.
type batchEcho struct {
	mu      sync.Mutex
	batches []int
	single  atomic.Int64
}

func (b *batchEcho) HandlePacket(data []byte, from netip.AddrPort, w transport.Writer) {
	b.single.Add(1)
	w.WriteTo(data, from)
}

func (b *batchEcho) HandleBatch(pkts []transport.Packet, w transport.Writer) {
	b.mu.Lock()
	b.batches = append(b.batches, len(pkts))
	b.mu.Unlock()
	for _, p := range pkts {
		w.WriteTo(p.Data, p.Addr)
	}
}

// A handler with HandleBatch gets whole batches, never single datagrams, and
// its replies go out like any handler's.
func TestBatchHandlerGetsWholeBatches(t *testing.T) {
	h := &batchEcho{}
	server := listen(t, Config{Addr: "127.0.0.1:0", Batch: 8})
	const count = 40
	exchange(t, server, h, "127.0.0.1", count)
	server.Close()
	server.Wait() // a batch is counted after its handler calls
	h.mu.Lock()
	defer h.mu.Unlock()
	total := 0
	for _, n := range h.batches {
		if n < 1 || n > 8 {
			t.Fatalf("a batch of %d datagrams with Batch 8", n)
		}
		total += n
	}
	if total != count || h.single.Load() != 0 {
		t.Fatalf("batches %v hold %d datagrams and %d came singly; want all %d in batches", h.batches, total, h.single.Load(), count)
	}
	if st := server.Stats(); st.Received != count {
		t.Fatalf("Received = %d, want %d", st.Received, count)
	}
}

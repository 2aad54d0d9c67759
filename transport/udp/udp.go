// Package udp is the real-network Transport: one or more UDP sockets bound
// to the same address, each served by one reader goroutine that reads and
// writes in batches (recvmmsg and sendmmsg on Linux).
//
// The receive path allocates nothing per datagram: each reader reuses its
// buffers, its address decoding and the Writer it hands the handler, and
// sends the handler's replies with one batched write after each read.
//
// A reader never waits on anything but its socket: replies that find the
// send buffer full are dropped (Stats.SendDropped) rather than waited for,
// a failing socket is retried with a bounded backoff, and Close does not
// wait for handler calls in progress (see Close).
package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dhtkit/dht/transport"
)

// DefaultBatch is the batch size when Config.Batch is 0.
const DefaultBatch = 16

// MaxBatch bounds Config.Batch (Linux's UIO_MAXIOV).
const MaxBatch = 1024

// Config describes the sockets to open. The zero value is not usable: Addr is
// required.
type Config struct {
	// Addr is "host:port" to bind: an IPv4 or IPv6 literal or a host name;
	// port 0 picks a free port. An empty host binds every address (on most
	// systems one dual-stack IPv6 socket).
	Addr string
	// Sockets is how many sockets bind the same address, each with its own
	// reader goroutine, so that the kernel spreads datagrams over cores; 0
	// means 1. More than one needs SO_REUSEPORT: on systems other than Linux
	// it is clamped to 1.
	Sockets int
	// Batch is how many datagrams one system call reads or writes; 0 means
	// DefaultBatch. Each socket holds Batch receive buffers of
	// transport.MaxDatagram+1 bytes, so memory grows with it.
	Batch int
	// ReadBuffer and WriteBuffer set SO_RCVBUF and SO_SNDBUF of each socket
	// when positive; 0 keeps the system's default.
	ReadBuffer, WriteBuffer int
}

func (c *Config) validate() error {
	switch {
	case c.Addr == "":
		return errors.New(`udp: Config.Addr is empty; want "host:port", for example "0.0.0.0:4000" or "[::]:0"`)
	case c.Sockets < 0:
		return fmt.Errorf("udp: Config.Sockets is %d; want 0 (one socket) or more", c.Sockets)
	case c.Batch < 0 || c.Batch > MaxBatch:
		return fmt.Errorf("udp: Config.Batch is %d; want 0 (the default, %d) up to %d", c.Batch, DefaultBatch, MaxBatch)
	case c.ReadBuffer < 0 || c.WriteBuffer < 0:
		return fmt.Errorf("udp: socket buffer sizes %d/%d are negative; want 0 (system default) or a size in bytes", c.ReadBuffer, c.WriteBuffer)
	}
	if c.Sockets == 0 || !reusePortSupported {
		c.Sockets = 1
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	return nil
}

// Read errors other than by Close are retried after a pause that doubles
// from minReadBackoff up to maxReadBackoff and starts again at the minimum
// after a good read: a socket that keeps failing costs a few wake-ups a
// second instead of a spinning core, and one that recovers is read again
// within a second.
const (
	minReadBackoff = time.Millisecond
	maxReadBackoff = time.Second
)

// nextBackoff returns the pause after one more failed read, d being the last
// pause (0 after a good read).
func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return minReadBackoff
	}
	return min(2*d, maxReadBackoff)
}

// Stats counts datagrams. Each field is read atomically, but the set is not
// one snapshot.
type Stats struct {
	Received    uint64 // datagrams handed to the handler
	Sent        uint64 // datagrams the kernel accepted
	Oversize    uint64 // datagrams over transport.MaxDatagram, in either direction, dropped
	SendErrors  uint64 // datagrams the kernel refused or the socket cannot address, dropped
	SendDropped uint64 // handler replies dropped because the socket's send buffer was full
	ReadErrors  uint64 // failed reads (other than by Close) and undecodable sources
}

// Transport is a set of UDP sockets bound to one address. It implements
// transport.Transport; all methods are safe for concurrent use. The zero
// value is not usable; use Listen.
type Transport struct {
	local netip.AddrPort
	socks []*socket
	next  atomic.Uint32 // round robin over socks for Send
	down  atomic.Bool   // Close has begun
	stop  chan struct{} // closed by the first Close: ends the readers' pauses

	mu      sync.Mutex // guards started, closed
	started bool
	closed  bool
	readers sync.WaitGroup

	received, sent, oversize, sendErrors, sendDropped, readErrors atomic.Uint64

	waitHook func() // tests: called when Wait starts waiting for readers
}

// A socket's state word: readerBusy while its reader is handing datagrams
// to the handler, readerStopped once Close has begun. Only the reader sets
// and clears readerBusy and only Close sets readerStopped, so each Close
// either sees the reader busy (and does not wait for it) or the reader sees
// readerStopped before its next handler call (and makes none).
const (
	readerBusy uint32 = 1 << iota
	readerStopped
)

// socket is one bound socket: its reader (owned by the reader goroutine,
// with the writer for the handler's replies) and the writer other
// goroutines' Sends share under sendMu.
type socket struct {
	t        *Transport
	conn     *net.UDPConn
	received atomic.Uint64 // per socket, so tests can see the kernel spread load
	reader   *reader
	out      transport.Batch // the handler's Writer
	replies  *writer         // never waits for room: see newWriter

	state atomic.Uint32 // readerBusy | readerStopped
	done  chan struct{} // closed when the reader goroutine ends

	// The reader goroutine's: its read and its pause between failed reads
	// (tests replace them before Start), and the pause's timer.
	read  func() (int, error)
	pause func(time.Duration) bool
	timer *time.Timer

	sendMu sync.Mutex
	sendW  *writer
}

// Listen binds cfg.Sockets sockets to cfg.Addr. Nothing is read until Start.
func Listen(cfg Config) (*Transport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: control(cfg.Sockets > 1)}
	t := &Transport{stop: make(chan struct{})}
	addr := cfg.Addr
	for i := range cfg.Sockets {
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			t.closeSockets()
			return nil, fmt.Errorf("udp: listen on %s (socket %d of %d): %w", addr, i+1, cfg.Sockets, err)
		}
		conn := pc.(*net.UDPConn)
		if i == 0 {
			// The others bind the resolved address and the actual port.
			addr = conn.LocalAddr().String()
			la := conn.LocalAddr().(*net.UDPAddr).AddrPort()
			t.local = netip.AddrPortFrom(la.Addr().Unmap(), la.Port())
		}
		s, err := newSocket(t, conn, cfg)
		if err != nil {
			conn.Close()
			t.closeSockets()
			return nil, fmt.Errorf("udp: set up socket on %s: %w", addr, err)
		}
		t.socks = append(t.socks, s)
	}
	return t, nil
}

func newSocket(t *Transport, conn *net.UDPConn, cfg Config) (*socket, error) {
	if cfg.ReadBuffer > 0 {
		if err := conn.SetReadBuffer(cfg.ReadBuffer); err != nil {
			return nil, err
		}
	}
	if cfg.WriteBuffer > 0 {
		if err := conn.SetWriteBuffer(cfg.WriteBuffer); err != nil {
			return nil, err
		}
	}
	s := &socket{t: t, conn: conn, done: make(chan struct{})}
	var err error
	if s.reader, err = newReader(conn, cfg.Batch); err != nil {
		return nil, err
	}
	// The reader's replies must not wait for room in the send buffer: the
	// reader would stop reading meanwhile, and a full send buffer means
	// those replies are late anyway. Other goroutines' Sends do wait, which
	// slows only their caller.
	if s.replies, err = newWriter(conn, cfg.Batch, true); err != nil {
		return nil, err
	}
	if s.sendW, err = newWriter(conn, cfg.Batch, false); err != nil {
		return nil, err
	}
	s.read = s.reader.read
	s.pause = s.sleep
	return s, nil
}

func (t *Transport) closeSockets() error {
	var err error
	for _, s := range t.socks {
		err = errors.Join(err, s.conn.Close())
	}
	return err
}

// LocalAddr returns the bound address, with the actual port when port 0 was
// asked for.
func (t *Transport) LocalAddr() netip.AddrPort { return t.local }

// Start starts one reader goroutine per socket, delivering to h until Close.
func (t *Transport) Start(h transport.Handler) error {
	if h == nil {
		return errors.New("udp: Start with a nil handler")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed:
		return transport.ErrClosed
	case t.started:
		return errors.New("udp: transport already started")
	}
	t.started = true
	for _, s := range t.socks {
		t.readers.Add(1)
		go func() {
			defer t.readers.Done()
			defer close(s.done)
			s.serve(h)
		}()
	}
	return nil
}

// Send writes the datagrams with batched writes on one of the sockets (in
// turn). Datagrams that cannot be sent are dropped and counted; the error is
// only transport.ErrClosed. Send waits while the socket's send buffer is
// full (unlike the replies a handler writes, which are dropped then), so it
// slows its caller rather than lose requests.
func (t *Transport) Send(pkts []transport.Packet) error {
	if t.down.Load() {
		return transport.ErrClosed
	}
	if len(pkts) == 0 {
		return nil
	}
	s := t.socks[0]
	if len(t.socks) > 1 {
		s = t.socks[t.next.Add(1)%uint32(len(t.socks))]
	}
	s.sendMu.Lock()
	err := s.sendW.write(pkts, t)
	s.sendMu.Unlock()
	return err
}

// Close closes the sockets and stops delivery: once Close returns, no
// handler call starts. It is idempotent and may be called from any
// goroutine, a handler included (the node closes its transport from
// callbacks that run inside handler calls).
//
// Close waits for the readers that are not inside a handler call to end,
// which they do at once. It does not wait for handler calls in progress:
// Go cannot tell whether the caller is one of them, and waiting for its own
// call would never end. Those readers end as soon as their call returns
// (what the call writes is sent only if the socket is still open by then).
// Wait waits for them.
func (t *Transport) Close() error {
	t.mu.Lock()
	first := !t.closed
	t.closed = true
	started := t.started
	if first {
		t.down.Store(true)
		close(t.stop)
	}
	t.mu.Unlock()
	// Every Close, not only the first, marks the readers before it returns,
	// so that a second Close racing the first also keeps its promise.
	busy := make([]bool, len(t.socks))
	for i, s := range t.socks {
		busy[i] = s.state.Or(readerStopped)&readerBusy != 0
	}
	var err error
	if first {
		err = t.closeSockets()
	}
	if started {
		for i, s := range t.socks {
			if !busy[i] {
				<-s.done // not in a handler: it ends on the closed socket or t.stop
			}
		}
	}
	return err
}

// Wait blocks until every reader goroutine has ended: after Close, once the
// handler calls in progress have returned; before Close, not until Close.
// It returns at once if Start was never called. Called from a handler it
// never returns, since the reader it waits for includes the caller's.
func (t *Transport) Wait() {
	if t.waitHook != nil {
		t.waitHook()
	}
	t.readers.Wait()
}

// Stats returns the counters so far.
func (t *Transport) Stats() Stats {
	return Stats{
		Received:    t.received.Load(),
		Sent:        t.sent.Load(),
		Oversize:    t.oversize.Load(),
		SendErrors:  t.sendErrors.Load(),
		SendDropped: t.sendDropped.Load(),
		ReadErrors:  t.readErrors.Load(),
	}
}

// serve is the socket's reader loop: read a batch, hand each datagram to h,
// send what h wrote in one batch, repeat until Close.
func (s *socket) serve(h transport.Handler) {
	t := s.t
	r := s.reader
	bh, batched := h.(transport.BatchHandler)
	var pkts []transport.Packet
	var backoff time.Duration
	for {
		n, err := s.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			t.readErrors.Add(1)
			if t.down.Load() {
				return
			}
			backoff = nextBackoff(backoff)
			if !s.pause(backoff) {
				return
			}
			continue
		}
		backoff = 0
		if !s.enter() {
			return
		}
		handed := 0
		for i := range n {
			data, from, status := r.datagram(i)
			switch status {
			case datagramOK:
				if batched {
					pkts = append(pkts, transport.Packet{Addr: from, Data: data})
				} else if !s.stopped() {
					handed++
					h.HandlePacket(data, from, &s.out)
				}
			case datagramTruncated:
				t.oversize.Add(1)
			default:
				t.readErrors.Add(1)
			}
		}
		if len(pkts) > 0 {
			if !s.stopped() {
				handed += len(pkts)
				bh.HandleBatch(pkts, &s.out)
			}
			clear(pkts)
			pkts = pkts[:0]
		}
		s.state.And(^readerBusy)
		// Counted once per batch: the transport-wide counter is shared by
		// every socket's reader, and each Add bounces its cache line.
		t.received.Add(uint64(handed))
		s.received.Add(uint64(handed))
		if s.out.Len() > 0 {
			_ = s.replies.write(s.out.Packets(), t) // fails only once closed
			s.out.Reset()
		}
	}
}

// enter marks the reader busy before it hands datagrams to the handler, or
// reports false if Close has begun.
func (s *socket) enter() bool {
	if s.state.Or(readerBusy)&readerStopped != 0 {
		s.state.And(^readerBusy)
		return false
	}
	return true
}

// stopped reports whether Close has begun; a busy reader checks it before
// each handler call, so that none starts after Close returns.
func (s *socket) stopped() bool { return s.state.Load()&readerStopped != 0 }

// sleep is the reader's pause after a failed read: it waits d, or less if
// Close comes first, and reports whether Close has not come.
func (s *socket) sleep(d time.Duration) bool {
	if s.timer == nil {
		s.timer = time.NewTimer(d)
	} else {
		s.timer.Reset(d)
	}
	select {
	case <-s.timer.C:
		return true
	case <-s.t.stop:
		s.timer.Stop()
		return false
	}
}

type datagramStatus int

const (
	datagramOK datagramStatus = iota
	datagramTruncated
	datagramBadSource
)

// Package udp is the real-network Transport: one or more UDP sockets bound
// to the same address, each served by one reader goroutine that reads and
// writes in batches (recvmmsg and sendmmsg on Linux).
//
// The receive path allocates nothing per datagram: each reader reuses its
// buffers, its address decoding and the Writer it hands the handler, and
// sends the handler's replies with one batched write after each read.
package udp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"

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

// Stats counts datagrams. Each field is read atomically, but the set is not
// one snapshot.
type Stats struct {
	Received   uint64 // datagrams handed to the handler
	Sent       uint64 // datagrams the kernel accepted
	Oversize   uint64 // datagrams over transport.MaxDatagram, in either direction, dropped
	SendErrors uint64 // datagrams the kernel refused or the socket cannot address, dropped
	ReadErrors uint64 // failed reads (other than by Close) and undecodable sources
}

// Transport is a set of UDP sockets bound to one address. It implements
// transport.Transport; all methods are safe for concurrent use. The zero
// value is not usable; use Listen.
type Transport struct {
	local netip.AddrPort
	socks []*socket
	next  atomic.Uint32 // round robin over socks for Send
	down  atomic.Bool   // Close has begun

	mu      sync.Mutex // guards started, closed
	started bool
	closed  bool
	readers sync.WaitGroup

	received, sent, oversize, sendErrors, readErrors atomic.Uint64

	closeWaitHook func() // tests: called when Close starts waiting for readers
}

// socket is one bound socket: its reader (owned by the reader goroutine,
// with the writer for the handler's replies) and the writer other
// goroutines' Sends share under sendMu.
type socket struct {
	t        *Transport
	conn     *net.UDPConn
	received atomic.Uint64 // per socket, so tests can see the kernel spread load
	reader   *reader
	out      transport.Batch // the handler's Writer
	replies  *writer

	sendMu sync.Mutex
	sendW  *writer
}

// Listen binds cfg.Sockets sockets to cfg.Addr. Nothing is read until Start.
func Listen(cfg Config) (*Transport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: control(cfg.Sockets > 1)}
	t := &Transport{}
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
	s := &socket{t: t, conn: conn}
	var err error
	if s.reader, err = newReader(conn, cfg.Batch); err != nil {
		return nil, err
	}
	if s.replies, err = newWriter(conn, cfg.Batch); err != nil {
		return nil, err
	}
	if s.sendW, err = newWriter(conn, cfg.Batch); err != nil {
		return nil, err
	}
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
			s.serve(h)
		}()
	}
	return nil
}

// Send writes the datagrams with batched writes on one of the sockets (in
// turn). Datagrams that cannot be sent are dropped and counted; the error is
// only transport.ErrClosed.
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

// Close closes the sockets and waits for the readers to finish their handler
// calls. It is idempotent. Called from inside a handler (of any udp
// Transport) it does not wait, since the reader in question may be the
// caller's own; the readers then end on their own.
func (t *Transport) Close() error {
	t.mu.Lock()
	first := !t.closed
	t.closed = true
	t.mu.Unlock()
	t.down.Store(true)
	var err error
	if first {
		err = t.closeSockets()
	}
	if insideHandler() {
		return err
	}
	if t.closeWaitHook != nil {
		t.closeWaitHook()
	}
	t.readers.Wait()
	return err
}

// Stats returns the counters so far.
func (t *Transport) Stats() Stats {
	return Stats{
		Received:   t.received.Load(),
		Sent:       t.sent.Load(),
		Oversize:   t.oversize.Load(),
		SendErrors: t.sendErrors.Load(),
		ReadErrors: t.readErrors.Load(),
	}
}

// serve is the socket's reader loop: read a batch, hand each datagram to h,
// send what h wrote in one batch, repeat until the socket closes. It must
// stay a real frame on the stack: insideHandler looks for it.
//
//go:noinline
func (s *socket) serve(h transport.Handler) {
	t := s.t
	r := s.reader
	bh, batched := h.(transport.BatchHandler)
	var pkts []transport.Packet
	for {
		n, err := r.read()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				t.readErrors.Add(1)
				if !t.down.Load() {
					continue
				}
			}
			return
		}
		ok := 0
		for i := range n {
			data, from, status := r.datagram(i)
			switch status {
			case datagramOK:
				ok++
				if batched {
					pkts = append(pkts, transport.Packet{Addr: from, Data: data})
				} else {
					h.HandlePacket(data, from, &s.out)
				}
			case datagramTruncated:
				t.oversize.Add(1)
			default:
				t.readErrors.Add(1)
			}
		}
		// Counted once per batch: the transport-wide counter is shared by
		// every socket's reader, and each Add bounces its cache line.
		t.received.Add(uint64(ok))
		s.received.Add(uint64(ok))
		if len(pkts) > 0 {
			bh.HandleBatch(pkts, &s.out)
			clear(pkts)
			pkts = pkts[:0]
		}
		if s.out.Len() > 0 {
			_ = s.replies.write(s.out.Packets(), t) // fails only once closed
			s.out.Reset()
		}
	}
}

type datagramStatus int

const (
	datagramOK datagramStatus = iota
	datagramTruncated
	datagramBadSource
)

// serveFunc is serve's name in stack traces.
var serveFunc = runtime.FuncForPC(reflect.ValueOf((*socket).serve).Pointer()).Name()

// insideHandler reports whether the calling goroutine is a reader of this
// package (and so maybe inside a handler). Go has no goroutine identity, but
// the goroutine's own stack shows a serve frame. It costs microseconds, so
// only Close uses it.
func insideHandler() bool {
	pcs := make([]uintptr, 64)
	for {
		n := runtime.Callers(2, pcs)
		if n < len(pcs) {
			pcs = pcs[:n]
			break
		}
		pcs = make([]uintptr, 2*len(pcs))
	}
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		if f.Function == serveFunc {
			return true
		}
		if !more {
			return false
		}
	}
}

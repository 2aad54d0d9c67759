// Package transport moves datagrams between nodes. Transport is the seam: udp
// (package transport/udp) sends real packets, memnet (package transport/memnet)
// passes them in memory with seeded delay, loss and partitions. The protocol
// code above is the same for both.
package transport

import (
	"errors"
	"net/netip"
)

// MaxDatagram bounds every datagram a transport sends or delivers; larger
// datagrams are dropped. The wire format's own cap is smaller.
const MaxDatagram = 2048

// ErrClosed is returned by a transport used after Close.
var ErrClosed = errors.New("transport: closed")

// Packet is one datagram and its peer: the destination when sending, the
// source when receiving.
type Packet struct {
	Addr netip.AddrPort
	Data []byte
}

// Writer collects datagrams to send. WriteTo copies b, so the caller may reuse
// it at once. A Writer is used by one goroutine at a time.
type Writer interface {
	WriteTo(b []byte, to netip.AddrPort)
}

// Handler receives datagrams. data is valid only during the call. Replies and
// any other datagrams the handler wants sent go to w; the transport sends them
// after the call returns, batched with other replies where it can.
type Handler interface {
	HandlePacket(data []byte, from netip.AddrPort, w Writer)
}

// BatchHandler is a Handler that can also take a whole received batch in one
// call. Transports that read in batches use HandleBatch when the handler has
// it, so that the handler reads the clock and takes its locks once per batch
// rather than once per datagram. The Packets' Data is valid only during the
// call.
type BatchHandler interface {
	Handler
	HandleBatch(pkts []Packet, w Writer)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(data []byte, from netip.AddrPort, w Writer)

// HandlePacket calls f.
func (f HandlerFunc) HandlePacket(data []byte, from netip.AddrPort, w Writer) { f(data, from, w) }

// Transport is a datagram endpoint. Implementations are safe for concurrent use.
type Transport interface {
	// Start delivers every datagram received from now on to h, until Close.
	// It is called once.
	Start(h Handler) error
	// Send sends the datagrams now and does not retain them. Datagrams that
	// cannot be sent are dropped (and counted by the implementation); the error
	// reports a closed transport.
	Send(pkts []Packet) error
	// LocalAddr is the address peers reach this endpoint at.
	LocalAddr() netip.AddrPort
	// Close stops delivery and releases the endpoint: once it returns, no
	// handler call starts. It is idempotent and may be called from any
	// goroutine, a handler included (a node closes its transport from
	// callbacks that run inside handler calls), so it never waits for the
	// caller's own handler call; whether it waits for other calls in
	// progress, each implementation documents.
	Close() error
}

// Batch is a Writer that keeps copies of its datagrams in one growing buffer,
// for sending with a single Transport.Send. The zero value is empty and ready.
type Batch struct {
	pkts []Packet
	buf  []byte
}

// WriteTo appends a copy of b for to. Datagrams over MaxDatagram are dropped.
func (b *Batch) WriteTo(data []byte, to netip.AddrPort) {
	if len(data) > MaxDatagram {
		return
	}
	if cap(b.buf)-len(b.buf) < len(data) {
		// Earlier packets keep pointing into the old buffer, which stays alive
		// through them; only new ones go to the bigger one.
		// Start small (an idle node keeps one Batch per socket) and double:
		// a busy socket reaches its working size once and keeps it.
		b.buf = make([]byte, 0, max(2*cap(b.buf), 2*MaxDatagram))
	}
	start := len(b.buf)
	b.buf = append(b.buf, data...)
	b.pkts = append(b.pkts, Packet{Addr: to, Data: b.buf[start:len(b.buf):len(b.buf)]})
}

// Packets returns the datagrams written since the last Reset.
func (b *Batch) Packets() []Packet { return b.pkts }

// Len returns how many datagrams are waiting.
func (b *Batch) Len() int { return len(b.pkts) }

// Reset empties the batch, keeping its memory for reuse.
func (b *Batch) Reset() {
	clear(b.pkts)
	b.pkts = b.pkts[:0]
	b.buf = b.buf[:0]
}

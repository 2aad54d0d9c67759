package transport

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Multi returns one Transport over several endpoints, typically an IPv4 and
// an IPv6 socket. Start starts them all with the same handler; Send routes
// each datagram to the first endpoint of the destination's address family
// (IPv4-mapped addresses count as IPv4), falling back for IPv4 to the first
// endpoint bound to the IPv6 unspecified address ("[::]", dual-stack on
// most systems), and drops the rest; LocalAddr is the first endpoint's; Close
// closes them all. The result is a *Group. Multi panics with no endpoints.
func Multi(ts ...Transport) Transport {
	if len(ts) == 0 {
		panic("transport: Multi needs at least one Transport")
	}
	g := &Group{ts: append([]Transport(nil), ts...), v4: -1, v6: -1}
	g.fams = make([]family, len(g.ts))
	for i, t := range g.ts {
		a := t.LocalAddr().Addr()
		if a == netip.IPv6Unspecified() {
			g.fams[i] = v4 | v6
		} else {
			g.fams[i] = familyOf(a)
		}
		a = a.Unmap()
		switch {
		case a.Is4() && g.v4 < 0:
			g.v4 = i
		case a.Is6() && g.v6 < 0:
			g.v6 = i
		}
	}
	if g.v4 < 0 {
		for i, t := range g.ts {
			if t.LocalAddr().Addr() == netip.IPv6Unspecified() {
				g.v4 = i
				break
			}
		}
	}
	return g
}

// Group is the Transport Multi returns. It is safe for concurrent use if its
// endpoints are. Build it with Multi; the zero value is not usable.
type Group struct {
	ts      []Transport
	fams    []family // the families each endpoint can send to
	v4, v6  int      // index in ts of each family's endpoint; -1 drops them
	dropped atomic.Uint64
}

// family is a set of address families.
type family uint8

const (
	v4 family = 1 << iota
	v6
)

// familyOf returns a's family (IPv4-mapped addresses are IPv4), or none for
// the zero Addr.
func familyOf(a netip.Addr) family {
	switch {
	case a.Is4() || a.Is4In6():
		return v4
	case a.Is6():
		return v6
	}
	return 0
}

// LocalAddrs returns every endpoint's address, in the order given to Multi.
func (g *Group) LocalAddrs() []netip.AddrPort {
	out := make([]netip.AddrPort, len(g.ts))
	for i, t := range g.ts {
		out[i] = t.LocalAddr()
	}
	return out
}

// LocalAddr returns the first endpoint's address.
func (g *Group) LocalAddr() netip.AddrPort { return g.ts[0].LocalAddr() }

// Dropped returns how many datagrams Send dropped because no endpoint
// serves the destination's address family.
func (g *Group) Dropped() uint64 { return g.dropped.Load() }

// Start starts every endpoint with h. If one fails, the error names it and
// the ones before it stay started (Close stops them).
//
// What h writes to the Writer an endpoint hands it goes out through that
// endpoint when it can send to the destination's family, so that replies
// leave from the address the request came to; the rest (say a request to
// an IPv4 contact, made while handling an IPv6 answer) is kept and sent
// through Send once h returns, still on the endpoint's goroutine. With udp
// endpoints, that Send waits if the other socket's send buffer is full.
// h is a BatchHandler to the endpoints if it is one.
func (g *Group) Start(h Handler) error {
	bh, batched := h.(BatchHandler)
	for i, t := range g.ts {
		r := routed{g: g, fam: g.fams[i], h: h}
		var eh Handler = &r
		if batched {
			eh = &routedBatch{routed: r, bh: bh}
		}
		if err := t.Start(eh); err != nil {
			return fmt.Errorf("transport: starting endpoint %d (%v): %w", i, t.LocalAddr(), err)
		}
	}
	return nil
}

// routed is the handler one endpoint of g delivers to: it calls h with a
// routeWriter over the endpoint's Writer.
type routed struct {
	g   *Group
	fam family // what the endpoint can send to
	h   Handler
}

// routedBatch is routed for a BatchHandler.
type routedBatch struct {
	routed
	bh BatchHandler
}

// routeWriters hold the per-call state: handler calls run concurrently
// (several endpoints, several sockets each), and a pooled writer costs no
// allocation per call once the pool is warm. Its Batch keeps its buffer.
var routeWriters = sync.Pool{New: func() any { return new(routeWriter) }}

// routeWriter is the Writer a Group's handler gets: datagrams the receiving
// endpoint can send go straight to its Writer; the others wait in other
// until the call returns.
type routeWriter struct {
	w     Writer
	fam   family
	other Batch
}

// WriteTo passes the datagram to the endpoint's Writer, or keeps a copy
// for Group.Send.
func (rw *routeWriter) WriteTo(b []byte, to netip.AddrPort) {
	if familyOf(to.Addr())&rw.fam != 0 {
		rw.w.WriteTo(b, to)
		return
	}
	rw.other.WriteTo(b, to)
}

func (r *routed) writer(w Writer) *routeWriter {
	rw := routeWriters.Get().(*routeWriter)
	rw.w, rw.fam = w, r.fam
	return rw
}

// done sends what the endpoint could not and returns rw to the pool.
func (r *routed) done(rw *routeWriter) {
	if rw.other.Len() > 0 {
		_ = r.g.Send(rw.other.Packets()) // fails only once closed
		rw.other.Reset()
	}
	rw.w = nil
	routeWriters.Put(rw)
}

// HandlePacket calls the Group's handler with a routing Writer.
func (r *routed) HandlePacket(data []byte, from netip.AddrPort, w Writer) {
	rw := r.writer(w)
	r.h.HandlePacket(data, from, rw)
	r.done(rw)
}

// HandleBatch calls the Group's batch handler with a routing Writer.
func (r *routedBatch) HandleBatch(pkts []Packet, w Writer) {
	rw := r.writer(w)
	r.bh.HandleBatch(pkts, rw)
	r.done(rw)
}

// route returns the index of the endpoint for to, or -1.
func (g *Group) route(to netip.AddrPort) int {
	switch familyOf(to.Addr()) {
	case v4:
		return g.v4
	case v6:
		return g.v6
	}
	return -1
}

// Send routes each datagram by its destination's family. It returns the
// first error an endpoint's Send returned.
func (g *Group) Send(pkts []Packet) error {
	if len(pkts) == 0 {
		return nil
	}
	// Usually every datagram goes one way: pass the slice through whole.
	first := g.route(pkts[0].Addr)
	mixed := first < 0
	for i := 1; i < len(pkts) && !mixed; i++ {
		mixed = g.route(pkts[i].Addr) != first
	}
	if !mixed {
		return g.ts[first].Send(pkts)
	}
	// Otherwise sort them per endpoint through a small buffer on the stack.
	var err error
	keep := func(e error) {
		if err == nil {
			err = e
		}
	}
	var buf [32]Packet
	for _, t := range [...]int{g.v4, g.v6} {
		if t < 0 || (t == g.v6 && g.v6 == g.v4) {
			continue
		}
		n := 0
		for i := range pkts {
			if g.route(pkts[i].Addr) != t {
				continue
			}
			buf[n] = pkts[i]
			n++
			if n == len(buf) {
				keep(g.ts[t].Send(buf[:n]))
				n = 0
			}
		}
		if n > 0 {
			keep(g.ts[t].Send(buf[:n]))
		}
	}
	clear(buf[:]) // drop references to the caller's data
	for i := range pkts {
		if g.route(pkts[i].Addr) < 0 {
			g.dropped.Add(1)
		}
	}
	return err
}

// Close closes every endpoint and returns their errors joined.
func (g *Group) Close() error {
	var errs []error
	for _, t := range g.ts {
		if err := t.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

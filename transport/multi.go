package transport

import (
	"errors"
	"fmt"
	"net/netip"
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
	for i, t := range g.ts {
		a := t.LocalAddr().Addr().Unmap()
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
	v4, v6  int // index in ts of each family's endpoint; -1 drops them
	dropped atomic.Uint64
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
func (g *Group) Start(h Handler) error {
	for i, t := range g.ts {
		if err := t.Start(h); err != nil {
			return fmt.Errorf("transport: starting endpoint %d (%v): %w", i, t.LocalAddr(), err)
		}
	}
	return nil
}

// route returns the index of the endpoint for to, or -1.
func (g *Group) route(to netip.AddrPort) int {
	switch a := to.Addr(); {
	case a.Is4() || a.Is4In6():
		return g.v4
	case a.Is6():
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

// Package memnet is an in-memory datagram network for tests and the
// simulator. Its endpoints are transport.Transports, like UDP sockets, and the
// network between them has seeded delay, loss, duplication, reordering and
// partitions.
//
// With a *clock.Virtual as the clock and everything driven from the clock's
// goroutine, a run is fully determined by the seed: the same sends produce the
// same deliveries at the same virtual times in the same order. With
// clock.Real, deliveries run on timer goroutines, concurrently.
package memnet

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/transport"
)

// AutoPort is the port of the addresses NewEndpoint hands out.
const AutoPort = 4000

// DefaultMaxInFlight is the in-flight limit when Config.MaxInFlight is 0.
const DefaultMaxInFlight = 1 << 20

// Config describes a network. The zero value is not usable: Clock is
// required.
type Config struct {
	// Clock times deliveries. Use a *clock.Virtual for deterministic runs
	// (deliveries then run on the goroutine that advances it) and
	// clock.Real{} for live tests.
	Clock clock.Clock
	// Seed seeds the draws of loss, duplication and delay.
	Seed uint64
	// Latency gives each datagram its one-way delay; nil means none (the
	// datagram is still delivered through the clock, never synchronously).
	Latency Latency
	// Loss is the probability, in [0, 1], that a datagram is dropped.
	Loss float64
	// Duplicate is the probability, in [0, 1], that a datagram is
	// delivered twice; each copy draws its own delay, so copies may arrive
	// out of order.
	Duplicate float64
	// MaxInFlight bounds the datagrams sent but not yet delivered, like a
	// router's queue: past it, datagrams are dropped and counted as
	// Overflow. 0 means DefaultMaxInFlight.
	MaxInFlight int
}

// Stats counts what happened to the datagrams sent on a network. Every
// datagram given to Send ends in exactly one of Oversize, Unreachable,
// Partitioned, Lost, Overflow, Closed, Delivered or is still in flight, and
// each duplicate adds one more (counted in Duplicated) that ends the same way.
type Stats struct {
	Sent        uint64 // datagrams accepted by Send (all but Oversize)
	Delivered   uint64 // handler calls made
	Lost        uint64 // dropped by the Loss draw
	Partitioned uint64 // dropped because a partition separated the peers
	Unreachable uint64 // nothing listened at the destination when sent
	Closed      uint64 // the destination closed (or had not started) before arrival
	Duplicated  uint64 // extra copies made by the Duplicate draw
	Oversize    uint64 // larger than transport.MaxDatagram, refused by Send
	Overflow    uint64 // dropped because MaxInFlight datagrams were in flight
}

// Network is a set of endpoints and the simulated links between them. All
// methods are safe for concurrent use. The zero value is not usable; use New.
type Network struct {
	clk         clock.Clock
	sched       clock.Scheduler // clk's closure-free path, when it has one
	maxInFlight int64

	mu          sync.Mutex // guards the fields below and every Endpoint.group
	rng         *rand.Rand
	latency     Latency
	loss, dup   float64
	eps         map[netip.AddrPort]*Endpoint
	next        uint32 // last index NewEndpoint considered
	partitioned bool
	groups      map[netip.AddrPort]int // partition group by address; 0 is the rest

	inFlight                              atomic.Int64
	sent, delivered, lost, partitionDrops atomic.Uint64
	unreachable, closedDrops, duplicated  atomic.Uint64
	oversize, overflow                    atomic.Uint64
}

// New returns an empty network. It panics if cfg.Clock is nil or a
// probability is outside [0, 1]: those are programming errors.
func New(cfg Config) *Network {
	if cfg.Clock == nil {
		panic("memnet: Config.Clock is nil; use a *clock.Virtual or clock.Real{}")
	}
	checkProb("Loss", cfg.Loss)
	checkProb("Duplicate", cfg.Duplicate)
	if cfg.MaxInFlight < 0 {
		panic(fmt.Sprintf("memnet: Config.MaxInFlight is %d; want 0 (the default) or more", cfg.MaxInFlight))
	}
	n := &Network{
		clk:         cfg.Clock,
		maxInFlight: int64(cfg.MaxInFlight),
		rng:         rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x6d656d6e6574)),
		latency:     cfg.Latency,
		loss:        cfg.Loss,
		dup:         cfg.Duplicate,
		eps:         make(map[netip.AddrPort]*Endpoint),
	}
	if n.maxInFlight == 0 {
		n.maxInFlight = DefaultMaxInFlight
	}
	n.sched, _ = cfg.Clock.(clock.Scheduler)
	return n
}

func checkProb(name string, p float64) {
	if !(p >= 0 && p <= 1) {
		panic(fmt.Sprintf("memnet: %s probability is %v; want a value in [0, 1]", name, p))
	}
}

// SetLoss changes the loss probability for datagrams sent from now on.
func (n *Network) SetLoss(p float64) {
	checkProb("Loss", p)
	n.mu.Lock()
	n.loss = p
	n.mu.Unlock()
}

// SetDuplicate changes the duplication probability for datagrams sent from
// now on.
func (n *Network) SetDuplicate(p float64) {
	checkProb("Duplicate", p)
	n.mu.Lock()
	n.dup = p
	n.mu.Unlock()
}

// SetLatency changes the latency model for datagrams sent from now on; nil
// means no delay.
func (n *Network) SetLatency(l Latency) {
	n.mu.Lock()
	n.latency = l
	n.mu.Unlock()
}

// Partition splits the network: from now until Heal, datagrams sent between
// endpoints in different groups are dropped. Endpoints named in no group
// (including ones that listen later) form one more group together.
// Datagrams already in flight still arrive. A new Partition replaces the
// previous one.
func (n *Network) Partition(groups ...[]netip.AddrPort) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.partitioned = true
	n.groups = make(map[netip.AddrPort]int)
	for i, g := range groups {
		for _, a := range g {
			n.groups[normalize(a)] = i + 1
		}
	}
	for a, e := range n.eps {
		e.group = n.groups[a]
	}
}

// Heal ends the partition.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.partitioned = false
	n.groups = nil
	for _, e := range n.eps {
		e.group = 0
	}
}

// Stats returns the counters so far.
func (n *Network) Stats() Stats {
	return Stats{
		Sent:        n.sent.Load(),
		Delivered:   n.delivered.Load(),
		Lost:        n.lost.Load(),
		Partitioned: n.partitionDrops.Load(),
		Unreachable: n.unreachable.Load(),
		Closed:      n.closedDrops.Load(),
		Duplicated:  n.duplicated.Load(),
		Oversize:    n.oversize.Load(),
		Overflow:    n.overflow.Load(),
	}
}

// InFlight returns how many datagrams are sent but not yet delivered or
// dropped.
func (n *Network) InFlight() int { return int(n.inFlight.Load()) }

// normalize unmaps IPv4-mapped IPv6 addresses so that both spellings of an
// IPv4 address reach the same endpoint.
func normalize(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Is4In6() {
		return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	return a
}

// Listen opens an endpoint at addr. It fails if addr is invalid, has port 0,
// or is in use by an open endpoint.
func (n *Network) Listen(addr netip.AddrPort) (*Endpoint, error) {
	if !addr.IsValid() || addr.Port() == 0 {
		return nil, fmt.Errorf("memnet: cannot listen at %v: want an address with a nonzero port (or use NewEndpoint)", addr)
	}
	addr = normalize(addr)
	n.mu.Lock()
	defer n.mu.Unlock()
	if _, taken := n.eps[addr]; taken {
		return nil, fmt.Errorf("memnet: %v is in use", addr)
	}
	return n.addLocked(addr), nil
}

// NewEndpoint opens an endpoint at the next free address of the form
// 127.A.B.C:4000, in a fixed order (127.0.0.1, 127.0.0.2, ..., skipping
// host parts 0 and 255), so runs with the same calls get the same addresses.
// Closed addresses are not reused. It panics after about 16 million.
func (n *Network) NewEndpoint() *Endpoint {
	n.mu.Lock()
	defer n.mu.Unlock()
	for {
		n.next++
		if n.next >= 1<<24 {
			panic("memnet: NewEndpoint ran out of addresses in 127.0.0.0/8")
		}
		if low := n.next & 0xff; low == 0 || low == 0xff {
			continue
		}
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, byte(n.next >> 16), byte(n.next >> 8), byte(n.next)}), AutoPort)
		if _, taken := n.eps[a]; !taken {
			return n.addLocked(a)
		}
	}
}

func (n *Network) addLocked(addr netip.AddrPort) *Endpoint {
	e := &Endpoint{net: n, addr: addr}
	e.idle.L = &e.mu
	if n.partitioned {
		e.group = n.groups[addr]
	}
	n.eps[addr] = e
	return e
}

// closedBit marks Endpoint.state closed; the bits below count handler calls
// in progress.
const closedBit = 1 << 62

// Endpoint is one address on a Network; it implements transport.Transport.
// Its methods are safe for concurrent use. Obtain one with Listen or
// NewEndpoint; the zero value is not usable.
type Endpoint struct {
	net   *Network
	addr  netip.AddrPort
	group int // partition group, guarded by net.mu

	handler atomic.Pointer[handlerRef]
	state   atomic.Int64 // closedBit | handler calls in progress

	mu   sync.Mutex
	idle sync.Cond // broadcast when the last handler call ends after Close

	closeWaitHook func() // tests: called once when Close starts to wait
}

type handlerRef struct{ h transport.Handler }

var errStarted = errors.New("memnet: endpoint already started")

// Start delivers datagrams to h from now on. Datagrams that arrive before
// Start are dropped (counted as Closed), like those at a socket nobody reads.
func (e *Endpoint) Start(h transport.Handler) error {
	if h == nil {
		return errors.New("memnet: Start with a nil handler")
	}
	if e.state.Load()&closedBit != 0 {
		return transport.ErrClosed
	}
	if !e.handler.CompareAndSwap(nil, &handlerRef{h}) {
		return errStarted
	}
	return nil
}

// LocalAddr returns the endpoint's address.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.addr }

// Send copies each datagram and schedules its delivery. Datagrams the
// network drops are counted in Stats; the error is only transport.ErrClosed.
func (e *Endpoint) Send(pkts []transport.Packet) error {
	if e.state.Load()&closedBit != 0 {
		return transport.ErrClosed
	}
	n := e.net
	n.mu.Lock()
	for i := range pkts {
		n.route(e, &pkts[i])
	}
	n.mu.Unlock()
	return nil
}

// route decides one datagram's fate and schedules its deliveries. The
// random draws happen in a fixed order (loss, duplication, then one delay per
// copy) so a seed replays exactly. n.mu must be held.
func (n *Network) route(from *Endpoint, p *transport.Packet) {
	if len(p.Data) > transport.MaxDatagram {
		n.oversize.Add(1)
		return
	}
	n.sent.Add(1)
	to := normalize(p.Addr)
	dst := n.eps[to]
	switch {
	case dst == nil:
		n.unreachable.Add(1)
		return
	case n.partitioned && dst.group != from.group:
		n.partitionDrops.Add(1)
		return
	case n.loss > 0 && n.rng.Float64() < n.loss:
		n.lost.Add(1)
		return
	}
	copies := 1
	if n.dup > 0 && n.rng.Float64() < n.dup {
		copies = 2
		n.duplicated.Add(1)
	}
	for range copies {
		if n.inFlight.Load() >= n.maxInFlight {
			n.overflow.Add(1)
			continue
		}
		var delay time.Duration
		if n.latency != nil {
			delay = n.latency.Delay(from.addr, to, n.rng)
		}
		d := getDelivery(len(p.Data))
		d.data = d.buf[:copy(d.buf, p.Data)]
		d.net, d.to, d.from = n, dst, from.addr
		n.inFlight.Add(1)
		if n.sched != nil {
			n.sched.ScheduleAfter(delay, d)
		} else {
			n.clk.AfterFunc(delay, d.fire)
		}
	}
}

// Close stops deliveries to the endpoint, frees its address and waits for
// handler calls in progress to return. It is idempotent. Called from inside
// a handler (of any endpoint of any memnet network) it does not wait, since
// the call in progress may be the caller's own.
func (e *Endpoint) Close() error {
	if e.state.Or(closedBit)&closedBit == 0 {
		n := e.net
		n.mu.Lock()
		if n.eps[e.addr] == e {
			delete(n.eps, e.addr)
		}
		n.mu.Unlock()
	}
	if insideHandler() {
		return nil
	}
	e.mu.Lock()
	hook := e.closeWaitHook
	for e.state.Load() != closedBit {
		if hook != nil {
			hook()
			hook = nil
		}
		e.idle.Wait()
	}
	e.mu.Unlock()
	return nil
}

// deliver hands one datagram to the handler, then sends what the handler
// wrote. It must stay a real frame on the stack: insideHandler looks for it.
//
//go:noinline
func (e *Endpoint) deliver(data []byte, from netip.AddrPort) {
	n := e.net
	if e.state.Add(1)&closedBit != 0 {
		n.closedDrops.Add(1)
		e.leave()
		return
	}
	ref := e.handler.Load()
	if ref == nil {
		n.closedDrops.Add(1)
		e.leave()
		return
	}
	n.delivered.Add(1)
	b := batchPool.Get().(*transport.Batch)
	ref.h.HandlePacket(data, from, b)
	if b.Len() > 0 {
		_ = e.Send(b.Packets()) // a closed endpoint drops its replies
	}
	b.Reset()
	batchPool.Put(b)
	e.leave()
}

// leave ends a handler call (or an attempt at one) and wakes Close after the
// last.
func (e *Endpoint) leave() {
	if e.state.Add(-1) == closedBit {
		e.mu.Lock()
		e.idle.Broadcast()
		e.mu.Unlock()
	}
}

// batchPool holds the Writers handed to handlers; a Batch keeps its memory
// across Resets, so reuse saves its buffer too.
var batchPool = sync.Pool{New: func() any { return new(transport.Batch) }}

// delivery is one datagram in flight. It is the clock Event itself, so a
// delivery costs no closure, and it is pooled with its buffer.
type delivery struct {
	net   *Network
	to    *Endpoint
	from  netip.AddrPort
	data  []byte
	buf   []byte // capacity sizeClasses[class]
	class int
	fire  func() // Fire, bound once for clocks without a Scheduler
}

// sizeClasses are the pooled buffer sizes: most DHT datagrams are small, and
// a simulator holds a great many in flight.
var sizeClasses = [...]int{256, 1024, transport.MaxDatagram}

var deliveryPools [len(sizeClasses)]sync.Pool

func getDelivery(size int) *delivery {
	c := 0
	for sizeClasses[c] < size {
		c++
	}
	if d, ok := deliveryPools[c].Get().(*delivery); ok {
		return d
	}
	d := &delivery{buf: make([]byte, sizeClasses[c]), class: c}
	d.fire = d.Fire
	return d
}

// Fire delivers the datagram and recycles the delivery.
func (d *delivery) Fire() {
	d.net.inFlight.Add(-1)
	d.to.deliver(d.data, d.from)
	d.net, d.to, d.data = nil, nil, nil
	deliveryPools[d.class].Put(d)
}

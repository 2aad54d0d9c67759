package core

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// pending is a request in flight, kept by value in the request tracker.
type pending struct {
	to    id.Contact // to.ID is zero when we do not know who answers there (a seed)
	typ   wire.Type
	key   id.ID // FIND_NODE target; FIND_VALUE and STORE key
	op    op
	tries int
	// stalled is set once a lookup request outlived StallAfter: the lookup
	// stopped waiting for it, and its deadline moved on to the full timeout.
	stalled bool
}

// op is whatever sent a request and wants its outcome. Both methods run under
// the node's lock.
type op interface {
	response(n *Node, p *pending, m *wire.Message, now time.Time, w transport.Writer)
	failure(n *Node, p *pending, now time.Time, w transport.Writer)
}

// livenessCheck is the ping of a full bucket's least-recently-seen contact.
// The routing table learns the outcome on the common paths (a response is
// "seen", a final timeout "failed"), so it needs nothing of its own.
type livenessCheck struct{}

func (livenessCheck) response(*Node, *pending, *wire.Message, time.Time, transport.Writer) {}
func (livenessCheck) failure(*Node, *pending, time.Time, transport.Writer)                 {}

var encPool = sync.Pool{New: func() any { return &encoder{buf: make([]byte, 0, wire.MaxPacket)} }}

// encoder is scratch for encoding a request; pooled across nodes so that a
// simulation of 100,000 nodes does not keep a message buffer per node.
type encoder struct {
	msg wire.Message
	buf []byte
}

// send starts a request and reports whether it could: not when the node is
// closed or too many requests are in flight.
func (n *Node) send(to id.Contact, typ wire.Type, key id.ID, o op, now time.Time, w transport.Writer) bool {
	if n.closed {
		return false
	}
	txid := n.rpc.NewTxID(n.rng)
	p := pending{to: to, typ: typ, key: key, op: o, tries: 1}
	deadline := now.Add(n.cfg.RequestTimeout)
	if n.stalls(o) {
		deadline = now.Add(n.cfg.StallAfter) // first the stall, then the rest of the timeout
	}
	if err := n.rpc.Add(txid, to.Addr, deadline, p); err != nil {
		n.stats.rpcFull++
		return false
	}
	n.write(txid, &p, w)
	n.armRPC(now)
	return true
}

// storeValuer is an op that sends STORE requests and so knows their value.
type storeValuer interface {
	storeValue() (value []byte, ttl uint32)
}

// write encodes request p onto w.
func (n *Node) write(txid uint64, p *pending, w transport.Writer) {
	e := encPool.Get().(*encoder)
	m := &e.msg
	m.Reset()
	m.Type, m.Network, m.TxID, m.Sender = p.typ, n.cfg.Network, txid, n.self
	if n.cfg.ReadOnly {
		m.Flags = wire.FlagReadOnly
	}
	m.Target = p.key
	if p.typ == wire.Store {
		m.Value, m.TTL = p.op.(storeValuer).storeValue()
	}
	b, err := m.Append(e.buf[:0])
	if err == nil {
		w.WriteTo(b, p.to.Addr)
		n.stats.packetsOut++
		n.stats.requests++
	} else {
		n.log.Error("encoding a request failed", "type", p.typ, "err", err)
	}
	m.Value = nil
	encPool.Put(e)
}

// rpcGrain coalesces request deadlines so that a stream of requests arms one
// timer per grain rather than one per request.
const rpcGrain = 10 * time.Millisecond

func (n *Node) armRPC(now time.Time) {
	d, ok := n.rpc.NextDeadline()
	if !ok || n.closed {
		return
	}
	if r := d.Truncate(rpcGrain); r.Before(d) {
		d = r.Add(rpcGrain)
	}
	if n.rpcTimer.t != nil && !n.rpcTimer.at.After(d) {
		return
	}
	n.rpcTimer.stop()
	n.rpcTimer.at = d
	gen := n.rpcTimer.gen
	n.rpcTimer.t = n.clock.AfterFunc(d.Sub(now), func() { n.onRPCTimer(gen) })
}

func (n *Node) onRPCTimer(gen uint64) {
	n.run(func(now time.Time, w transport.Writer) {
		if gen != n.rpcTimer.gen || n.closed {
			return
		}
		n.rpcTimer.t = nil
		n.rpc.Expire(now, func(txid uint64, to netip.AddrPort, p pending) {
			if !p.stalled && n.stalls(p.op) {
				p.stalled = true
				if n.rpc.Add(txid, to, now.Add(n.cfg.RequestTimeout-n.cfg.StallAfter), p) == nil {
					n.stats.stalls++
					p.op.(*lookupOp).stall(n, &p, now, w)
					return
				}
			}
			if p.tries <= n.cfg.Retries {
				p.tries++
				if n.rpc.Add(txid, to, now.Add(n.cfg.RequestTimeout), p) == nil {
					n.stats.retries++
					n.write(txid, &p, w)
					return
				}
			}
			n.stats.timeouts++
			if !p.to.ID.IsZero() {
				n.table.Failed(p.to.ID, now)
			}
			p.op.failure(n, &p, now, w)
		})
		n.armRPC(now)
	})
}

// opState is an operation a caller waits for. Close fails every one still
// open, so that no caller waits forever.
type opState struct {
	done bool
	fail func(error)
}

// begin registers an operation, or fails it at once on a closed node.
// Callers hold the lock.
func (n *Node) begin(fail func(error)) *opState {
	if n.closed {
		n.later(func() { fail(ErrClosed) })
		return nil
	}
	o := &opState{fail: fail}
	n.ops[o] = struct{}{}
	return o
}

// end completes o with f (queued to run after the lock is released) unless
// it already ended (canceled or closed).
func (n *Node) end(o *opState, f func()) {
	if o.done {
		return
	}
	o.done = true
	delete(n.ops, o)
	n.later(f)
}

func (n *Node) failOp(o *opState, err error) {
	n.end(o, func() { o.fail(err) })
}

// canceler returns the function that cancels o: its callback reports
// ErrCanceled, and whatever it still had in flight is ignored when it lands.
func (n *Node) canceler(o *opState) func() {
	if o == nil {
		return func() {}
	}
	return func() {
		n.mu.Lock()
		n.failOp(o, ErrCanceled)
		n.unlock()
	}
}

// LookupResult describes a finished lookup.
type LookupResult struct {
	Target id.ID
	// Closest holds up to K contacts that answered, closest to Target first.
	Closest []id.Contact
	// Values holds what a FIND_VALUE lookup found (copies).
	Values [][]byte
	// More is set when the node that answered holds more values than fit.
	More bool
	// Rounds is the lookup's hop count: for a FIND_VALUE that found values,
	// the round of the first node that returned them; otherwise the deepest
	// round that answered. Contacts from the local table are round 1.
	Rounds int
	// Messages counts requests sent, retries included.
	Messages int
	// Queried, Responded and Failed count distinct contacts.
	Queried, Responded, Failed int
	// Stalled counts requests the lookup stopped waiting for before their
	// timeout (they may still have answered).
	Stalled int
	// Local is set when the values came from the node's own store.
	Local    bool
	Started  time.Time
	Duration time.Duration
}

// lookupOp runs one iterative lookup and hands its result to then.
type lookupOp struct {
	l        *lookup.Lookup
	typ      wire.Type // FindNode or FindValue
	target   id.ID
	started  time.Time
	msgs     int
	finished bool
	values   [][]byte
	more     bool
	round    int
	then     func(r *LookupResult, now time.Time, w transport.Writer)
}

// lookupPool recycles shortlists (about 5 KiB each): a get would otherwise
// allocate one per lookup and keep the collector busy.
var lookupPool = sync.Pool{New: func() any { return new(lookup.Lookup) }}

// lookup starts a lookup for target from the contacts of the routing table.
// then runs under the lock when it ends.
func (n *Node) lookup(typ wire.Type, target id.ID, now time.Time, w transport.Writer, then func(r *LookupResult, now time.Time, w transport.Writer)) *lookupOp {
	l := lookupPool.Get().(*lookup.Lookup)
	l.Reset(n.self, target, lookup.Config{K: n.cfg.K, Alpha: n.cfg.Alpha})
	o := &lookupOp{
		l:       l,
		typ:     typ,
		target:  target,
		started: now,
		then:    then,
	}
	var buf [wire.MaxContacts]id.Contact
	seeds := n.table.ClosestResponsive(target, n.cfg.K, buf[:0])
	if len(seeds) == 0 {
		// Every contact failed its last request: perhaps our own network
		// was down. Try them all rather than give up.
		seeds = n.table.Closest(target, n.cfg.K, buf[:0])
	}
	o.l.AddSeeds(seeds)
	n.table.Touch(target, now)
	n.advance(o, now, w)
	return o
}

// advance sends the lookup's next requests, or finishes it.
func (n *Node) advance(o *lookupOp, now time.Time, w transport.Writer) {
	var buf [wire.MaxContacts]id.Contact
	for !o.finished {
		next := o.l.Next(buf[:0])
		if len(next) == 0 {
			break
		}
		for _, c := range next {
			if n.send(c, o.typ, o.target, o, now, w) {
				o.msgs++
			} else {
				o.l.OnFailure(c.ID)
			}
		}
	}
	if !o.finished && o.l.Done() {
		n.finishLookup(o, now, w)
	}
}

func (o *lookupOp) response(n *Node, p *pending, m *wire.Message, now time.Time, w transport.Writer) {
	if o.finished {
		return
	}
	want := wire.Nodes
	if o.typ == wire.FindValue {
		want = wire.Values
	}
	if m.Type != want {
		o.l.OnFailure(p.to.ID)
		n.advance(o, now, w)
		return
	}
	cs := m.Contacts[:0]
	for _, c := range m.Contacts {
		if usableAddr(c.Addr) && n.reachable(c.Addr) {
			cs = append(cs, c)
		}
	}
	depth := o.l.OnResponse(p.to.ID, cs)
	if len(m.Values) > 0 {
		o.values = make([][]byte, len(m.Values))
		for i, v := range m.Values {
			o.values[i] = append([]byte(nil), v.Data...)
		}
		o.more = m.More
		o.round = depth
		n.finishLookup(o, now, w)
		return
	}
	n.advance(o, now, w)
}

// stalls reports whether requests sent for o stall before they time out: a
// lookup's do, when StallAfter is shorter than the timeout.
func (n *Node) stalls(o op) bool {
	_, ok := o.(*lookupOp)
	return ok && n.cfg.StallAfter < n.cfg.RequestTimeout
}

// stall lets the lookup move on from a request that is taking long: a node
// that left the network should cost a lookup its stall time, not its timeout.
func (o *lookupOp) stall(n *Node, p *pending, now time.Time, w transport.Writer) {
	if o.finished {
		return
	}
	o.l.OnStall(p.to.ID)
	n.advance(o, now, w)
}

func (o *lookupOp) failure(n *Node, p *pending, now time.Time, w transport.Writer) {
	if o.finished {
		return
	}
	o.l.OnFailure(p.to.ID)
	n.advance(o, now, w)
}

func (n *Node) finishLookup(o *lookupOp, now time.Time, w transport.Writer) {
	o.finished = true
	st := o.l.Stats()
	r := &LookupResult{
		Target:    o.target,
		Closest:   o.l.Closest(nil),
		Values:    o.values,
		More:      o.more,
		Rounds:    st.Rounds,
		Messages:  o.msgs,
		Queried:   st.Queried,
		Responded: st.Responded,
		Failed:    st.Failed,
		Stalled:   st.Stalled,
		Started:   o.started,
		Duration:  now.Sub(o.started),
	}
	if o.values != nil {
		r.Rounds = o.round
	}
	// Finished lookups ignore late answers, so the shortlist can go back to
	// the pool before the continuation starts lookups of its own.
	lookupPool.Put(o.l)
	o.l = nil
	o.then(r, now, w)
}

// pingOp is a PING whose outcome then receives.
type pingOp struct {
	then func(c id.Contact, ok bool, now time.Time, w transport.Writer)
}

func (o pingOp) response(n *Node, p *pending, m *wire.Message, now time.Time, w transport.Writer) {
	o.then(p.to, m.Type == wire.Pong, now, w)
}

func (o pingOp) failure(n *Node, p *pending, now time.Time, w transport.Writer) {
	o.then(p.to, false, now, w)
}

// Ping asks the node at addr whether it is alive; cb gets its contact.
// The returned function cancels the operation.
func (n *Node) Ping(addr netip.AddrPort, cb func(id.Contact, error)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(id.Contact{}, err) }); o == nil {
			return
		}
		ok := n.send(id.Contact{Addr: addr}, wire.Ping, id.ID{}, pingOp{then: func(c id.Contact, ok bool, _ time.Time, _ transport.Writer) {
			if ok {
				n.end(o, func() { cb(c, nil) })
			} else {
				n.failOp(o, fmt.Errorf("%w from %v", ErrTimeout, addr))
			}
		}}, now, w)
		if !ok {
			n.failOp(o, errTooBusy)
		}
	})
	return n.canceler(o)
}

var errTooBusy = errors.New("too many requests in flight")

// FindNode looks up the K nodes closest to target.
func (n *Node) FindNode(target id.ID, cb func(*LookupResult, error)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(nil, err) }); o == nil {
			return
		}
		n.lookup(wire.FindNode, target, now, w, func(r *LookupResult, _ time.Time, _ transport.Writer) {
			if r.Queried == 0 {
				n.failOp(o, ErrNoPeers)
				return
			}
			n.end(o, func() { cb(r, nil) })
		})
	})
	return n.canceler(o)
}

// Get looks up the values stored under key. A node that holds the key
// itself answers from its own store. cb gets ErrNotFound when the lookup
// converged without finding values.
func (n *Node) Get(key id.ID, cb func(*LookupResult, error)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(nil, err) }); o == nil {
			return
		}
		if !n.cfg.ReadOnly {
			if vs := n.store.Get(key, now, nil); len(vs) > 0 {
				r := &LookupResult{Target: key, Local: true, Started: now}
				for _, v := range vs {
					r.Values = append(r.Values, append([]byte(nil), v.Data...))
				}
				n.end(o, func() { cb(r, nil) })
				return
			}
		}
		n.lookup(wire.FindValue, key, now, w, func(r *LookupResult, _ time.Time, _ transport.Writer) {
			switch {
			case len(r.Values) > 0:
				n.end(o, func() { cb(r, nil) })
			case r.Queried == 0:
				n.end(o, func() { cb(r, fmt.Errorf("%w: %w", ErrNotFound, ErrNoPeers)) })
			case r.Responded == 0:
				n.end(o, func() { cb(r, fmt.Errorf("%w: none of the %d nodes asked answered", ErrTimeout, r.Queried)) })
			default:
				n.end(o, func() { cb(r, ErrNotFound) })
			}
		})
	})
	return n.canceler(o)
}

// Refusal is a node's reason for not storing a value.
type Refusal struct {
	Node id.Contact
	Code wire.ErrorCode
	Text string
}

// PutResult describes a finished put.
type PutResult struct {
	// Stored counts the nodes that accepted the value, this one included.
	Stored int
	// Local is set when this node stored the value itself, being among the
	// K closest to the key.
	Local bool
	// Refused lists nodes that answered with a refusal; Failed counts nodes
	// that did not answer.
	Refused []Refusal
	Failed  int
	// Lookup is the lookup that found the nodes to store at.
	Lookup   *LookupResult
	Duration time.Duration
}

// ErrRejected is reported when every node that answered refused the value.
var ErrRejected = errors.New("value refused")

// putOp is the STORE phase of a put.
type putOp struct {
	o     *opState
	value []byte
	ttl   uint32
	left  int
	res   *PutResult
	cb    func(*PutResult, error)
}

func (p *putOp) storeValue() ([]byte, uint32) { return p.value, p.ttl }

func (p *putOp) response(n *Node, q *pending, m *wire.Message, now time.Time, w transport.Writer) {
	switch m.Type {
	case wire.Stored:
		p.res.Stored++
	case wire.Error:
		p.res.Refused = append(p.res.Refused, Refusal{Node: q.to, Code: m.Code, Text: string(m.Text)})
	default:
		p.res.Failed++
	}
	p.left--
	p.maybeDone(n, now)
}

func (p *putOp) failure(n *Node, q *pending, now time.Time, w transport.Writer) {
	p.res.Failed++
	p.left--
	p.maybeDone(n, now)
}

func (p *putOp) maybeDone(n *Node, now time.Time) {
	if p.left > 0 {
		return
	}
	r := p.res
	r.Duration = now.Sub(r.Lookup.Started)
	switch {
	case r.Stored > 0:
		n.end(p.o, func() { p.cb(r, nil) })
	case len(r.Refused) > 0:
		n.end(p.o, func() { p.cb(r, fmt.Errorf("%w by %v: %s", ErrRejected, r.Refused[0].Node.Addr, r.Refused[0].Text)) })
	case r.Lookup.Queried == 0 && r.Failed == 0:
		n.end(p.o, func() { p.cb(r, ErrNoPeers) })
	default:
		n.end(p.o, func() { p.cb(r, fmt.Errorf("%w: none of the %d nodes asked to store answered", ErrTimeout, r.Failed)) })
	}
}

// Put stores value under key on the K nodes closest to it for ttl (at most
// each node's maximum TTL), this node included when it is one of them.
func (n *Node) Put(key id.ID, value []byte, ttl time.Duration, cb func(*PutResult, error)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(nil, err) }); o == nil {
			return
		}
		switch {
		case len(value) == 0:
			n.failOp(o, errors.New("empty value"))
			return
		case len(value) > wire.MaxValueSize:
			n.failOp(o, fmt.Errorf("value is %d bytes, limit %d", len(value), wire.MaxValueSize))
			return
		case ttl < time.Second:
			n.failOp(o, fmt.Errorf("ttl %v is under 1s", ttl))
			return
		}
		secs := ttlSeconds(ttl)
		p := &putOp{o: o, value: append([]byte(nil), value...), ttl: secs, cb: cb, res: &PutResult{}}
		n.lookup(wire.FindNode, key, now, w, func(r *LookupResult, now time.Time, w transport.Writer) {
			p.res.Lookup = r
			targets := r.Closest
			if !n.cfg.ReadOnly && (len(targets) < n.cfg.K || n.self.CloserTo(key, targets[len(targets)-1].ID)) {
				local := min(time.Duration(secs)*time.Second, n.cfg.MaxTTL)
				if err := n.store.Put(key, p.value, netip.Addr{}, now.Add(local), now); err == nil {
					p.res.Stored++
					p.res.Local = true
					if len(targets) == n.cfg.K {
						targets = targets[:len(targets)-1] // this node takes the farthest one's place
					}
				} else {
					p.res.Refused = append(p.res.Refused, Refusal{Node: id.Contact{ID: n.self, Addr: n.Addr()}, Text: err.Error()})
				}
			}
			for _, c := range targets {
				if n.send(c, wire.Store, key, p, now, w) {
					p.left++
				} else {
					p.res.Failed++
				}
			}
			p.maybeDone(n, now)
		})
	})
	return n.canceler(o)
}

// BootstrapResult describes a finished join.
type BootstrapResult struct {
	// Seeds lists the seeds that answered.
	Seeds []id.Contact
	// Lookups counts the lookups the join ran (its own ID, then one per
	// bucket farther than its closest neighbour).
	Lookups int
	// TableSize is the number of contacts in the routing table afterwards.
	TableSize int
	Duration  time.Duration
}

// Bootstrap joins the network through seeds: it pings them, looks up its own
// ID, then refreshes every bucket farther away than its closest neighbour (the
// join of the Kademlia paper, section 2.3). A read-only node stops after the
// pings: its lookups find their own way. With no seeds it does nothing: the
// node starts a new network.
func (n *Node) Bootstrap(seeds []netip.AddrPort, cb func(*BootstrapResult, error)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(nil, err) }); o == nil {
			return
		}
		res := &BootstrapResult{}
		started := now
		finish := func(now time.Time) {
			res.TableSize = n.table.Len()
			res.Duration = now.Sub(started)
			n.end(o, func() { cb(res, nil) })
		}
		if len(seeds) == 0 {
			finish(now)
			return
		}
		left := len(seeds)
		pinged := func(c id.Contact, ok bool, now time.Time, w transport.Writer) {
			left--
			if ok {
				res.Seeds = append(res.Seeds, c)
			}
			if left > 0 || o.done {
				return
			}
			if len(res.Seeds) == 0 {
				n.failOp(o, fmt.Errorf("%w from any of the %d seed(s) %v", ErrTimeout, len(seeds), seeds))
				return
			}
			if n.cfg.ReadOnly {
				finish(now)
				return
			}
			res.Lookups++
			n.lookup(wire.FindNode, n.self, now, w, func(r *LookupResult, now time.Time, w transport.Writer) {
				if o.done {
					return
				}
				var far int
				if len(r.Closest) > 0 {
					far = n.self.CommonPrefixLen(r.Closest[0].ID)
				}
				pending := far
				if pending == 0 {
					finish(now)
					return
				}
				for i := range far {
					res.Lookups++
					target := id.RandomInBucket(n.rng, n.self, i)
					n.lookup(wire.FindNode, target, now, w, func(_ *LookupResult, now time.Time, _ transport.Writer) {
						if pending--; pending == 0 && !o.done {
							finish(now)
						}
					})
				}
			})
		}
		for _, s := range seeds {
			if !n.send(id.Contact{Addr: s}, wire.Ping, id.ID{}, pingOp{then: pinged}, now, w) {
				pinged(id.Contact{Addr: s}, false, now, w)
			}
		}
	})
	return n.canceler(o)
}

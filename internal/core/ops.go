package core

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
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
	txid  uint64
	tries int
	// stalled is set once a lookup request outlived StallAfter: the lookup
	// stopped waiting for it, and its deadline moved on to the full timeout.
	stalled bool
	// unverified is set for a FIND_NODE or FIND_VALUE to a routing-table
	// entry whose address never answered us: it may be a forged source, so
	// the request is neither padded nor retried (see start).
	unverified bool
	// slot and off say which of its requests this is to an op that sends
	// several to one node (a put's target and part offset, a fetch's
	// record and part).
	slot int32
	off  uint32
	// cursor is set on a GET that continues a holder's answer after the
	// record it names.
	cursor *recordKey
	sent   time.Time // when the last attempt went out (obs: round-trip times, stats.go)
	// first is when the first attempt went out; end is when the current
	// attempt runs out, wait how long it was given; stallIn is when,
	// after first, a lookup stops waiting for it (see rtt.go).
	first, end time.Time
	wait       time.Duration
	stallIn    time.Duration
	// gaveUp is set once a lookup counts the request as failed, though it
	// still runs; giveUpAt is when it next considers doing so.
	gaveUp   bool
	giveUpAt time.Time
	// ownRTT is set when the timeouts come from the contact's own
	// round-trip estimate rather than the node's.
	ownRTT bool
	// prove is set when the request asks for an identity proof: its
	// answer counts only with a valid one (ident.go).
	prove bool
	// tokFlag sets the header flag TOKEN: a write carries tok, another
	// request asks for a token (token.go). tokRetried is set on a write
	// sent again with the token its refusal carried.
	tokFlag, tokRetried bool
	tok                 wire.Token
}

// op is whatever sent a request and wants its outcome. Both methods run under
// the node's lock.
type op interface {
	response(n *Node, p *pending, m *wire.Message, now time.Time, w transport.Writer)
	failure(n *Node, p *pending, now time.Time, w transport.Writer)
}

// tracker is an op that remembers its requests in flight, so that it can
// forget them when it ends early: a finished or canceled operation sends
// nothing more, retries included.
type tracker interface {
	track(txid uint64)
	untrack(txid uint64)
}

// deader is an op that can end while requests it asked for still wait in
// the send queue (see queued); those are dropped instead of sent.
type deader interface{ dead() bool }

// txset is the transaction IDs an operation has in flight. It is bounded by
// what the operation sends (a lookup's queries, a put's K stores).
type txset []uint64

func (s *txset) track(txid uint64) { *s = append(*s, txid) }

func (s *txset) untrack(txid uint64) {
	for i, x := range *s {
		if x == txid {
			(*s)[i] = (*s)[len(*s)-1]
			*s = (*s)[:len(*s)-1]
			return
		}
	}
}

// forget removes every request of s from the tracker without reporting an
// outcome: nobody waits for them any more, and a late answer is unmatched.
func (s *txset) forget(n *Node) {
	for _, x := range *s {
		n.noteAbandoned(n.rpc.Remove(x)) // obs: counts it (stats.go)
	}
	*s = (*s)[:0]
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

// queued is a request that found the request table full. Running out of
// in-flight slots is the node's own limit, not the peer's fault: the request
// waits for a free slot instead of failing (which would make lookups give up
// on good contacts and puts store on farther nodes).
type queued struct {
	p pending // the request, without its txid and tries
}

// minQueue is the least room the send queue has, however small MaxInFlight
// is: enough for many puts' STOREs and lookups' requests at once.
const minQueue = 1024

// send starts a request and reports whether it could: not when the node is
// closed, or when the request table and the queue behind it are both full.
// A request that finds the table full but the queue open waits there and
// counts as started; liveness pings, which remote traffic triggers, are
// never queued.
func (n *Node) send(to id.Contact, typ wire.Type, key id.ID, o op, now time.Time, w transport.Writer) bool {
	return n.sendReq(pending{to: to, typ: typ, key: key, op: o}, now, w)
}

// sendReq is send for a request whose op needs its slot, offset or cursor.
func (n *Node) sendReq(p pending, now time.Time, w transport.Writer) bool {
	if n.closed {
		return false
	}
	n.drainIfRoom(now, w) // those waiting go first
	if n.rpc.Len() >= n.rpc.Cap() {
		_, probe := p.op.(identityProbe)
		if _, ping := p.op.(livenessCheck); ping || probe || len(n.queue)-n.queueHead >= max(n.cfg.MaxInFlight, minQueue) {
			n.stats.rpcFull++
			return false
		}
		n.queue = append(n.queue, queued{p: p})
		n.stats.rpcQueued++
		return true
	}
	return n.start(p, now, w)
}

// start sends a request now; the request table has room.
func (n *Node) start(p pending, now time.Time, w transport.Writer) bool {
	txid := n.rpc.NewTxID(n.rng)
	p.txid, p.tries, p.sent = txid, 1, now              // obs: sent for round-trip times
	p.prove = n.wantProof(p.to) && !listenerRequest(&p) // ident.go
	to, typ, o := p.to, p.typ, p.op
	if typ == wire.FindNode || typ == wire.FindValue || typ == wire.Get {
		// A contact that only ever sent us requests may be an address a
		// forged PING planted: it gets one small request, not a padded one
		// and its retry, until it answers and so is verified.
		e, ok := n.table.Get(to.ID)
		p.unverified = ok && e.Contact.Addr == to.Addr && !e.Verified
	}
	n.tokenFor(&p, now) // token.go
	wait, stall, own := n.firstTimeouts(to)
	p.first, p.wait, p.end, p.ownRTT, p.stallIn = now, wait, now.Add(wait), own, stall
	p.giveUpAt = now.Add(max(giveUpFactor*stall, n.cfg.MinRequestTimeout))
	if err := n.rpc.Add(txid, to.Addr, n.due(&p), p); err != nil {
		n.stats.rpcFull++
		return false
	}
	if t, ok := o.(tracker); ok {
		t.track(txid)
	}
	n.write(txid, &p, w)
	n.armRPC(now)
	return true
}

// drain sends queued requests while the request table has room, dropping
// those whose operation has ended.
func (n *Node) drain(now time.Time, w transport.Writer) {
	for n.queueHead < len(n.queue) && n.rpc.Len() < n.rpc.Cap() && !n.closed {
		q := n.queue[n.queueHead]
		n.queue[n.queueHead] = queued{}
		n.queueHead++
		if d, ok := q.p.op.(deader); ok && d.dead() {
			continue
		}
		if !n.start(q.p, now, w) {
			// Cannot happen with room in the table; report it as a failure
			// rather than lose the operation's accounting.
			q.p.op.failure(n, &q.p, now, w)
		}
	}
	switch {
	case n.queueHead == len(n.queue):
		clear(n.queue)
		n.queue = n.queue[:0]
		n.queueHead = 0
		if cap(n.queue) > minQueue {
			n.queue = nil // a burst should not keep its memory
		}
	case n.queueHead >= len(n.queue)/2:
		// Requests still wait: move them to the front, so that a queue that
		// never empties does not grow with every request it ever held.
		m := copy(n.queue, n.queue[n.queueHead:])
		clear(n.queue[m:])
		n.queue = n.queue[:m]
		n.queueHead = 0
	}
}

// done is called when request p leaves the request table with an outcome:
// its op stops tracking it, and a queued request may take its slot.
func (n *Node) done(p *pending) {
	if t, ok := p.op.(tracker); ok {
		t.untrack(p.txid)
	}
}

// filler is an op whose requests carry a body beyond the key: a put's
// parts, a delete's version, a get's cursor. It fills m for request p.
type filler interface {
	fill(m *wire.Message, p *pending)
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
	if p.prove {
		m.Flags |= wire.FlagProve
	}
	if p.tokFlag {
		m.Flags |= wire.FlagToken
		m.Token = p.tok
	}
	m.Target = p.key
	if f, ok := p.op.(filler); ok {
		f.fill(m, p)
	}
	b, err := m.Append(e.buf[:0])
	switch {
	case p.unverified:
	case p.typ == wire.FindNode:
		// Enough for a full answer of K contacts of any family.
		b = wire.Pad(b, 0, max(wire.MinFindNodeLen, (wire.HeaderLen+1+n.cfg.K*(id.Len+19)+wire.AmplificationFactor-1)/wire.AmplificationFactor))
	case p.typ == wire.FindValue, p.typ == wire.Get, p.typ == wire.Fetch:
		b = wire.Pad(b, 0, wire.MinFindValueLen)
	case p.typ == wire.Notify:
		b = wire.Pad(b, 0, notifyLen(&m.Record)) // listen.go
	}
	if p.prove && err == nil {
		// The answer's trailer is paid for by the request (ident.go).
		b = wire.Pad(b, 0, len(b)+wire.ProvePad)
		n.ident.proveSent++
	}
	if err == nil {
		w.WriteTo(b, p.to.Addr)
		n.stats.packetsOut++
		n.stats.requests++
		n.noteSent(p) // obs: by type (stats.go)
	} else {
		n.log.Error("encoding a request failed", "type", p.typ, "err", err)
	}
	m.Reset() // drop references to the op's buffers
	encPool.Put(e)
}

// rpcGrain coalesces request deadlines so that a stream of requests arms one
// timer per grain rather than one per request. A deadline closer than ten
// grains, as adaptive timeouts give on a LAN or loopback, takes a tenth of
// the grain instead, so that rounding never adds more than about a tenth to
// a wait.
const rpcGrain = 10 * time.Millisecond

func (n *Node) armRPC(now time.Time) {
	d, ok := n.rpc.NextDeadline()
	if !ok || n.closed {
		return
	}
	grain := rpcGrain
	if d.Sub(now) < 10*rpcGrain {
		grain = rpcGrain / 10
	}
	if r := d.Truncate(grain); r.Before(d) {
		d = r.Add(grain)
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
			n.expired(txid, to, p, now, w)
		})
		n.armRPC(now)
	})
}

// expired handles request p, whose deadline has come: a lookup's stall or
// give-up (see rtt.go), the end of an attempt, which sends the next one, or
// the end of the last, which fails it.
func (n *Node) expired(txid uint64, to netip.AddrPort, p pending, now time.Time, w transport.Writer) {
	if d, ok := p.op.(deader); ok && d.dead() {
		// Its operation ended while this batch was being expired.
		n.noteAbandoned(p, true) // obs (stats.go)
		n.done(&p)
		return
	}
	var lo *lookupOp
	stall, giveUp := false, false
	if n.stalls(p.op) {
		lo = p.op.(*lookupOp)
		if !p.stalled && !now.Before(p.first.Add(p.stallIn)) {
			p.stalled, stall = true, true
		}
		if n.adaptive() && p.stalled && !p.gaveUp && !now.Before(p.giveUpAt) {
			if !lo.heard.IsZero() {
				p.gaveUp, giveUp = true, true
			} else {
				// Nothing this lookup sent has been answered: the
				// silence may be this node's (its network, or a
				// scheduler that kept it from reading), so look again a
				// while later.
				p.giveUpAt = now.Add(max(p.stallIn, minStall))
			}
		}
	}
	if now.Before(p.end) && n.rpc.Add(txid, to, n.due(&p), p) == nil {
		// The attempt runs on; the lookup moves on without it. Should
		// that end the lookup, finishLookup finds the request in the
		// table and leaves it to run to its verdict.
		n.lookupEvents(lo, &p, stall, giveUp, now, w)
		return
	}
	// The attempt has run out. The lookup moves on first. A request it has
	// stalled on (with adaptive timeouts), or that it no longer waits for
	// at all, is not sent again: the lookup went on without it, and under
	// churn a silent contact has most likely left, so a retry would be one
	// more datagram to nobody. The attempts made give the verdict.
	n.lookupEvents(lo, &p, stall, giveUp, now, w)
	if lo != nil && lo.finished {
		p.op = detached{} // as finishLookup leaves its requests
	}
	movedOn := p.gaveUp || (p.stalled && n.adaptive())
	if _, d := p.op.(detached); !d && !movedOn && p.tries < n.cfg.Attempts && !p.unverified && p.typ != wire.Notify { // a NOTIFY goes once (listen.go)
		p.tries++
		p.sent = now // obs: the round trip counts from the last attempt
		p.wait = n.retryTimeout(&p)
		p.end = now.Add(p.wait)
		if n.rpc.Add(txid, to, n.due(&p), p) == nil {
			n.stats.retries++
			n.write(txid, &p, w)
			return
		}
	}
	if v := n.verdictAt(&p); now.Before(v) {
		// Not sent again, but a contact with no estimate of its own is
		// not failed on a timeout other contacts' round trips set.
		p.tries, p.end = n.cfg.Attempts, v
		if n.rpc.Add(txid, to, n.due(&p), p) == nil {
			return
		}
	}
	n.stats.timeouts++
	n.noteTimeout(&p, now) // obs: by type, and the debug line (stats.go)
	n.done(&p)
	if !p.to.ID.IsZero() {
		n.table.FailedAt(p.to, now)
		n.noteFailed(p.to, now) // re-replication (handover.go)
		n.rejoinSoon(now)
	}
	p.op.failure(n, &p, now, w)
}

// giveUpFactor is how many times its stall time a lookup waits for a
// request before it counts it as failed (the request itself runs on, for
// the routing table's verdict): the stall, then one retry with its timeout
// doubled, as the estimate alone would have had it. It never gives up
// sooner than MinRequestTimeout, so that round trips of microseconds
// (loopback) do not make it forget peers a busy scheduler delays by a few
// milliseconds, nor while none of its requests has been answered (the
// silence may be its own node's).
const giveUpFactor = 3

// due returns when request p next needs the timer: its stall or give-up,
// for a lookup's request, else the end of its attempt.
func (n *Node) due(p *pending) time.Time {
	d := p.end
	if n.stalls(p.op) {
		switch {
		case !p.stalled:
			d = minTime(d, p.first.Add(p.stallIn))
		case n.adaptive() && !p.gaveUp:
			d = minTime(d, p.giveUpAt)
		}
	}
	return d
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// lookupEvents tells lookup lo (nil: p is not a lookup's) that p stalled
// and/or that it gives up on p.
func (n *Node) lookupEvents(lo *lookupOp, p *pending, stall, giveUp bool, now time.Time, w transport.Writer) {
	if lo == nil {
		return
	}
	if stall {
		n.stats.stalls++
		lo.stall(n, p, now, w)
	}
	if giveUp && !lo.finished {
		lo.giveUp(n, p, now, w)
	}
}

// verdictAt is when request p, which will not be sent again, fails: at the
// end of its current attempt, but no sooner than RequestTimeout after its
// first send. Estimates make retries and stalls come early; a failure,
// which the routing table holds against the contact, comes no sooner than
// it did with fixed timeouts, so that neither a contact slower than its
// peers (whose estimate may have timed its attempts, see rtt.go) nor this
// node's own pause (a collection, a busy scheduler) gets a live contact
// declared dead.
func (n *Node) verdictAt(p *pending) time.Time {
	if t := p.first.Add(n.cfg.RequestTimeout); t.After(p.end) {
		return t
	}
	return p.end
}

// detached is the op of a request whose lookup ended before it did: its
// outcome goes to the routing table alone (an answer is seen, a timeout
// counts as a failure), without a retry, so that a departed contact is
// found out even when no lookup waited for it.
type detached struct{}

func (detached) response(*Node, *pending, *wire.Message, time.Time, transport.Writer) {}
func (detached) failure(*Node, *pending, time.Time, transport.Writer)                 {}

// detach leaves the requests of s still in flight to run to their verdict
// as detached ones, sending nothing more, and empties s.
func (s *txset) detach(n *Node) {
	for _, x := range *s {
		p, ok := n.rpc.Remove(x)
		if !ok {
			continue
		}
		p.op, p.tries, p.stalled = detached{}, n.cfg.Attempts, true
		p.end = n.verdictAt(&p)
		if n.rpc.Add(x, p.to.Addr, p.end, p) != nil {
			n.noteAbandoned(p, true) // obs (stats.go)
		}
	}
	*s = (*s)[:0]
}

// opState is an operation a caller waits for. Close fails every one still
// open, so that no caller waits forever.
type opState struct {
	done bool
	fail func(error)
	// stops run when the operation ends, however it ends: they abandon
	// the lookups and requests it still has going, so that a canceled
	// operation sends nothing more.
	stops []func()
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

// onEnd registers f to run (under the lock) when o ends.
func (o *opState) onEnd(f func()) { o.stops = append(o.stops, f) }

// end completes o with f (queued to run after the lock is released) unless
// it already ended (canceled or closed).
func (n *Node) end(o *opState, f func()) {
	if o.done {
		return
	}
	o.done = true
	delete(n.ops, o)
	for _, stop := range o.stops {
		stop()
	}
	o.stops = nil
	n.later(f)
}

func (n *Node) failOp(o *opState, err error) {
	n.end(o, func() { o.fail(err) })
}

// canceler returns the function that cancels o: its callback reports
// ErrCanceled, its requests in flight are forgotten, and it sends nothing
// more.
func (n *Node) canceler(o *opState) func() {
	if o == nil {
		return func() {}
	}
	return func() {
		n.run(func(now time.Time, w transport.Writer) {
			n.failOp(o, ErrCanceled) // run then lets queued requests take its slots
		})
	}
}

// LookupResult describes a finished lookup.
type LookupResult struct {
	Target id.ID
	// Closest holds up to K contacts that answered, closest to Target first.
	Closest []id.Contact
	// Records holds what a value lookup found: for each publisher, the
	// newest version any node that answered holds (this one included),
	// tombstones left out, newest first. The data are copies.
	Records []Record
	// Values and TTLs are Records' data and lifetimes, in the same order.
	Values [][]byte
	TTLs   []time.Duration
	// Withdrawn counts the publishers whose newest version is a tombstone
	// (a signed withdrawal included).
	Withdrawn int
	// Withdrawals holds the verified signed withdrawals among them (an
	// enveloped record whose envelope carries no value), which only their
	// owner could sign: Data is the envelope.
	Withdrawals []Record
	// Holders counts the nodes that answered with records, this one
	// included when it holds some.
	Holders int
	// More is set when a node that answered holds more values than its
	// answer carried.
	More bool
	// Incomplete says why the answer may be missing values or closer
	// nodes, empty when it is not: the lookup stopped at one of its bounds
	// (requests, rounds, time) before converging, a holder had more values
	// than it sent, or the merged set hit its bound.
	Incomplete string
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
	// Local is set when values came from the node's own store and no other
	// node had any.
	Local    bool
	Started  time.Time
	Duration time.Duration
	// Trace lists the lookup's requests, for a traced lookup (TraceLookup).
	Trace []TraceQuery
}

// maxMerged bounds the distinct values a FIND_VALUE lookup keeps from all
// its answers: hostile holders could otherwise each add a full answer.
const maxMerged = 4 * wire.MaxValues

// maxHolders bounds the hosts a lookup remembers as holders; a quorum is at
// most K.
const maxHolders = wire.MaxContacts

// lookupOp runs one iterative lookup and hands its result to then.
type lookupOp struct {
	l        *lookup.Lookup
	typ      wire.Type // FindNode or FindValue
	target   id.ID
	started  time.Time
	deadline time.Time
	msgs     int
	finished bool
	txids    txset

	// FIND_VALUE: the values merged so far, and from how many nodes.
	recs       []*mergedRec // one per publisher
	holders    int          // distinct hosts among holderHosts
	hosts      []netip.Addr // the holders' hosts (see hostOf); this node is the zero Addr
	holderIDs  []id.ID      // the holders' IDs, as hosts; this node is the zero ID (see quorumNear)
	quorum     int
	more       bool
	incomplete string
	// reasked are holders asked again, padded, after an unpadded request
	// drew an answer too small for a value: each responder at most once
	// (the second request is padded), so at most the lookup's queries.
	reasked    []id.ID
	continued  int           // continuation GETs sent
	trace      *[]TraceQuery // non-nil when the lookup is traced
	reaskDepth int
	round      int
	heard      time.Time // when one of its requests was last answered
	seeded     int       // contacts asked of the routing table so far (see topUp)

	then func(r *LookupResult, now time.Time, w transport.Writer)
}

func (o *lookupOp) track(txid uint64)   { o.txids.track(txid) }
func (o *lookupOp) untrack(txid uint64) { o.txids.untrack(txid) }
func (o *lookupOp) dead() bool          { return o.finished }

// lookupPool recycles shortlists (about 5 KiB each): a get would otherwise
// allocate one per lookup and keep the collector busy.
var lookupPool = sync.Pool{New: func() any { return new(lookup.Lookup) }}

// lookup starts a lookup for target from the contacts of the routing table.
// then runs under the lock when it ends, unless the lookup is abandoned
// first (see abandon).
func (n *Node) lookup(typ wire.Type, target id.ID, now time.Time, w transport.Writer, then func(r *LookupResult, now time.Time, w transport.Writer)) *lookupOp {
	o := n.newLookup(typ, target, now, then)
	n.seed(o, now, w)
	return o
}

// newLookup makes a lookup that has not started yet.
func (n *Node) newLookup(typ wire.Type, target id.ID, now time.Time, then func(r *LookupResult, now time.Time, w transport.Writer)) *lookupOp {
	l := lookupPool.Get().(*lookup.Lookup)
	l.Reset(n.self, target, lookup.Config{K: n.cfg.K, Alpha: n.cfg.Alpha})
	n.noteLookupStart(typ) // obs (stats.go)
	return &lookupOp{
		l:        l,
		typ:      typ,
		target:   target,
		started:  now,
		deadline: now.Add(n.cfg.LookupTimeout),
		quorum:   n.cfg.GetQuorum,
		then:     then,
	}
}

// seed starts lookup o from the routing table's closest contacts.
func (n *Node) seed(o *lookupOp, now time.Time, w transport.Writer) {
	var buf [wire.MaxContacts]id.Contact
	seeds := n.table.ClosestResponsive(o.target, n.cfg.K, buf[:0])
	if len(seeds) == 0 {
		// Every contact failed its last request: perhaps our own network
		// was down. Try them all rather than give up.
		seeds = n.table.Closest(o.target, n.cfg.K, buf[:0])
	}
	o.l.AddSeeds(seeds)
	o.seeded = n.cfg.K
	n.table.Touch(o.target, now)
	n.advance(o, now, w)
}

// maxSeeded bounds, in multiples of K, how deep into the routing table a
// lookup reaches for seeds (see topUp).
const maxSeeded = 4

// topUp adds seeds from the routing table past the ones already given when
// the lookup is starved: fewer than K of its candidates are still viable
// (the others failed or stalled) and all of those have answered. It
// reports whether it added any. Under churn a table's closest contacts to a key are
// often the departed holders themselves, and so are the contacts its
// neighbours return: a lookup seeded with them alone ends having heard from
// nobody near the key, while live nodes a little farther out in the table
// know the key's current neighbours. The lookup ignores seeds it already
// holds, so none is asked twice.
func (n *Node) topUp(o *lookupOp) bool {
	k := n.cfg.K
	if o.seeded == 0 || o.seeded >= maxSeeded*k || !o.l.Starved() {
		return false
	}
	var buf [maxSeeded * wire.MaxContacts]id.Contact
	o.seeded += k
	seeds := n.table.ClosestResponsive(o.target, o.seeded, buf[:0])
	if len(seeds) < o.seeded {
		o.seeded = maxSeeded * k // the table has nothing farther
	}
	o.l.AddSeeds(seeds)
	return !o.l.Starved()
}

// abandon ends a lookup whose caller no longer wants it: its requests are
// forgotten and then never runs.
func (n *Node) abandon(o *lookupOp) {
	if o.finished {
		return
	}
	o.finished = true
	n.noteLookupAbandoned(o) // obs (stats.go)
	o.txids.forget(n)
	lookupPool.Put(o.l)
	o.l = nil
}

// advance sends the lookup's next requests, or finishes it.
func (n *Node) advance(o *lookupOp, now time.Time, w transport.Writer) {
	if o.finished {
		return
	}
	if !now.Before(o.deadline) {
		o.incomplete = fmt.Sprintf("lookup stopped at its time limit (%v)", n.cfg.LookupTimeout)
		n.finishLookup(o, now, w)
		return
	}
	var buf [wire.MaxContacts]id.Contact
	for !o.finished {
		next := o.l.Next(buf[:0])
		if len(next) == 0 && !n.topUp(o) {
			break
		}
		for _, c := range next {
			if n.send(c, o.typ, o.target, o, now, w) {
				o.traceSent(c, now)
				o.msgs++
			} else {
				o.l.OnFailure(c.ID)
			}
		}
	}
	if !o.finished && o.l.Done() && len(o.reasked) == 0 {
		n.finishLookup(o, now, w)
	}
}

func (o *lookupOp) response(n *Node, p *pending, m *wire.Message, now time.Time, w transport.Writer) {
	if o.finished {
		return
	}
	o.heard = now
	want := wire.Nodes
	if o.typ == wire.Get {
		want = wire.Records
	}
	if m.Type != want {
		o.traceAnswer(p.to, -1, m, now)
		if i := slices.Index(o.reasked, p.to.ID); i >= 0 {
			o.reasked = slices.Delete(o.reasked, i, i+1)
			o.more = true
		}
		o.l.OnFailure(p.to.ID)
		n.advance(o, now, w)
		return
	}
	cs := m.Contacts[:0]
	for _, c := range m.Contacts {
		if usableAddr(c.Addr) && n.reachable(c.Addr) && n.inScope(c.Addr.Addr(), p.to.Addr.Addr()) {
			cs = append(cs, c)
		}
	}
	depth := o.l.OnResponse(p.to.ID, cs)
	o.traceAnswer(p.to, depth, m, now)
	if depth == 0 {
		// Not a lookup request: perhaps the answer to a second ask or a
		// continuation.
		if i := slices.Index(o.reasked, p.to.ID); i >= 0 {
			o.reasked = slices.Delete(o.reasked, i, i+1)
			depth = o.reaskDepth
		}
	}
	if depth > 0 && m.More && len(m.Records) == 0 {
		if p.unverified && o.typ == wire.Get {
			// Our unpadded request earned an answer too small for even one
			// record. The holder answered, so it is verified now: ask it
			// once more, padded, and wait for that answer before finishing.
			if n.send(p.to, wire.Get, o.target, o, now, w) {
				o.traceSent(p.to, now)
				o.msgs++
				o.reasked = append(o.reasked, p.to.ID)
				o.reaskDepth = depth
				n.advance(o, now, w)
				return
			}
		}
		o.more = true // a holder whose first record did not fit our answer's limit
	}
	if depth > 0 && len(m.Records) > 0 {
		if o.holders == 0 {
			o.round = depth
		}
		o.mergeRecords(n, m.Records, hostOf(p.to.Addr.Addr()), p.to)
		if m.More {
			// The holder has more records than one answer carries: ask
			// for the rest, from the last one it sent.
			last := m.Records[len(m.Records)-1]
			cur := &recordKey{publisher: last.Publisher, version: last.Version}
			if o.continued < maxContinuations && n.sendReq(pending{to: p.to, typ: wire.Get, key: o.target, op: o, cursor: cur}, now, w) {
				o.continued++
				o.traceSent(p.to, now)
				o.msgs++
				o.reasked = append(o.reasked, p.to.ID)
				o.reaskDepth = depth
			} else {
				o.more = true
			}
		}
	}
	if o.quorumNear() && len(o.reasked) == 0 {
		n.finishLookup(o, now, w)
		return
	}
	n.advance(o, now, w)
}

// fill puts a continuation's cursor into its GET.
func (o *lookupOp) fill(m *wire.Message, p *pending) {
	if p.cursor != nil {
		m.Cursor, m.AfterPublisher, m.AfterVersion = true, p.cursor.publisher, p.cursor.version
	}
}

// maxContinuations bounds the GETs a lookup sends to continue holders'
// answers: enough for a full key (64 records) from a quorum of holders
// however small its values' answers are.
const maxContinuations = 64

// hostOf is the host an address stands for, as the store's quotas count
// them: an IPv4 address, or an IPv6 /64 (one host usually has a whole /64).
// One host answering under many IDs, from many ports, is one holder.
func hostOf(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
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
	o.traceStalled(p.to)
	o.l.OnStall(p.to.ID)
	n.advance(o, now, w)
}

// giveUp counts a request the lookup has waited for giveUpFactor times its
// stall time as failed, for the lookup only: the request runs on, and its
// outcome still reaches the routing table. This is what keeps a lookup that
// has nothing else to ask (fewer than K live candidates) from waiting out
// MinRequestTimeout and a retry for each departed contact.
func (o *lookupOp) giveUp(n *Node, p *pending, now time.Time, w transport.Writer) {
	if o.finished {
		return
	}
	o.failure(n, p, now, w)
}

func (o *lookupOp) failure(n *Node, p *pending, now time.Time, w transport.Writer) {
	if o.finished {
		return
	}
	if i := slices.Index(o.reasked, p.to.ID); i >= 0 {
		o.reasked = slices.Delete(o.reasked, i, i+1)
		o.more = true // its records stay unknown
	}
	o.traceFailed(p.to)
	o.l.OnFailure(p.to.ID)
	n.advance(o, now, w)
}

func (n *Node) finishLookup(o *lookupOp, now time.Time, w transport.Writer) {
	o.finished = true
	// Requests still out (stalled ones, those beyond the K closest, those a
	// quorum made unnecessary) are not retried, but run to their verdict for
	// the routing table: a departed contact that no lookup waited for must
	// still be found out, or tables would keep handing it out.
	o.txids.detach(n)
	st := o.l.Stats()
	r := &LookupResult{
		Target:     o.target,
		Closest:    o.l.Closest(nil),
		Holders:    o.holders,
		More:       o.more,
		Incomplete: o.incomplete,
		Rounds:     st.Rounds,
		Messages:   o.msgs,
		Queried:    st.Queried,
		Responded:  st.Responded,
		Failed:     st.Failed,
		Stalled:    st.Stalled,
		Started:    o.started,
		Duration:   now.Sub(o.started),
	}
	if o.trace != nil {
		r.Trace = *o.trace
	}
	if o.recs != nil {
		r.Rounds = o.round
		o.results(r)
	}
	if r.Incomplete == "" && st.Limited != 0 {
		r.Incomplete = fmt.Sprintf("lookup stopped at its bound on %v before converging", st.Limited)
	}
	if r.Incomplete == "" && o.more {
		r.Incomplete = "a holder has more values than its answer carried"
	}
	n.noteLookupEnd(o, r) // obs (stats.go)
	// Finished lookups ignore late answers, so the shortlist can go back to
	// the pool before the continuation starts lookups of its own.
	lookupPool.Put(o.l)
	o.l = nil
	o.then(r, now, w)
}

// pingOp is a PING whose outcome then receives.
type pingOp struct {
	o     *opState // the operation it belongs to; nil for none
	quiet bool     // its answer is not offered to the routing table
	txids txset
	then  func(c id.Contact, ok bool, now time.Time, w transport.Writer)
}

func (p *pingOp) track(txid uint64)   { p.txids.track(txid) }
func (p *pingOp) untrack(txid uint64) { p.txids.untrack(txid) }
func (p *pingOp) dead() bool          { return p.o != nil && p.o.done }

func (p *pingOp) response(n *Node, q *pending, m *wire.Message, now time.Time, w transport.Writer) {
	if !p.dead() {
		p.then(q.to, m.Type == wire.Pong, now, w)
	}
}

func (p *pingOp) failure(n *Node, q *pending, now time.Time, w transport.Writer) {
	if !p.dead() {
		p.then(q.to, false, now, w)
	}
}

// ping sends a PING on behalf of o and arranges for it to be forgotten when o
// ends. It reports whether the ping could be sent.
func (n *Node) ping(o *opState, addr netip.AddrPort, now time.Time, w transport.Writer, then func(c id.Contact, ok bool, now time.Time, w transport.Writer)) bool {
	return n.sendPing(&pingOp{o: o, then: then}, addr, now, w)
}

func (n *Node) sendPing(p *pingOp, addr netip.AddrPort, now time.Time, w transport.Writer) bool {
	o := p.o
	if !n.send(id.Contact{Addr: addr}, wire.Ping, id.ID{}, p, now, w) {
		return false
	}
	if o != nil {
		o.onEnd(func() { p.txids.forget(n) })
	}
	return true
}

// Ping asks the node at addr whether it is alive; cb gets its contact.
// The returned function cancels the operation.
func (n *Node) Ping(addr netip.AddrPort, cb func(id.Contact, error)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(id.Contact{}, err) }); o == nil {
			return
		}
		ok := n.ping(o, addr, now, w, func(c id.Contact, ok bool, _ time.Time, _ transport.Writer) {
			if ok {
				n.end(o, func() { cb(c, nil) })
			} else {
				n.failOp(o, fmt.Errorf("%w from %v", ErrTimeout, addr))
			}
		})
		if !ok {
			n.failOp(o, errTooBusy)
		}
	})
	return n.canceler(o)
}

var errTooBusy = errors.New("too many requests in flight")

// unanswered is the error of an operation whose lookup heard from nobody:
// ErrNoPeers when it had nobody to ask, ErrNoPeers and ErrTimeout when
// everybody it asked stayed silent.
func unanswered(r *LookupResult) error {
	if r.Queried == 0 {
		return ErrNoPeers
	}
	return fmt.Errorf("%w: %w from any of the %d nodes asked", ErrNoPeers, ErrTimeout, r.Queried)
}

// FindNode looks up the K nodes closest to target. It fails with ErrNoPeers
// when no node answered.
func (n *Node) FindNode(target id.ID, cb func(*LookupResult, error)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(nil, err) }); o == nil {
			return
		}
		lo := n.lookup(wire.FindNode, target, now, w, func(r *LookupResult, _ time.Time, _ transport.Writer) {
			if r.Responded == 0 {
				n.failOp(o, unanswered(r))
				return
			}
			n.end(o, func() { cb(r, nil) })
		})
		if !o.done {
			o.onEnd(func() { n.abandon(lo) })
		}
	})
	return n.canceler(o)
}

// TraceLookup runs a lookup of target, of the K closest nodes or (values)
// of the records under it, and reports every request it made in
// LookupResult.Trace. A value lookup fetches nothing in parts: the trace
// is of the lookup alone.
func (n *Node) TraceLookup(target id.ID, values bool, cb func(*LookupResult, error)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(nil, err) }); o == nil {
			return
		}
		typ := wire.FindNode
		if values {
			typ = wire.Get
		}
		var lo *lookupOp
		lo = n.newLookup(typ, target, now, func(r *LookupResult, _ time.Time, _ transport.Writer) {
			if r.Responded == 0 {
				n.failOp(o, unanswered(r))
				return
			}
			n.end(o, func() { cb(r, nil) })
		})
		lo.trace = new([]TraceQuery)
		n.seed(lo, now, w)
		if !o.done {
			o.onEnd(func() { n.abandon(lo) })
		}
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

// Bootstrap joins the network through seeds: it pings them all at once, and
// as soon as the first answers it looks up its own ID, then refreshes every
// bucket farther away than its closest neighbour (the join of the Kademlia
// paper, section 2.3). Seeds that answer later join the running lookup of
// its own ID; those that never answer cost nothing once one has (their pings
// are forgotten when the join ends). A read-only node stops at the first
// answer: its lookups find their own way. The join fails when no seed
// answers. With no seeds it does nothing: the node starts a new network.
func (n *Node) Bootstrap(seeds []netip.AddrPort, cb func(*BootstrapResult, error)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(nil, err) }); o == nil {
			return
		}
		n.rememberSeeds(seeds)
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
		var selfLookup *lookupOp // the lookup of its own ID, once a seed answered
		pinged := func(c id.Contact, ok bool, now time.Time, w transport.Writer) {
			left--
			if o.done {
				return
			}
			if !ok {
				if left == 0 && len(res.Seeds) == 0 {
					n.failOp(o, fmt.Errorf("%w from any of the %d seed(s) %v", ErrTimeout, len(seeds), seeds))
				}
				return
			}
			res.Seeds = append(res.Seeds, c)
			if len(res.Seeds) > 1 {
				// The join is under way: a later seed's contact is one more
				// place for its own lookup to start from.
				if selfLookup != nil && !selfLookup.finished {
					selfLookup.l.AddSeeds([]id.Contact{c})
					n.advance(selfLookup, now, w)
				}
				return
			}
			if n.cfg.ReadOnly {
				finish(now)
				return
			}
			res.Lookups++
			selfLookup = n.bootstrapLookup(o, n.self, now, w, func(r *LookupResult, now time.Time, w transport.Writer) {
				if o.done {
					return
				}
				var far int
				if len(r.Closest) > 0 {
					// At most maxJoinRefreshes: honest networks of up to 2^32
					// nodes need no more, and one peer's fake close
					// neighbour must not make the join look up every bucket.
					far = min(n.self.CommonPrefixLen(r.Closest[0].ID), maxJoinRefreshes)
				}
				pending := far
				if pending == 0 {
					finish(now)
					return
				}
				for i := range far {
					res.Lookups++
					target := id.RandomInBucket(n.rng, n.self, i)
					n.bootstrapLookup(o, target, now, w, func(_ *LookupResult, now time.Time, _ transport.Writer) {
						if pending--; pending == 0 && !o.done {
							finish(now)
						}
					})
				}
			})
		}
		for _, s := range seeds {
			if !n.ping(o, s, now, w, pinged) {
				pinged(id.Contact{Addr: s}, false, now, w)
			}
		}
	})
	return n.canceler(o)
}

// maxJoinRefreshes bounds the bucket refreshes of a join.
const maxJoinRefreshes = 32

// bootstrapLookup runs one lookup of a join, abandoned if the join ends
// first, and returns it.
func (n *Node) bootstrapLookup(o *opState, target id.ID, now time.Time, w transport.Writer, then func(*LookupResult, time.Time, transport.Writer)) *lookupOp {
	lo := n.lookup(wire.FindNode, target, now, w, then)
	if !o.done {
		o.onEnd(func() { n.abandon(lo) })
	}
	return lo
}

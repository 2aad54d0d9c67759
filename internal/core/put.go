package core

import (
	"crypto/sha1"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Outcome is what one node did with a put's value (or a delete).
type Outcome uint8

// Outcomes of a put at one node.
const (
	NoAnswer Outcome = iota // the node never answered, after every retry
	Accepted                // the node stored the value (or the tombstone)
	Refused                 // the node answered with a refusal; Receipt.Reason says why
)

func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Refused:
		return "refused"
	}
	return "no answer"
}

// Receipt is one node's answer to a put or a delete.
type Receipt struct {
	Node    id.Contact
	Outcome Outcome
	// TTL is how long the node said it keeps the value (Accepted).
	TTL time.Duration
	// Code and Reason say why it refused (Refused).
	Code   wire.ErrorCode
	Reason string
	// Found is set by a delete's receipt when the node held a live value
	// of the publisher.
	Found bool
}

// PutRequest is what Put stores.
type PutRequest struct {
	Key   id.ID
	Value []byte
	TTL   time.Duration
	// Publisher owns the value within the key: a later put with the same
	// publisher and a higher version replaces it. Zero means the node's own
	// ID, unless Anonymous is set.
	Publisher id.ID
	// Anonymous makes the publisher the SHA-1 of the value, so that equal
	// values from anyone are one record.
	Anonymous bool
	// Version orders the publisher's values; zero means the node's clock in
	// microseconds (and always more than the node's last version).
	Version uint64
	// Quorum, when positive, is the least number of nodes (this one
	// included) that must accept the value; Put fails with a *QuorumError
	// below it.
	Quorum int
	// KeepAlive makes the node republish the value before it expires,
	// until the keep-alive is stopped (see PutRecord).
	KeepAlive bool
	// Envelope marks Value as a record envelope (package record), sent
	// with the PUT flag ENVELOPE: the storing nodes check it by its kind.
	// Key, Publisher and Version must then be the envelope's (Version 0 is
	// kept, not replaced by the clock), and Anonymous is refused.
	Envelope bool
}

// PutResult describes a finished put.
type PutResult struct {
	Key       id.ID
	Publisher id.ID
	Version   uint64
	// TTL is the lifetime asked for.
	TTL time.Duration
	// Receipts holds one receipt per node asked, this one first when it
	// is among the K closest.
	Receipts []Receipt
	// Stored counts the nodes that accepted the value, this one included.
	Stored int
	// Local is set when this node stored the value itself, being among the
	// K closest to the key.
	Local bool
	// Lookup is the lookup that found the nodes to store at.
	Lookup   *LookupResult
	Duration time.Duration
}

// Count returns how many receipts have outcome o.
func (r *PutResult) Count(o Outcome) int {
	c := 0
	for _, x := range r.Receipts {
		if x.Outcome == o {
			c++
		}
	}
	return c
}

// Refusals returns the receipts of the nodes that refused.
func (r *PutResult) Refusals() []Receipt {
	var out []Receipt
	for _, x := range r.Receipts {
		if x.Outcome == Refused {
			out = append(out, x)
		}
	}
	return out
}

// Errors of a put.
var (
	// ErrRejected is reported when every node that answered refused.
	ErrRejected = errors.New("value refused")
	// ErrQuorum is reported (through a *QuorumError) when fewer nodes
	// accepted than PutRequest.Quorum asked for.
	ErrQuorum = errors.New("quorum not reached")
)

// QuorumError is a put that fewer nodes accepted than its quorum asked.
type QuorumError struct {
	Want, Got int
	Result    *PutResult
}

func (e *QuorumError) Error() string {
	return fmt.Sprintf("%v: stored on %d of %d asked, %d wanted (%d refused, %d no answer)",
		ErrQuorum, e.Got, len(e.Result.Receipts), e.Want, e.Result.Count(Refused), e.Result.Count(NoAnswer))
}

// Unwrap makes errors.Is(err, ErrQuorum) hold.
func (e *QuorumError) Unwrap() error { return ErrQuorum }

// putWindow is how many parts of one value a put keeps in flight to one
// node: enough to fill a fast path, few enough not to overrun the
// receiver's socket buffer with a 64 KiB value's 55 parts at once.
const putWindow = 8

// putTarget is one node a put stores at.
type putTarget struct {
	next     uint32 // offset of the next part to send
	inFlight int
	done     bool
	// unproven is set for a target whose address never answered us (a
	// candidate the beta rule stores on unasked): until it answers it gets
	// one part, sent once, so that a hostile lookup answer cannot aim a
	// put's parts and retries at a victim.
	unproven bool
}

// putOp is the PUT phase of a put.
type putOp struct {
	o        *opState
	key      id.ID
	value    []byte
	pub      id.ID
	version  uint64
	ttl      uint32
	envelope bool
	quorum   int
	targets  []putTarget  // parallel to res.Receipts[first:]
	spares   []id.Contact // candidates to store on in place of targets that do not answer
	first    int          // receipts before the remote targets (this node's own)
	left     int          // targets (and the local sync) without an outcome
	res      *PutResult
	cb       func(*PutResult, error)
	txids    txset
}

func (p *putOp) track(txid uint64)   { p.txids.track(txid) }
func (p *putOp) untrack(txid uint64) { p.txids.untrack(txid) }
func (p *putOp) dead() bool          { return p.o.done }

func (p *putOp) fill(m *wire.Message, q *pending) {
	m.Publisher, m.Version, m.TTL = p.pub, p.version, p.ttl
	if p.envelope {
		m.PutFlags = wire.PutEnvelope
	}
	m.Size, m.Offset = uint32(len(p.value)), q.off
	end := min(int(q.off)+wire.MaxPart, len(p.value))
	m.Value = p.value[q.off:end]
}

// sendParts sends target i's next parts while its window has room.
func (p *putOp) sendParts(n *Node, i int, now time.Time, w transport.Writer) {
	t := &p.targets[i]
	window := putWindow
	if _, ok := n.tok.fresh(p.res.Receipts[p.first+i].Node.Addr, now); t.unproven || (t.next == 0 && !ok && n.cfg.RequireTokens) {
		// Without a token, the first part alone: its answer brings one
		// (or a refusal that does, see retryWithToken) for the others.
		window = 1
	}
	for !t.done && t.inFlight < window && (t.next < uint32(len(p.value)) || (t.next == 0 && len(p.value) == 0)) {
		off := t.next
		t.next += wire.MaxPart
		if !n.sendReq(pending{to: p.res.Receipts[p.first+i].Node, typ: wire.Put, key: p.key, op: p, slot: int32(i), off: off, unverified: t.unproven}, now, w) {
			p.outcome(n, i, Receipt{Outcome: NoAnswer, Reason: "no room to send"}, now)
			return
		}
		t.inFlight++
	}
	if !t.done && t.inFlight == 0 {
		// Every part was acknowledged as kept, yet the value never
		// completed there (the node dropped its partial copy).
		p.outcome(n, i, Receipt{Outcome: Refused, Code: wire.CodeGeneric, Reason: "parts acknowledged but the value was not completed"}, now)
	}
}

// outcome records target i's receipt (the first one only).
func (p *putOp) outcome(n *Node, i int, r Receipt, now time.Time) {
	t := &p.targets[i]
	if t.done {
		return
	}
	t.done = true
	rc := &p.res.Receipts[p.first+i]
	r.Node = rc.Node
	*rc = r
	if r.Outcome == Accepted {
		p.res.Stored++
	}
	p.left--
	p.maybeDone(n, now)
}

func (p *putOp) response(n *Node, q *pending, m *wire.Message, now time.Time, w transport.Writer) {
	i := int(q.slot)
	if p.o.done || i < 0 || i >= len(p.targets) || p.targets[i].done {
		return
	}
	p.targets[i].inFlight--
	p.targets[i].unproven = false // it answered at this address
	switch {
	case m.Type == wire.PutOK && m.Status == wire.StatusStored:
		p.outcome(n, i, Receipt{Outcome: Accepted, TTL: time.Duration(m.TTL) * time.Second}, now)
	case m.Type == wire.PutOK:
		p.sendParts(n, i, now, w)
	case m.Type == wire.Error:
		p.outcome(n, i, Receipt{Outcome: Refused, Code: m.Code, Reason: string(m.Text)}, now)
	default:
		p.outcome(n, i, Receipt{Outcome: Refused, Code: wire.CodeGeneric, Reason: "answered " + m.Type.String() + " to a PUT"}, now)
	}
}

func (p *putOp) failure(n *Node, q *pending, now time.Time, w transport.Writer) {
	i := int(q.slot)
	if p.o.done || i < 0 || i >= len(p.targets) || p.targets[i].done {
		return
	}
	p.replace(n, now, w) // first, so that the put does not end one replica short
	p.outcome(n, i, Receipt{Outcome: NoAnswer}, now)
}

// maybeDone reports the put once every node asked has an outcome. A put
// succeeds when at least one other node accepted the value (a copy on this
// node alone is not in the network) and the quorum, if any, was reached.
func (p *putOp) maybeDone(n *Node, now time.Time) {
	if p.left > 0 || p.o.done {
		return
	}
	r := p.res
	r.Duration = now.Sub(r.Lookup.Started)
	remote := r.Stored
	if r.Local {
		remote--
	}
	refused := r.Count(Refused)
	switch {
	case p.quorum > 0 && r.Stored < p.quorum:
		n.end(p.o, func() { p.cb(r, &QuorumError{Want: p.quorum, Got: r.Stored, Result: r}) })
	case remote > 0:
		n.end(p.o, func() { p.cb(r, nil) })
	case refused > 0:
		first := r.Receipts[0]
		for _, x := range r.Receipts {
			if x.Outcome == Refused {
				first = x
				break
			}
		}
		n.end(p.o, func() { p.cb(r, fmt.Errorf("%w by %v: %s", ErrRejected, first.Node.Addr, first.Reason)) })
	case r.Lookup.Responded == 0:
		n.end(p.o, func() { p.cb(r, unanswered(r.Lookup)) })
	default:
		n.end(p.o, func() {
			p.cb(r, fmt.Errorf("%w: none of the %d nodes asked to store answered", ErrTimeout, r.Count(NoAnswer)))
		})
	}
}

// nextVersion is the version a put without one gets: the clock in
// microseconds, and always past the last one this node handed out, so that
// two puts in one microsecond still order.
func (n *Node) nextVersion(now time.Time) uint64 {
	v := uint64(max(now.UnixMicro(), 1))
	if v <= n.lastVersion {
		v = n.lastVersion + 1
	}
	n.lastVersion = v
	return v
}

// NextVersion returns the version a put without one would get now (see
// nextVersion), and counts it as handed out: what a signed record's
// sequence defaults to, since its publisher signs it before the put.
func (n *Node) NextVersion() uint64 {
	var v uint64
	n.run(func(now time.Time, _ transport.Writer) { v = n.nextVersion(now) })
	return v
}

// Put stores value under key on the K nodes closest to it for ttl (at most
// each node's maximum TTL), this node included when it is one of them. It
// fails unless another node accepted the value: with ErrNoPeers when no node
// answered the lookup, ErrRejected when every node asked refused it, and
// ErrTimeout when they did not answer.
func (n *Node) Put(key id.ID, value []byte, ttl time.Duration, cb func(*PutResult, error)) (cancel func()) {
	return n.PutRecord(PutRequest{Key: key, Value: value, TTL: ttl}, cb)
}

// PutRecord stores req.Value under req.Key on the K nodes closest to it, as
// Put does, with the request's publisher, version and quorum; the result
// has a receipt per node asked. With req.KeepAlive the node goes on
// republishing the value (see republish.go) until StopKeepAlive, Delete, or
// a put of the same key and publisher without KeepAlive; the keep-alive
// stands even when this first put fails, and is retried.
func (n *Node) PutRecord(req PutRequest, cb func(*PutResult, error)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if err := n.checkPut(&req); err != nil {
			if o = n.begin(func(err error) { cb(nil, err) }); o != nil {
				n.failOp(o, err)
			}
			return
		}
		if req.Version == 0 && !req.Envelope {
			req.Version = n.nextVersion(now) // an envelope's version is its own
		}
		var e *keepAlive
		if req.KeepAlive {
			var err error
			if e, err = n.registerKeepAlive(req, time.Time{}); err != nil {
				if o = n.begin(func(err error) { cb(nil, err) }); o != nil {
					n.failOp(o, err)
				}
				return
			}
			e.running = true
			n.keep.running++
		} else {
			n.endKeepAlive(req.Key, req.Publisher) // the program's new value supersedes it
		}
		o = n.startPut(req, e, now, w, cb)
	})
	return n.canceler(o)
}

// checkPut validates a put and resolves its publisher. The lock is held.
func (n *Node) checkPut(req *PutRequest) error {
	switch {
	case len(req.Value) == 0:
		return errors.New("empty value (withdraw a value with Delete)")
	case len(req.Value) > n.cfg.MaxValueSize:
		return fmt.Errorf("value is %d bytes, limit %d", len(req.Value), n.cfg.MaxValueSize)
	case req.TTL < time.Second:
		return fmt.Errorf("ttl %v is under 1s", req.TTL)
	case req.Quorum < 0 || req.Quorum > n.cfg.K:
		return fmt.Errorf("quorum %d: must be between 0 and K (%d)", req.Quorum, n.cfg.K)
	case req.Envelope && (req.Anonymous || req.Publisher.IsZero()):
		return errors.New("an enveloped record names its own publisher: anonymous or zero publisher refused")
	case !req.Envelope && n.cfg.RecordPolicy.RefusePlain:
		return errors.New(refusePlain)
	}
	switch {
	case req.Anonymous:
		req.Publisher = sha1.Sum(req.Value)
	case req.Publisher.IsZero():
		req.Publisher = n.self
	}
	return nil
}

// startPut starts a checked put (publisher and version resolved), for the
// program or for keep-alive e (nil for none), whose bookkeeping is done
// before cb runs. The lock is held.
func (n *Node) startPut(req PutRequest, e *keepAlive, now time.Time, w transport.Writer, cb func(*PutResult, error)) *opState {
	if e != nil {
		user := cb
		cb = func(r *PutResult, err error) {
			n.run(func(now time.Time, _ transport.Writer) { n.putDone(e, r, err, now) })
			user(r, err)
		}
	}
	o := n.begin(func(err error) { cb(nil, err) })
	if o == nil {
		return nil
	}
	pub, version := req.Publisher, req.Version
	secs := ttlSeconds(req.TTL)
	p := &putOp{
		o: o, key: req.Key, value: append([]byte(nil), req.Value...), pub: pub, version: version,
		ttl: secs, envelope: req.Envelope, quorum: req.Quorum, cb: cb,
		res: &PutResult{Key: req.Key, Publisher: pub, Version: version, TTL: req.TTL},
	}
	o.onEnd(func() { p.txids.forget(n) })
	var guess []id.Contact // the K closest candidates (and spares) when the beta rule stopped the lookup
	lo := n.newLookup(wire.FindNode, req.Key, now, func(r *LookupResult, now time.Time, w transport.Writer) {
		p.res.Lookup = r
		targets := r.Closest
		if guess != nil {
			targets = guess[:min(len(guess), n.cfg.K)]
		}
		if !n.cfg.ReadOnly && (len(targets) < n.cfg.K || n.self.CloserTo(req.Key, targets[len(targets)-1].ID)) {
			if len(targets) == n.cfg.K {
				targets = targets[:len(targets)-1] // this node takes the farthest one's place
			}
			p.storeLocal(n, now, w)
		}
		if guess != nil {
			p.spares = guess[len(targets):]
		}
		p.first = len(p.res.Receipts)
		p.targets = make([]putTarget, len(targets))
		for i, c := range targets {
			p.res.Receipts = append(p.res.Receipts, Receipt{Node: c})
			p.targets[i].unproven = guess != nil && !n.answered(c, r)
		}
		p.left += len(targets)
		for i := range targets {
			p.sendParts(n, i, now, w)
		}
		p.maybeDone(n, now)
	})
	if n.cfg.PutBeta > 0 {
		lo.l.StopWhen(func(l *lookup.Lookup) bool {
			var ok bool
			guess, ok = n.betaTargets(l, now)
			return ok
		})
	}
	n.seed(lo, now, w)
	if !o.done {
		o.onEnd(func() { n.abandon(lo) })
	}
	return o
}

// betaTargets is the put's termination rule (libp2p's beta): once the
// PutBeta closest candidates the lookup knows, failed ones left out, have
// all answered, it returns the K closest candidates and up to K spares
// after them, whatever their state. The closest nodes know the key's
// neighbourhood best, so their answers name the rest of the K closest: the
// put stores on those without asking each of them for contacts first,
// which saves a request per replica; a spare replaces a target that does
// not answer (see putOp.replace). TestPutPlacement measures what the rule
// costs in placement. A candidate that never answered us may be an address
// a hostile answer named: it gets one datagram, sent once, until it
// answers (see sendParts).
//
// Where writes need tokens (RequireTokens, a network's setting), the rule
// also waits until each of the K closest candidates has answered or handed
// us a token we still hold: a target that has neither would cost a refused
// PUT and its retry, and asking it in the lookup costs no more and may name
// a closer node. So a cold put costs what the full lookup does, and a put
// to nodes written to recently (within tokenReuse) what the rule alone does.
func (n *Node) betaTargets(l *lookup.Lookup, now time.Time) ([]id.Contact, bool) {
	var cb, rb [wire.MaxContacts]id.Contact
	beta := n.cfg.PutBeta
	rs := l.Closest(rb[:0])
	cs := l.Candidates(cb[:0], beta)
	if len(cs) < beta || len(rs) < beta {
		return nil, false
	}
	for i := range beta {
		if cs[i].ID != rs[i].ID {
			return nil, false
		}
	}
	// One candidate per address, the closest: an address is one node to
	// the routing table, and K IDs an answer names at one address must not
	// take every target and spare of the put (all but one would fail, and
	// 2K unasked PUTs would go to that address).
	all := l.Candidates(nil, 4*n.cfg.K) // the whole shortlist (3K by default)
	out := all[:0]
	for _, c := range all {
		if len(out) == 2*n.cfg.K {
			break
		}
		a := tableAddr(c.Addr)
		if !slices.ContainsFunc(out, func(x id.Contact) bool { return tableAddr(x.Addr) == a }) {
			out = append(out, c)
		}
	}
	if n.cfg.RequireTokens && !n.haveTokens(out[:min(len(out), n.cfg.K)], rs, now) {
		return nil, false // token.go
	}
	return out, true
}

// answered reports whether c's address has answered us: in the put's
// lookup, or before (a proven routing-table contact).
func (n *Node) answered(c id.Contact, r *LookupResult) bool {
	return n.table.Proven(c) || slices.ContainsFunc(r.Closest, func(x id.Contact) bool { return x.ID == c.ID && x.Addr == c.Addr })
}

// replace stores on the next spare in place of a target that never
// answered: a candidate the stopped lookup did not ask may have left. The
// dead target keeps its NoAnswer receipt.
func (p *putOp) replace(n *Node, now time.Time, w transport.Writer) {
	if len(p.spares) == 0 || p.o.done {
		return
	}
	c := p.spares[0]
	p.spares = p.spares[1:]
	p.res.Receipts = append(p.res.Receipts, Receipt{Node: c})
	p.targets = append(p.targets, putTarget{unproven: !n.answered(c, p.res.Lookup)})
	p.left++
	p.sendParts(n, len(p.targets)-1, now, w)
}

// storeLocal keeps the put's value in this node's own store, as one of the
// key's K closest. A store that writes to disk accepts it once it is
// durable.
func (p *putOp) storeLocal(n *Node, now time.Time, w transport.Writer) {
	p.res.Receipts = append(p.res.Receipts, Receipt{Node: id.Contact{ID: n.self, Addr: n.Addr()}})
	v := store.Value{Publisher: p.pub, Version: p.version, Envelope: p.envelope, Data: p.value}
	ttl, code, text := n.admit(p.key, &v, n.grantTTL(p.ttl), now)
	if code != 0 {
		// This node checks its own copy as any storing node does, so the
		// publisher hears why at once (a forged or conflicting record).
		p.res.Receipts[0] = Receipt{Node: p.res.Receipts[0].Node, Outcome: Refused, Code: code, Reason: text}
		return
	}
	refresh := n.refreshOnly(p.key, v, now)
	if err := n.store.Put(p.key, v, netip.Addr{}, now); err != nil {
		code, text := refusal(err)
		p.res.Receipts[0] = Receipt{Node: p.res.Receipts[0].Node, Outcome: Refused, Code: code, Reason: text}
		return
	}
	if !refresh {
		n.changed(p.key, v, now, w)
	}
	accept := func() {
		p.res.Receipts[0].Outcome, p.res.Receipts[0].TTL = Accepted, ttl
		p.res.Stored++
		p.res.Local = true
	}
	sy, ok := n.store.(store.Syncer)
	if !ok {
		accept()
		return
	}
	p.left++
	sy.Sync(func(err error) {
		n.run(func(now time.Time, _ transport.Writer) {
			if err != nil {
				p.res.Receipts[0].Outcome, p.res.Receipts[0].Reason = Refused, "writing to disk: "+err.Error()
			} else {
				accept()
			}
			p.left--
			p.maybeDone(n, now)
		})
	})
}

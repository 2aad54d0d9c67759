package core

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// DeleteRequest withdraws a publisher's value from a key.
type DeleteRequest struct {
	Key id.ID
	// Publisher is whose value to withdraw; zero means the node's own ID.
	Publisher id.ID
	// Version of the withdrawal: it must be higher than the value's (zero
	// means the node's clock in microseconds, as for a put).
	Version uint64
	// TTL is how long the tombstone is kept at least; each node keeps it as
	// long as the value it replaces at least. Zero means the node's maximum.
	TTL time.Duration
}

// DeleteResult describes a finished delete.
type DeleteResult struct {
	Key       id.ID
	Publisher id.ID
	Version   uint64
	// Receipts holds one receipt per node asked (this one first when it is
	// among the K closest); Found says which held a live value.
	Receipts []Receipt
	// Found counts the nodes that held a live value of the publisher.
	Found    int
	Lookup   *LookupResult
	Duration time.Duration
}

// errNotHeld is reported when no node asked held a value of the publisher:
// nothing was withdrawn (the tombstones stored anyway keep a stale replica
// from bringing a value back).
var errNotHeld = errors.New("no node held a value of this publisher")

// deleteOp is the DELETE phase of a delete.
type deleteOp struct {
	o       *opState
	pub     id.ID
	version uint64
	ttl     uint32
	first   int
	left    int
	res     *DeleteResult
	cb      func(*DeleteResult, error)
	txids   txset
}

func (d *deleteOp) track(txid uint64)   { d.txids.track(txid) }
func (d *deleteOp) untrack(txid uint64) { d.txids.untrack(txid) }
func (d *deleteOp) dead() bool          { return d.o.done }

func (d *deleteOp) fill(m *wire.Message, _ *pending) {
	m.Publisher, m.Version, m.TTL = d.pub, d.version, d.ttl
}

func (d *deleteOp) outcome(n *Node, i int, r Receipt, now time.Time) {
	rc := &d.res.Receipts[i]
	if rc.Outcome != NoAnswer || rc.Reason != "" {
		return // already has one
	}
	r.Node = rc.Node
	if r.Outcome == NoAnswer {
		r.Reason = "no answer"
	}
	*rc = r
	if r.Found {
		d.res.Found++
	}
	d.left--
	d.maybeDone(n, now)
}

func (d *deleteOp) response(n *Node, q *pending, m *wire.Message, now time.Time, w transport.Writer) {
	i := int(q.slot)
	if d.o.done || i < 0 || i >= len(d.res.Receipts) {
		return
	}
	switch m.Type {
	case wire.Deleted:
		d.outcome(n, i, Receipt{Outcome: Accepted, Found: m.Found, TTL: time.Duration(m.TTL) * time.Second}, now)
	case wire.Error:
		d.outcome(n, i, Receipt{Outcome: Refused, Code: m.Code, Reason: string(m.Text)}, now)
	default:
		d.outcome(n, i, Receipt{Outcome: Refused, Code: wire.CodeGeneric, Reason: "answered " + m.Type.String() + " to a DELETE"}, now)
	}
}

func (d *deleteOp) failure(n *Node, q *pending, now time.Time, w transport.Writer) {
	if i := int(q.slot); !d.o.done && i >= 0 && i < len(d.res.Receipts) {
		d.outcome(n, i, Receipt{Outcome: NoAnswer}, now)
	}
}

func (d *deleteOp) maybeDone(n *Node, now time.Time) {
	if d.left > 0 || d.o.done {
		return
	}
	r := d.res
	r.Duration = now.Sub(r.Lookup.Started)
	accepted := 0
	for _, x := range r.Receipts {
		if x.Outcome == Accepted {
			accepted++
		}
	}
	switch {
	case r.Found > 0:
		n.end(d.o, func() { d.cb(r, nil) })
	case accepted > 0:
		n.end(d.o, func() { d.cb(r, fmt.Errorf("%w: %w under the key", ErrNotFound, errNotHeld)) })
	case r.Lookup.Responded == 0 && len(r.Receipts) == 0:
		n.end(d.o, func() { d.cb(r, unanswered(r.Lookup)) })
	default:
		n.end(d.o, func() { d.cb(r, fmt.Errorf("%w: no node asked accepted the withdrawal", ErrRejected)) })
	}
}

// Delete withdraws a publisher's value from the K nodes closest to the
// key: each keeps a tombstone of a higher version, so that a replica that
// missed the withdrawal cannot bring the value back. It fails with
// ErrNotFound when no node held a live value of the publisher.
func (n *Node) Delete(req DeleteRequest, cb func(*DeleteResult, error)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(nil, err) }); o == nil {
			return
		}
		if req.TTL < 0 {
			n.failOp(o, fmt.Errorf("ttl %v is negative", req.TTL))
			return
		}
		pub := req.Publisher
		if pub.IsZero() {
			pub = n.self
		}
		n.endKeepAlive(req.Key, pub) // a withdrawn value is not republished
		version := req.Version
		if version == 0 {
			version = n.nextVersion(now)
		}
		ttl := req.TTL
		if ttl == 0 {
			ttl = n.cfg.MaxTTL
		}
		d := &deleteOp{o: o, pub: pub, version: version, ttl: ttlSeconds(ttl), cb: cb,
			res: &DeleteResult{Key: req.Key, Publisher: pub, Version: version}}
		o.onEnd(func() { d.txids.forget(n) })
		lo := n.lookup(wire.FindNode, req.Key, now, w, func(r *LookupResult, now time.Time, w transport.Writer) {
			d.res.Lookup = r
			targets := r.Closest
			if !n.cfg.ReadOnly && (len(targets) < n.cfg.K || n.self.CloserTo(req.Key, targets[len(targets)-1].ID)) {
				if len(targets) == n.cfg.K {
					targets = targets[:len(targets)-1]
				}
				d.deleteLocal(n, req.Key, now, w)
			}
			d.first = len(d.res.Receipts)
			for _, c := range targets {
				d.res.Receipts = append(d.res.Receipts, Receipt{Node: c})
			}
			d.left += len(targets)
			for i, c := range targets {
				if !n.sendReq(pending{to: c, typ: wire.Delete, key: req.Key, op: d, slot: int32(d.first + i)}, now, w) {
					d.outcome(n, d.first+i, Receipt{Outcome: NoAnswer, Reason: "no room to send"}, now)
				}
			}
			d.maybeDone(n, now)
		})
		if !o.done {
			o.onEnd(func() { n.abandon(lo) })
		}
	})
	return n.canceler(o)
}

// deleteLocal keeps the tombstone in this node's own store.
func (d *deleteOp) deleteLocal(n *Node, key id.ID, now time.Time, w transport.Writer) {
	self := Receipt{Node: id.Contact{ID: n.self, Addr: n.Addr()}}
	expires := now.Add(n.grantTTL(d.ttl))
	held, found := n.store.Lookup(key, d.pub, now)
	if found && held.Expires.After(expires) {
		expires = held.Expires
	}
	found = found && !held.Deleted
	v := store.Value{Publisher: d.pub, Version: d.version, Expires: expires, Deleted: true}
	if err := n.store.Put(key, v, netip.Addr{}, now); err != nil {
		code, text := refusal(err)
		self.Outcome, self.Code, self.Reason = Refused, code, text
		d.res.Receipts = append(d.res.Receipts, self)
		return
	}
	if found {
		n.changed(key, v, now, w)
	}
	self.Outcome, self.Found, self.TTL = Accepted, found, expires.Sub(now)
	if found {
		d.res.Found++
	}
	d.res.Receipts = append(d.res.Receipts, self)
}

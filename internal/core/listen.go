package core

import (
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Listening: a program subscribes to a key at the key's closest nodes,
// which push every new, replaced or withdrawn record to it (NOTIFY) until
// the subscription expires; the subscriber renews it, at the nodes closest
// at the time, every half lifetime.

// Bounds of the listener table every node keeps for others.
const (
	maxListeners        = 4096
	maxListenersPerKey  = 64
	maxListenersPerHost = 32
	// listenReplicas is how many of a key's closest nodes a subscription
	// registers at: enough that one leaving or lying costs nothing, few
	// enough that a change costs few notifications.
	listenReplicas = 4
	// maxSeen bounds the publishers a subscription remembers the newest
	// version of (to tell a put from a replacement and drop repeats).
	maxSeen = 1024
)

// listener is a remote subscription held by this node.
type listener struct {
	key      id.ID
	addr     netip.AddrPort
	expires  time.Time
	verified bool // its address answered our PING: notifications may go there
}

// EventKind says what changed under a key.
type EventKind uint8

// Event kinds.
const (
	EventPut     EventKind = iota + 1 // a publisher's first value seen
	EventReplace                      // a newer version of a publisher's value
	EventDelete                       // a publisher withdrew its value
)

func (k EventKind) String() string {
	switch k {
	case EventPut:
		return "put"
	case EventReplace:
		return "replace"
	case EventDelete:
		return "delete"
	}
	return "unknown"
}

// Event is one change a subscription saw.
type Event struct {
	Kind   EventKind
	Key    id.ID
	Record Record
	// From is the node that reported it (zero for a get's answer).
	From id.Contact
}

// subscription is a Listen in progress on this node.
type subscription struct {
	o     *opState
	key   id.ID
	cb    func(Event)
	nodes []id.Contact // where it is registered now
	seen  map[id.ID]seenVersion
	timer timerSlot
	// lookup is the registration's latest lookup, abandoned when the
	// subscription ends (one field, not a stop per renewal).
	lookup *lookupOp
	txids  txset
}

type seenVersion struct {
	version uint64
	deleted bool
}

func (s *subscription) track(txid uint64)   { s.txids.track(txid) }
func (s *subscription) untrack(txid uint64) { s.txids.untrack(txid) }
func (s *subscription) dead() bool          { return s.o.done }

func (s *subscription) fill(m *wire.Message, _ *pending) { m.TTL = ttlSeconds(listenTTL) }

// listenTTL is the lifetime a subscription asks for; it is renewed every
// half of it.
const listenTTL = 10 * time.Minute

func (s *subscription) response(n *Node, q *pending, m *wire.Message, now time.Time, w transport.Writer) {
	if m.Type == wire.Listening && !s.o.done && !slices.Contains(s.nodes, q.to) && len(s.nodes) < 2*listenReplicas {
		s.nodes = append(s.nodes, q.to)
	}
}

func (s *subscription) failure(*Node, *pending, time.Time, transport.Writer) {}

// event reports record r of the subscription's key, unless it is not newer
// than what the subscription has seen of its publisher.
func (s *subscription) event(n *Node, r wire.Record, data []byte, from id.Contact) {
	if !s.wants(&r) {
		return
	}
	prev, ok := s.seen[r.Publisher]
	s.seen[r.Publisher] = seenVersion{r.Version, r.Deleted}
	e := Event{Kind: EventPut, Key: s.key, From: from,
		Record: Record{Publisher: r.Publisher, Version: r.Version, TTL: time.Duration(r.TTL) * time.Second, Data: data}}
	switch {
	case r.Deleted:
		e.Kind = EventDelete
	case ok && !prev.deleted:
		e.Kind = EventReplace
	}
	cb := s.cb
	n.later(func() { cb(e) })
}

// wants reports whether event would report r: a newer version than the
// subscription has seen of its publisher, or a first value.
func (s *subscription) wants(r *wire.Record) bool {
	prev, ok := s.seen[r.Publisher]
	switch {
	case ok:
		return r.Version > prev.version || (r.Version == prev.version && r.Deleted && !prev.deleted)
	case r.Deleted:
		return false // a withdrawal of something never seen: nothing to tell
	}
	return len(s.seen) < maxSeen
}

// Listen subscribes to key: cb is told of every new, replaced or withdrawn
// value (starting with the values held now) until cancel is called or the
// node closes. cb runs on no particular goroutine, one call at a time per
// subscription, and must not block.
func (n *Node) Listen(key id.ID, cb func(Event)) (cancel func()) {
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(error) {}); o == nil {
			return
		}
		s := &subscription{o: o, key: key, cb: cb, seen: map[id.ID]seenVersion{}}
		n.subs[key] = append(n.subs[key], s)
		o.onEnd(func() {
			s.timer.stop()
			s.timer.gen++
			s.txids.forget(n)
			if s.lookup != nil {
				n.abandon(s.lookup)
			}
			subs := n.subs[key]
			if i := slices.Index(subs, s); i >= 0 {
				subs = slices.Delete(subs, i, i+1)
			}
			if len(subs) == 0 {
				delete(n.subs, key)
			} else {
				n.subs[key] = subs
			}
			// Tell the nodes it is registered at that it is gone. This
			// runs in whatever call ends the subscription, long after
			// Listen's writer went back to the pool: the cancellations
			// wait in the send queue, which that call drains.
			for _, c := range s.nodes {
				if !n.closed {
					n.queue = append(n.queue, queued{p: pending{to: c, typ: wire.Listen, key: key, op: cancelListen{}}})
				}
			}
		})
		n.register(s, now, w)
		// The values held now, as puts.
		n.getInto(o, key, now, w, func(r *LookupResult) {
			for _, rec := range r.Records {
				s.event(n, wire.Record{Publisher: rec.Publisher, Version: rec.Version, TTL: ttlSeconds(rec.TTL)}, rec.Data, id.Contact{})
			}
		})
	})
	return n.canceler(o)
}

// cancelListen sends a LISTEN with a zero TTL.
type cancelListen struct{}

func (cancelListen) fill(m *wire.Message, _ *pending)                                     { m.TTL = 0 }
func (cancelListen) response(*Node, *pending, *wire.Message, time.Time, transport.Writer) {}
func (cancelListen) failure(*Node, *pending, time.Time, transport.Writer)                 {}

// register looks up the key's closest nodes and subscribes there, then
// arms the renewal.
func (n *Node) register(s *subscription, now time.Time, w transport.Writer) {
	lo := n.lookup(wire.FindNode, s.key, now, w, func(r *LookupResult, now time.Time, w transport.Writer) {
		if s.o.done {
			return
		}
		s.nodes = s.nodes[:0]
		for i, c := range r.Closest {
			if i == listenReplicas {
				break
			}
			n.send(c, wire.Listen, s.key, s, now, w)
		}
		// Renew at half the lifetime, at the nodes closest then: the
		// closest nodes change as nodes join and leave.
		s.timer.stop()
		s.timer.gen++
		gen := s.timer.gen
		s.timer.t = n.clock.AfterFunc(listenTTL/2, func() {
			n.run(func(now time.Time, w transport.Writer) {
				if gen == s.timer.gen && !s.o.done && !n.closed {
					n.register(s, now, w)
				}
			})
		})
	})
	if s.lookup != nil {
		n.abandon(s.lookup) // finished long ago, unless renewals overlap
	}
	s.lookup = lo
}

// getInto runs a value lookup for an operation that keeps going after it
// (a subscription), handing its result to then.
func (n *Node) getInto(o *opState, key id.ID, now time.Time, w transport.Writer, then func(*LookupResult)) {
	var lo *lookupOp
	lo = n.newLookup(wire.Get, key, now, func(r *LookupResult, now time.Time, w transport.Writer) {
		if o.done {
			return
		}
		n.fetchMissing(o, lo, r, now, w, func(r *LookupResult, _ time.Time) {
			lo.results(r)
			then(r)
		})
	})
	if !n.cfg.ReadOnly {
		if local := n.store.Records(key, now, nil); len(local) > 0 {
			lo.mergeLocal(n, local, now)
		}
	}
	n.seed(lo, now, w)
	o.onEnd(func() { n.abandon(lo) })
}

// serveListen registers, renews or cancels a subscription of the sender.
func (n *Node) serveListen(s *scratch, m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) {
	n.expireListeners(now)
	i := slices.IndexFunc(n.listeners, func(l listener) bool { return l.key == m.Target && l.addr == from })
	if m.TTL == 0 {
		if i >= 0 {
			n.listeners = slices.Delete(n.listeners, i, i+1)
		}
		n.reply(s, m, from, w, wire.Listening, func(o *wire.Message) { o.TTL = 0 })
		return
	}
	ttl := min(time.Duration(m.TTL)*time.Second, listenTTL*2)
	if i < 0 {
		perKey, perHost := 0, 0
		host := hostOf(from.Addr())
		for _, l := range n.listeners {
			if l.key == m.Target {
				perKey++
			}
			if hostOf(l.addr.Addr()) == host {
				perHost++
			}
		}
		if len(n.listeners) >= maxListeners || perKey >= maxListenersPerKey || perHost >= maxListenersPerHost {
			n.reply(s, m, from, w, wire.Error, func(o *wire.Message) {
				o.Code = wire.CodeTooMany
				o.Text = append(s.text[:0], "listener table full"...)
			})
			return
		}
		l := listener{key: m.Target, addr: from, expires: now.Add(ttl)}
		// Notifications go only to an address that proved it receives:
		// one that answered us already, or answers a PING now. A forged
		// LISTEN must not aim our notifications at a victim.
		if e, ok := n.table.Get(m.Sender); ok && e.Contact.Addr == from && e.Verified {
			l.verified = true
		} else {
			key := m.Target
			n.sendPing(&pingOp{quiet: true, then: func(c id.Contact, ok bool, now time.Time, w transport.Writer) {
				j := slices.IndexFunc(n.listeners, func(l listener) bool { return l.key == key && l.addr == from })
				switch {
				case j < 0:
				case ok:
					n.listeners[j].verified = true
				default:
					n.listeners = slices.Delete(n.listeners, j, j+1)
				}
			}}, from, now, w)
		}
		n.listeners = append(n.listeners, l)
	} else {
		n.listeners[i].expires = now.Add(ttl)
	}
	n.reply(s, m, from, w, wire.Listening, func(o *wire.Message) { o.TTL = ttlSeconds(ttl) })
}

func (n *Node) expireListeners(now time.Time) {
	n.listeners = slices.DeleteFunc(n.listeners, func(l listener) bool { return !now.Before(l.expires) })
}

// notifyOp is one NOTIFY: a record to push to one listener.
type notifyOp struct {
	rec wire.Record
}

func (x *notifyOp) fill(m *wire.Message, _ *pending) { m.Record = x.rec }
func (*notifyOp) response(*Node, *pending, *wire.Message, time.Time, transport.Writer) {
}
func (*notifyOp) failure(*Node, *pending, time.Time, transport.Writer) {}

// changed tells the key's listeners, and this node's own subscriptions,
// that v is now the record of its publisher under key. The lock is held.
func (n *Node) changed(key id.ID, v store.Value, now time.Time, w transport.Writer) {
	rec := wire.Record{Publisher: v.Publisher, Version: v.Version, TTL: ttlSeconds(v.Expires.Sub(now)), Deleted: v.Deleted, Size: uint32(len(v.Data))}
	if len(v.Data) <= wire.MaxPart {
		rec.Data = v.Data
	}
	for _, s := range n.subs[key] {
		s.event(n, rec, v.Data, id.Contact{ID: n.self, Addr: n.Addr()})
	}
	if len(n.listeners) == 0 {
		return
	}
	n.expireListeners(now)
	for _, l := range n.listeners {
		if l.key == key && l.verified {
			n.sendReq(pending{to: id.Contact{Addr: l.addr}, typ: wire.Notify, key: key, op: &notifyOp{rec: rec}}, now, w)
		}
	}
}

// serveNotify takes a NOTIFY for one of this node's subscriptions: only
// from a node the subscription registered at, so that nobody else can
// feed it.
func (n *Node) serveNotify(s *scratch, m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) {
	subs := n.subs[m.Target]
	for _, sub := range subs {
		i := slices.IndexFunc(sub.nodes, func(c id.Contact) bool { return c.Addr == from })
		if i < 0 {
			continue
		}
		r := m.Record
		if !sub.wants(&r) {
			// A repeat (a retried NOTIFY) or an older version: not worth
			// a fetch of up to 55 parts.
			continue
		}
		if !r.Deleted && len(r.Data) != int(r.Size) {
			// Too large for a notification: fetch it from the notifier.
			n.fetchOne(sub, r, sub.nodes[i], now, w)
			continue
		}
		sub.event(n, r, bytesClone(r.Data), sub.nodes[i])
	}
	n.reply(s, m, from, w, wire.Notified, func(*wire.Message) {})
}

func bytesClone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// fetchOne fetches a notified record's bytes from the node that notified
// it, then reports it.
func (n *Node) fetchOne(sub *subscription, r wire.Record, from id.Contact, now time.Time, w transport.Writer) {
	if int(r.Size) > n.cfg.MaxValueSize {
		return
	}
	m := &mergedRec{pub: r.Publisher, version: r.Version, size: r.Size, ttl: time.Duration(r.TTL) * time.Second, from: []id.Contact{from}}
	lo := &lookupOp{target: sub.key, recs: []*mergedRec{m}}
	n.fetchMissing(sub.o, lo, &LookupResult{}, now, w, func(_ *LookupResult, _ time.Time) {
		if m.data != nil {
			sub.event(n, r, m.data, from)
		}
	})
}

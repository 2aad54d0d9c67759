package core

import (
	"net/netip"
	"slices"
	"sync"
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

// Bounds of the NOTIFYs this node sends its listeners. A NOTIFY is caused by
// a write, which anyone can send from any address, and goes to listeners,
// whose slots one peer can hold: neither may crowd out the node's own
// requests.
const (
	// notifyShare: NOTIFYs in flight take at most 1/notifyShare of the
	// request table (Config.MaxInFlight); past it a notification is dropped
	// and counted, never queued behind the node's own requests. The PINGs
	// that check new listeners' addresses have a share of the same size:
	// past it a LISTEN is refused busy.
	notifyShare = 8
	// maxNotifiesPerListener bounds the NOTIFYs in flight to one listener.
	maxNotifiesPerListener = 4
	// maxNotifyStrikes is how many NOTIFYs in a row a listener may leave
	// unanswered before it is dropped (it registers again when it renews).
	// One lost datagram must not cost a listener its registration; an
	// address that answers PING and ignores NOTIFY must not keep one.
	maxNotifyStrikes = 2
)

// Bounds of what a subscription keeps while it fetches notified records too
// large to travel in a NOTIFY.
const (
	// maxNotifyFetches bounds the fetches in progress per subscription: a
	// NOTIFY costs its sender one datagram, a fetch up to 55 FETCHes.
	maxNotifyFetches = 2
	// maxFetchBacklog bounds the notified records waiting for a fetch (the
	// newest version of each publisher); a NOTIFY that finds it full is
	// dropped, counted and answered ERROR busy.
	maxFetchBacklog = 8
	// minFetchNotifyLen is the least length of a NOTIFY whose record must
	// be fetched: the NOTIFIED and the first FETCH it draws (padded to
	// MinFindValueLen so that the PART can answer) stay within
	// AmplificationFactor times the NOTIFY, so that a NOTIFY forged under a
	// notifier's address gains its sender nothing. A notifier pads such
	// NOTIFYs to it; a shorter one is not fetched.
	minFetchNotifyLen = (wire.MinFindValueLen + wire.HeaderLen + wire.AmplificationFactor - 1) / wire.AmplificationFactor
)

// Bounds of the events waiting for a subscription's callback.
const (
	maxQueuedEvents     = maxSeen
	maxQueuedEventBytes = 4 << 20
)

// listener is a remote subscription held by this node.
type listener struct {
	key      id.ID
	addr     netip.AddrPort
	expires  time.Time
	verified bool  // its address answered our PING: notifications may go there
	inFlight uint8 // NOTIFYs sent to it and not yet answered or timed out
	strikes  uint8 // NOTIFYs in a row it left unanswered
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
	// fetches are the fetches of notified records in progress, backlog
	// the notified records waiting for one; both bounded, both forgotten
	// by the subscription's one stop.
	fetches []*fetchOp
	backlog []notified
	events  eventQueue
}

// listenLoad is the listen traffic in the request table, each kind held to
// listenShare.
type listenLoad struct {
	notifies int // NOTIFYs
	checks   int // PINGs checking a new listener's address
}

func (n *Node) listenShare() int { return max(n.cfg.MaxInFlight/notifyShare, 1) }

// notified is a NOTIFY's record waiting for a fetch, and who sent it.
type notified struct {
	rec  wire.Record // Data nil: it is fetched
	from id.Contact
}

type seenVersion struct {
	version  uint64
	deleted  bool
	envelope bool
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
	if r.Envelope {
		// A notifier may lie: an enveloped record is verified before it
		// is reported, and a signed withdrawal is the owner's deletion.
		ok, withdrawn := n.verifyRecord(s.key, r.Publisher, r.Version, data)
		if !ok {
			return
		}
		r.Deleted = withdrawn
	}
	if !s.wants(&r) {
		return
	}
	prev, ok := s.seen[r.Publisher]
	s.seen[r.Publisher] = seenVersion{r.Version, r.Deleted, r.Envelope}
	e := Event{Kind: EventPut, Key: s.key, From: from,
		Record: Record{Publisher: r.Publisher, Version: r.Version, TTL: time.Duration(r.TTL) * time.Second, Envelope: r.Envelope, Data: data}}
	switch {
	case r.Deleted:
		e.Kind = EventDelete
	case ok && !prev.deleted:
		e.Kind = EventReplace
	}
	start, coalesced, lost := s.events.push(e)
	n.stats.listen.eventsCoalesced += uint64(coalesced)
	n.stats.listen.eventsLost += uint64(lost)
	if start {
		// This subscription's runner: it delivers the queue in order, and
		// until it returns, events queued by other goroutines wait for it.
		n.later(s.drain)
	}
}

// eventQueue holds a subscription's events until its callback takes them:
// one runner at a time delivers them, in the order they were queued, so
// that a callback never runs twice at once and never sees a replacement
// before the value it replaces, whichever goroutines queued them. It has
// its own lock: the runner works outside the node's.
type eventQueue struct {
	mu      sync.Mutex
	q       []Event
	bytes   int
	running bool // a runner is delivering; push need not start one
	ended   bool // the subscription ended: deliver nothing more
	// pubs counts the queued events per publisher: len(q) - len(pubs) is
	// what coalescing would free.
	pubs map[id.ID]int
}

// coalesceFrees is the least share of a full queue (1/coalesceFrees)
// coalescing must free to be worth its pass over the queue: a flood of
// events of new publishers (forged inline NOTIFYs cost their sender one
// small datagram each) must not make every push walk 1024 events.
const coalesceFrees = 8

// push queues e and reports whether the caller must start a runner. A
// queue over its bounds (a callback that fell behind) first keeps only the
// newest event of each publisher (coalesced counts those dropped so), when
// that frees at least 1/coalesceFrees of it, then drops its oldest events
// (lost).
func (q *eventQueue) push(e Event) (start bool, coalesced, lost int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ended {
		return false, 0, 0
	}
	size := len(e.Record.Data)
	if len(q.q)+1 > maxQueuedEvents || q.bytes+size > maxQueuedEventBytes {
		if dups := len(q.q) - len(q.pubs); dups > 0 && dups*coalesceFrees >= len(q.q) {
			before := len(q.q)
			q.q = coalesce(q.q)
			coalesced = before - len(q.q)
			q.bytes = 0
			clear(q.pubs)
			for _, x := range q.q {
				q.bytes += len(x.Record.Data)
				q.pubs[x.Record.Publisher]++
			}
		}
		for len(q.q) > 0 && (len(q.q)+1 > maxQueuedEvents || q.bytes+size > maxQueuedEventBytes) {
			q.dropFirst()
			lost++
		}
	}
	if q.pubs == nil {
		q.pubs = map[id.ID]int{}
	}
	q.q = append(q.q, e)
	q.bytes += size
	q.pubs[e.Record.Publisher]++
	if q.running {
		return false, coalesced, lost
	}
	q.running = true
	return true, coalesced, lost
}

// coalesce keeps the newest event of each publisher in q, in the order of
// those newest events. A publisher whose first dropped event was a put
// keeps it a put: the callback has not seen that publisher yet.
func coalesce(q []Event) []Event {
	last := make(map[id.ID]int, len(q))
	first := make(map[id.ID]EventKind, len(q))
	for i, e := range q {
		last[e.Record.Publisher] = i
		if _, ok := first[e.Record.Publisher]; !ok {
			first[e.Record.Publisher] = e.Kind
		}
	}
	out := q[:0]
	for i, e := range q {
		if last[e.Record.Publisher] != i {
			continue
		}
		if e.Kind == EventReplace && first[e.Record.Publisher] == EventPut {
			e.Kind = EventPut
		}
		out = append(out, e)
	}
	clear(q[len(out):])
	return out
}

// pop takes the oldest event, or reports that the runner is done.
func (q *eventQueue) pop() (Event, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q) == 0 || q.ended {
		q.running = false
		q.q, q.bytes, q.pubs = nil, 0, nil
		return Event{}, false
	}
	e := q.q[0]
	q.dropFirst()
	return e, true
}

// dropFirst removes the oldest event. q.mu is held.
func (q *eventQueue) dropFirst() {
	p := q.q[0].Record.Publisher
	if q.pubs[p]--; q.pubs[p] <= 0 {
		delete(q.pubs, p)
	}
	q.bytes -= len(q.q[0].Record.Data)
	q.q[0] = Event{}
	q.q = q.q[1:]
}

func (q *eventQueue) end() {
	q.mu.Lock()
	q.ended = true
	q.q, q.bytes, q.pubs = nil, 0, nil
	q.mu.Unlock()
}

// drain delivers the subscription's queued events, in order, outside the
// node's lock.
func (s *subscription) drain() {
	for {
		e, ok := s.events.pop()
		if !ok {
			return
		}
		s.cb(e)
	}
}

// wants reports whether event would report r: a newer version than the
// subscription has seen of its publisher, or a first value.
func (s *subscription) wants(r *wire.Record) bool {
	prev, ok := s.seen[r.Publisher]
	switch {
	case ok && r.Envelope != prev.envelope:
		return r.Envelope // an enveloped record beats a plain one of its publisher, and only that way
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
// subscription, in the order the events were seen, and must not block:
// events wait for it in a queue of at most 1024 events and 4 MiB. A queue
// that would pass a bound keeps only the newest event of each publisher (a
// callback that fell behind sees the latest version, not every one in
// between; a publisher it has not seen yet is still reported as a put)
// when that frees an eighth of it, and drops the oldest events as long as
// it is still over (Stats.Listen counts both).
// After cancel returns, no event is delivered but the one being delivered.
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
			for _, f := range s.fetches {
				f.txids.forget(n)
			}
			s.fetches, s.backlog = nil, nil
			s.events.end()
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
				s.event(n, wire.Record{Publisher: rec.Publisher, Version: rec.Version, TTL: ttlSeconds(rec.TTL), Envelope: rec.Envelope}, rec.Data, id.Contact{})
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
		if e, ok := n.table.Get(m.Sender); s.proven || (ok && e.Contact.Addr == from && e.Verified) {
			// A valid write token proves the address as an answer does.
			l.verified = true
		} else {
			if n.listenLoad.checks >= n.listenShare() || n.rpc.Len() >= n.rpc.Cap() {
				// Checks of LISTENs from addresses that may be forged must
				// not crowd out the node's own requests.
				n.stats.listen.listensRefused++
				n.reply(s, m, from, w, wire.Error, func(o *wire.Message) {
					o.Code = wire.CodeBusy
					o.Text = append(s.text[:0], "too many listener checks in flight"...)
				})
				return
			}
			key := m.Target
			n.listenLoad.checks++
			sent := n.sendPing(&pingOp{quiet: true, then: func(c id.Contact, ok bool, now time.Time, w transport.Writer) {
				n.listenLoad.checks--
				j := slices.IndexFunc(n.listeners, func(l listener) bool { return l.key == key && l.addr == from })
				switch {
				case j < 0:
				case ok:
					n.listeners[j].verified = true
				default:
					n.listeners = slices.Delete(n.listeners, j, j+1)
				}
			}}, from, now, w)
			if !sent {
				n.listenLoad.checks--
				return // closed
			}
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

// notifyOp is one change's NOTIFY, shared by the listeners it goes to.
type notifyOp struct {
	rec wire.Record
}

func (x *notifyOp) fill(m *wire.Message, _ *pending) { m.Record = x.rec }

// An answer of any kind, an ERROR included, shows the listener is there.
func (*notifyOp) response(n *Node, p *pending, _ *wire.Message, _ time.Time, _ transport.Writer) {
	n.notifyEnded(p, true)
}

func (*notifyOp) failure(n *Node, p *pending, _ time.Time, _ transport.Writer) {
	n.notifyEnded(p, false)
}

// notifyEnded books the end of a NOTIFY to a listener: a listener that left
// maxNotifyStrikes of them in a row unanswered is dropped.
func (n *Node) notifyEnded(p *pending, answered bool) {
	n.listenLoad.notifies--
	i := slices.IndexFunc(n.listeners, func(l listener) bool { return l.key == p.key && l.addr == p.to.Addr })
	if i < 0 {
		return
	}
	l := &n.listeners[i]
	if l.inFlight > 0 {
		l.inFlight--
	}
	if answered {
		l.strikes = 0
		return
	}
	if l.strikes++; l.strikes >= maxNotifyStrikes {
		n.listeners = slices.Delete(n.listeners, i, i+1)
		n.stats.listen.listenersDropped++
	}
}

// notifyLen is the length a NOTIFY of r is padded to: a record to be
// fetched draws a padded FETCH, which the NOTIFY's length must cover (see
// minFetchNotifyLen).
func notifyLen(r *wire.Record) int {
	if r.Deleted || len(r.Data) == int(r.Size) {
		return 0
	}
	return minFetchNotifyLen
}

// refreshOnly reports whether storing v under key would only refresh the
// record held (the same publisher, version and kind; the store refuses
// other bytes at a held version, so the bytes are the same too): nothing
// a listener needs to hear of. It is asked only when the key has listeners.
func (n *Node) refreshOnly(key id.ID, v store.Value, now time.Time) bool {
	if !slices.ContainsFunc(n.listeners, func(l listener) bool { return l.key == key }) {
		return false
	}
	held, ok := n.store.Lookup(key, v.Publisher, now)
	return ok && held.Version == v.Version && held.Deleted == v.Deleted
}

// changed tells the key's listeners, and this node's own subscriptions,
// that v is now the record of its publisher under key. The lock is held.
//
// A NOTIFY is sent once, never retried: a listener registers at 4 nodes,
// each of which notifies it of the change, so one lost datagram costs it
// nothing, while a retry would double what an unanswering listener costs.
// NOTIFYs never wait in the send queue and take at most a share of the
// request table; past it, or past a few in flight to one listener, a
// notification is dropped and counted.
func (n *Node) changed(key id.ID, v store.Value, now time.Time, w transport.Writer) {
	rec := wire.Record{Publisher: v.Publisher, Version: v.Version, TTL: ttlSeconds(v.Expires.Sub(now)), Deleted: v.Deleted, Envelope: v.Envelope, Size: uint32(len(v.Data))}
	if len(v.Data) <= wire.MaxPart {
		rec.Data = v.Data
	}
	if subs := n.subs[key]; len(subs) > 0 {
		// v.Data may alias the datagram that made the change, and an
		// event may wait in its queue for another goroutine's runner.
		data := bytesClone(v.Data)
		for _, s := range subs {
			s.event(n, rec, data, id.Contact{ID: n.self, Addr: n.Addr()})
		}
	}
	if len(n.listeners) == 0 {
		return
	}
	n.expireListeners(now)
	n.drainIfRoom(now, w) // the node's own waiting requests go first
	share := n.listenShare()
	var op *notifyOp
	for i := range n.listeners {
		l := &n.listeners[i]
		if l.key != key || !l.verified {
			continue
		}
		if n.closed || l.inFlight >= maxNotifiesPerListener || n.listenLoad.notifies >= share || n.rpc.Len() >= n.rpc.Cap() {
			n.stats.listen.notifiesDropped++
			continue
		}
		if op == nil {
			op = &notifyOp{rec: rec}
		}
		if n.start(pending{to: id.Contact{Addr: l.addr}, typ: wire.Notify, key: key, op: op}, now, w) {
			l.inFlight++
			n.listenLoad.notifies++
		}
	}
}

// serveNotify takes a NOTIFY for one of this node's subscriptions: only
// from a node the subscription registered at, so that nobody else can
// feed it.
func (n *Node) serveNotify(s *scratch, m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) {
	subs := n.subs[m.Target]
	busy := false
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
			// Too large for a notification: fetch it from the notifier,
			// if the NOTIFY is long enough to pay for the first FETCH.
			if s.limit < wire.AmplificationFactor*minFetchNotifyLen {
				n.stats.listen.notifiesShort++
				continue
			}
			if !n.fetchNotified(sub, r, sub.nodes[i], now, w) {
				busy = true
			}
			continue
		}
		sub.event(n, r, bytesClone(r.Data), sub.nodes[i])
	}
	if busy {
		// Not NOTIFIED: the notifier must not take the record as
		// delivered. It does not resend; the subscriber learns the record
		// with the publisher's next change, or not at all (counted).
		n.reply(s, m, from, w, wire.Error, func(o *wire.Message) {
			o.Code = wire.CodeBusy
			o.Text = append(s.text[:0], "too many notified records being fetched"...)
		})
		return
	}
	n.reply(s, m, from, w, wire.Notified, func(*wire.Message) {})
}

func bytesClone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// fetchNotified takes a notified record that must be fetched: it joins the
// fetch of the same version in progress (as one more holder to ask), or
// starts a fetch, or waits in the backlog (replacing an older version of
// its publisher there). It reports false when there is no room for it.
func (n *Node) fetchNotified(sub *subscription, r wire.Record, from id.Contact, now time.Time, w transport.Writer) bool {
	if int(r.Size) > n.cfg.MaxValueSize {
		return true // no node that keeps our limits stored it: nothing to fetch
	}
	r.Data = nil // it aliases the datagram
	for _, f := range sub.fetches {
		m := f.recs[0].m
		if m.pub == r.Publisher && m.version == r.Version && m.size == r.Size {
			if len(m.from) < maxSources && !slices.ContainsFunc(m.from, func(c id.Contact) bool { return c.Addr == from.Addr }) {
				m.from = append(m.from, from)
			}
			return true
		}
	}
	if len(sub.fetches) < maxNotifyFetches {
		n.fetchOne(sub, r, from, now, w)
		return true
	}
	for j := range sub.backlog {
		b := &sub.backlog[j]
		if b.rec.Publisher == r.Publisher {
			if r.Version > b.rec.Version {
				*b = notified{rec: r, from: from}
			}
			return true
		}
	}
	if len(sub.backlog) < maxFetchBacklog {
		sub.backlog = append(sub.backlog, notified{rec: r, from: from})
		return true
	}
	n.stats.listen.fetchesDropped++
	return false
}

// fetchOne fetches a notified record's bytes from the node that notified
// it (and any other notifier of the same version), then reports it, and
// starts the next fetch the backlog holds. The fetch is the subscription's:
// it lives in sub.fetches, not in a stop of its own, and its buffer is
// allocated when the first part arrives.
func (n *Node) fetchOne(sub *subscription, r wire.Record, from id.Contact, now time.Time, w transport.Writer) {
	m := &mergedRec{pub: r.Publisher, version: r.Version, size: r.Size, ttl: time.Duration(r.TTL) * time.Second, from: []id.Contact{from}}
	f := &fetchOp{o: sub.o, key: sub.key, probe: true, recs: []*fetchRec{newFetchRec(m)}, left: 1}
	f.done = func(now time.Time, w transport.Writer) {
		if i := slices.Index(sub.fetches, f); i >= 0 {
			sub.fetches = slices.Delete(sub.fetches, i, i+1)
		}
		if fr := f.recs[0]; fr.have == len(fr.got) && sub.wants(&r) {
			sub.event(n, r, fr.buf, from)
		}
		for len(sub.backlog) > 0 && len(sub.fetches) < maxNotifyFetches && !sub.o.done {
			b := sub.backlog[0]
			sub.backlog = slices.Delete(sub.backlog, 0, 1)
			if sub.wants(&b.rec) {
				n.fetchOne(sub, b.rec, b.from, now, w)
			}
		}
	}
	sub.fetches = append(sub.fetches, f)
	f.ask(n, 0, now, w)
}

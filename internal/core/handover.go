package core

import (
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Hand-over and departures: the event pass of replication (replicate.go).
//
// A contact newly added to the routing table near this node may now be
// among the K closest of keys this node holds: they are handed over to it,
// and only they. A contact near this node that fails a request may have
// left: the keys it was among the K closest of are offered to their K
// closest now. Both wait ReplicateDebounce, so that one pass serves a
// burst, and both are bounded per interval: a peer that invents IDs (or
// addresses) gets each handled once, and at most replMaxEvents of each
// kind an interval, so that it cannot make the node send its data again
// and again. The first OFFER to an address that has never answered goes
// alone (see pump), so a forged source draws one datagram.

// Bounds of the event pass.
const (
	replMaxEvents  = 256 // newcomers, and departures, handled an interval
	replMaxPending = 64  // newcomers, and departures, waiting for one pass
)

// replEvent is a newcomer or departure handled within the interval.
type replEvent struct {
	id   id.ID
	host [16]byte // hostOf the address, for newcomers
	at   time.Time
	gone bool
}

// noteNewcomer is the routing table's report of a contact it just added.
// The lock is held.
func (n *Node) noteNewcomer(c id.Contact, now time.Time) { n.noteEvent(c, false, now) }

// noteFailed is the report of a contact that failed a request (and may
// have been removed from the table). The lock is held.
func (n *Node) noteFailed(c id.Contact, now time.Time) { n.noteEvent(c, true, now) }

// noteEvent queues a newcomer, or a departure (gone), for the next event
// pass: if the node holds records, the contact is near it, it was not
// handled within the interval (a newcomer: neither its ID nor its host),
// and the interval's budget has room.
func (n *Node) noteEvent(c id.Contact, gone bool, now time.Time) {
	if !n.replicating() || n.store.Len() == 0 || c.ID.IsZero() || !n.nearSelf(c.ID) {
		return
	}
	var host [16]byte
	if !gone {
		host = hostOf(c.Addr.Addr()).As16()
	}
	if n.eventSeen(now, gone, func(e *replEvent) bool { return e.id == c.ID || (!gone && e.host == host) }) {
		return
	}
	queue := &n.repl.newcomers
	if gone {
		queue = &n.repl.departed
	}
	if !n.eventRoom(gone) || len(*queue) >= replMaxPending {
		n.repl.stats.EventsDropped++
		return
	}
	n.repl.events = append(n.repl.events, replEvent{id: c.ID, host: host, at: now, gone: gone})
	*queue = append(*queue, c)
	if gone {
		n.repl.stats.Departures++
	} else {
		n.repl.stats.Newcomers++
	}
	n.armEvent(now)
}

// Departures are noticed when a request to the departed fails, and a node
// that holds records makes sure it sends some: every ReplicateInterval/12
// (5 minutes by default) it pings the K closest of its keys it has not
// heard from since the last check. A node that holds nothing, or hears from
// those nodes anyway, sends none.

// checkEvery is the period of the neighbour check.
func (n *Node) checkEvery() time.Duration {
	return max(n.cfg.ReplicateInterval/12, time.Second)
}

// armCheck arms the next neighbour check, with ±10% jitter.
func (n *Node) armCheck(now time.Time) {
	n.armSlot(&n.repl.check, n.jittered(n.checkEvery()), now, func(now time.Time, w transport.Writer) {
		n.checkNeighbours(now, w)
		n.armCheck(now)
	})
}

// replMaxChecks bounds the pings of one neighbour check, and
// replCheckKeys the keys it looks at: a check costs the same for 100
// records as for 100,000.
const (
	replMaxChecks = 64
	replCheckKeys = 64
)

// checkNeighbours pings the contacts that are among the K closest of keys
// this node holds (by its routing table) and that it has not heard from
// within the check period: the nodes whose departure would cost a replica.
// Each check looks at the next replCheckKeys keys in key order from where
// the last one stopped (keys near one another share their closest nodes,
// so a few keys cover a whole neighbourhood), and pings at most
// replMaxChecks contacts.
func (n *Node) checkNeighbours(now time.Time, w transport.Writer) {
	if n.store.Len() == 0 {
		return
	}
	var buf [32]id.Contact
	var picked [replMaxChecks]id.ID
	np, seen := 0, 0
	cut := now.Add(-n.checkEvery())
	visit := func(key id.ID) bool {
		seen++
		n.repl.checkFrom, _ = nextID(key)
		for _, c := range n.table.ClosestResponsive(key, n.cfg.K, buf[:0]) {
			if np == len(picked) {
				return false
			}
			if slices.Contains(picked[:np], c.ID) {
				continue
			}
			picked[np] = c.ID
			np++
			if e, ok := n.table.Get(c.ID); ok && e.LastSeen.Before(cut) {
				if n.send(c, wire.Ping, id.ID{}, livenessCheck{}, now, w) {
					n.repl.stats.NeighbourPings++
				}
			}
		}
		return seen < replCheckKeys
	}
	from := n.repl.checkFrom
	n.store.Ascend(from, visit)
	if seen < replCheckKeys && !from.IsZero() {
		n.repl.checkFrom = id.ID{} // wrap around to the first key
		n.store.Ascend(id.ID{}, func(key id.ID) bool { return key.Compare(from) < 0 && visit(key) })
	}
}

// nearSelf reports whether x is among the 3K nodes the table knows
// closest to this node. The keys a node holds lie near it, so a node
// farther away is rarely among their K closest; the periodic pass covers
// the rare case.
func (n *Node) nearSelf(x id.ID) bool {
	var buf [3 * 32]id.Contact
	k := 3 * n.cfg.K
	cs := n.table.Closest(n.self, k, buf[:0])
	return len(cs) < k || id.CompareDistance(n.self, x, cs[len(cs)-1].ID) <= 0
}

// eventSeen drops events older than the interval and reports whether one
// of the kind matches.
func (n *Node) eventSeen(now time.Time, gone bool, match func(*replEvent) bool) bool {
	cut := now.Add(-n.cfg.ReplicateInterval)
	es := n.repl.events[:0]
	seen := false
	for i := range n.repl.events {
		e := &n.repl.events[i]
		if e.at.Before(cut) {
			continue
		}
		es = append(es, *e)
		seen = seen || (e.gone == gone && match(e))
	}
	clear(n.repl.events[len(es):])
	n.repl.events = es
	return seen
}

// eventRoom reports whether the interval's budget of the kind has room.
func (n *Node) eventRoom(gone bool) bool {
	k := 0
	for i := range n.repl.events {
		if n.repl.events[i].gone == gone {
			k++
		}
	}
	return k < replMaxEvents
}

// armEvent arms the event pass, unless it is armed.
func (n *Node) armEvent(now time.Time) {
	if n.repl.event.t != nil {
		return
	}
	n.armSlot(&n.repl.event, n.cfg.ReplicateDebounce, now, func(now time.Time, w transport.Writer) {
		n.repl.evDue = true
		n.nextPass(now, w)
	})
}

// eventDestinations returns where an event pass sends key's records: the
// newcomers among key's K closest (by the routing table, this node
// included), and, when a departed contact was among them, the nodes that
// its departure brought in: those among the K closest now that were not
// before (when the departed were still there). The others held the record
// as they did before the departure; a holder that lacks it anyway is the
// periodic pass's business. Contacts whose last request failed are not
// among them.
func (n *Node) eventDestinations(p *replPass, key id.ID) []id.Contact {
	var buf [32 + 1]id.Contact
	k := n.cfg.K
	cs := n.table.ClosestResponsive(key, k, buf[:0])
	cs = append(cs, id.Contact{ID: n.self})
	near := closestAmong(key, cs, k, p.near[:0])
	p.near = near
	// before is the K closest with the departed put back: the nodes of
	// near outside it are those the departures let in.
	var before []id.Contact
	all := false
	if len(p.departed) > 0 && len(near) < k {
		all = true // too few known to tell who came in: offer to all of them
	}
	if len(p.departed) > 0 && len(near) == k {
		before = append(p.before[:0], near...)
		for _, d := range p.departed {
			if !isNewcomer(near, d.ID) { // one that answered since is in near already
				before = append(before, d)
			}
		}
		before = closestAmong(key, before, k, before[:0])
		p.before = before
		// The holders closest to the key also offer to every one of
		// the K closest, not only to those the departure let in: under
		// fast churn some of the K closest lack the record (a hand-over
		// dropped over an event budget, a newcomer that joined between
		// passes), and waiting an hour for the periodic pass loses keys.
		// A few holders doing it keeps that repair at a few times K
		// digests per departure and key, where every holder doing it
		// cost K times K.
		if id.CompareDistance(key, n.self, before[min(eventRepairers, len(before))-1].ID) <= 0 {
			all = true
		}
	}
	out := near[len(near):]
	for _, c := range near {
		if c.ID == n.self {
			continue
		}
		if all || isNewcomer(p.newcomers, c.ID) || (before != nil && !isNewcomer(before, c.ID)) {
			out = append(out, c)
		}
	}
	return out
}

// eventRepairers is how many of a key's closest holders offer its records
// to all of its K closest after a departure (eventDestinations).
const eventRepairers = 3

// isNewcomer reports whether x is among cs.
func isNewcomer(cs []id.Contact, x id.ID) bool {
	for _, c := range cs {
		if c.ID == x {
			return true
		}
	}
	return false
}

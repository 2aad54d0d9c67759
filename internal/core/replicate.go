package core

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Replication keeps every record on its key's K closest nodes while nodes
// come and go (docs/protocol.md, "Replication: OFFER and WANT").
//
// A node runs passes over the keys it stores, in key order (store.Ascend):
//   - the periodic pass, every ReplicateInterval: for the first key not yet
//     covered it looks up the 2K nodes closest to that key, and assigns to
//     their K closest every following key the 2K provably contain the K
//     closest of (see covers), so that one lookup serves a whole region of
//     the keyspace however many keys the node holds. Records the node
//     received within the interval are skipped, as the Kademlia paper does:
//     whoever sent them has just replicated them;
//   - the event pass, ReplicateDebounce after a neighbour left or a newcomer
//     arrived (handover.go): it takes each key's K closest from the routing
//     table, offers the key to a newcomer that is now among them, and to all
//     of them when a departed neighbour was.
//
// A pass offers records by digest, grouped per destination (offerSession);
// only what a destination asks for travels, as ordinary PUTs and DELETEs,
// which the receiver's version rule makes idempotent. A pass works through
// its keys a chunk at a time and waits for the chunk's sessions to end, so
// that its memory is bounded by the chunk, not by the store.
//
// The "received at" marks behind the skip are kept here, in memory, and not
// persisted: a restarted node replicates everything once, which costs digests.

// Bounds of replication.
const (
	replChunkKeys      = 256         // keys a pass takes between waits
	replChunkItems     = 4096        // records x destinations a pass offers between waits
	replOffersInFlight = 4           // OFFERs to one destination at a time
	replXfersInFlight  = 8           // records moving to one destination at a time
	replOfferWork      = 256         // digests a node computes to answer one OFFER
	replMaxMarks       = 1 << 17     // "received at" marks kept; past it, records are replicated
	replMinLife        = time.Minute // a record with less to live is not replicated (receivers raise TTLs to their minimum)
)

// ReplicationStats counts what replication did, for benchmarks and the
// simulator. Datagrams and bytes are those of the OFFERs, PUTs and DELETEs
// this node sent for replication; the lookups' requests are counted in
// LookupMessages.
type ReplicationStats struct {
	Passes, EventPasses    uint64 // passes finished
	Lookups                uint64 // region lookups of periodic passes
	RegionsCapped          uint64 // regions taken as they were at the lookup bound
	LookupMessages         uint64 // requests those lookups sent
	Offers, OfferedDigests uint64 // OFFERs sent and the digests they carried
	OfferBytes             uint64
	Wanted                 uint64 // digests destinations asked for
	BadWants               uint64 // WANTs naming digests their OFFER did not have
	Transfers              uint64 // records sent (a PUT's parts or a DELETE)
	TransferDatagrams      uint64
	TransferBytes          uint64
	Accepted, Refused      uint64 // transfers a destination stored, refused
	Skipped                uint64 // records a periodic pass skipped: received within the interval
	OffersServed           uint64 // OFFERs this node answered
	DigestsServed          uint64
	DigestsWanted          uint64 // of those, digests it asked for
	Newcomers, Departures  uint64 // events that led to an event pass
	NeighbourPings         uint64 // pings of quiet neighbours (handover.go)
	EventsDropped          uint64 // events over the per-period budget or the pending bound
}

// ReplicationStats returns the replication counters.
func (n *Node) ReplicationStats() ReplicationStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.repl.stats
}

// replState is a node's replication state.
type replState struct {
	periodic  timerSlot
	event     timerSlot
	check     timerSlot // the neighbour check (handover.go)
	checkFrom id.ID     // the key the next neighbour check starts at
	pass      *replPass
	due       bool // the periodic timer fired while another pass ran
	evDue     bool // the event timer did
	// newcomers and departed wait for the next event pass; events are
	// those handled within the last interval (handover.go).
	newcomers, departed []id.Contact
	events              []replEvent
	marks               map[uint64]int64 // "received at", UnixNano, by markKey
	salt                uint64
	stats               ReplicationStats
}

func (n *Node) replicating() bool { return n.cfg.ReplicateInterval > 0 && !n.cfg.ReadOnly }

// startReplication arms the first periodic pass. The lock is held.
func (n *Node) startReplication(now time.Time) {
	n.repl.salt = n.rng.Uint64()
	if n.replicating() {
		n.armPeriodic(now, now)
		n.armCheck(now)
	}
}

// stopReplication stops the timers and the pass; Close calls it.
func (n *Node) stopReplication() {
	n.repl.periodic.stop()
	n.repl.event.stop()
	n.repl.check.stop()
	if p := n.repl.pass; p != nil {
		p.closed = true
		if p.looking != nil {
			n.abandon(p.looking)
		}
	}
}

// armPeriodic arms the periodic pass one interval (±10%) after from.
func (n *Node) armPeriodic(from, now time.Time) {
	d := max(from.Add(n.jittered(n.cfg.ReplicateInterval)).Sub(now), n.cfg.ReplicateDebounce)
	n.armSlot(&n.repl.periodic, d, now, func(now time.Time, w transport.Writer) {
		n.repl.due = true
		n.nextPass(now, w)
	})
}

// jittered returns base ±10%, so that nodes started together do not act
// in step.
func (n *Node) jittered(base time.Duration) time.Duration {
	return base - base/10 + time.Duration(n.rng.Int64N(int64(base/5)+1))
}

// armSlot arms slot to run fire (under the lock) d from now; a slot
// re-armed or stopped meanwhile makes the old timer's call a no-op.
func (n *Node) armSlot(slot *timerSlot, d time.Duration, now time.Time, fire func(now time.Time, w transport.Writer)) {
	if n.closed {
		return
	}
	slot.stop()
	gen := slot.gen
	slot.at = now.Add(d)
	slot.t = n.clock.AfterFunc(d, func() {
		n.run(func(now time.Time, w transport.Writer) {
			if gen != slot.gen || n.closed {
				return
			}
			slot.t = nil
			fire(now, w)
		})
	})
}

// nextPass starts the pass that is due, if no pass runs: the periodic one
// first (it covers what an event pass would), then the event one.
func (n *Node) nextPass(now time.Time, w transport.Writer) {
	if n.repl.pass != nil || n.closed {
		return
	}
	switch {
	case n.repl.due:
		n.repl.due = false
		n.pruneMarks(now)
		n.repl.pass = &replPass{kind: periodicPass, start: now}
	case n.repl.evDue && (len(n.repl.newcomers) > 0 || len(n.repl.departed) > 0):
		n.repl.evDue = false
		p := &replPass{kind: eventPass, start: now, newcomers: n.repl.newcomers, departed: n.repl.departed}
		n.repl.newcomers, n.repl.departed = nil, nil
		n.repl.pass = p
	default:
		return
	}
	n.stepPass(n.repl.pass, now, w)
}

// passKind tells a periodic pass from an event pass.
type passKind uint8

const (
	periodicPass passKind = iota
	eventPass
)

// replPass is one walk over the stored keys.
type replPass struct {
	kind     passKind
	start    time.Time
	cursor   id.ID // the next key to consider
	end      bool  // the walk is past the last ID
	closed   bool
	stepping bool // stepPass is on the stack: a nested call returns at once

	// Periodic: the keyspace region whose nodes the pass knows (see
	// region), and the lookup exploring it.
	region  region
	looking *lookupOp

	// Event: who arrived and who left.
	newcomers, departed []id.Contact

	sessions []*offerSession // the chunk's, one per destination
	active   int             // sessions not yet done
	recs     []store.Value   // scratch
	near     []id.Contact    // scratch
	before   []id.Contact    // scratch (eventDestinations)
}

// stepPass moves the pass on: while nothing is in flight, it takes the
// next chunk of keys, assigns their records to destinations and starts the
// sessions, or starts the lookup a key needs, or ends the pass.
func (n *Node) stepPass(p *replPass, now time.Time, w transport.Writer) {
	if p.stepping {
		return
	}
	p.stepping = true
	defer func() { p.stepping = false }()
	for !p.closed && !n.closed && p.active == 0 && p.looking == nil {
		if p.end {
			n.endPass(p, now, w)
			return
		}
		var buf [replChunkKeys]id.ID
		keys := buf[:0]
		n.store.Ascend(p.cursor, func(k id.ID) bool {
			keys = append(keys, k)
			return len(keys) < cap(keys)
		})
		if len(keys) == 0 {
			p.end = true
			continue
		}
		clear(p.sessions)
		p.sessions = p.sessions[:0]
		items := 0
		for _, k := range keys {
			recs := n.replicable(p, k, now)
			if len(recs) > 0 {
				dests, ok := n.destinations(p, k)
				if !ok {
					if items == 0 {
						n.startRegion(p, k, now, w)
					}
					break // offer what the chunk has first; this key comes next
				}
				for _, d := range dests {
					n.session(p, d).add(k, recs)
				}
				items += len(recs) * len(dests)
			}
			p.cursor, p.end = nextID(k)
			if items >= replChunkItems || p.end {
				break
			}
		}
		p.active = len(p.sessions)
		for _, s := range p.sessions {
			n.pump(s, now, w)
		}
	}
}

// endPass ends p and starts whatever is due next.
func (n *Node) endPass(p *replPass, now time.Time, w transport.Writer) {
	p.closed = true
	n.repl.pass = nil
	if p.kind == periodicPass {
		n.repl.stats.Passes++
		n.armPeriodic(p.start, now)
	} else {
		n.repl.stats.EventPasses++
	}
	n.nextPass(now, w)
}

// replicable returns key's records that a pass offers: live, with enough
// life left to be worth a copy, and, for a periodic pass, not received
// within the interval. The slice is the pass's scratch.
func (n *Node) replicable(p *replPass, key id.ID, now time.Time) []store.Value {
	p.recs = n.store.Records(key, now, p.recs[:0])
	keep := p.recs[:0]
	for _, v := range p.recs {
		if v.Expires.Sub(now) < max(replMinLife, n.cfg.MinTTL) || (!v.Deleted && len(v.Data) == 0) {
			continue
		}
		if p.kind == periodicPass && n.receivedWithin(key, &v, now) {
			n.repl.stats.Skipped++
			continue
		}
		keep = append(keep, v)
	}
	return keep
}

// destinations returns the nodes key's records go to in pass p, this node
// left out, and false when a periodic pass must explore key's region first.
func (n *Node) destinations(p *replPass, key id.ID) ([]id.Contact, bool) {
	if p.kind == eventPass {
		return n.eventDestinations(p, key), true
	}
	if !p.region.covers(key) {
		return nil, false
	}
	p.near = closestAmong(key, p.region.nodes, n.cfg.K, p.near[:0])
	out := p.near[:0]
	for _, c := range p.near {
		if c.ID != n.self {
			out = append(out, c)
		}
	}
	return out, true
}

// region is a subtree of the keyspace (the IDs sharing its first bits bits
// with anchor) all of whose nodes a periodic pass has found by lookups,
// with at least K of them (or every node there is). The K closest nodes of
// any key in it are then among them, because every node in a subtree is
// closer (XOR) to every key in it than any node outside: one region's
// lookups serve all the keys under it, however many the node holds, and
// the walk in key order meets those keys one after the other.
//
// It is found as libp2p's reprovide sweep finds its regions: a lookup of
// the anchor returns its K closest, and so every node of the largest
// subtree around the anchor that the K-th closest's distance encloses;
// while the subtree known has fewer than K nodes, its sibling is explored
// (a lookup of the point of it next to the anchor, split in halves where
// one lookup does not enclose it) and the two make the parent.
type region struct {
	anchor  id.ID
	bits    int
	ready   bool
	probe   bool // the first lookup, of the anchor itself, is pending
	nodes   []id.Contact
	todo    []subtree
	lookups int
}

// subtree is the IDs sharing their first bits bits with prefix.
type subtree struct {
	prefix id.ID
	bits   int
}

// replRegionLookups bounds the lookups that explore one region; past it
// the region is taken as it is (the best the pass can do).
const replRegionLookups = 16

func (r *region) covers(key id.ID) bool {
	return r.ready && key.CommonPrefixLen(r.anchor) >= r.bits
}

// startRegion begins exploring the region around key.
func (n *Node) startRegion(p *replPass, key id.ID, now time.Time, w transport.Writer) {
	p.region = region{anchor: key, bits: id.Bits, probe: true,
		nodes: append(p.region.nodes[:0], id.Contact{ID: n.self, Addr: n.Addr()}),
		todo:  append(p.region.todo[:0], subtree{prefix: key})}
	n.explore(p, now, w)
}

// explore runs the region's next lookup, or widens the region, until it is
// ready; then the pass goes on.
func (n *Node) explore(p *replPass, now time.Time, w transport.Writer) {
	r := &p.region
	for p.looking == nil && !r.ready && !p.closed {
		if len(r.todo) == 0 {
			n.widen(r)
			continue
		}
		if r.lookups >= replRegionLookups {
			r.ready = true
			n.repl.stats.RegionsCapped++
			break
		}
		x := r.todo[len(r.todo)-1]
		r.todo = r.todo[:len(r.todo)-1]
		target := withPrefix(x.prefix, x.bits, r.anchor)
		r.lookups++
		n.repl.stats.Lookups++
		o := n.newLookup(wire.FindNode, target, now, func(res *LookupResult, now time.Time, w transport.Writer) {
			p.looking = nil
			if p.closed {
				return
			}
			n.repl.stats.LookupMessages += uint64(res.Messages)
			n.explored(r, x, target, res)
			n.explore(p, now, w)
		})
		p.looking = o
		n.seed(o, now, w)
	}
	if r.ready && p.looking == nil {
		n.stepPass(p, now, w)
	}
}

// explored takes a lookup's result: its nodes join the region's, and the
// part of subtree x the result does not enclose is explored further.
func (n *Node) explored(r *region, x subtree, target id.ID, res *LookupResult) {
	for _, c := range res.Closest {
		if !slices.ContainsFunc(r.nodes, func(d id.Contact) bool { return d.ID == c.ID }) {
			r.nodes = append(r.nodes, c)
		}
	}
	probe := r.probe
	r.probe = false
	k := n.cfg.K
	if len(res.Closest) < k {
		switch {
		case res.Responded == 0 && probe:
			// Nobody answered: there is no one to copy to now, for this
			// key or any other. The pass skips the rest of its keys
			// rather than look up each one in vain.
			r.bits, r.ready = 0, true
		case res.Incomplete == "":
			r.bits, r.ready = 0, true // every node there is: the network is that small
		case probe:
			r.ready = true // a lookup cut short: the anchor alone, with what it found
		}
		return
	}
	// Every node within the K-th closest's distance R of the target was
	// found, so the subtree {y : target^y < 2^(160-j)} is known whole for
	// 2^(160-j) <= R, that is for j = 1 + the leading zero bits of R.
	far := target.Xor(res.Closest[k-1].ID)
	j := 1 + far.CommonPrefixLen(id.ID{})
	if probe {
		r.bits = min(j, id.Bits)
		return
	}
	if j <= x.bits {
		return // x is enclosed
	}
	// Split: the half without the target is never enclosed; the half
	// with it is unless the target's known subtree covers it.
	for b := range 2 {
		c := subtree{prefix: x.prefix, bits: x.bits + 1}
		setBit(&c.prefix, x.bits, b == 1)
		if target.CommonPrefixLen(c.prefix) >= c.bits && j <= c.bits {
			continue
		}
		r.todo = append(r.todo, c)
	}
}

// widen makes the region its parent subtree, or ready when it holds K
// nodes (or is the whole keyspace).
func (n *Node) widen(r *region) {
	count := 0
	for _, c := range r.nodes {
		if c.ID.CommonPrefixLen(r.anchor) >= r.bits {
			count++
		}
	}
	if count >= n.cfg.K || r.bits == 0 {
		r.ready = true
		return
	}
	r.bits--
	sib := r.anchor
	setBit(&sib, r.bits, !bitOf(sib, r.bits))
	r.todo = append(r.todo, subtree{prefix: sib, bits: r.bits + 1})
}

// withPrefix returns the ID with the first bits bits of prefix and the rest
// of rest: the point of a subtree nearest rest.
func withPrefix(prefix id.ID, bits int, rest id.ID) id.ID {
	out := rest
	for i := range bits {
		setBit(&out, i, bitOf(prefix, i))
	}
	return out
}

func bitOf(x id.ID, i int) bool { return x[i/8]&(0x80>>(i%8)) != 0 }

func setBit(x *id.ID, i int, v bool) {
	if v {
		x[i/8] |= 0x80 >> (i % 8)
	} else {
		x[i/8] &^= 0x80 >> (i % 8)
	}
}

// closestAmong appends to dst the k contacts of cs closest to key.
func closestAmong(key id.ID, cs []id.Contact, k int, dst []id.Contact) []id.Contact {
	start := len(dst)
	dst = append(dst, cs...)
	part := dst[start:]
	slices.SortFunc(part, func(a, b id.Contact) int { return id.CompareDistance(key, a.ID, b.ID) })
	return dst[:start+min(k, len(part))]
}

// nextID returns k + 1, and true when k was the last ID.
func nextID(k id.ID) (id.ID, bool) {
	for i := id.Len - 1; i >= 0; i-- {
		if k[i]++; k[i] != 0 {
			return k, false
		}
	}
	return k, true
}

// session returns the chunk's session to c, making it.
func (n *Node) session(p *replPass, c id.Contact) *offerSession {
	for _, s := range p.sessions {
		if s.to.ID == c.ID {
			return s
		}
	}
	s := &offerSession{pass: p, to: c}
	p.sessions = append(p.sessions, s)
	return s
}

// offerItem is one record offered.
type offerItem struct {
	key, pub id.ID
	version  uint64
}

// xfer is one record on its way to a destination.
type xfer struct {
	v   store.Value
	ttl uint32
}

// offerSession offers one destination the records a chunk assigns to it,
// then sends the ones it asks for. It is an op: its requests are a PING
// to an address that never answered us, OFFERs
// (slot and off are the first and past-the-last item of the OFFER), PUTs
// (slot names the transfer, off the part) and DELETEs.
type offerSession struct {
	pass     *replPass
	to       id.Contact
	items    []offerItem
	digs     []wire.Digest // parallel to items
	next     int           // the first item not yet offered
	offering int           // OFFERs in flight
	answered bool          // the destination has answered us at its address
	pinged   bool          // it had not, and was sent a PING
	wanted   []int32       // items asked for
	sent     int           // of wanted, those started
	xfers    []xfer
	moving   int // transfers in flight
	done     bool
	txids    txset
}

func (s *offerSession) track(txid uint64)   { s.txids.track(txid) }
func (s *offerSession) untrack(txid uint64) { s.txids.untrack(txid) }
func (s *offerSession) dead() bool          { return s.done || s.pass.closed }

func (s *offerSession) add(key id.ID, recs []store.Value) {
	for _, v := range recs {
		s.items = append(s.items, offerItem{key: key, pub: v.Publisher, version: v.Version})
		s.digs = append(s.digs, wire.Digest{Key: key, Hash: wire.RecordDigest(key, v.Publisher, v.Version, v.Deleted)})
	}
}

func (s *offerSession) fill(m *wire.Message, p *pending) {
	switch p.typ {
	case wire.Offer:
		m.Offers = s.digs[p.slot:p.off]
	case wire.Put:
		x := &s.xfers[p.slot]
		m.Publisher, m.Version, m.TTL = x.v.Publisher, x.v.Version, x.ttl
		if x.v.Envelope {
			m.PutFlags = wire.PutEnvelope // the receiver checks it as it would the publisher's
		}
		m.Size, m.Offset = uint32(len(x.v.Data)), p.off
		m.Value = x.v.Data[p.off:min(int(p.off)+wire.MaxPart, len(x.v.Data))]
	case wire.Delete:
		x := &s.xfers[p.slot]
		m.Publisher, m.Version, m.TTL = x.v.Publisher, x.v.Version, x.ttl
	}
}

// pump sends what the session may send now, and ends it when nothing is
// left to send or wait for.
func (n *Node) pump(s *offerSession, now time.Time, w transport.Writer) {
	st := &n.repl.stats
	if !s.answered && !s.pinged && !s.dead() {
		// An address that never answered us may be a forged source: it
		// gets a PING, and OFFERs only once it answers.
		if e, ok := n.table.Get(s.to.ID); ok && e.Verified && e.Contact.Addr == s.to.Addr {
			s.answered = true
		} else {
			s.pinged = true
			if n.sendReq(pending{to: s.to, typ: wire.Ping, op: s}, now, w) {
				s.offering++
			} else {
				s.next = len(s.items)
			}
		}
	}
	for !s.dead() && s.answered && s.offering < replOffersInFlight && s.next < len(s.items) {
		end := min(s.next+wire.MaxOffer, len(s.items))
		if !n.sendReq(pending{to: s.to, typ: wire.Offer, op: s, slot: int32(s.next), off: uint32(end)}, now, w) {
			s.next = len(s.items)
			break
		}
		st.Offers++
		st.OfferedDigests += uint64(end - s.next)
		st.OfferBytes += uint64(wire.OfferLen(end - s.next))
		s.offering++
		s.next = end
	}
	for !s.dead() && s.moving < replXfersInFlight && s.sent < len(s.wanted) {
		it := s.items[s.wanted[s.sent]]
		s.sent++
		v, ok := n.store.Lookup(it.key, it.pub, now)
		if !ok || v.Version < it.version || v.Expires.Sub(now) < replMinLife {
			continue // gone or going since the offer; a newer version goes instead
		}
		typ := wire.Put
		if v.Deleted {
			typ = wire.Delete
		}
		slot := len(s.xfers)
		s.xfers = append(s.xfers, xfer{v: v, ttl: ttlSeconds(v.Expires.Sub(now))})
		if !n.sendReq(pending{to: s.to, typ: typ, key: it.key, op: s, slot: int32(slot)}, now, w) {
			continue
		}
		st.Transfers++
		n.noteTransfer(typ, len(v.Data))
		s.moving++
	}
	if !s.done && s.offering == 0 && s.moving == 0 && s.next >= len(s.items) && s.sent >= len(s.wanted) {
		s.done = true
		s.pass.active--
		n.stepPass(s.pass, now, w)
	}
}

// noteTransfer counts one datagram of a transfer.
func (n *Node) noteTransfer(typ wire.Type, size int) {
	st := &n.repl.stats
	st.TransferDatagrams++
	if typ == wire.Delete {
		st.TransferBytes += wire.HeaderLen + 52
		return
	}
	st.TransferBytes += uint64(wire.HeaderLen + 62 + min(size, wire.MaxPart))
}

func (s *offerSession) response(n *Node, q *pending, m *wire.Message, now time.Time, w transport.Writer) {
	if s.done {
		return
	}
	st := &n.repl.stats
	switch q.typ {
	case wire.Ping:
		s.offering--
		if m.Type == wire.Pong {
			s.answered = true
		} else {
			s.next = len(s.items)
		}
	case wire.Offer:
		s.offering--
		if m.Type != wire.Want {
			break // an ERROR: that batch is not wanted
		}
		count := int(q.off) - int(q.slot)
		for _, i := range m.Wants {
			if int(i) >= count {
				st.BadWants++
				n.pump(s, now, w)
				return
			}
		}
		s.answered = true
		st.Wanted += uint64(len(m.Wants))
		for _, i := range m.Wants {
			s.wanted = append(s.wanted, q.slot+int32(i))
		}
	case wire.Put:
		x := &s.xfers[q.slot]
		if m.Type == wire.PutOK && m.Status == wire.StatusPart {
			if next := q.off + wire.MaxPart; int(next) < len(x.v.Data) {
				if n.sendReq(pending{to: s.to, typ: wire.Put, key: q.key, op: s, slot: q.slot, off: next}, now, w) {
					n.noteTransfer(wire.Put, len(x.v.Data)-int(next))
					return // still moving
				}
			}
		}
		s.moving--
		s.outcome(st, m)
	case wire.Delete:
		s.moving--
		s.outcome(st, m)
	}
	n.pump(s, now, w)
}

func (s *offerSession) outcome(st *ReplicationStats, m *wire.Message) {
	if (m.Type == wire.PutOK && m.Status == wire.StatusStored) || m.Type == wire.Deleted {
		st.Accepted++
	} else {
		st.Refused++
	}
}

func (s *offerSession) failure(n *Node, q *pending, now time.Time, w transport.Writer) {
	if s.done {
		return
	}
	switch q.typ {
	case wire.Ping, wire.Offer:
		s.offering--
		if !s.answered || q.typ == wire.Ping {
			s.next = len(s.items) // silent: offer it nothing more
		}
	default:
		s.moving--
	}
	n.pump(s, now, w)
}

// serveOffer answers an OFFER with the indices of the digests this node
// holds no record for. A digest it holds counts as a record received now,
// so that the periodic pass skips it (another replica has just done the
// work). The work is bounded: at most replOfferWork digests computed per
// OFFER; digests past it are not asked for.
func (n *Node) serveOffer(s *scratch, m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) {
	var wants [wire.MaxOffer]uint8
	ws := wants[:0]
	work := replOfferWork
	var last id.ID
	for i := range m.Offers {
		d := &m.Offers[i]
		if i == 0 || d.Key != last {
			s.records = n.store.Records(d.Key, now, s.records[:0])
			last = d.Key
		}
		found, judged := false, true
		for j := range s.records {
			if work == 0 {
				judged = false
				break
			}
			work--
			r := &s.records[j]
			if wire.RecordDigest(d.Key, r.Publisher, r.Version, r.Deleted) == d.Hash {
				found = true
				n.markReceived(d.Key, r, now)
				break
			}
		}
		if !found && judged {
			ws = append(ws, uint8(i))
		}
	}
	n.repl.stats.OffersServed++
	n.repl.stats.DigestsServed += uint64(len(m.Offers))
	n.repl.stats.DigestsWanted += uint64(len(ws))
	n.reply(s, m, from, w, wire.Want, func(o *wire.Message) { o.Wants = ws })
}

// noteWrite marks the record a served PUT, STORE or DELETE left held as
// received now, when the store holds the version the request carried.
func (n *Node) noteWrite(m *wire.Message, pub id.ID, now time.Time) {
	if v, ok := n.store.Lookup(m.Target, pub, now); ok && v.Version == m.Version {
		n.markReceived(m.Target, &v, now)
	}
}

// markKey hashes a record (key, publisher, version, kind) for the marks
// table, salted per node so that no peer can aim publisher IDs at a
// collision. A new version is a record not yet received.
func (r *replState) markKey(key, pub id.ID, version uint64, deleted bool) uint64 {
	h := r.salt ^ version
	if deleted {
		h = ^h
	}
	for _, x := range [...]id.ID{key, pub} {
		for i := 0; i+8 <= id.Len; i += 8 {
			h = (h ^ binary.BigEndian.Uint64(x[i:])) * 0x9e3779b97f4a7c15
			h ^= h >> 29
		}
		h = (h ^ uint64(binary.BigEndian.Uint32(x[16:]))) * 0x9e3779b97f4a7c15
		h ^= h >> 32
	}
	return h
}

func (n *Node) markReceived(key id.ID, v *store.Value, now time.Time) {
	r := &n.repl
	if r.marks == nil {
		r.marks = map[uint64]int64{}
	}
	h := r.markKey(key, v.Publisher, v.Version, v.Deleted)
	if _, ok := r.marks[h]; !ok && len(r.marks) >= replMaxMarks {
		n.pruneMarks(now)
		if len(r.marks) >= replMaxMarks {
			return // no room: the record is replicated, the safe side
		}
	}
	r.marks[h] = now.UnixNano()
}

func (n *Node) receivedWithin(key id.ID, v *store.Value, now time.Time) bool {
	t, ok := n.repl.marks[n.repl.markKey(key, v.Publisher, v.Version, v.Deleted)]
	return ok && now.UnixNano()-t < int64(n.cfg.ReplicateInterval)
}

// pruneMarks drops marks older than the interval.
func (n *Node) pruneMarks(now time.Time) {
	cut := now.UnixNano() - int64(n.cfg.ReplicateInterval)
	for h, t := range n.repl.marks {
		if t < cut {
			delete(n.repl.marks, h)
		}
	}
	if len(n.repl.marks) == 0 {
		n.repl.marks = nil // a map never shrinks
	}
}

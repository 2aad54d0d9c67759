package core

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/record"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Record is one publisher's value under a key, as a get found it.
type Record struct {
	Publisher id.ID
	Version   uint64
	// TTL is the longest time any holder of this version said it keeps it.
	TTL time.Duration
	// Envelope marks Data as a record envelope (package record), which
	// the reader verified before it kept the record.
	Envelope bool
	Data     []byte
}

// mergedRec is the newest version of one publisher's record that a value
// lookup has heard of, and who holds it.
type mergedRec struct {
	pub     id.ID
	version uint64
	deleted bool // a tombstone, or a verified signed withdrawal
	// envelope: an enveloped record, which beats every plain one of its
	// publisher; verified: its envelope passed record.Policy.Verify (an
	// inline one is verified before it is merged, a fetched one once
	// fetched).
	envelope, verified bool
	size               uint32
	data               []byte // nil until known: a large value is fetched after the lookup
	ttl                time.Duration
	// shortest is the shortest TTL a holder of this version reported:
	// path caching takes it, so that one holder's claim cannot stretch a
	// copy past what the others keep.
	shortest time.Duration
	from     []id.Contact // holders of this version to fetch it from; the zero Contact is this node
}

// maxSources bounds the holders a lookup remembers per record to fetch it
// from.
const maxSources = 4

// newer reports whether version v (deleted or not, enveloped or not) beats
// the record m holds: an envelope over a plain record, then a higher
// version, or a tombstone of the same version.
func (m *mergedRec) newer(v uint64, deleted, envelope bool) bool {
	if envelope != m.envelope {
		return envelope
	}
	return v > m.version || (v == m.version && deleted && !m.deleted)
}

// verifyRecord checks an enveloped record a reader received, and counts a
// forgery. It reports whether the record stands, and whether it is a
// signed withdrawal. The lock is held.
func (n *Node) verifyRecord(key, pub id.ID, version uint64, data []byte) (ok, withdrawn bool) {
	e, err := n.cfg.RecordPolicy.Verify(key, pub, version, data)
	if err != nil {
		n.stats.forged++
		return false, false
	}
	return true, e.Withdrawn()
}

// mergeRecords adds a holder's records to the lookup's: for each publisher
// the newest version wins, by the same rule as the stores' (a tombstone
// beats the value of its version), so that a stale replica never rolls a
// value back and a withdrawn value stays withdrawn. Only a host not heard
// from yet, and one that returned a record that stands (not a forgery, not
// over this node's limits), counts toward the quorum: forgers met early on
// the path would otherwise end the get with nothing but refused records.
func (o *lookupOp) mergeRecords(n *Node, rs []wire.Record, host netip.Addr, from id.Contact) {
	stands := false
	for i := range rs {
		r := &rs[i]
		if int(r.Size) > n.cfg.MaxValueSize || (!r.Deleted && r.Size == 0) {
			continue // no node that keeps our limits stored it
		}
		deleted, verified := r.Deleted, false
		if r.Envelope && len(r.Data) > 0 {
			// This node's own records passed its policy when stored.
			ok, withdrawn := true, false
			if from != (id.Contact{}) {
				ok, withdrawn = n.verifyRecord(o.target, r.Publisher, r.Version, r.Data)
			} else if e, err := record.Parse(r.Data); err == nil {
				withdrawn = e.Withdrawn()
			}
			if !ok {
				continue // a forgery: the holder lied, and the record is not merged
			}
			deleted, verified = withdrawn, true
		}
		stands = true
		ttl := time.Duration(r.TTL) * time.Second
		var m *mergedRec
		for _, x := range o.recs {
			if x.pub == r.Publisher {
				m = x
				break
			}
		}
		switch {
		case m == nil:
			if len(o.recs) == maxMerged {
				o.incomplete = fmt.Sprintf("holders returned more than %d publishers' records", maxMerged)
				continue
			}
			m = &mergedRec{pub: r.Publisher}
			o.recs = append(o.recs, m)
			fallthrough
		case m.newer(r.Version, deleted, r.Envelope):
			m.version, m.deleted, m.size, m.ttl, m.shortest, m.data, m.from = r.Version, deleted, r.Size, ttl, ttl, nil, m.from[:0]
			m.envelope, m.verified = r.Envelope, verified
		case r.Envelope != m.envelope || r.Version != m.version || deleted != m.deleted || r.Size != m.size:
			continue // older, or a conflicting copy of the same version: the first one stands
		default:
			m.ttl, m.shortest = max(m.ttl, ttl), min(m.shortest, ttl)
		}
		if m.data == nil && len(r.Data) > 0 {
			m.data = bytes.Clone(r.Data)
			m.verified = m.verified || verified
		}
		if len(m.from) < maxSources {
			m.from = append(m.from, from)
		}
	}
	if stands && !slices.Contains(o.hosts, host) && len(o.hosts) < maxHolders {
		o.hosts = append(o.hosts, host)
		o.holderIDs = append(o.holderIDs, from.ID)
		o.holders++
	}
}

// mergeLocal adds this node's own records under the lookup's key.
func (o *lookupOp) mergeLocal(n *Node, vs []store.Value, now time.Time) {
	rs := make([]wire.Record, len(vs))
	for i, v := range vs {
		rs[i] = wire.Record{Publisher: v.Publisher, Version: v.Version, TTL: ttlSeconds(v.Expires.Sub(now)), Deleted: v.Deleted, Envelope: v.Envelope, Size: uint32(len(v.Data)), Data: v.Data}
	}
	o.mergeRecords(n, rs, netip.Addr{}, id.Contact{})
}

// results fills r's records from the merged ones: values newest first
// (version descending, then publisher), tombstones counted apart, records
// whose bytes never arrived left out.
func (o *lookupOp) results(r *LookupResult) {
	slices.SortFunc(o.recs, func(a, b *mergedRec) int {
		if a.version != b.version {
			if a.version > b.version {
				return -1
			}
			return 1
		}
		return bytes.Compare(a.pub[:], b.pub[:])
	})
	r.Records, r.Values, r.TTLs, r.Withdrawn, r.Withdrawals = nil, nil, nil, 0, nil
	for _, m := range o.recs {
		switch {
		case m.deleted:
			r.Withdrawn++
			if m.envelope && m.data != nil {
				r.Withdrawals = append(r.Withdrawals, Record{Publisher: m.pub, Version: m.version, TTL: m.ttl, Envelope: true, Data: m.data})
			}
		case m.envelope && !m.verified:
			// Fetched, and forged: dropped (fetchMissing counted it).
		case m.data != nil:
			r.Records = append(r.Records, Record{Publisher: m.pub, Version: m.version, TTL: m.ttl, Envelope: m.envelope, Data: m.data})
			r.Values = append(r.Values, m.data)
			r.TTLs = append(r.TTLs, m.ttl)
		}
	}
}

// Get looks up the values stored under key: it asks nodes until GetQuorum
// of them (this one included, when it holds the key) have answered with
// records, or the lookup converges, merges what they hold (the newest
// version of each publisher's record), and fetches values too large for an
// answer in parts. cb gets ErrNotFound when the lookup found no value, and
// ErrNoPeers with it when nobody answered; LookupResult.Incomplete says
// when the values found may not be all there are.
func (n *Node) Get(key id.ID, cb func(*LookupResult, error)) (cancel func()) {
	if n.cfg.DisjointPaths > 1 {
		return n.GetPaths(key, n.cfg.DisjointPaths, cb) // disjoint.go
	}
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(nil, err) }); o == nil {
			return
		}
		var local []store.Value
		if !n.cfg.ReadOnly {
			local = n.store.Records(key, now, nil)
		}
		var lo *lookupOp
		report := func(r *LookupResult, now time.Time) {
			lo.results(r)
			switch {
			case len(r.Values) > 0:
				r.Local = r.Holders == 1 && len(local) > 0
				n.cacheOnPath(lo, r) // a copy at the closest node on the path that lacked it (cache.go)
				n.end(o, func() { cb(r, nil) })
			case r.Responded == 0 && len(local) == 0:
				n.end(o, func() { cb(r, fmt.Errorf("%w: %w", ErrNotFound, unanswered(r))) })
			default:
				n.end(o, func() { cb(r, ErrNotFound) })
			}
		}
		finish := func(r *LookupResult, now time.Time, w transport.Writer) {
			if o.done {
				return
			}
			n.fetchMissing(o, lo, r, now, w, report)
		}
		lo = n.newLookup(wire.Get, key, now, finish)
		if len(local) > 0 {
			lo.mergeLocal(n, local, now)
			lo.round = 0
		}
		if lo.holders >= lo.quorum {
			n.finishLookup(lo, now, w)
			return
		}
		n.seed(lo, now, w)
		if !o.done {
			o.onEnd(func() { n.abandon(lo) })
		}
	})
	return n.canceler(o)
}

// maxFetchBytes bounds what one get fetches in parts over all its records.
const maxFetchBytes = 4 << 20

// fetchOp fetches, in parts, the records a lookup found without their
// bytes.
type fetchOp struct {
	o     *opState
	key   id.ID
	recs  []*fetchRec
	left  int
	txids txset
	done  func(now time.Time, w transport.Writer)
	// probe: a holder gets one FETCH at a time until it has sent a part,
	// for a fetch that a NOTIFY started (it may be forged, and the
	// notifier may hold nothing).
	probe bool
}

// fetchRec is one record being fetched.
type fetchRec struct {
	m        *mergedRec
	buf      []byte // allocated when the first part arrives
	got      []bool // per part
	have     int
	src      int  // index into m.from of the holder asked now
	proven   bool // the holder asked now has sent a part of it
	next     int  // next part to ask the current holder for
	inFlight int
	over     bool
}

func newFetchRec(m *mergedRec) *fetchRec {
	return &fetchRec{m: m, got: make([]bool, (int(m.size)+wire.MaxPart-1)/wire.MaxPart)}
}

func (f *fetchOp) track(txid uint64)   { f.txids.track(txid) }
func (f *fetchOp) untrack(txid uint64) { f.txids.untrack(txid) }
func (f *fetchOp) dead() bool          { return f.o.done }

func (f *fetchOp) fill(m *wire.Message, p *pending) {
	r := f.recs[p.slot].m
	m.Publisher, m.Version, m.Offset = r.pub, r.version, p.off
}

// fetchMissing fetches the bytes of every live record that arrived without
// them, then calls report with the lookup's result.
func (n *Node) fetchMissing(o *opState, lo *lookupOp, r *LookupResult, now time.Time, w transport.Writer, report func(*LookupResult, time.Time)) {
	f := &fetchOp{o: o, key: lo.target}
	budget := maxFetchBytes
	for _, m := range lo.recs {
		if m.deleted || m.data != nil {
			continue
		}
		if int(m.size) > budget {
			r.Incomplete = fmt.Sprintf("values over %d bytes in all were not fetched", maxFetchBytes)
			continue
		}
		budget -= int(m.size)
		f.recs = append(f.recs, newFetchRec(m))
	}
	if len(f.recs) == 0 {
		report(r, now)
		return
	}
	f.left = len(f.recs)
	f.done = func(now time.Time, _ transport.Writer) {
		for _, fr := range f.recs {
			if fr.have == len(fr.got) {
				fr.m.data = fr.buf
				if fr.m.envelope {
					ok, withdrawn := n.verifyRecord(lo.target, fr.m.pub, fr.m.version, fr.buf)
					fr.m.verified, fr.m.deleted = ok, withdrawn
				}
			} else if r.Incomplete == "" {
				r.Incomplete = "a value's parts could not be fetched from any holder"
			}
		}
		report(r, now)
	}
	o.onEnd(func() { f.txids.forget(n) })
	for i := range f.recs {
		f.ask(n, i, now, w)
	}
}

// ask sends record i's missing parts to its current holder, a window at a
// time, moving on to the next holder when this one cannot serve them.
func (f *fetchOp) ask(n *Node, i int, now time.Time, w transport.Writer) {
	fr := f.recs[i]
	for !fr.over {
		window := putWindow
		if f.probe && !fr.proven {
			window = 1
		}
		for fr.next < len(fr.got) && fr.inFlight < window {
			j := fr.next
			fr.next++
			if fr.got[j] {
				continue
			}
			src := fr.m.from[fr.src]
			if src.Addr == (netip.AddrPort{}) {
				// This node: it held only the tombstone or another
				// version, since its own values arrive whole.
				break
			}
			if !n.sendReq(pending{to: src, typ: wire.Fetch, key: f.key, op: f, slot: int32(i), off: uint32(j * wire.MaxPart)}, now, w) {
				break
			}
			fr.inFlight++
		}
		if fr.inFlight > 0 {
			return
		}
		if fr.have == len(fr.got) {
			break
		}
		// This holder has nothing more to give: try the next one.
		if fr.src++; fr.src >= len(fr.m.from) {
			break
		}
		fr.next, fr.proven = 0, false
	}
	if !fr.over {
		fr.over = true
		if f.left--; f.left == 0 && !f.o.done {
			f.done(now, w)
		}
	}
}

func (f *fetchOp) response(n *Node, q *pending, m *wire.Message, now time.Time, w transport.Writer) {
	i := int(q.slot)
	if f.o.done || i < 0 || i >= len(f.recs) || f.recs[i].over {
		return
	}
	fr := f.recs[i]
	fr.inFlight--
	j := int(q.off) / wire.MaxPart
	size := int(fr.m.size)
	want := min(wire.MaxPart, size-int(q.off))
	if m.Type != wire.Part || m.Offset != q.off || int(m.Size) != size || len(m.Value) != want {
		// Not what we asked for: this holder is done.
		fr.next = len(fr.got)
	} else {
		fr.proven = true
		if !fr.got[j] {
			if fr.buf == nil {
				fr.buf = make([]byte, size)
			}
			fr.got[j] = true
			fr.have++
			copy(fr.buf[q.off:], m.Value)
		}
	}
	f.ask(n, i, now, w)
}

func (f *fetchOp) failure(n *Node, q *pending, now time.Time, w transport.Writer) {
	i := int(q.slot)
	if f.o.done || i < 0 || i >= len(f.recs) || f.recs[i].over {
		return
	}
	fr := f.recs[i]
	fr.inFlight--
	fr.next = len(fr.got) // a holder that does not answer is done
	f.ask(n, i, now, w)
}

// quorumNear reports whether GetQuorum of the lookup's holders are among
// the K closest candidates it knows now (this node, a holder of its own,
// always counts). Holders met on the first hops, far from the key, count
// only while nothing closer is known: a forger answers for every key, so
// three met early would otherwise end the get with the older version they
// serve, before it reaches the key's closest nodes, which hold the newest.
// Honest holders are among the key's K closest, which stay among the K
// closest the lookup knows however far it has got.
func (o *lookupOp) quorumNear() bool {
	if o.holders < o.quorum {
		return false
	}
	if o.l == nil {
		return true
	}
	var buf [wire.MaxContacts]id.Contact
	near := o.l.Candidates(buf[:0], min(o.l.Config().K, len(buf)))
	n := 0
	for _, h := range o.holderIDs {
		if h.IsZero() || slices.ContainsFunc(near, func(c id.Contact) bool { return c.ID == h }) {
			n++
		}
	}
	return n >= o.quorum
}

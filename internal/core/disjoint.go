package core

import (
	"fmt"
	"slices"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// disjointGet is a get over several value lookups whose node sets are kept
// apart by a lookup.Disjoint (S/Kademlia's disjoint paths): each path is an
// ordinary lookupOp, with its own quorum, bounds and deadline, and the get
// ends when every path has. A value one path found counts; when paths
// found different versions of one publisher's record, the store's ordering
// rule picks the winner (see pathRecordBeats). Paths still running when
// the first path with values has had its grace are stopped (cutShort).
type disjointGet struct {
	o      *opState
	key    id.ID
	local  []store.Value
	paths  []*lookupOp
	found  []*LookupResult // per path, as it finished
	left   int
	coord  *lookup.Disjoint
	merged *lookupOp // holds the records of all paths (and this node's), for fetchMissing, results and the path cache
	cb     func(*LookupResult, error)
	grace  clock.Timer // armed when the first path finds values
}

// GetPaths is Get over paths disjoint lookups (S/Kademlia): the routing
// table's K closest contacts are dealt out among them, and a node one path
// has been given is never given to another (see lookup.Disjoint), so a
// node that answers with made-up contacts misleads only the path that asked
// it. It succeeds when any path finds a value; records are merged as Get
// merges the answers of one lookup. It ends when every path has, or, once
// one path has found values, when the others have had as long again as it
// took (see cutShort). It costs up to paths times a Get's requests. paths is clamped to [1, lookup.MaxPaths]; 1 is a plain lookup
// with Get's result. cb and the returned cancel function behave as Get's.
func (n *Node) GetPaths(key id.ID, paths int, cb func(*LookupResult, error)) (cancel func()) {
	paths = min(max(paths, 1), lookup.MaxPaths)
	var o *opState
	n.run(func(now time.Time, w transport.Writer) {
		if o = n.begin(func(err error) { cb(nil, err) }); o == nil {
			return
		}
		g := &disjointGet{o: o, key: key, cb: cb, left: paths}
		if !n.cfg.ReadOnly {
			g.local = n.store.Records(key, now, nil)
		}
		g.merged = &lookupOp{target: key, quorum: n.cfg.GetQuorum, started: now}
		if len(g.local) > 0 {
			g.merged.mergeLocal(n, g.local, now)
			if g.merged.holders >= g.merged.quorum {
				// As Get: this node's own records make the quorum.
				g.report(n, &LookupResult{Target: key, Holders: g.merged.holders, Started: now}, now, w)
				return
			}
		}
		g.found = make([]*LookupResult, paths)
		ls := make([]*lookup.Lookup, paths)
		g.paths = make([]*lookupOp, paths)
		for i := range g.paths {
			g.paths[i] = n.newLookup(wire.Get, key, now, func(r *LookupResult, now time.Time, w transport.Writer) {
				g.pathDone(n, i, r, now, w)
			})
			ls[i] = g.paths[i].l
		}
		g.coord = lookup.NewDisjoint(ls)
		var buf [wire.MaxContacts]id.Contact
		seeds := n.table.ClosestResponsive(key, n.cfg.K, buf[:0])
		if len(seeds) == 0 {
			seeds = n.table.Closest(key, n.cfg.K, buf[:0]) // as seed does
		}
		g.coord.AddSeeds(seeds)
		n.table.Touch(key, now)
		o.onEnd(func() {
			for _, lo := range g.paths {
				n.abandon(lo)
			}
		})
		// A path may finish at once (no seeds of its own), and the last
		// to finish ends the get: its paths' lookups are pooled then, so
		// nothing here touches them afterwards.
		for _, lo := range g.paths {
			if o.done {
				break
			}
			n.advance(lo, now, w)
		}
	})
	return n.canceler(o)
}

// pathDone records path i's result; the last path to finish ends the get.
// The first path to find values starts the others' grace: they have as
// long again as it took, then stop with what they have (see cutShort).
func (g *disjointGet) pathDone(n *Node, i int, r *LookupResult, now time.Time, w transport.Writer) {
	if g.o.done || g.found[i] != nil {
		return
	}
	g.found[i] = r
	if g.left--; g.left == 0 {
		g.finish(n, now, w, "")
		return
	}
	if len(r.Values) > 0 && g.grace == nil {
		g.grace = n.clock.AfterFunc(now.Sub(g.merged.started), func() {
			n.run(func(now time.Time, w transport.Writer) { g.cutShort(n, now, w) })
		})
		t := g.grace
		g.o.onEnd(func() { t.Stop() })
	}
}

// cutShort ends the paths still running once a path has found values and
// the others have had their grace. A path that has met only liars would
// otherwise spend its whole query bound on their made-up contacts (about
// 1.5s more at 30% eclipse nodes), while the value is already in hand;
// what the stopped paths have merged so far still counts. The price: a
// newer version that only a slow path would have brought is missed, which
// the result's Incomplete says.
func (g *disjointGet) cutShort(n *Node, now time.Time, w transport.Writer) {
	if g.o.done {
		return
	}
	stopped := 0
	for p, lo := range g.paths {
		if g.found[p] != nil || lo.finished {
			continue
		}
		st := lo.l.Stats()
		g.found[p] = &LookupResult{Closest: lo.l.Closest(nil), Messages: lo.msgs, Queried: st.Queried,
			Responded: st.Responded, Failed: st.Failed, Stalled: st.Stalled, Rounds: st.Rounds}
		n.abandon(lo)
		stopped++
	}
	note := ""
	if stopped > 0 {
		note = fmt.Sprintf("%d of %d disjoint paths stopped, their grace over, after another path found values", stopped, len(g.paths))
	}
	g.finish(n, now, w, note)
}

// finish merges every path's records, in path order, and ends the get;
// note, if not empty, says why the result may be incomplete.
func (g *disjointGet) finish(n *Node, now time.Time, w transport.Writer, note string) {
	// Merged in path order, not in the order the paths finished, so that
	// which of two conflicting copies stands does not depend on timing.
	res := &LookupResult{Target: g.key, Started: g.merged.started, Duration: now.Sub(g.merged.started), Incomplete: note}
	var closest []id.Contact
	valueRound := 0
	for p, lo := range g.paths {
		pr := g.found[p]
		g.merged.mergePath(n, lo)
		closest = append(closest, pr.Closest...)
		res.Messages += pr.Messages
		res.Queried += pr.Queried
		res.Responded += pr.Responded
		res.Failed += pr.Failed
		res.Stalled += pr.Stalled
		res.More = res.More || pr.More
		res.Rounds = max(res.Rounds, pr.Rounds)
		if len(pr.Values) > 0 && (valueRound == 0 || pr.Rounds < valueRound) {
			valueRound = pr.Rounds
		}
		if pr.Incomplete != "" && res.Incomplete == "" {
			res.Incomplete = fmt.Sprintf("disjoint path %d: %s", p, pr.Incomplete)
		}
	}
	if valueRound > 0 {
		res.Rounds = valueRound // the hop count of the first path to find a value
	}
	slices.SortFunc(closest, func(a, b id.Contact) int { return id.CompareDistance(g.key, a.ID, b.ID) })
	closest = slices.CompactFunc(closest, func(a, b id.Contact) bool { return a.ID == b.ID })
	res.Closest = closest[:min(len(closest), n.cfg.K)]
	res.Holders = g.merged.holders
	g.report(n, res, now, w)
}

// report fetches what arrived without its bytes and ends the get, as Get's
// report does.
func (g *disjointGet) report(n *Node, r *LookupResult, now time.Time, w transport.Writer) {
	lo := g.merged
	n.fetchMissing(g.o, lo, r, now, w, func(r *LookupResult, now time.Time) {
		lo.results(r)
		switch {
		case len(r.Values) > 0:
			r.Local = r.Holders == 1 && len(g.local) > 0
			n.cacheOnPath(lo, r)
			n.end(g.o, func() { g.cb(r, nil) })
		case r.Responded == 0 && len(g.local) == 0:
			n.end(g.o, func() { g.cb(r, fmt.Errorf("%w: %w", ErrNotFound, unanswered(r))) })
		default:
			n.end(g.o, func() { g.cb(r, ErrNotFound) })
		}
	})
}

// pathRecordBeats reports whether record x, found by one path, beats y,
// the same publisher's record found by another (or held here): the store's
// ordering rule, as mergeRecords applies it within one path (a higher
// version; a tombstone over the value of its version; and first of all, an
// enveloped record over a plain one of the same publisher). This is the one
// place where paths' answers are weighed against each other; it must stay
// the rule mergedRec.newer and the stores apply.
func pathRecordBeats(x, y *mergedRec) bool {
	return y.newer(x.version, x.deleted, x.envelope)
}

// mergePath adds path lo's merged records and holders to o's. A record of
// the same version and state as the one o holds adds its holders as
// sources; a conflicting copy of that version (other size) is left out, as
// within one lookup: the first path's stands.
func (o *lookupOp) mergePath(n *Node, lo *lookupOp) {
	for _, h := range lo.hosts {
		if !slices.Contains(o.hosts, h) && len(o.hosts) < maxHolders {
			o.hosts = append(o.hosts, h)
			o.holders++
		}
	}
	for _, x := range lo.recs {
		i := slices.IndexFunc(o.recs, func(m *mergedRec) bool { return m.pub == x.pub })
		switch {
		case i < 0:
			if len(o.recs) == maxMerged {
				o.incomplete = fmt.Sprintf("holders returned more than %d publishers' records", maxMerged)
				continue
			}
			c := *x
			c.from = slices.Clone(x.from)
			o.recs = append(o.recs, &c)
		case pathRecordBeats(x, o.recs[i]):
			c := *x
			c.from = slices.Clone(x.from)
			o.recs[i] = &c
		default:
			m := o.recs[i]
			if x.version != m.version || x.deleted != m.deleted || x.size != m.size {
				continue // older, or a conflicting copy
			}
			m.ttl, m.shortest = max(m.ttl, x.ttl), min(m.shortest, x.shortest)
			if m.data == nil && x.data != nil {
				m.data = x.data
			}
			for _, f := range x.from {
				if len(m.from) < maxSources && !slices.Contains(m.from, f) {
					m.from = append(m.from, f)
				}
			}
		}
	}
}

package lookup

import (
	"net/netip"

	"github.com/dhtkit/dht/id"
)

// MaxPaths bounds the paths of a Disjoint lookup. More paths than this buy
// little (each must still find its own way to the target) and cost a plain
// lookup's requests each.
const MaxPaths = 16

// Disjoint coordinates several lookups of one target over disjoint sets of
// nodes, as S/Kademlia (Baumgart and Mies, 2007, section 4.4) proposes: the
// seeds are dealt out among the paths, and a node that one path has been
// given (as a seed or in an answer) is never given to another. A lying node
// can then misdirect only the path that asked it: a path that meets no liar
// finds the target as a plain lookup would, so the lookup as a whole fails
// only when every path meets one.
//
// A node is one ID and one address: a contact whose ID another path holds,
// or whose address any path holds under another ID, is refused. The second
// rule keeps one host from entering several paths under made-up IDs (the
// cheap way to be everywhere when IDs cost nothing), and one path from
// holding one host twice.
//
// Each path is an ordinary Lookup, driven by the caller exactly as a plain
// lookup is (Next, OnResponse, OnFailure, ...): Disjoint only filters what
// enters each path, through Lookup.Admit. Every bound of a Lookup holds per
// path, so the whole is bounded by the number of paths times each bound:
// at most paths*MaxQueries requests and MaxRounds rounds, and the nodes it
// remembers as claimed are capped too (see NewDisjoint). The caller bounds
// its time and cancels it, as it does a plain lookup's.
//
// A Disjoint is not safe for concurrent use; the caller serializes every
// call, to it and to its paths.
type Disjoint struct {
	paths  []*Lookup
	ids    map[id.ID]uint8
	addrs  map[netip.AddrPort]uint8
	max    int
	stats  DisjointStats
	admits []func(id.Contact) bool
}

// DisjointStats counts what kept the paths apart.
type DisjointStats struct {
	// Claimed counts the nodes given to some path.
	Claimed int
	// Refused counts contacts refused because another path held their ID,
	// or any path held their address under another ID.
	Refused int
	// Full counts contacts refused because the claimed set was full.
	Full int
}

// NewDisjoint binds paths, fresh lookups of one target (New or Reset,
// nothing added yet), into one disjoint lookup. It sets each path's Admit
// rule, so the caller must not set its own; Release removes them. At most
// MaxPaths paths are used; the rest are left alone. The claimed set is
// bounded by the paths' own sizes: each path can admit at most
// MaxCandidates+MaxQueries*K/2 contacts on average before further newcomers
// are refused (counted in Full), which an honest lookup, whose shortlist
// settles after a few rounds, never reaches.
func NewDisjoint(paths []*Lookup) *Disjoint {
	if len(paths) > MaxPaths {
		paths = paths[:MaxPaths]
	}
	d := &Disjoint{paths: paths}
	for _, l := range paths {
		c := l.Config()
		d.max += c.MaxCandidates + c.MaxQueries*c.K/2
	}
	d.ids = make(map[id.ID]uint8, min(d.max, 256))
	d.addrs = make(map[netip.AddrPort]uint8, min(d.max, 256))
	d.admits = make([]func(id.Contact) bool, len(paths))
	for i, l := range paths {
		p := uint8(i)
		d.admits[i] = func(c id.Contact) bool { return d.admit(p, c) }
		l.Admit(d.admits[i])
	}
	return d
}

// admit decides whether path p may take c, and claims c for p if so.
func (d *Disjoint) admit(p uint8, c id.Contact) bool {
	if owner, ok := d.ids[c.ID]; ok {
		if owner != p {
			d.stats.Refused++
			return false
		}
		// Its own node coming back after an eviction: the path's horizon
		// already refuses it; anything closer is its to take.
		return true
	}
	if _, ok := d.addrs[c.Addr]; ok {
		d.stats.Refused++
		return false
	}
	if len(d.ids) >= d.max {
		d.stats.Full++
		return false
	}
	d.ids[c.ID] = p
	d.addrs[c.Addr] = p
	d.stats.Claimed++
	return true
}

// AddSeeds deals cs out among the paths, in turn: cs[0] to path 0, cs[1]
// to path 1, and so on around. With cs closest first (as a routing table
// returns them), every path starts from some of the closest contacts known.
// Contacts already claimed are refused as in an answer.
func (d *Disjoint) AddSeeds(cs []id.Contact) {
	if len(d.paths) == 0 {
		return
	}
	for i := range cs {
		d.paths[i%len(d.paths)].AddSeeds(cs[i : i+1])
	}
}

// Paths returns how many paths there are.
func (d *Disjoint) Paths() int { return len(d.paths) }

// Path returns path i, to drive as a plain Lookup.
func (d *Disjoint) Path(i int) *Lookup { return d.paths[i] }

// Owner returns the path that holds node x, if any.
func (d *Disjoint) Owner(x id.ID) (path int, ok bool) {
	p, ok := d.ids[x]
	return int(p), ok
}

// Done reports whether every path is done (see Lookup.Done).
func (d *Disjoint) Done() bool {
	for _, l := range d.paths {
		if !l.Done() {
			return false
		}
	}
	return true
}

// Stats returns what kept the paths apart so far.
func (d *Disjoint) Stats() DisjointStats { return d.stats }

// PathStats returns the paths' counters added up: Rounds is the deepest
// path's, Limited the union of theirs.
func (d *Disjoint) PathStats() Stats {
	var s Stats
	for _, l := range d.paths {
		p := l.Stats()
		s.Queried += p.Queried
		s.Responded += p.Responded
		s.Failed += p.Failed
		s.Stalled += p.Stalled
		s.Abandoned += p.Abandoned
		s.Requeued += p.Requeued
		s.Rounds = max(s.Rounds, p.Rounds)
		s.Limited |= p.Limited
	}
	return s
}

// Release removes the Admit rules NewDisjoint set, so that the paths can
// go back to a pool or on alone; d refuses nothing more.
func (d *Disjoint) Release() {
	for _, l := range d.paths {
		if l != nil {
			l.Admit(nil)
		}
	}
}

package lookup

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"testing"

	"github.com/dhtkit/dht/id"
)

// network is a synthetic Kademlia network for driving lookups without any
// transport: node i has ID ids[i] (sorted ascending, so that the nodes under
// one ID prefix form a contiguous range) and answers FIND_NODE through view.
type network struct {
	k    int
	ids  []id.ID // sorted ascending
	dead []bool
	seed uint64

	// partial selects Kademlia-like routing tables (k random nodes per
	// bucket) instead of knowledge of every node.
	partial bool
	tables  map[int][]int32
	// stale is the fraction of the dead nodes that each live node still
	// lists (the ones it has not noticed yet), chosen per pair by a hash.
	stale float64
}

func newNetwork(n, k int, seed uint64) *network {
	r := rand.New(rand.NewPCG(seed, 0x6e6574))
	nw := &network{k: k, dead: make([]bool, n), seed: seed, tables: map[int][]int32{}}
	nw.ids = make([]id.ID, n)
	for i := range nw.ids {
		nw.ids[i] = id.Random(r) // 2^-160 odds of a duplicate: ignored
	}
	slices.SortFunc(nw.ids, id.ID.Compare)
	return nw
}

// index returns the node with ID x.
func (nw *network) index(x id.ID) int {
	i, ok := slices.BinarySearchFunc(nw.ids, x, id.ID.Compare)
	if !ok {
		panic("no node " + x.String())
	}
	return i
}

// killFraction marks about frac of the nodes as never answering.
func (nw *network) killFraction(frac float64, r *rand.Rand) {
	for i := range nw.dead {
		nw.dead[i] = r.Float64() < frac
	}
}

func (nw *network) contact(i int) id.Contact {
	return id.Contact{ID: nw.ids[i], Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 4000)}
}

// prefixRange returns the index range of the nodes whose first n bits equal
// those of p.
func (nw *network) prefixRange(p id.ID, n int) (int, int) {
	lo, hi := p, p
	for b := n; b < id.Bits; b++ {
		mask := byte(0x80) >> (b % 8)
		lo[b/8] &^= mask
		hi[b/8] |= mask
	}
	i := sort.Search(len(nw.ids), func(j int) bool { return nw.ids[j].Compare(lo) >= 0 })
	j := sort.Search(len(nw.ids), func(j int) bool { return nw.ids[j].Compare(hi) > 0 })
	return i, j
}

// table builds node i's routing table: for every bucket (the nodes sharing
// exactly cpl leading bits with it), all of them if there are at most k,
// else k chosen at random. Built lazily: only queried nodes need one.
func (nw *network) table(i int) []int32 {
	if t, ok := nw.tables[i]; ok {
		return t
	}
	r := rand.New(rand.NewPCG(nw.seed, uint64(i)))
	self := nw.ids[i]
	var t []int32
	for cpl := 0; cpl < id.Bits; cpl++ {
		if lo, hi := nw.prefixRange(self, cpl+1); hi-lo <= 1 {
			break // nobody else shares cpl+1 bits: deeper buckets are empty
		}
		sib := self
		sib[cpl/8] ^= byte(0x80) >> (cpl % 8)
		lo, hi := nw.prefixRange(sib, cpl+1)
		if hi-lo <= nw.k {
			for j := lo; j < hi; j++ {
				t = append(t, int32(j))
			}
			continue
		}
		picked := map[int]bool{}
		for len(picked) < nw.k {
			j := lo + r.IntN(hi-lo)
			if !picked[j] {
				picked[j] = true
				t = append(t, int32(j))
			}
		}
	}
	nw.tables[i] = t
	return t
}

// knows reports whether node i still lists node j.
func (nw *network) knows(i, j int) bool {
	if !nw.dead[j] {
		return true
	}
	h := uint64(i)*0x9e3779b97f4a7c15 ^ uint64(j)*0xbf58476d1ce4e5b9 ^ nw.seed
	h ^= h >> 31
	h *= 0x94d049bb133111eb
	return float64(h>>11)/(1<<53) < nw.stale
}

// answer is node i's reply to FIND_NODE(target): the k closest nodes it
// knows, never itself.
func (nw *network) answer(i int, target id.ID) []id.Contact {
	var cands []int
	if nw.partial {
		for _, j := range nw.table(i) {
			if nw.knows(i, int(j)) {
				cands = append(cands, int(j))
			}
		}
		return nw.closestOf(cands, target, nw.k)
	}
	// Knowing everyone: the nodes sharing at least p leading bits with the
	// target are all closer to it than the others, so the smallest such
	// group holding k acceptable nodes contains the answer.
	// Start from the longest prefix the target shares with any node: its
	// neighbours in sorted order.
	p := 0
	j, _ := slices.BinarySearchFunc(nw.ids, target, id.ID.Compare)
	if j > 0 {
		p = target.CommonPrefixLen(nw.ids[j-1])
	}
	if j < len(nw.ids) {
		p = max(p, target.CommonPrefixLen(nw.ids[j]))
	}
	for ; ; p-- {
		lo, hi := nw.prefixRange(target, p)
		if hi-lo < nw.k && p > 0 {
			continue
		}
		cands = cands[:0]
		for j := lo; j < hi; j++ {
			if j != i && nw.knows(i, j) {
				cands = append(cands, j)
			}
		}
		if len(cands) >= nw.k || p == 0 {
			return nw.closestOf(cands, target, nw.k)
		}
	}
}

// closestOf selects the k of cands closest to target, closest first, by
// insertion into a sorted prefix: plain brute force, independent of the
// package's shortlist code.
func (nw *network) closestOf(cands []int, target id.ID, k int) []id.Contact {
	best := make([]int, 0, k+1)
	for _, j := range cands {
		if len(best) == k && id.CompareDistance(target, nw.ids[j], nw.ids[best[k-1]]) >= 0 {
			continue
		}
		p := len(best)
		for p > 0 && id.CompareDistance(target, nw.ids[j], nw.ids[best[p-1]]) < 0 {
			p--
		}
		best = slices.Insert(best, p, j)
		if len(best) > k {
			best = best[:k]
		}
	}
	out := make([]id.Contact, len(best))
	for i, j := range best {
		out[i] = nw.contact(j)
	}
	return out
}

// truth is the brute-force answer: the k live nodes closest to target, other
// than self.
func (nw *network) truth(self int, target id.ID, k int) []id.Contact {
	var cands []int
	for j := range nw.ids {
		if j != self && !nw.dead[j] {
			cands = append(cands, j)
		}
	}
	return nw.closestOf(cands, target, k)
}

// driver runs a lookup against a network, answering the requests in flight
// in a random order (as a network with varying delays would), and checks the
// invariants every caller relies on at every step.
type driver struct {
	t       testing.TB
	nw      *network
	r       *rand.Rand
	answer  func(i int, target id.ID) []id.Contact // defaults to nw.answer
	pending []id.Contact
	queried map[id.ID]bool
	offered map[id.ID]bool // every contact the lookup has been given
}

func (d *driver) run(l *Lookup, self int, seeds []id.Contact) {
	d.t.Helper()
	d.pending = d.pending[:0]
	d.queried = map[id.ID]bool{}
	d.offered = map[id.ID]bool{}
	if d.answer == nil {
		d.answer = d.nw.answer
	}
	for _, c := range seeds {
		d.offered[c.ID] = true
	}
	l.AddSeeds(seeds)
	alpha := l.Config().Alpha
	for steps := 0; !l.Done(); steps++ {
		if steps > 100000 {
			d.t.Fatal("lookup did not converge in 100000 steps")
		}
		before := len(d.pending)
		d.pending = l.Next(d.pending)
		for _, c := range d.pending[before:] {
			switch {
			case c.ID == d.nw.ids[self]:
				d.t.Fatalf("lookup queried self %v", c)
			case d.queried[c.ID]:
				d.t.Fatalf("lookup queried %v twice", c)
			case !d.offered[c.ID]:
				d.t.Fatalf("lookup queried %v, which nobody returned", c)
			}
			d.queried[c.ID] = true
		}
		if len(d.pending) > alpha {
			d.t.Fatalf("%d requests in flight, Alpha is %d", len(d.pending), alpha)
		}
		if got := len(l.InFlight(nil)); got != len(d.pending) {
			d.t.Fatalf("InFlight lists %d contacts, %d are pending", got, len(d.pending))
		}
		if len(d.pending) == 0 {
			d.t.Fatal("lookup is not done but has nothing to query and nothing in flight")
		}
		j := d.r.IntN(len(d.pending))
		c := d.pending[j]
		d.pending = slices.Delete(d.pending, j, j+1)
		i := d.nw.index(c.ID)
		if d.nw.dead[i] {
			l.OnFailure(c.ID)
			continue
		}
		ans := d.answer(i, l.Target())
		for _, a := range ans {
			d.offered[a.ID] = true
		}
		l.OnResponse(c.ID, ans)
	}
	if len(l.Next(nil)) != 0 {
		d.t.Fatal("Next handed out contacts after Done")
	}
}

// seedsFor returns what node self would seed a lookup with: the k closest to
// target in its routing table (partial network) or k random nodes.
func (nw *network) seedsFor(self int, target id.ID, r *rand.Rand) []id.Contact {
	if nw.partial {
		t := nw.table(self)
		cands := make([]int, len(t))
		for i, j := range t {
			cands[i] = int(j)
		}
		return nw.closestOf(cands, target, nw.k)
	}
	var out []id.Contact
	for _, j := range r.Perm(len(nw.ids))[:nw.k+1] {
		if j != self && len(out) < nw.k {
			out = append(out, nw.contact(j))
		}
	}
	return out
}

func sameContacts(a, b []id.Contact) bool {
	return slices.EqualFunc(a, b, func(x, y id.Contact) bool { return x == y })
}

func meanOf(xs []int) float64 {
	s := 0
	for _, x := range xs {
		s += x
	}
	return float64(s) / float64(len(xs))
}

// checkShortlist checks the shortlist invariant: strictly increasing
// distance to the target (hence unique IDs), never longer than the bound.
func checkShortlist(t testing.TB, l *Lookup) {
	t.Helper()
	if len(l.cands) > l.cfg.MaxCandidates {
		t.Fatalf("shortlist holds %d candidates, bound is %d", len(l.cands), l.cfg.MaxCandidates)
	}
	if !slices.IsSortedFunc(l.cands, func(a, b candidate) int {
		return id.CompareDistance(l.target, a.contact.ID, b.contact.ID)
	}) {
		t.Fatal("shortlist is not sorted by distance")
	}
	for i := 1; i < len(l.cands); i++ {
		if l.cands[i].contact.ID == l.cands[i-1].contact.ID {
			t.Fatalf("shortlist holds %v twice", l.cands[i].contact)
		}
	}
}

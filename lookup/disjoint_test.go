package lookup

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/dhtkit/dht/id"
)

// eclipseNet is a synthetic network (see network) in which some nodes are
// eclipse attackers: asked for any target, they answer with K made-up IDs
// closer to it than any real node, each pointing at another attacker's
// address (which answers in the same way) or at an address where nobody
// answers. Honest nodes answer from Kademlia-like routing tables. A value
// lookup "finds the key" when one of the K honest nodes closest to the
// target (its holders) answers.
type eclipseNet struct {
	*network
	bad     map[int]bool
	badList []int
	byAddr  map[netip.AddrPort]int // real nodes by address
}

func newEclipseNet(n, k int, share float64, seed uint64) *eclipseNet {
	nw := newNetwork(n, k, seed)
	nw.partial = true
	e := &eclipseNet{network: nw, bad: map[int]bool{}, byAddr: map[netip.AddrPort]int{}}
	r := rand.New(rand.NewPCG(seed, 0xec11))
	for i := range nw.ids {
		e.byAddr[nw.contact(i).Addr] = i
		if r.Float64() < share {
			e.bad[i] = true
			e.badList = append(e.badList, i)
		}
	}
	return e
}

// fake is the made-up ID an attacker hands out for target under address a:
// it shares the first 12 bytes with the target.
func fake(target id.ID, a netip.AddrPort, j int) id.ID {
	h := uint64(a.Addr().As4()[3])<<24 ^ uint64(a.Addr().As4()[2])<<16 ^ uint64(a.Port()) ^ uint64(j)*0x9e3779b97f4a7c15
	h ^= h >> 29
	h *= 0xbf58476d1ce4e5b9
	h |= 1
	x := target
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], h)
	for i := range b {
		x[id.Len-8+i] ^= b[i]
	}
	return x
}

// lie is what an attacker answers for target: K fakes, three in four at
// attackers' addresses, the rest at addresses nobody holds.
func (e *eclipseNet) lie(target id.ID, salt int) []id.Contact {
	out := make([]id.Contact, 0, e.k)
	for j := range e.k {
		var a netip.AddrPort
		if j%4 == 3 || len(e.badList) == 0 {
			a = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 254, byte(salt), byte(j)}), 4000)
		} else {
			a = e.contact(e.badList[(salt*7+j)%len(e.badList)]).Addr
		}
		out = append(out, id.Contact{ID: fake(target, a, salt), Addr: a})
	}
	return out
}

// outcome of driving one lookup to its end.
type outcome struct {
	found   bool
	queries int
	rounds  int
	steps   int
}

// drive runs paths (one plain lookup, or a Disjoint's paths) to the end,
// answering every request at once, path by path in turn. A path stops once
// a holder answered. It fails the test when a node (ID or address) is
// queried by two paths, or when the lookup does not end within a bound.
func (e *eclipseNet) drive(t *testing.T, target id.ID, paths []*Lookup) outcome {
	t.Helper()
	holders := map[id.ID]bool{}
	for _, c := range e.honestTruth(target) {
		holders[c.ID] = true
	}
	byID := map[id.ID]int{}
	byAddr := map[netip.AddrPort]int{}
	stopped := make([]bool, len(paths))
	var o outcome
	bound := 0
	for _, l := range paths {
		bound += l.Config().MaxQueries
	}
	salt := 0
	for {
		o.steps++
		if o.steps > 10*bound+10 {
			t.Fatalf("lookup still running after %d steps", o.steps)
		}
		progress := false
		for p, l := range paths {
			if stopped[p] || l.Done() {
				continue
			}
			next := l.Next(nil)
			for _, c := range next {
				progress = true
				o.queries++
				if q, ok := byID[c.ID]; ok && q != p {
					t.Fatalf("node %v queried by paths %d and %d", c.ID, q, p)
				}
				if q, ok := byAddr[c.Addr]; ok && q != p {
					t.Fatalf("address %v queried by paths %d and %d", c.Addr, q, p)
				}
				byID[c.ID], byAddr[c.Addr] = p, p
				i, real := e.byAddr[c.Addr]
				switch {
				case !real:
					l.OnFailure(c.ID) // nobody there
				case e.bad[i]:
					salt++
					l.OnResponse(c.ID, e.lie(target, salt))
				case e.ids[i] != c.ID:
					l.OnFailure(c.ID) // an honest node does not answer to a made-up ID
				default:
					if holders[c.ID] {
						stopped[p], o.found = true, true
					}
					l.OnResponse(c.ID, e.answer(i, target))
				}
			}
		}
		if !progress {
			break
		}
	}
	for _, l := range paths {
		o.rounds = max(o.rounds, l.Stats().Rounds)
	}
	return o
}

// honestTruth is the K honest nodes closest to target: the holders.
func (e *eclipseNet) honestTruth(target id.ID) []id.Contact {
	var cands []int
	for j := range e.ids {
		if !e.bad[j] {
			cands = append(cands, j)
		}
	}
	return e.closestOf(cands, target, e.k)
}

// seedsFor is what node self's routing table offers for target: its K
// closest known contacts.
func (e *eclipseNet) seedsFor(self int, target id.ID) []id.Contact {
	var cands []int
	for _, j := range e.table(self) {
		cands = append(cands, int(j))
	}
	return e.closestOf(cands, target, e.k)
}

func newPaths(self, target id.ID, d int, cfg Config) []*Lookup {
	ps := make([]*Lookup, d)
	for i := range ps {
		ps[i] = New(self, target, cfg)
	}
	return ps
}

// With a fifth of the nodes eclipse attackers, many random lookups: no node
// is ever queried by two paths (drive checks every request), no node is
// held by two paths' shortlists, the requests stay within paths*MaxQueries
// and the rounds within MaxRounds, and the disjoint lookup finds the key
// more often than the plain one.
func TestDisjointPathsStayApartAndBoundedUnderEclipse(t *testing.T) {
	const lookups = 150
	e := newEclipseNet(2000, 8, 0.2, 17)
	r := rand.New(rand.NewPCG(17, 1))
	cfg := Config{K: 8, Alpha: 3}
	plainFound, disjointFound := 0, 0
	for range lookups {
		self := r.IntN(len(e.ids))
		for e.bad[self] {
			self = r.IntN(len(e.ids))
		}
		target := id.Random(r)
		seeds := e.seedsFor(self, target)

		plain := New(e.ids[self], target, cfg)
		plain.AddSeeds(seeds)
		if e.drive(t, target, []*Lookup{plain}).found {
			plainFound++
		}

		paths := newPaths(e.ids[self], target, 3, cfg)
		d := NewDisjoint(paths)
		d.AddSeeds(seeds)
		o := e.drive(t, target, paths)
		if o.found {
			disjointFound++
		}
		c := paths[0].Config()
		if o.queries > len(paths)*c.MaxQueries {
			t.Fatalf("%d queries over %d paths: bound is %d", o.queries, len(paths), len(paths)*c.MaxQueries)
		}
		if o.rounds > c.MaxRounds {
			t.Fatalf("%d rounds, bound %d", o.rounds, c.MaxRounds)
		}
		seen := map[id.ID]int{}
		for p, l := range paths {
			for _, x := range l.Candidates(nil, 1<<20) {
				if q, ok := seen[x.ID]; ok && q != p {
					t.Fatalf("node %v held by paths %d and %d", x.ID, q, p)
				}
				seen[x.ID] = p
				if owner, ok := d.Owner(x.ID); !ok || owner != p {
					t.Fatalf("path %d holds %v, which Owner gives to %d (%v)", p, x.ID, owner, ok)
				}
			}
		}
		if s := d.Stats(); s.Claimed > d.max {
			t.Fatalf("claimed %d nodes, bound %d", s.Claimed, d.max)
		}
	}
	t.Logf("found: plain %d/%d, 3 disjoint paths %d/%d", plainFound, lookups, disjointFound, lookups)
	if disjointFound <= plainFound {
		t.Fatalf("disjoint paths found %d keys, plain lookups %d: disjoint paths should beat a plain lookup under eclipse", disjointFound, plainFound)
	}
}

// The constructed case: the closest seed is an attacker. A plain lookup asks
// it with the others; its made-up contacts, closer than every real node,
// fill the K closest, so the lookup spends itself on them and never asks a
// holder. With three disjoint paths the attacker misleads only its own
// path: the other two start from honest seeds and find the key.
func TestDisjointPathsFindTheKeyWhereAPlainLookupIsEclipsed(t *testing.T) {
	e := newEclipseNet(500, 8, 0, 3)
	r := rand.New(rand.NewPCG(3, 3))
	target := id.Random(r)
	// Make one node far from the target's holders an attacker, and give
	// the asking node a routing table whose closest entry is that
	// attacker, then two honest nodes that are not holders.
	holders := map[id.ID]bool{}
	for _, c := range e.honestTruth(target) {
		holders[c.ID] = true
	}
	var far []int
	for i := range e.ids {
		if !holders[e.ids[i]] && target.CommonPrefixLen(e.ids[i]) < 3 {
			far = append(far, i)
		}
	}
	attacker := far[0]
	e.bad[attacker] = true
	e.badList = []int{attacker}
	seeds := []id.Contact{e.contact(attacker), e.contact(far[1]), e.contact(far[2])}
	self := id.Random(r)
	cfg := Config{K: 8, Alpha: 3}

	plain := New(self, target, cfg)
	plain.AddSeeds(seeds)
	if o := e.drive(t, target, []*Lookup{plain}); o.found {
		t.Fatalf("plain lookup found the key: the constructed eclipse does not work (%+v)", o)
	}
	for _, c := range plain.Closest(nil) {
		if _, real := e.byAddr[c.Addr]; real && e.ids[e.byAddr[c.Addr]] == c.ID {
			t.Fatalf("plain lookup's result holds real node %v: it was not eclipsed", c.ID)
		}
	}

	paths := newPaths(self, target, 3, cfg)
	d := NewDisjoint(paths)
	d.AddSeeds(seeds)
	if o := e.drive(t, target, paths); !o.found {
		t.Fatalf("disjoint lookup did not find the key (%+v, %+v)", o, d.Stats())
	}
	if owner, _ := d.Owner(e.ids[attacker]); owner != 0 {
		t.Fatalf("attacker on path %d, want 0 (the closest seed goes to path 0)", owner)
	}
}

// A contact at an address some path already holds under another ID is
// refused, on any path: one host is one node.
func TestDisjointRefusesASecondIDAtAClaimedAddress(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	target := id.Random(r)
	paths := newPaths(id.Random(r), target, 2, Config{K: 4, Alpha: 1})
	d := NewDisjoint(paths)
	a := netip.MustParseAddrPort("192.0.2.1:4000")
	d.AddSeeds([]id.Contact{{ID: id.Random(r), Addr: a}, {ID: id.Random(r), Addr: a}})
	if got := len(paths[1].Candidates(nil, 10)); got != 0 {
		t.Fatalf("path 1 took a second ID at %v (%d candidates)", a, got)
	}
	first := paths[0].Next(nil)
	paths[0].OnResponse(first[0].ID, []id.Contact{{ID: id.Random(r), Addr: a}, {ID: id.Random(r), Addr: netip.MustParseAddrPort("192.0.2.2:4000")}})
	if got := len(paths[0].Candidates(nil, 10)); got != 2 {
		t.Fatalf("path 0 has %d candidates, want 2 (itself's first and the new address)", got)
	}
	if s := d.Stats(); s.Refused != 2 || s.Claimed != 2 {
		t.Fatalf("stats %+v, want 2 refused and 2 claimed", s)
	}
}

// The claimed set is bounded: a flood of fresh contacts into every path is
// refused once it is full, and counted.
func TestDisjointClaimsAreBounded(t *testing.T) {
	r := rand.New(rand.NewPCG(6, 6))
	target := id.Random(r)
	paths := newPaths(id.Random(r), target, 3, Config{K: 4, Alpha: 2})
	d := NewDisjoint(paths)
	gen := &everCloser{target: target}
	for i := range 300 {
		cs := make([]id.Contact, 16)
		for j := range cs {
			c := gen.next()
			c.Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(j)}), 4000)
			cs[j] = c
		}
		l := paths[i%3]
		l.AddSeeds(cs)
		for _, c := range l.Next(nil) {
			l.OnFailure(c.ID)
		}
	}
	s := d.Stats()
	if s.Claimed > d.max || s.Full == 0 {
		t.Fatalf("stats %+v with bound %d: want the bound reached and kept", s, d.max)
	}
	t.Logf("%+v, bound %d", s, d.max)
}

package lookup

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/dhtkit/dht/id"
)

// Kademlia paper, section 2.3: the iterative lookup returns the k nodes
// closest to the target. Checked against a brute-force search over the whole
// synthetic network, with nodes that know everyone and with nodes that only
// have k-bucket routing tables.
func TestLookupFindsTheKClosestNodes(t *testing.T) {
	for _, tc := range []struct {
		name    string
		partial bool
	}{
		{"full view", false},
		{"k-bucket routing tables", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nw := newNetwork(2000, DefaultK, 1)
			nw.partial = tc.partial
			r := rand.New(rand.NewPCG(2, 3))
			d := &driver{t: t, nw: nw, r: r}
			for range 25 {
				self, target := r.IntN(len(nw.ids)), id.Random(r)
				l := New(nw.ids[self], target, Config{})
				d.run(l, self, nw.seedsFor(self, target, r))
				got, want := l.Closest(nil), nw.truth(self, target, DefaultK)
				if !sameContacts(got, want) {
					t.Fatalf("lookup for %s found\n%v\nwant\n%v", target.Short(), got, want)
				}
				if st := l.Stats(); st.Limited != 0 {
					t.Fatalf("lookup for %s found the truth but reported it may be incomplete: %+v", target.Short(), st)
				}
			}
		})
	}
}

// Section 2.3 again, with a fifth of the nodes gone: failed candidates are
// dropped from consideration, and the lookup still converges on the k closest
// nodes that answer. Live nodes still list a quarter of the dead ones (those
// they have not noticed yet), so the lookup meets dead candidates all the way
// in; with many more, the live nodes just past the dead ones would appear in
// nobody's answer and no lookup could find them.
func TestLookupFindsTheKClosestLiveNodesWhenNodesFail(t *testing.T) {
	for _, tc := range []struct {
		name    string
		partial bool
	}{
		{"full view", false},
		{"k-bucket routing tables", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nw := newNetwork(2000, DefaultK, 4)
			nw.partial = tc.partial
			r := rand.New(rand.NewPCG(5, 6))
			nw.killFraction(0.2, r)
			nw.stale = 0.25
			d := &driver{t: t, nw: nw, r: r}
			failures := 0
			for range 25 {
				self, target := r.IntN(len(nw.ids)), id.Random(r)
				for nw.dead[self] {
					self = r.IntN(len(nw.ids))
				}
				l := New(nw.ids[self], target, Config{})
				d.run(l, self, nw.seedsFor(self, target, r))
				got, want := l.Closest(nil), nw.truth(self, target, DefaultK)
				if !sameContacts(got, want) {
					t.Fatalf("lookup for %s found\n%v\nwant\n%v", target.Short(), got, want)
				}
				if st := l.Stats(); st.Limited != 0 {
					t.Fatalf("lookup for %s found the truth but reported it may be incomplete: %+v", target.Short(), st)
				}
				failures += l.Stats().Failed
			}
			if failures == 0 {
				t.Fatal("no request failed: the test does not exercise failures")
			}
			t.Logf("%d failed requests over 25 lookups", failures)
		})
	}
}

// Section 2.3 / 4: with k-bucket routing tables a lookup takes about log N
// rounds. Measured at three network sizes: the mean number of rounds must not
// shrink as the network grows tenfold, and must stay well under log2 N.
func TestLookupRoundsGrowLogarithmically(t *testing.T) {
	const lookups = 40
	prev := 0.0
	for i, n := range []int{200, 2000, 20000} {
		nw := newNetwork(n, DefaultK, uint64(10+i))
		nw.partial = true
		r := rand.New(rand.NewPCG(7, uint64(n)))
		d := &driver{t: t, nw: nw, r: r}
		var rounds, queried []int
		for range lookups {
			self, target := r.IntN(n), id.Random(r)
			l := New(nw.ids[self], target, Config{})
			d.run(l, self, nw.seedsFor(self, target, r))
			rounds = append(rounds, l.Stats().Rounds)
			queried = append(queried, l.Stats().Queried)
		}
		mean, log2n := meanOf(rounds), math.Log2(float64(n))
		t.Logf("N=%5d: mean rounds %.2f (max %d), mean queries %.1f, log2 N %.1f",
			n, mean, slices.Max(rounds), meanOf(queried), log2n)
		if mean < prev {
			t.Errorf("N=%d: mean rounds %.2f is below the %.2f of a ten times smaller network", n, mean, prev)
		}
		if mean > log2n/2 {
			t.Errorf("N=%d: mean rounds %.2f exceeds log2(N)/2 = %.2f", n, mean, log2n/2)
		}
		prev = mean
	}
}

func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), uint16(1000+i))
}

// contactsAt returns n contacts whose distance to target is 1, 2, ..., n
// (the last byte), so the test knows their order.
func contactsAt(target id.ID, n int) []id.Contact {
	out := make([]id.Contact, n)
	for i := range out {
		x := target
		x[id.Len-2] ^= byte((i + 1) >> 8)
		x[id.Len-1] ^= byte(i + 1)
		out[i] = id.Contact{ID: x, Addr: addr(i + 1)}
	}
	return out
}

func TestNewAppliesDefaultsAndBounds(t *testing.T) {
	for _, tc := range []struct {
		in, want Config
	}{
		{Config{}, Config{K: 20, Alpha: 3, MaxCandidates: 60, MaxQueries: 92, MaxRounds: 32}},
		{Config{K: 8, Alpha: 2}, Config{K: 8, Alpha: 2, MaxCandidates: 24, MaxQueries: 40, MaxRounds: 32}},
		{Config{K: 8, Alpha: 2, MaxCandidates: 5}, Config{K: 8, Alpha: 2, MaxCandidates: 11, MaxQueries: 40, MaxRounds: 32}},
		{Config{K: -1, Alpha: -1, MaxCandidates: 100, MaxQueries: -1, MaxRounds: -1}, Config{K: 20, Alpha: 3, MaxCandidates: 100, MaxQueries: 92, MaxRounds: 32}},
		{Config{K: 4, Alpha: 1, MaxQueries: 1, MaxRounds: 1}, Config{K: 4, Alpha: 1, MaxCandidates: 12, MaxQueries: 1, MaxRounds: 1}},
	} {
		if got := New(id.ID{}, id.ID{1}, tc.in).Config(); got != tc.want {
			t.Errorf("New(%+v).Config() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestDoneWithNoSeeds(t *testing.T) {
	l := New(id.ID{1}, id.ID{2}, Config{})
	if !l.Done() {
		t.Fatal("a lookup with no candidates is not done")
	}
	if got := l.Next(nil); len(got) != 0 {
		t.Fatalf("Next with no candidates = %v", got)
	}
	if got := l.Closest(nil); len(got) != 0 {
		t.Fatalf("Closest with no candidates = %v", got)
	}
	// Seeds that are all filtered out leave it done too.
	l.AddSeeds([]id.Contact{{ID: id.ID{1}, Addr: addr(1)}, {ID: id.ID{3}}})
	if !l.Done() {
		t.Fatal("a lookup seeded only with self and an invalid address is not done")
	}
}

func TestNextQueriesTheClosestFirstAndAtMostAlpha(t *testing.T) {
	target := id.Key("target")
	cs := contactsAt(target, 10)
	l := New(id.Key("self"), target, Config{K: 4, Alpha: 2})
	seeds := slices.Clone(cs)
	rand.New(rand.NewPCG(1, 1)).Shuffle(len(seeds), func(i, j int) { seeds[i], seeds[j] = seeds[j], seeds[i] })
	l.AddSeeds(seeds)

	steps := []struct {
		do   func()
		want []id.Contact // what Next returns after do
	}{
		{func() {}, cs[0:2]},
		{func() {}, nil}, // two in flight already
		{func() { l.OnResponse(cs[1].ID, nil) }, cs[2:3]},
		{func() { l.OnFailure(cs[0].ID) }, cs[3:4]},       // cs[0] leaves the window
		{func() { l.OnResponse(cs[2].ID, nil) }, cs[4:5]}, // window: 1,2,3,4
		{func() { l.OnResponse(cs[3].ID, nil) }, nil},     // only cs[4] is left in the window
		{func() { l.OnResponse(cs[4].ID, nil) }, nil},     // window all answered
	}
	for i, s := range steps {
		s.do()
		if got := l.Next(nil); !sameContacts(got, s.want) {
			t.Fatalf("step %d: Next = %v, want %v", i, got, s.want)
		}
	}
	if !l.Done() {
		t.Fatal("not done once the 4 closest live candidates answered")
	}
	if got, want := l.Closest(nil), []id.Contact{cs[1], cs[2], cs[3], cs[4]}; !sameContacts(got, want) {
		t.Fatalf("Closest = %v, want %v", got, want)
	}
	if got, want := l.Stats(), (Stats{Queried: 5, Responded: 4, Failed: 1, Rounds: 1}); got != want {
		t.Fatalf("Stats = %+v, want %+v", got, want)
	}
}

func TestDoneIgnoresRequestsOutsideTheKClosest(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 6)
	l := New(id.Key("self"), target, Config{K: 2, Alpha: 3})
	l.AddSeeds(cs[3:6])
	if got := l.Next(nil); !sameContacts(got, cs[3:5]) {
		t.Fatalf("Next = %v, want the two closest %v", got, cs[3:5])
	}
	// cs[3] answers with two closer nodes: cs[4] falls out of the window.
	l.OnResponse(cs[3].ID, cs[0:2])
	if got := l.Next(nil); !sameContacts(got, cs[0:2]) {
		t.Fatalf("Next = %v, want %v", got, cs[0:2])
	}
	l.OnResponse(cs[0].ID, nil)
	if l.Done() {
		t.Fatal("done while cs[1], in the window, is in flight")
	}
	l.OnResponse(cs[1].ID, nil)
	if !l.Done() {
		t.Fatal("not done though the 2 closest answered; only cs[4], outside them, is in flight")
	}
	if got := l.InFlight(nil); !sameContacts(got, cs[4:5]) {
		t.Fatalf("InFlight = %v, want %v", got, cs[4:5])
	}
	if got := l.Closest(nil); !sameContacts(got, cs[0:2]) {
		t.Fatalf("Closest = %v, want %v", got, cs[0:2])
	}
}

func TestOnResponseReturnsTheRound(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 4)
	l := New(id.Key("self"), target, Config{K: 4, Alpha: 1})
	l.AddSeeds(cs[3:4])
	for i := 3; i >= 0; i-- {
		next := l.Next(nil)
		if !sameContacts(next, cs[i:i+1]) {
			t.Fatalf("Next = %v, want %v", next, cs[i:i+1])
		}
		var more []id.Contact
		if i > 0 {
			more = cs[i-1 : i]
		}
		if got, want := l.OnResponse(cs[i].ID, more), 4-i; got != want {
			t.Fatalf("OnResponse(%v) = depth %d, want %d", cs[i], got, want)
		}
		if got := l.OnResponse(cs[i].ID, more); got != 0 {
			t.Fatalf("duplicate OnResponse(%v) = %d, want 0", cs[i], got)
		}
	}
	if got := l.Stats(); got.Rounds != 4 || got.Responded != 4 || got.Queried != 4 {
		t.Fatalf("Stats = %+v, want 4 rounds, 4 queried, 4 responded", got)
	}
}

func TestResponsesOutsideTheProtocolAreIgnored(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 4)
	for _, tc := range []struct {
		name string
		do   func(l *Lookup) int // returns OnResponse's depth
		want Stats
	}{
		{"never queried", func(l *Lookup) int { return l.OnResponse(cs[3].ID, cs[:1]) }, Stats{Queried: 1}},
		{"unknown", func(l *Lookup) int { return l.OnResponse(id.Key("stranger"), cs[:1]) }, Stats{Queried: 1}},
		{"after failure", func(l *Lookup) int {
			l.OnFailure(cs[2].ID)
			return l.OnResponse(cs[2].ID, cs[:1])
		}, Stats{Queried: 1, Failed: 1}},
		{"duplicate", func(l *Lookup) int {
			l.OnResponse(cs[2].ID, nil)
			return l.OnResponse(cs[2].ID, cs[:1])
		}, Stats{Queried: 1, Responded: 1, Rounds: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New(id.Key("self"), target, Config{K: 4, Alpha: 1})
			l.AddSeeds(cs[2:4])
			l.Next(nil) // cs[2] in flight
			if got := tc.do(l); got != 0 {
				t.Fatalf("OnResponse = %d, want 0", got)
			}
			if _, found := l.search(l.distanceTo(cs[0].ID)); found {
				t.Fatal("an ignored response added its contacts")
			}
			if got := l.Stats(); got != tc.want {
				t.Fatalf("Stats = %+v, want %+v", got, tc.want)
			}
			l.OnFailure(cs[2].ID) // failing after an answer or a failure changes nothing
			if got := l.Stats(); got != tc.want && tc.name != "never queried" && tc.name != "unknown" {
				t.Fatalf("late OnFailure changed Stats to %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestContactsAreFiltered(t *testing.T) {
	self, target := id.Key("self"), id.Key("t")
	cs := contactsAt(target, 4)
	moved := cs[0]
	moved.Addr = addr(99)
	for _, tc := range []struct {
		name string
		c    id.Contact
		want bool // accepted as a new candidate
	}{
		{"valid", cs[1], true},
		{"self", id.Contact{ID: self, Addr: addr(7)}, false},
		{"zero address", id.Contact{ID: cs[1].ID}, false},
		{"port 0", id.Contact{ID: cs[1].ID, Addr: netip.AddrPortFrom(addr(7).Addr(), 0)}, false},
		{"unspecified", id.Contact{ID: cs[1].ID, Addr: netip.MustParseAddrPort("0.0.0.0:4000")}, false},
		{"unspecified v6", id.Contact{ID: cs[1].ID, Addr: netip.MustParseAddrPort("[::]:4000")}, false},
		{"multicast", id.Contact{ID: cs[1].ID, Addr: netip.MustParseAddrPort("224.0.0.1:4000")}, false},
		{"ipv6", id.Contact{ID: cs[1].ID, Addr: netip.MustParseAddrPort("[2001:db8::1]:4000")}, true},
		{"known, other address", moved, false},
		{"known, same address", cs[0], false},
	} {
		for _, path := range []string{"seed", "response"} {
			t.Run(tc.name+" via "+path, func(t *testing.T) {
				l := New(self, target, Config{})
				l.AddSeeds(cs[2:4])
				l.Next(nil) // both seeds in flight
				l.OnResponse(cs[2].ID, cs[0:1])
				before := len(l.cands)
				if path == "seed" {
					l.AddSeeds([]id.Contact{tc.c, tc.c})
				} else {
					l.OnResponse(cs[3].ID, []id.Contact{tc.c, tc.c})
				}
				want := 0
				if tc.want {
					want = 1
				}
				if got := len(l.cands) - before; got != want {
					t.Fatalf("%d candidates added, want %d", got, want)
				}
				checkShortlist(t, l)
				i, ok := l.search(l.distanceTo(cs[0].ID))
				if !ok || l.cands[i].contact.Addr != cs[0].Addr {
					t.Fatal("a known candidate lost its first address")
				}
			})
		}
	}
}

// A peer returning thousands of contacts over many responses never grows the
// shortlist past MaxCandidates, nor its array past what New allocated; the
// lookup still ends, with each contact queried at most once.
func TestCandidatesStayBoundedUnderFloods(t *testing.T) {
	for _, alive := range []float64{1, 0.3} {
		t.Run(fmt.Sprintf("alive=%v", alive), func(t *testing.T) {
			r := rand.New(rand.NewPCG(11, 12))
			self, target := id.Random(r), id.Random(r)
			l := New(self, target, Config{})
			capBefore := cap(l.cands)
			flood := func() []id.Contact {
				out := make([]id.Contact, 2000)
				for i := range out {
					// Random IDs, half of them sharing a long prefix with the
					// target so that the flood keeps displacing candidates.
					x := id.Random(r)
					if i%2 == 0 {
						x = id.RandomInBucket(r, target, 8+r.IntN(40))
					}
					out[i] = id.Contact{ID: x, Addr: addr(1 + i%200)}
				}
				return out
			}
			l.AddSeeds(flood())
			checkShortlist(t, l)
			dead := map[id.ID]bool{}
			queried := map[id.ID]bool{}
			var pending []id.Contact
			for steps := 0; !l.Done(); steps++ {
				if steps > 10000 {
					t.Fatal("flooded lookup did not end")
				}
				before := len(pending)
				pending = l.Next(pending)
				for _, c := range pending[before:] {
					if queried[c.ID] {
						t.Fatalf("queried %v twice", c)
					}
					queried[c.ID] = true
					dead[c.ID] = r.Float64() >= alive
				}
				c := pending[0]
				pending = pending[1:]
				if dead[c.ID] {
					l.OnFailure(c.ID)
				} else {
					l.OnResponse(c.ID, flood())
				}
				checkShortlist(t, l)
				if cap(l.cands) != capBefore {
					t.Fatalf("shortlist array grew from %d to %d", capBefore, cap(l.cands))
				}
			}
			if !l.hasHorizon {
				t.Fatal("nothing was evicted: the flood did not test the bound")
			}
			t.Logf("%+v", l.Stats())
		})
	}
}

// Once evicted for room, a contact is refused for good, even after it has
// been queried, so that bounding the shortlist never leads to querying a
// contact twice. The scenario evicts a contact that answered while two
// farther ones are in flight, lets those answer (so that there would be room
// again) and offers the evicted contact anew.
func TestEvictedCandidatesAreNeverQueriedAgain(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 8)
	l := New(id.Key("self"), target, Config{K: 3, Alpha: 2, MaxCandidates: 6})
	queried := map[id.ID]bool{}
	next := func(want ...id.Contact) {
		t.Helper()
		got := l.Next(nil)
		if !sameContacts(got, want) {
			t.Fatalf("Next = %v, want %v", got, want)
		}
		for _, c := range got {
			if queried[c.ID] {
				t.Fatalf("queried %v twice", c)
			}
			queried[c.ID] = true
		}
	}
	l.AddSeeds([]id.Contact{cs[4], cs[6], cs[7]})
	next(cs[4], cs[6])
	l.OnResponse(cs[4].ID, nil)
	next(cs[7])
	l.AddSeeds(cs[0:4]) // the list overflows: cs[4], answered, is evicted
	if _, found := l.search(l.distanceTo(cs[4].ID)); found {
		t.Fatal("cs[4] was not evicted; the scenario is broken")
	}
	l.OnResponse(cs[6].ID, cs[4:5]) // offered again
	l.OnResponse(cs[7].ID, nil)
	next(cs[0], cs[1])
	l.OnFailure(cs[0].ID)
	l.OnFailure(cs[1].ID)
	next(cs[2], cs[3])
	l.OnFailure(cs[2].ID)
	next() // the window is cs[3], cs[6], cs[7]: nothing left to ask
	l.OnResponse(cs[3].ID, nil)
	if !l.Done() {
		t.Fatal("not done")
	}
	checkShortlist(t, l)
	// cs[4] answered and would be in the result but for the eviction.
	if st := l.Stats(); st.Limited&LimitCandidates == 0 {
		t.Fatalf("the eviction of an answer went unreported: %+v", st)
	}
}

// LimitCandidates says exactly when an eviction may have cost the result:
// not while K candidates that have not failed remain closer than everything
// evicted, and as soon as failures leave fewer.
func TestEvictionIsReportedOnceItCouldReachTheResult(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 5)
	l := New(id.Key("self"), target, Config{K: 2, Alpha: 1, MaxCandidates: 4})
	l.AddSeeds(cs) // cs[4], the farthest, is evicted
	if _, found := l.search(l.distanceTo(cs[4].ID)); found {
		t.Fatal("cs[4] was not evicted; the scenario is broken")
	}
	for i, wantLimited := range []bool{false, false, false, true} {
		if got := l.Stats().Limited&LimitCandidates != 0; got != wantLimited {
			t.Fatalf("after %d failures: LimitCandidates %v, want %v (%d candidates left closer than the evicted one)",
				i, got, wantLimited, 4-i)
		}
		next := l.Next(nil)
		if !sameContacts(next, cs[i:i+1]) {
			t.Fatalf("Next = %v, want %v", next, cs[i:i+1])
		}
		l.OnFailure(cs[i].ID)
	}
}

// Property: whatever contacts arrive, in whatever order, the shortlist keeps
// exactly the closest acceptable ones while nothing is evicted from the
// window: compared with a brute-force sort of everything offered.
func TestShortlistKeepsTheClosestOffered(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	for trial := range 200 {
		self, target := id.Random(r), id.Random(r)
		l := New(self, target, Config{K: 5, Alpha: 2, MaxCandidates: 12})
		var all []id.Contact
		for range 1 + r.IntN(6) {
			batch := make([]id.Contact, r.IntN(30))
			for i := range batch {
				switch r.IntN(10) {
				case 0:
					if len(all) > 0 { // a repeat
						batch[i] = all[r.IntN(len(all))]
						continue
					}
				case 1:
					batch[i] = id.Contact{ID: self, Addr: addr(1)}
					continue
				}
				batch[i] = id.Contact{ID: id.RandomInBucket(r, target, r.IntN(12)), Addr: addr(1 + r.IntN(250))}
			}
			l.AddSeeds(batch)
			for _, c := range batch {
				if c.ID != self && !slices.ContainsFunc(all, func(a id.Contact) bool { return a.ID == c.ID }) {
					all = append(all, c)
				}
			}
			checkShortlist(t, l)
			slices.SortFunc(all, func(a, b id.Contact) int { return id.CompareDistance(target, a.ID, b.ID) })
			want := all[:min(len(all), 12)]
			got := make([]id.Contact, len(l.cands))
			for i, c := range l.cands {
				got[i] = c.contact
			}
			if !sameContacts(got, want) {
				t.Fatalf("trial %d: shortlist\n%v\nwant the closest offered\n%v", trial, got, want)
			}
		}
	}
}

// Feeding responses and asking for the next contacts does not allocate once
// the lookup exists: New allocates the whole shortlist.
func TestOnResponseAndNextDoNotAllocate(t *testing.T) {
	nw := newNetwork(2000, DefaultK, 21)
	nw.partial = true
	const runs = 20
	r := rand.New(rand.NewPCG(22, 23))
	// Precompute the lookups and every answer they will need.
	type job struct {
		l       *Lookup
		seeds   []id.Contact
		answers map[id.ID][]id.Contact
	}
	jobs := make([]job, runs+1) // AllocsPerRun runs f once more to warm up
	for i := range jobs {
		self, target := r.IntN(len(nw.ids)), id.Random(r)
		j := job{seeds: nw.seedsFor(self, target, r), answers: map[id.ID][]id.Contact{}}
		runFIFO(New(nw.ids[self], target, Config{}), j.seeds, nil, func(x id.ID) []id.Contact {
			a := nw.answer(nw.index(x), target)
			j.answers[x] = a
			return a
		})
		j.l = New(nw.ids[self], target, Config{})
		jobs[i] = j
	}
	next := 0
	buf := make([]id.Contact, 0, 64)
	allocs := testing.AllocsPerRun(runs, func() {
		j := jobs[next]
		next++
		runFIFO(j.l, j.seeds, buf, func(x id.ID) []id.Contact { return j.answers[x] })
	})
	if allocs != 0 {
		t.Fatalf("a whole lookup after New made %v allocations, want 0", allocs)
	}
}

// BenchmarkLookup2000 runs whole lookups over a 2,000-node network with
// k-bucket routing tables; the answers are precomputed so that the figure is
// the state machine's cost alone (including New).
func BenchmarkLookup2000(b *testing.B) {
	nw := newNetwork(2000, DefaultK, 31)
	nw.partial = true
	r := rand.New(rand.NewPCG(32, 33))
	type job struct {
		self, target id.ID
		seeds        []id.Contact
		answers      map[id.ID][]id.Contact
	}
	jobs := make([]job, 64)
	queries := 0
	for i := range jobs {
		self, target := r.IntN(len(nw.ids)), id.Random(r)
		j := job{self: nw.ids[self], target: target, seeds: nw.seedsFor(self, target, r), answers: map[id.ID][]id.Contact{}}
		l := New(j.self, target, Config{})
		runFIFO(l, j.seeds, nil, func(x id.ID) []id.Contact {
			a := nw.answer(nw.index(x), target)
			j.answers[x] = a
			return a
		})
		queries += l.Stats().Queried
		jobs[i] = j
	}
	buf := make([]id.Contact, 0, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		j := &jobs[i%len(jobs)]
		l := New(j.self, j.target, Config{})
		runFIFO(l, j.seeds, buf, func(x id.ID) []id.Contact { return j.answers[x] })
	}
	b.ReportMetric(float64(queries)/float64(len(jobs)), "queries/lookup")
}

// runFIFO drives l to completion, answering requests in the order they were
// sent, with queue as scratch space: a deterministic driver that allocates
// nothing itself, for the allocation test and the benchmark.
func runFIFO(l *Lookup, seeds []id.Contact, queue []id.Contact, answer func(id.ID) []id.Contact) {
	l.AddSeeds(seeds)
	pending := l.Next(queue[:0])
	for !l.Done() && len(pending) > 0 {
		c := pending[0]
		pending = append(pending[:0], pending[1:]...)
		l.OnResponse(c.ID, answer(c.ID))
		pending = l.Next(pending)
	}
}

// A reset lookup behaves exactly like a new one, whatever it held before,
// and reuses its memory.
func TestResetIsLikeNew(t *testing.T) {
	r := rand.New(rand.NewPCG(31, 32))
	self := id.Random(r)
	var seeds []id.Contact
	for i := range 40 {
		seeds = append(seeds, id.Contact{ID: id.Random(r), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)}), 4000)})
	}
	cfg := Config{K: 8, Alpha: 3}
	used := New(self, id.Random(r), cfg)
	used.AddSeeds(seeds)
	for _, c := range used.Next(nil) {
		used.OnFailure(c.ID)
	}
	target := id.Random(r)
	used.Reset(self, target, cfg)
	fresh := New(self, target, cfg)
	for _, l := range []*Lookup{used, fresh} {
		l.AddSeeds(seeds)
	}
	for !fresh.Done() {
		a, b := used.Next(nil), fresh.Next(nil)
		if !slices.Equal(a, b) {
			t.Fatalf("reset lookup asks %v, new one %v", a, b)
		}
		for _, c := range b {
			used.OnResponse(c.ID, nil)
			fresh.OnResponse(c.ID, nil)
		}
	}
	if !used.Done() || used.Stats() != fresh.Stats() || !slices.Equal(used.Closest(nil), fresh.Closest(nil)) {
		t.Fatalf("reset lookup ended differently: %+v vs %+v", used.Stats(), fresh.Stats())
	}
	if a := testing.AllocsPerRun(100, func() { used.Reset(self, target, cfg) }); a != 0 {
		t.Fatalf("Reset allocates %v times", a)
	}
}

// A stalled request frees its slot and its place among the K closest: the
// lookup asks the next candidate at once, takes the stalled contact's answer
// if it comes while the lookup runs, and once K other candidates have
// answered it is done without waiting for it.
func TestStalledRequestFreesItsSlotAndItsPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(41, 42))
	self, target := id.Random(r), id.Random(r)
	var seeds []id.Contact
	for i := range 6 {
		seeds = append(seeds, id.Contact{ID: id.Random(r), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)}), 4000)})
	}
	start := func() (*Lookup, id.Contact, []id.Contact) {
		l := New(self, target, Config{K: 4, Alpha: 2})
		l.AddSeeds(seeds)
		first := l.Next(nil)
		if len(first) != 2 || len(l.Next(nil)) != 0 {
			t.Fatalf("want 2 in flight and no more, got %v", first)
		}
		slow := first[0] // the closest seed
		l.OnStall(slow.ID)
		l.OnStall(slow.ID) // a second stall of the same request changes nothing
		next := l.Next(nil)
		if len(next) != 1 || next[0] == slow || next[0] == first[1] {
			t.Fatalf("after a stall, want one new candidate asked, got %v", next)
		}
		if got := l.InFlight(nil); len(got) != 3 {
			t.Fatalf("InFlight = %v, want the stalled request and the two others", got)
		}
		return l, slow, first
	}
	// answerAllBut answers every request but the stalled one until done.
	answerAllBut := func(l *Lookup, slow id.Contact) {
		for i := 0; !l.Done(); i++ {
			if i > 10 {
				t.Fatal("not done after 10 rounds of answers")
			}
			for _, c := range l.InFlight(nil) {
				if c.ID != slow.ID {
					l.OnResponse(c.ID, nil)
				}
			}
			l.Next(nil)
		}
	}

	t.Run("done without it", func(t *testing.T) {
		l, slow, _ := start()
		answerAllBut(l, slow)
		if got := l.InFlight(nil); len(got) != 1 || got[0] != slow {
			t.Fatalf("InFlight = %v, want only the stalled request", got)
		}
		closest := l.Closest(nil)
		if len(closest) != 4 || slices.Contains(closest, slow) {
			t.Fatalf("Closest = %v, want the 4 others that answered", closest)
		}
		if st := l.Stats(); st.Stalled != 1 || st.Failed != 0 || st.Responded != 4 || st.Queried != 5 {
			t.Fatalf("stats %+v", st)
		}
	})
	t.Run("its late answer counts", func(t *testing.T) {
		l, slow, first := start()
		l.OnResponse(first[1].ID, nil)
		if depth := l.OnResponse(slow.ID, nil); depth != 1 {
			t.Fatalf("the stalled contact's late answer was not taken (depth %d)", depth)
		}
		answerAllBut(l, id.Contact{})
		if closest := l.Closest(nil); len(closest) != 4 || closest[0] != slow {
			t.Fatalf("Closest = %v, want 4 led by the stalled contact that answered", closest)
		}
	})
}

// With fewer than K other candidates, the lookup waits for its stalled
// requests: their answers may bring the contacts it lacks.
func TestStalledRequestIsAwaitedWhenTooFewOthersRemain(t *testing.T) {
	r := rand.New(rand.NewPCG(45, 46))
	l := New(id.Random(r), id.Random(r), Config{K: 4, Alpha: 3})
	var seeds []id.Contact
	for i := range 3 {
		seeds = append(seeds, id.Contact{ID: id.Random(r), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)}), 4000)})
	}
	l.AddSeeds(seeds)
	asked := l.Next(nil)
	l.OnStall(asked[0].ID)
	l.OnResponse(asked[1].ID, nil)
	l.OnResponse(asked[2].ID, nil)
	if l.Done() {
		t.Fatal("done with 2 of K=4 answers while a stalled request is awaited")
	}
	extra := id.Contact{ID: id.Random(r), Addr: netip.MustParseAddrPort("127.0.0.9:4000")}
	l.OnResponse(asked[0].ID, []id.Contact{extra})
	if l.Done() {
		t.Fatal("done before asking the contact the stalled request's late answer brought")
	}
	if next := l.Next(nil); len(next) != 1 || next[0] != extra {
		t.Fatalf("Next = %v, want the contact from the late answer", next)
	}
}

// A stalled request that then fails is a failure like any other.
func TestStalledRequestCanStillFail(t *testing.T) {
	r := rand.New(rand.NewPCG(43, 44))
	l := New(id.Random(r), id.Random(r), Config{K: 2, Alpha: 1})
	c := id.Contact{ID: id.Random(r), Addr: netip.MustParseAddrPort("127.0.0.1:4000")}
	l.AddSeeds([]id.Contact{c})
	l.Next(nil)
	l.OnStall(c.ID)
	if l.Done() {
		t.Fatal("done while the only candidate is awaited")
	}
	l.OnFailure(c.ID)
	if !l.Done() || l.Stats().Failed != 1 || len(l.Closest(nil)) != 0 {
		t.Fatalf("after the stalled request failed: done %v, stats %+v", l.Done(), l.Stats())
	}
}

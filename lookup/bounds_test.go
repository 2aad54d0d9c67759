package lookup

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/dhtkit/dht/id"
)

// A request that could not be sent goes back to waiting: its slot is free,
// it is not counted as queried, and the next call to Next hands it out again
// (it is still the closest), so that a full request table delays a lookup
// instead of failing good contacts.
func TestRequeueGivesAContactBackToBeAskedAgain(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 6)
	l := New(id.Key("self"), target, Config{K: 4, Alpha: 2})
	l.AddSeeds(cs)
	if got := l.Next(nil); !sameContacts(got, cs[0:2]) {
		t.Fatalf("Next = %v, want %v", got, cs[0:2])
	}
	l.Requeue(cs[0].ID)
	if st := l.Stats(); st.Queried != 1 || st.Requeued != 1 {
		t.Fatalf("after Requeue: stats %+v, want 1 queried, 1 requeued", st)
	}
	if got := l.InFlight(nil); !sameContacts(got, cs[1:2]) {
		t.Fatalf("InFlight = %v, want %v", got, cs[1:2])
	}
	if got := l.Next(nil); !sameContacts(got, cs[0:1]) {
		t.Fatalf("Next after Requeue = %v, want the requeued %v", got, cs[0:1])
	}
	for !l.Done() {
		for _, c := range l.InFlight(nil) {
			l.OnResponse(c.ID, nil)
		}
		l.Next(nil)
	}
	if got := l.Closest(nil); !sameContacts(got, cs[0:4]) {
		t.Fatalf("Closest = %v, want %v", got, cs[0:4])
	}
	if st := l.Stats(); st.Queried != 4 || st.Responded != 4 || st.Requeued != 1 || st.Failed != 0 {
		t.Fatalf("stats %+v, want 4 queried and responded, 1 requeued", st)
	}
}

// Only a request in flight can be given back: Requeue of a contact that is
// waiting, stalled (it was sent), answered, failed or unknown changes
// nothing.
func TestRequeueIgnoresContactsNotInFlight(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 6)
	for _, tc := range []struct {
		name string
		prep func(l *Lookup)
		x    id.ID
	}{
		{"waiting", func(*Lookup) {}, cs[5].ID},
		{"stalled", func(l *Lookup) { l.OnStall(cs[0].ID) }, cs[0].ID},
		{"responded", func(l *Lookup) { l.OnResponse(cs[0].ID, nil) }, cs[0].ID},
		{"failed", func(l *Lookup) { l.OnFailure(cs[0].ID) }, cs[0].ID},
		{"unknown", func(*Lookup) {}, id.Key("stranger")},
		{"self", func(*Lookup) {}, id.Key("self")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := New(id.Key("self"), target, Config{K: 4, Alpha: 2})
			l.AddSeeds(cs)
			l.Next(nil) // cs[0], cs[1] in flight
			tc.prep(l)
			st, inFlight := l.Stats(), l.InFlight(nil)
			cands := slices.Clone(l.cands)
			l.Requeue(tc.x)
			if l.Stats() != st || !sameContacts(l.InFlight(nil), inFlight) || !slices.Equal(l.cands, cands) {
				t.Fatalf("Requeue changed the lookup: stats %+v, was %+v", l.Stats(), st)
			}
		})
	}
}

// Requeued contacts do not count toward MaxQueries: a lookup whose requests
// keep bouncing off a full table still gets its whole budget.
func TestRequeuedContactsDoNotCountTowardMaxQueries(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 2)
	l := New(id.Key("self"), target, Config{K: 2, Alpha: 2, MaxQueries: 2})
	l.AddSeeds(cs)
	for range 5 {
		got := l.Next(nil)
		if !sameContacts(got, cs) {
			t.Fatalf("Next = %v, want %v", got, cs)
		}
		for _, c := range got {
			l.Requeue(c.ID)
		}
	}
	for _, c := range l.Next(nil) {
		l.OnResponse(c.ID, nil)
	}
	st := l.Stats()
	if !l.Done() || st.Limited != 0 || st.Queried != 2 || st.Requeued != 10 {
		t.Fatalf("done %v, stats %+v; want done, 2 queried, 10 requeued, no limit", l.Done(), st)
	}
}

// Once Next has handed out MaxQueries contacts it hands out no more, and the
// lookup is Done as soon as the K closest of the contacts that answered or
// are still awaited have all answered: an awaited request outside them
// cannot change the result. Done then stays true, and Stats says that the
// query bound cut the lookup short.
func TestQueryBoundStopsNextAndDoneWaitsOnlyForWhatCanEnterTheResult(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 10)
	l := New(id.Key("self"), target, Config{K: 2, Alpha: 3, MaxQueries: 3})
	l.AddSeeds(cs[8:10])
	if got := l.Next(nil); !sameContacts(got, cs[8:10]) {
		t.Fatalf("Next = %v, want %v", got, cs[8:10])
	}
	l.OnResponse(cs[8].ID, cs[0:2])
	if got := l.Next(nil); !sameContacts(got, cs[0:1]) {
		t.Fatalf("Next = %v, want only %v: the bound is 3 queries", got, cs[0:1])
	}
	if got := l.Next(nil); len(got) != 0 {
		t.Fatalf("Next past the bound = %v", got)
	}
	if st := l.Stats(); st.Queried != 3 || st.Limited != LimitQueries {
		t.Fatalf("stats %+v, want 3 queried, limited by queries", st)
	}
	l.OnStall(cs[0].ID)
	if l.Done() {
		t.Fatal("done while cs[0], among the K closest asked, is awaited")
	}
	l.OnResponse(cs[0].ID, cs[2:3])
	if !l.Done() {
		t.Fatal("not done though cs[0] and cs[8] answered; only cs[9], farther, is awaited")
	}
	if got := l.InFlight(nil); !sameContacts(got, cs[9:10]) {
		t.Fatalf("InFlight = %v, want %v", got, cs[9:10])
	}
	want := []id.Contact{cs[0], cs[8]}
	if got := l.Closest(nil); !sameContacts(got, want) {
		t.Fatalf("Closest = %v, want %v", got, want)
	}
	l.OnResponse(cs[9].ID, cs[3:4]) // late: changes nothing that counts
	if !l.Done() || len(l.Next(nil)) != 0 || !sameContacts(l.Closest(nil), want) {
		t.Fatalf("a late answer reopened the lookup: done %v, closest %v", l.Done(), l.Closest(nil))
	}
	if st := l.Stats(); st.Limited != LimitQueries {
		t.Fatalf("Limited = %v, want %v", st.Limited, LimitQueries)
	}
}

// A lookup that converges with exactly MaxQueries queries was not cut short.
func TestConvergingAtTheQueryBoundIsNotLimited(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 2)
	l := New(id.Key("self"), target, Config{K: 2, Alpha: 2, MaxQueries: 2})
	l.AddSeeds(cs)
	for _, c := range l.Next(nil) {
		l.OnResponse(c.ID, nil)
	}
	if st := l.Stats(); !l.Done() || st.Limited != 0 {
		t.Fatalf("done %v, stats %+v; want done and not limited", l.Done(), st)
	}
}

// Contacts that would be queried after round MaxRounds are not admitted, so
// a chain of ever-closer answers stops at that depth; Stats says so when a
// dropped contact would have been among the K closest, and not otherwise.
func TestRoundBoundDropsContactsFromDeeperRounds(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 10)
	l := New(id.Key("self"), target, Config{K: 2, Alpha: 1, MaxRounds: 2})
	l.AddSeeds(cs[9:10])
	l.Next(nil)
	if depth := l.OnResponse(cs[9].ID, cs[8:9]); depth != 1 {
		t.Fatalf("seed answered in round %d, want 1", depth)
	}
	if got := l.Next(nil); !sameContacts(got, cs[8:9]) {
		t.Fatalf("Next = %v, want %v", got, cs[8:9])
	}
	if depth := l.OnResponse(cs[8].ID, cs[0:1]); depth != 2 {
		t.Fatalf("answer in round %d, want 2", depth)
	}
	if _, found := l.search(l.distanceTo(cs[0].ID)); found {
		t.Fatal("a contact for round 3 was admitted, MaxRounds is 2")
	}
	st := l.Stats()
	if !l.Done() || st.Rounds != 2 || st.Limited != LimitRounds {
		t.Fatalf("done %v, stats %+v; want done in 2 rounds, limited by rounds", l.Done(), st)
	}

	// A dropped contact farther than the K closest would not have been
	// asked anyway: no limit is reported.
	l = New(id.Key("self"), target, Config{K: 1, Alpha: 1, MaxRounds: 1})
	l.AddSeeds(cs[0:1])
	l.Next(nil)
	l.OnResponse(cs[0].ID, cs[5:6])
	if st := l.Stats(); !l.Done() || st.Limited != 0 {
		t.Fatalf("done %v, stats %+v; want done and not limited", l.Done(), st)
	}
}

// The default bounds leave honest lookups alone: over k-bucket networks of
// 20,000 nodes, healthy or with half the nodes dead (live nodes still
// listing a quarter of the dead ones), no lookup is cut short, and none
// reports LimitCandidates although most overflow their shortlist. This is the
// measurement behind DefaultQueriesPerSlot and DefaultMaxRounds; the logged
// maxima show the margin.
func TestDefaultBoundsDoNotCutHonestLookups(t *testing.T) {
	const n, lookups = 20000, 40
	for _, k := range []int{DefaultK, 8} {
		for _, dead := range []float64{0, 0.5} {
			t.Run(fmt.Sprintf("K=%d,dead=%v", k, dead), func(t *testing.T) {
				nw := newNetwork(n, k, 71)
				nw.partial = true
				r := rand.New(rand.NewPCG(72, uint64(k)))
				if dead > 0 {
					nw.killFraction(dead, r)
					nw.stale = 0.25
				}
				d := &driver{t: t, nw: nw, r: r}
				maxQueried, maxRounds, evicted := 0, 0, 0
				var cfg Config
				for range lookups {
					self := r.IntN(n)
					for nw.dead[self] {
						self = r.IntN(n)
					}
					l := New(nw.ids[self], id.Random(r), Config{K: k})
					cfg = l.Config()
					d.run(l, self, nw.seedsFor(self, l.Target(), r))
					st := l.Stats()
					if st.Limited != 0 {
						t.Fatalf("an honest lookup was cut short: %+v, bounds %d queries, %d rounds", st, cfg.MaxQueries, cfg.MaxRounds)
					}
					maxQueried, maxRounds = max(maxQueried, st.Queried), max(maxRounds, st.Rounds)
					if l.hasHorizon {
						evicted++
					}
				}
				// LimitCandidates must stay quiet although shortlists overflow.
				if evicted == 0 {
					t.Fatal("no shortlist overflowed: the test does not exercise eviction")
				}
				t.Logf("most queries %d of %d allowed, deepest %d rounds of %d, %d of %d lookups evicted candidates",
					maxQueried, cfg.MaxQueries, maxRounds, cfg.MaxRounds, evicted, lookups)
			})
		}
	}
}

func TestLimitString(t *testing.T) {
	for l, want := range map[Limit]string{
		0:                          "none",
		LimitQueries:               "queries",
		LimitRounds:                "rounds",
		LimitQueries | LimitRounds: "queries+rounds",
		LimitCandidates:            "candidates",
		LimitQueries | LimitRounds | LimitCandidates: "queries+rounds+candidates",
		0x80: "unknown",
	} {
		if got := l.String(); got != want {
			t.Errorf("Limit(%d).String() = %q, want %q", l, got, want)
		}
	}
}

// evict's last resort: were the invariant that leaves an evictable candidate
// ever broken (here by forcing more requests in flight than Alpha), an
// overfull shortlist refuses the newcomer instead of panicking.
func TestAnOverfullShortlistWithNothingEvictableRefusesTheNewcomer(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 10)
	l := New(id.Key("self"), target, Config{K: 1, Alpha: 1, MaxCandidates: 3})
	l.AddSeeds(cs[5:8])
	for i := range l.cands {
		l.cands[i].st = inFlight // impossible through the API
	}
	l.inFlight = len(l.cands)
	before := slices.Clone(l.cands)
	noPanic(t, "AddSeeds", func() { l.AddSeeds(cs[0:1]) })
	if !slices.Equal(l.cands, before) {
		t.Fatalf("shortlist changed: %v", l.cands)
	}
}

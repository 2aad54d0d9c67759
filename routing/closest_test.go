package routing

import (
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
)

// bruteClosest sorts every bucket entry by distance to target and keeps n.
func bruteClosest(tb *Table, target id.ID, n int) []id.Contact {
	var all []id.Contact
	tb.ForEach(func(_ int, e Entry) { all = append(all, e.Contact) })
	return sortedByDistance(all, target)[:min(n, len(all))]
}

func sortedByDistance(cs []id.Contact, target id.ID) []id.Contact {
	cs = slices.Clone(cs)
	slices.SortFunc(cs, func(a, b id.Contact) int { return id.CompareDistance(target, a.ID, b.ID) })
	return cs
}

// randomTable builds a table of random shape: a random K, a random number of
// contacts, some deep in self's subtree (to create many buckets), some
// failed and removed (to leave gaps).
func randomTable(seed uint64) (*Table, []id.Contact) {
	r := newRand(seed)
	self := id.Random(r)
	k := []int{1, 2, 3, 5, 8, 20}[r.IntN(6)]
	tb := New(self, Config{K: k, MaxFailures: 1})
	n := r.IntN(600)
	var cs []id.Contact
	for i := range n {
		var c id.Contact
		switch r.IntN(3) {
		case 0:
			c = id.Contact{ID: id.Random(r), Addr: addr(i + 1)}
		case 1:
			c = inBucket(r, self, r.IntN(24), i+1)
		default:
			// Close to an earlier contact: long shared prefixes with it.
			if len(cs) > 0 {
				c = inBucket(r, cs[r.IntN(len(cs))].ID, 20+r.IntN(140), i+1)
			} else {
				c = id.Contact{ID: id.Random(r), Addr: addr(i + 1)}
			}
		}
		tb.Seen(c, t0)
		cs = append(cs, c)
		if r.IntN(10) == 0 {
			tb.Failed(cs[r.IntN(len(cs))].ID, t0)
		}
	}
	return tb, cs
}

func TestClosestMatchesBruteForceSort(t *testing.T) {
	for seed := range uint64(300) {
		tb, cs := randomTable(seed)
		if err := invariantError(tb); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		r := newRand(seed + 1e6)
		targets := []id.ID{tb.Self(), id.Random(r), id.Random(r)}
		for range 4 {
			targets = append(targets, tb.RefreshTarget(r.IntN(tb.Buckets()), r))
		}
		for range 4 {
			if len(cs) > 0 {
				targets = append(targets, cs[r.IntN(len(cs))].ID)
			}
		}
		var all []id.Contact
		tb.ForEach(func(_ int, e Entry) { all = append(all, e.Contact) })
		ns := []int{0, 1, 2, tb.K(), 3 * tb.K(), tb.Len(), tb.Len() + 5}
		for _, target := range targets {
			sorted := sortedByDistance(all, target)
			for _, n := range ns {
				want := sorted[:min(n, len(sorted))]
				got := tb.Closest(target, n, nil)
				if !slices.Equal(got, want) {
					t.Fatalf("seed %d (K=%d, %d buckets, Len %d): Closest(%s, %d) =\n%v\nwant\n%v",
						seed, tb.K(), tb.Buckets(), tb.Len(), target.Short(), n, got, want)
				}
			}
		}
	}
}

func TestClosestAppendsToDst(t *testing.T) {
	tb, _ := bigTable(20, 1000)
	prefix := id.Contact{ID: id.Random(newRand(1)), Addr: addr(1)}
	got := tb.Closest(tb.Self(), 5, []id.Contact{prefix})
	if len(got) != 6 || got[0] != prefix || !slices.Equal(got[1:], bruteClosest(tb, tb.Self(), 5)) {
		t.Fatalf("Closest did not append after the existing element: %v", got)
	}
	if got := tb.Closest(tb.Self(), -1, nil); len(got) != 0 {
		t.Fatalf("n < 0 returned %v", got)
	}
	if got := New(tb.Self(), Config{}).Closest(tb.Self(), 3, nil); len(got) != 0 {
		t.Fatalf("empty table returned %v", got)
	}
}

func TestClosestDoesNotAllocate(t *testing.T) {
	tb, cs := bigTable(20, 100000)
	r := newRand(5)
	dst := make([]id.Contact, 0, 20)
	targets := []id.ID{id.Random(r), tb.Self(), cs[7].ID, tb.RefreshTarget(tb.Buckets()-1, r)}
	for _, target := range targets {
		if a := testing.AllocsPerRun(100, func() { dst = tb.Closest(target, 20, dst[:0]) }); a != 0 {
			t.Fatalf("Closest(%s, 20) allocates %.1f times", target.Short(), a)
		}
		if len(dst) != 20 {
			t.Fatalf("Closest returned %d contacts", len(dst))
		}
	}
}

// bigTable returns a K=k table fed n random contacts, as a node in an
// n-node network would see them, and the contacts it kept in its buckets.
func bigTable(k, n int) (*Table, []id.Contact) {
	r := newRand(uint64(n))
	tb := New(id.Random(r), Config{K: k})
	for i := range n {
		tb.Seen(id.Contact{ID: id.Random(r), Addr: addr(i + 1)}, t0.Add(time.Duration(i)*time.Millisecond))
	}
	var cs []id.Contact
	tb.ForEach(func(_ int, e Entry) { cs = append(cs, e.Contact) })
	return tb, cs
}

// ClosestResponsive is the brute-force sort of the entries whose last request
// did not fail, over random tables that keep failing entries.
func TestClosestResponsiveMatchesBruteForceSort(t *testing.T) {
	withFailing := 0
	for seed := range uint64(200) {
		r := newRand(seed + 5e6)
		self := id.Random(r)
		tb := New(self, Config{K: []int{2, 5, 20}[r.IntN(3)], MaxFailures: 3})
		var cs []id.Contact
		for i := range r.IntN(400) {
			c := id.Contact{ID: id.Random(r), Addr: addr(i + 1)}
			if r.IntN(2) == 0 {
				c = inBucket(r, self, r.IntN(12), i+1)
			}
			tb.Seen(c, t0)
			cs = append(cs, c)
		}
		for range len(cs) / 4 {
			tb.Failed(cs[r.IntN(len(cs))].ID, t0) // once: kept while no replacement waits
		}
		var live []id.Contact
		failing := 0
		tb.ForEach(func(_ int, e Entry) {
			if e.Failures == 0 {
				live = append(live, e.Contact)
			} else {
				failing++
			}
		})
		if failing > 0 {
			withFailing++
		}
		for range 5 {
			target := id.Random(r)
			sorted := sortedByDistance(live, target)
			for _, n := range []int{1, tb.K(), 3 * tb.K(), tb.Len()} {
				want := sorted[:min(n, len(sorted))]
				if got := tb.ClosestResponsive(target, n, nil); !slices.Equal(got, want) {
					t.Fatalf("seed %d: ClosestResponsive(%s, %d) =\n%v\nwant\n%v", seed, target.Short(), n, got, want)
				}
			}
		}
	}
	// A failed contact is evicted at once when a replacement waits, so not
	// every table keeps one; enough must for the comparison to mean something.
	if withFailing < 50 {
		t.Fatalf("only %d of 200 tables kept a failing entry", withFailing)
	}
}

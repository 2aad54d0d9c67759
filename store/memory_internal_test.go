package store

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
)

var base = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// TestExpiryHeapPopsInOrder checks the hand-written heap against sorting.
func TestExpiryHeapPopsInOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var h expiryHeap
		var want []stamp
		n := r.IntN(200)
		for range n {
			// Few distinct seconds, so that ties and the nanosecond field matter.
			s := stamp{sec: int64(r.IntN(10)), nsec: int32(r.IntN(3))}
			want = append(want, s)
			h.push(expiryEntry{at: s})
		}
		if round%2 == 1 {
			h.init() // init on a valid heap must keep it valid
		}
		slices.SortFunc(want, func(a, b stamp) int {
			switch {
			case a.before(b):
				return -1
			case b.before(a):
				return 1
			}
			return 0
		})
		for i, w := range want {
			if got := h.pop().at; got != w {
				t.Fatalf("round %d: pop %d = %v, want %v", round, i, got, w)
			}
		}
		if len(h) != 0 {
			t.Fatalf("round %d: %d entries left after popping all", round, len(h))
		}
	}
}

func TestStampOfOrdersLikeTime(t *testing.T) {
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), // before UnixNano's range
		time.Unix(-1, 999_999_999),
		time.Unix(0, 0),
		time.Unix(0, 1),
		base,
		base.Add(time.Nanosecond),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), // after UnixNano's range
	}
	for i, a := range times {
		for j, b := range times {
			if got, want := stampOf(a).before(stampOf(b)), a.Before(b); got != want {
				t.Errorf("stampOf(times[%d]).before(stampOf(times[%d])) = %v, want %v", i, j, got, want)
			}
		}
	}
}

// TestMemoryHeapStaysBounded checks that stale heap entries left by
// refreshes and per-key purges are compacted away.
func TestMemoryHeapStaysBounded(t *testing.T) {
	m := NewMemory(Limits{})
	keys := []id.ID{id.Key("a"), id.Key("b"), id.Key("c")}
	now := base
	for i := range 20_000 {
		now = now.Add(time.Second)
		k := keys[i%len(keys)]
		// Refresh one value forever, and churn short-lived ones.
		if err := m.Put(k, []byte("stable"), now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
		if err := m.Put(k, []byte{byte(i)}, now.Add(2*time.Second), now); err != nil {
			t.Fatal(err)
		}
		if limit := 2*m.n + compactSlack; len(m.exp) > limit {
			t.Fatalf("after %d rounds the heap holds %d entries for %d values (limit %d)", i, len(m.exp), m.n, limit)
		}
	}
}

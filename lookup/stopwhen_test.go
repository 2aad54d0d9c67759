package lookup

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/dhtkit/dht/id"
)

// StopWhen ends a lookup for good once its rule holds: Next hands out
// nothing more, Done reports true, and Candidates lists the closest known
// candidates whatever their state, failed ones left out.
func TestStopWhenEndsTheLookupAndCandidatesListsTheShortlist(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	self, target := id.Random(r), id.Random(r)
	contact := func(i int) id.Contact {
		return id.Contact{ID: id.Random(r), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 4000)}
	}
	var seeds []id.Contact
	for i := range 10 {
		seeds = append(seeds, contact(i))
	}
	l := New(self, target, Config{K: 8, Alpha: 3})
	l.AddSeeds(seeds)
	answers := 0
	l.StopWhen(func(*Lookup) bool { return answers >= 2 })
	first := l.Next(nil)
	if len(first) != 3 {
		t.Fatalf("Next handed out %d, want Alpha = 3", len(first))
	}
	l.OnFailure(first[0].ID)
	l.OnResponse(first[1].ID, nil)
	answers++
	if l.Done() || l.Stopped() {
		t.Fatal("stopped before the rule held")
	}
	l.OnResponse(first[2].ID, nil)
	answers++
	if !l.Done() || !l.Stopped() {
		t.Fatal("the rule holds and the lookup is not done")
	}
	if next := l.Next(nil); len(next) != 0 {
		t.Fatalf("a stopped lookup handed out %d more", len(next))
	}
	answers = 0 // the stop is for good, whatever the rule says later
	if !l.Done() {
		t.Fatal("a stopped lookup came back to life")
	}
	cs := l.Candidates(nil, 20)
	if len(cs) != 9 {
		t.Fatalf("Candidates = %d, want the 10 seeds less the failed one", len(cs))
	}
	for i, c := range cs {
		if c.ID == first[0].ID {
			t.Fatal("Candidates lists a failed contact")
		}
		if i > 0 && id.CompareDistance(target, cs[i-1].ID, c.ID) >= 0 {
			t.Fatal("Candidates not closest first")
		}
	}
	if cs := l.Candidates(nil, 4); len(cs) != 4 {
		t.Fatalf("Candidates(max 4) = %d", len(cs))
	}
	l.Reset(self, target, Config{K: 8})
	l.AddSeeds(seeds)
	if l.Stopped() || len(l.Next(nil)) == 0 {
		t.Fatal("Reset kept the stop rule")
	}
}

package lookup

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/dhtkit/dht/id"
)

// A lookup whose seeds have all failed or stalled but for fewer than K
// that answered is starved until new seeds arrive; while anything viable is
// still to be asked or awaited, or K have answered, it is not.
func TestStarvedWhenFewerThanKViableCandidatesRemainAndAllAnswered(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	self, target := id.Random(r), id.Random(r)
	n := 0
	contact := func() id.Contact {
		n++
		return id.Contact{ID: id.Random(r), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(n >> 8), byte(n)}), 4000)}
	}
	l := New(self, target, Config{K: 4, Alpha: 2})
	if !l.Starved() {
		t.Fatal("a lookup with no candidates is not starved")
	}
	for range 4 {
		l.AddSeeds([]id.Contact{contact()})
	}
	if l.Starved() {
		t.Fatal("starved with 4 seeds to ask")
	}
	for round := 0; ; round++ {
		next := l.Next(nil)
		if len(next) == 0 {
			break
		}
		l.OnStall(next[0].ID) // one stalls and one fails in the first round
		if round == 0 {
			l.OnFailure(next[1].ID)
		} else {
			if l.Starved() {
				t.Fatal("starved with a request in flight")
			}
			l.OnResponse(next[1].ID, nil)
		}
	}
	if !l.Starved() {
		t.Fatalf("not starved with %d answered of 4 seeds (the others failed or stalled)", l.Stats().Responded)
	}
	if l.Stats().Stalled == 0 {
		t.Fatal("the test needs a stalled request")
	}
	for range 3 {
		l.AddSeeds([]id.Contact{contact()})
	}
	if l.Starved() {
		t.Fatal("starved with 3 new seeds to ask")
	}
	for next := l.Next(nil); len(next) > 0; next = l.Next(nil) {
		for _, c := range next {
			l.OnResponse(c.ID, nil)
		}
	}
	if l.Starved() || l.Stats().Responded < 4 {
		t.Fatalf("starved with %d answered (K = 4)", l.Stats().Responded)
	}
}

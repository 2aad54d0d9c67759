package lookup

import (
	"testing"

	"github.com/dhtkit/dht/id"
)

// One answer carrying more fake contacts than the shortlist has room for,
// all closer to the target than the honest candidates, makes the lookup
// evict those honest candidates, including one that has already answered;
// the horizon then keeps them out for good. When the fakes all fail, the
// lookup is Done with an empty result and Stats.Limited == 0, so the node
// reports a converged, complete lookup although it discarded the very
// candidates that were its answer. A lookup whose result lost a candidate
// to eviction must either keep that candidate or say it was cut short.
func TestLookupThatEvictedItsAnswerDoesNotReportComplete(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 8) // distance 1..8 to the target
	fakes, liar, honest := cs[:6], cs[6], cs[7]
	l := New(id.Key("self"), target, Config{K: 2, Alpha: 1}) // 6 candidates at most
	l.AddSeeds([]id.Contact{liar, honest})
	if got := l.Next(nil); !sameContacts(got, []id.Contact{liar}) {
		t.Fatalf("Next = %v, want the liar first", got)
	}
	l.OnResponse(liar.ID, fakes)
	for i := 0; !l.Done() && i < 100; i++ {
		for _, c := range l.Next(nil) {
			l.OnFailure(c.ID) // fakes never answer
		}
	}
	if !l.Done() {
		t.Fatal("the lookup did not end")
	}
	got := l.Closest(nil)
	if len(got) == 0 && l.Stats().Limited == 0 {
		t.Errorf("the lookup ended with no result and no bound reported, after evicting %v (answered) and %v; stats %+v",
			liar.ID, honest.ID, l.Stats())
	}
}

package lookup

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/dhtkit/dht/id"
)

// everCloser hands out contacts each closer to target than all before it:
// the n-th has distance 2^63-n (in the last eight bytes of the ID).
type everCloser struct {
	target id.ID
	n      uint64
}

func (e *everCloser) next() id.Contact {
	e.n++
	x := e.target
	var d [8]byte
	binary.BigEndian.PutUint64(d[:], 1<<63-e.n)
	for i := range d {
		x[id.Len-8+i] ^= d[i]
	}
	return id.Contact{ID: x, Addr: addr(1 + int(e.n%250))}
}

// noPanic runs f and turns a panic into a test failure naming it, so that a
// regression shows up as this test failing rather than the binary crashing.
func noPanic(t testing.TB, what string, f func()) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("%s panicked: %v", what, p)
		}
	}()
	f()
}

// The attack that made the node panic: peers ("liars") answer at once with
// contacts ever closer to the target, the closest of them another liar and
// the rest black holes that never answer. Every request stalls before it is
// answered, so stalls keep freeing Alpha slots while the black holes stay
// awaited until their timeout, long after. The shortlist fills with stalled
// requests, and the lookup must neither run out of room to evict (the old
// panic) nor keep asking: it ends within MaxQueries, says it was cut short,
// and finishes once the requests that could enter the result time out.
func TestEverCloserContactsThatNeverAnswerCannotCrashOrHoldALookup(t *testing.T) {
	for _, cfg := range []Config{{K: 5, Alpha: 3}, {K: 8}, {K: 20}} {
		c := cfg.withDefaults()
		t.Run(fmt.Sprintf("K=%d,Alpha=%d", c.K, c.Alpha), func(t *testing.T) {
			noPanic(t, "the lookup", func() { everCloserAttack(t, cfg) })
		})
	}
}

func everCloserAttack(t *testing.T, cfg Config) {
	r := rand.New(rand.NewPCG(51, uint64(cfg.K)))
	target := id.Random(r)
	l := New(id.Random(r), target, cfg)
	cfg = l.Config()
	gen := &everCloser{target: target}
	liars := map[id.ID]bool{}
	batch := func() []id.Contact { // what a liar answers: K contacts, the closest a liar
		out := make([]id.Contact, cfg.K)
		for i := range out {
			out[len(out)-1-i] = gen.next()
		}
		liars[out[0].ID] = true
		return out
	}
	l.AddSeeds(batch())

	const timeout = 200 // steps from a request to its failure: answers come in one step
	type request struct {
		c    id.Contact
		sent int
	}
	var sent []request // in order, for the timeouts
	var answers []id.Contact
	maxSteps := cfg.MaxQueries + timeout + 2
	for step := 0; !l.Done(); step++ {
		if step > maxSteps {
			t.Fatalf("not done after %d steps: %+v", step, l.Stats())
		}
		next := l.Next(nil)
		for _, c := range next {
			l.OnStall(c.ID) // every request stalls before anything else
			sent = append(sent, request{c, step})
			if liars[c.ID] {
				answers = append(answers, c)
			}
		}
		for _, c := range answers {
			l.OnResponse(c.ID, batch())
		}
		answers = answers[:0]
		for len(sent) > 0 && step-sent[0].sent >= timeout {
			l.OnFailure(sent[0].c.ID)
			sent = sent[1:]
		}
		checkShortlist(t, l)
		if l.inFlight > cfg.Alpha {
			t.Fatalf("%d requests in flight, Alpha is %d", l.inFlight, cfg.Alpha)
		}
	}
	st := l.Stats()
	t.Logf("%+v", st)
	if st.Queried > cfg.MaxQueries || st.Rounds > cfg.MaxRounds {
		t.Fatalf("stats %+v exceed MaxQueries %d or MaxRounds %d", st, cfg.MaxQueries, cfg.MaxRounds)
	}
	if st.Limited == 0 {
		t.Fatal("the attack was stopped by a bound but Stats.Limited does not say so")
	}
	if st.Abandoned == 0 {
		t.Fatal("no stalled request was abandoned: the attack did not fill the shortlist")
	}
	if len(l.Next(nil)) != 0 {
		t.Fatal("Next hands out contacts after Done")
	}
}

// The smallest case of the above: once every candidate outside the K closest
// is a stalled request, a newcomer makes room by abandoning the farthest of
// them. It is forgotten for good: InFlight no longer lists it, its late
// answer is ignored, and it is never admitted again.
func TestAStalledRequestIsAbandonedWhenNothingElseCanMakeRoom(t *testing.T) {
	target := id.Key("t")
	cs := contactsAt(target, 10)
	l := New(id.Key("self"), target, Config{K: 1, Alpha: 1, MaxCandidates: 3})
	for _, i := range []int{9, 8, 7} {
		l.AddSeeds(cs[i : i+1]) // closer than all before: the new window
		if got := l.Next(nil); !sameContacts(got, cs[i:i+1]) {
			t.Fatalf("Next = %v, want %v", got, cs[i:i+1])
		}
		l.OnStall(cs[i].ID)
	}
	noPanic(t, "AddSeeds", func() { l.AddSeeds(cs[6:7]) })
	checkShortlist(t, l)
	if got, want := l.InFlight(nil), []id.Contact{cs[7], cs[8]}; !sameContacts(got, want) {
		t.Fatalf("InFlight = %v, want %v", got, want)
	}
	if st := l.Stats(); st.Abandoned != 1 || st.Stalled != 3 {
		t.Fatalf("stats %+v, want 1 abandoned of 3 stalled", st)
	}
	if depth := l.OnResponse(cs[9].ID, cs[0:1]); depth != 0 {
		t.Fatalf("the abandoned request's answer was taken (depth %d)", depth)
	}
	l.AddSeeds(cs[9:10])
	if _, found := l.search(l.distanceTo(cs[9].ID)); found {
		t.Fatal("the abandoned contact was admitted again")
	}
	// The lookup still works: the newcomer is asked and answers.
	if got := l.Next(nil); !sameContacts(got, cs[6:7]) {
		t.Fatalf("Next = %v, want %v", got, cs[6:7])
	}
	l.OnResponse(cs[6].ID, nil)
	if !l.Done() || !sameContacts(l.Closest(nil), cs[6:7]) {
		t.Fatalf("done %v, closest %v", l.Done(), l.Closest(nil))
	}
}

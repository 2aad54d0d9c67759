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

// harness drives a Lookup through arbitrary calls and checks after each one
// the guarantees a caller relies on, against a model of what was handed out.
type harness struct {
	t            testing.TB
	l            *Lookup
	cfg          Config
	self, target id.ID
	closer       everCloser
	capBefore    int

	buf        []id.Contact   // scratch for check
	handed     map[id.ID]bool // handed out by Next and not given back by Requeue
	handedList []id.Contact   // everything ever handed out, to pick IDs from
	offered    map[id.ID]bool // every contact passed to the lookup
}

func newHarness(t testing.TB, self, target id.ID, cfg Config) *harness {
	l := New(self, target, cfg)
	return &harness{
		t: t, l: l, cfg: l.Config(), self: self, target: target,
		closer:    everCloser{target: target},
		capBefore: cap(l.cands),
		handed:    map[id.ID]bool{},
		offered:   map[id.ID]bool{},
	}
}

// state returns the state of candidate x, and false if it is not in the
// shortlist.
func (h *harness) state(x id.ID) (state, bool) {
	i, ok := h.l.search(h.l.distanceTo(x))
	if !ok {
		return 0, false
	}
	return h.l.cands[i].st, true
}

func (h *harness) offer(cs []id.Contact) {
	for _, c := range cs {
		h.offered[c.ID] = true
	}
}

func (h *harness) seeds(cs []id.Contact) {
	h.offer(cs)
	h.l.AddSeeds(cs)
	h.check()
}

func (h *harness) next() []id.Contact {
	h.t.Helper()
	done := h.l.Done()
	got := h.l.Next(nil)
	if done && len(got) != 0 {
		h.t.Fatalf("Next handed out %v after Done", got)
	}
	for _, c := range got {
		switch {
		case h.handed[c.ID]:
			h.t.Fatalf("Next handed out %v twice", c)
		case c.ID == h.self:
			h.t.Fatalf("Next handed out self")
		case !h.offered[c.ID]:
			h.t.Fatalf("Next handed out %v, which nobody offered", c)
		}
		i, _ := h.l.search(h.l.distanceTo(c.ID))
		if round := int(h.l.cands[i].depth) + 1; round > h.cfg.MaxRounds {
			h.t.Fatalf("Next handed out %v for round %d, MaxRounds is %d", c, round, h.cfg.MaxRounds)
		}
		h.handed[c.ID] = true
		h.handedList = append(h.handedList, c)
	}
	h.check()
	return got
}

func (h *harness) respond(from id.ID, cs []id.Contact) {
	h.t.Helper()
	st, ok := h.state(from)
	awaited := ok && st.awaited()
	h.offer(cs)
	depth := h.l.OnResponse(from, cs)
	switch {
	case awaited && (depth < 1 || depth > h.cfg.MaxRounds):
		h.t.Fatalf("OnResponse = depth %d, want 1..MaxRounds (%d)", depth, h.cfg.MaxRounds)
	case !awaited && depth != 0:
		h.t.Fatalf("OnResponse from a contact not awaited = depth %d, want 0", depth)
	}
	h.check()
}

func (h *harness) fail(from id.ID) {
	h.l.OnFailure(from)
	h.check()
}

func (h *harness) stall(from id.ID) {
	h.l.OnStall(from)
	h.check()
}

func (h *harness) requeue(from id.ID) {
	h.t.Helper()
	st, ok := h.state(from)
	before := h.l.Stats().Requeued
	h.l.Requeue(from)
	given := h.l.Stats().Requeued - before
	if want := ok && st == inFlight; given != map[bool]int{false: 0, true: 1}[want] {
		h.t.Fatalf("Requeue of a candidate in state %v (known %v) gave back %d", st, ok, given)
	}
	if given == 1 {
		delete(h.handed, from)
	}
	h.check()
}

// check verifies the invariants that hold between any two calls.
func (h *harness) check() {
	h.t.Helper()
	l, cfg := h.l, h.cfg
	checkShortlist(h.t, l)
	if cap(l.cands) != h.capBefore {
		h.t.Fatalf("shortlist array grew from %d to %d", h.capBefore, cap(l.cands))
	}
	sending, awaited := 0, 0 // in flight (holding a slot), and awaited
	for _, c := range l.cands {
		if c.st == inFlight {
			sending++
		}
		if c.st.awaited() {
			awaited++
		}
		if int(c.depth) >= cfg.MaxRounds {
			h.t.Fatalf("candidate %v at depth %d, MaxRounds is %d", c.contact, c.depth, cfg.MaxRounds)
		}
		if asked := c.st != waiting; asked != h.handed[c.contact.ID] {
			h.t.Fatalf("candidate %v in state %v, handed out: %v", c.contact, c.st, h.handed[c.contact.ID])
		}
	}
	if sending != l.inFlight || sending > cfg.Alpha {
		h.t.Fatalf("%d candidates in flight, counter %d, Alpha %d", sending, l.inFlight, cfg.Alpha)
	}
	st := l.Stats()
	if st.Queried != len(h.handed) || st.Queried > cfg.MaxQueries {
		h.t.Fatalf("Queried %d, %d handed out, MaxQueries %d", st.Queried, len(h.handed), cfg.MaxQueries)
	}
	if got := st.Responded + st.Failed + awaited + st.Abandoned; got != st.Queried {
		h.t.Fatalf("stats %+v with %d awaited do not account for every query", st, awaited)
	}
	if st.Rounds > cfg.MaxRounds {
		h.t.Fatalf("Rounds %d exceeds MaxRounds %d", st.Rounds, cfg.MaxRounds)
	}
	h.buf = l.InFlight(h.buf[:0])
	if len(h.buf) != awaited {
		h.t.Fatalf("InFlight lists %d contacts, %d are awaited", len(h.buf), awaited)
	}
	h.buf = l.Closest(h.buf[:0])
	closest := h.buf
	if len(closest) > cfg.K {
		h.t.Fatalf("Closest returned %d contacts, K is %d", len(closest), cfg.K)
	}
	for _, c := range closest {
		if s, _ := h.state(c.ID); s != responded {
			h.t.Fatalf("Closest returned %v, which did not respond", c)
		}
	}
}

// drain keeps resolving requests as a network eventually does (answering
// or failing each, as resolve decides for the awaited contacts it is
// shown) and checks that the lookup reaches Done: every step resolves a
// request, and at most MaxQueries are ever handed out.
func (h *harness) drain(resolve func(awaited []id.Contact) (c id.Contact, fail bool, answer []id.Contact)) {
	h.t.Helper()
	for steps := 0; ; steps++ {
		if steps > h.cfg.MaxQueries {
			h.t.Fatalf("not done after resolving %d requests, MaxQueries is %d: %+v", steps, h.cfg.MaxQueries, h.l.Stats())
		}
		h.next()
		if h.l.Done() {
			break
		}
		awaited := h.l.InFlight(nil)
		if len(awaited) == 0 {
			h.t.Fatalf("not done, with nothing to ask and nothing awaited: %+v", h.l.Stats())
		}
		c, fail, answer := resolve(awaited)
		if fail {
			h.fail(c.ID)
		} else {
			h.respond(c.ID, answer)
		}
	}
	if got := h.l.Next(nil); len(got) != 0 {
		h.t.Fatalf("Next handed out %v after Done", got)
	}
}

// randomContacts returns an adversarial batch: fresh IDs far and near,
// ever-closer ones, repeats, self, the target itself and invalid addresses.
func (h *harness) randomContacts(r *rand.Rand) []id.Contact {
	out := make([]id.Contact, r.IntN(2*h.cfg.K+2))
	for i := range out {
		var c id.Contact
		switch r.IntN(10) {
		case 0:
			c = id.Contact{ID: id.Random(r), Addr: addr(1 + r.IntN(250))}
		case 1, 2:
			c = h.closer.next()
		case 3:
			if len(h.handedList) > 0 {
				c = h.handedList[r.IntN(len(h.handedList))]
				break
			}
			c = h.closer.next()
		case 4:
			c = id.Contact{ID: h.self, Addr: addr(1)}
		case 5:
			c = id.Contact{ID: h.target, Addr: addr(2)}
		case 6:
			c = id.Contact{ID: id.RandomInBucket(r, h.target, 150+r.IntN(10))} // zero address
		default:
			c = id.Contact{ID: id.RandomInBucket(r, h.target, r.IntN(48)), Addr: addr(1 + r.IntN(250))}
		}
		out[i] = c
	}
	return out
}

// attack plays a few rounds of the ever-closer attack: every request in
// flight stalls, and one awaited contact answers with K contacts closer than all
// before, the kind of answer that fills the shortlist with stalled requests.
func (h *harness) attack(r *rand.Rand) {
	for range 1 + r.IntN(8) {
		h.next()
		h.buf = h.l.InFlight(h.buf[:0])
		for _, c := range h.buf {
			h.l.OnStall(c.ID)
		}
		h.check()
		if awaited := h.l.InFlight(nil); len(awaited) > 0 {
			cs := make([]id.Contact, h.cfg.K)
			for i := range cs {
				cs[i] = h.closer.next()
			}
			h.respond(awaited[r.IntN(len(awaited))].ID, cs)
		}
	}
}

// pick returns an ID for a call: mostly one awaited or handed out before,
// else anything.
func (h *harness) pick(r *rand.Rand) id.ID {
	n := r.IntN(20)
	if n < 8 {
		if awaited := h.l.InFlight(nil); len(awaited) > 0 {
			return awaited[r.IntN(len(awaited))].ID
		}
	}
	switch {
	case n < 15 && len(h.handedList) > 0:
		return h.handedList[r.IntN(len(h.handedList))].ID
	case n < 17:
		return id.Random(r)
	case n < 18:
		return h.self
	default:
		return h.closer.next().ID
	}
}

// Property: no sequence of calls, in any order and with any IDs and
// contacts, makes a lookup panic, hand out a contact twice (unless Requeue
// gave it back), exceed MaxQueries, MaxRounds, Alpha requests in flight or
// MaxCandidates, or lose count of its requests; and once the caller keeps
// answering or failing what it asked, the lookup is Done within MaxQueries
// resolutions.
func TestNoSequenceOfCallsBreaksALookup(t *testing.T) {
	sequences := 300
	if testing.Short() {
		sequences = 60
	}
	var total Stats
	var limits Limit
	for _, cfg := range []Config{
		{K: 1, Alpha: 1},
		{K: 2, Alpha: 3},
		{K: 5, Alpha: 3},
		{K: 8, Alpha: 2, MaxCandidates: 11},
		{K: 20},
		{K: 4, Alpha: 2, MaxQueries: 7, MaxRounds: 3},
		{K: 3, Alpha: 1, MaxCandidates: 5, MaxRounds: 1},
		{K: 6, Alpha: 4, MaxCandidates: 11, MaxQueries: 15},
	} {
		for seq := range sequences {
			r := rand.New(rand.NewPCG(61, uint64(seq)<<8|uint64(cfg.K)))
			h := newHarness(t, id.Random(r), id.Random(r), cfg)
			noPanic(t, fmt.Sprintf("%+v sequence %d", cfg, seq), func() {
				h.seeds(h.randomContacts(r))
				for range 20 + r.IntN(200) {
					switch op := r.IntN(100); {
					case op < 30:
						h.next()
					case op < 55:
						h.respond(h.pick(r), h.randomContacts(r))
					case op < 65:
						h.fail(h.pick(r))
					case op < 80:
						h.stall(h.pick(r))
					case op < 90:
						h.requeue(h.pick(r))
					case op < 93:
						h.seeds(h.randomContacts(r))
					case op < 97:
						h.attack(r)
					default:
						h.l.Done()
						h.check()
					}
				}
				h.drain(func(awaited []id.Contact) (id.Contact, bool, []id.Contact) {
					c := awaited[r.IntN(len(awaited))]
					if r.IntN(4) == 0 {
						h.stall(c.ID)
					}
					return c, r.IntN(3) == 0, h.randomContacts(r)
				})
			})
			st := h.l.Stats()
			total.Abandoned += st.Abandoned
			total.Requeued += st.Requeued
			limits |= st.Limited
		}
	}
	// The sequences must reach the paths this test is about.
	if total.Abandoned == 0 || total.Requeued == 0 || limits&(LimitQueries|LimitRounds) != LimitQueries|LimitRounds {
		t.Fatalf("sequences never abandoned (%d), requeued (%d) or hit both bounds (%v)", total.Abandoned, total.Requeued, limits)
	}
	t.Logf("over all sequences: %d abandoned, %d requeued, limits %v", total.Abandoned, total.Requeued, limits)
}

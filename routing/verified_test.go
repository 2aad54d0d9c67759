package routing

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
)

// Proven holds exactly for a bucket entry at the given address whose
// address answered one of our requests.
func TestProvenNeedsAnAnswerFromThatAddress(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{})
	x := cs[2]
	if tb.Proven(x) {
		t.Fatal("proven after requests only")
	}
	if e, _ := tb.Get(x.ID); e.Verified {
		t.Fatal("Entry.Verified after requests only")
	}
	tb.Verified(x, at(time.Hour))
	if !tb.Proven(x) {
		t.Fatal("not proven after an answer")
	}
	if e, _ := tb.Get(x.ID); !e.Verified {
		t.Fatal("Entry.Verified not set after an answer")
	}
	for _, c := range []id.Contact{
		{ID: x.ID, Addr: addr(777)},
		{ID: x.ID, Addr: netip.AddrPortFrom(x.Addr.Addr(), x.Addr.Port()+1)},
		{ID: x.ID, Addr: netip.MustParseAddrPort("[fe80::1%eth9]:4000")}, // a zone the table never saw
		{ID: cs[1].ID, Addr: x.Addr},
		{ID: id.Random(newRand(5)), Addr: x.Addr},
	} {
		if tb.Proven(c) {
			t.Errorf("Proven(%v) for an entry at %v", c, x)
		}
	}
	// Later requests keep the mark; a failure does not clear it.
	tb.Seen(x, at(2*time.Hour))
	tb.FailedAt(x, at(3*time.Hour))
	if !tb.Proven(x) {
		t.Fatal("a request or a failure cleared the proof")
	}
	// A replacement is never proven, answered or not.
	e := fresh()
	tb.Verified(e, at(4*time.Hour))
	if tb.Proven(e) {
		t.Fatal("a replacement-cache contact is proven")
	}
	if rs := tb.Replacements(0); len(rs) != 1 || !rs[0].Verified {
		t.Fatalf("replacements %+v, want e marked verified", rs)
	}
}

// A node that restarts with a new ID at the same address: its datagrams
// under the new ID are refused while the old entry lives, and bring a ping
// of the old one; the answer carries the new ID, which then takes the
// address (whether or not the node first reports the old ID as failed).
func TestRestartedNodeTakesItsAddressOnceTheOldIDIsGone(t *testing.T) {
	for _, reportOld := range []bool{false, true} {
		tb, cs, _ := fullBucket(t, Config{})
		verifyAll(t, tb, cs)
		old := cs[1]
		restarted := id.Contact{ID: id.Random(newRand(12)), Addr: old.Addr}
		res, ping, need := tb.Seen(restarted, at(time.Hour))
		if res != Conflict || !need || ping != old {
			t.Fatalf("new ID at a held address: %v, ping %v (%v); want Conflict and a ping of %v", res, ping, need, old)
		}
		if got := holdersOf(tb, old.Addr); !equalIDs(got, ids(old)) {
			t.Fatalf("address held by %v, want the old ID only", short(got))
		}
		// The ping to old.Addr is answered under the new ID.
		if reportOld {
			tb.FailedAt(ping, at(time.Hour+time.Second))
		}
		if res, _, _ := tb.Verified(restarted, at(time.Hour+time.Second)); res != Added && res != Full {
			t.Fatalf("answer under the new ID: %v, want it placed", res)
		}
		if _, ok := tb.Get(old.ID); ok {
			t.Fatal("the old ID is still in its bucket")
		}
		if got := holdersOf(tb, old.Addr); !equalIDs(got, ids(restarted)) {
			t.Fatalf("address held by %v, want the new ID only", short(got))
		}
		if _, ok := tb.Get(restarted.ID); ok && !tb.Proven(restarted) {
			t.Fatal("the new ID is in a bucket but not proven")
		}
		checkInvariants(t, tb)
	}
}

// A request that went to an address the entry does not have (a candidate
// address, or one a third node reported) says nothing about the stored
// address.
func TestFailureAtAnotherAddressDoesNotCount(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{MaxFailures: 1})
	x := cs[0]
	elsewhere := id.Contact{ID: x.ID, Addr: addr(900)}
	for range 5 {
		if tb.FailedAt(elsewhere, at(time.Hour)) {
			t.Fatal("removed for a failure at another address")
		}
	}
	if e, ok := tb.Get(x.ID); !ok || e.Failures != 0 {
		t.Fatalf("entry %+v, %v after failures elsewhere", e, ok)
	}
	// The same holds for a replacement.
	r := fresh()
	tb.Seen(r, at(time.Hour))
	if tb.FailedAt(id.Contact{ID: r.ID, Addr: addr(901)}, at(time.Hour)) || len(tb.Replacements(0)) != 1 {
		t.Fatal("replacement dropped for a failure at another address")
	}
	if !tb.FailedAt(r, at(time.Hour)) || len(tb.Replacements(0)) != 0 {
		t.Fatal("replacement kept after a failure at its address")
	}
	if !tb.FailedAt(x, at(time.Hour)) {
		t.Fatal("MaxFailures 1: not removed at its own address")
	}
	checkInvariants(t, tb)
}

// A failure at another address resolves the ping it answers: a ping of a
// candidate address that times out frees the bucket to ping again.
func TestFailureOfACandidatePingResolvesIt(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{})
	x := cs[0]
	tb.FailedAt(x, at(time.Hour)) // no replacement: x stays, failing
	claim := id.Contact{ID: x.ID, Addr: addr(900)}
	if _, ping, need := tb.Seen(claim, at(time.Hour)); !need || ping != claim {
		t.Fatalf("ping %v (%v), want %v", ping, need, claim)
	}
	if _, _, need := tb.Seen(fresh(), at(time.Hour)); need {
		t.Fatal("a second ping while the first is out")
	}
	tb.FailedAt(claim, at(time.Hour+time.Minute))
	if _, ping, need := tb.Seen(fresh(), at(time.Hour+time.Minute)); !need || ping != x {
		t.Fatalf("after the candidate failed: ping %v (%v), want the failing entry %v", ping, need, x)
	}
}

// When a slot opens, a replacement whose address answered us goes first,
// however recent the unverified ones are.
func TestPromotionPrefersAVerifiedReplacement(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{})
	a, b, c := fresh(), fresh(), fresh()
	tb.Seen(a, at(time.Minute))
	tb.Verified(b, at(time.Minute+time.Second))
	tb.Seen(c, at(time.Minute+2*time.Second))
	tb.Remove(cs[3].ID)
	if want := ids(cs[0], cs[1], cs[2], b); !equalIDs(order(tb, 0), want) {
		t.Fatalf("bucket %v, want %v", short(order(tb, 0)), short(want))
	}
	tb.Remove(cs[2].ID)
	if want := ids(cs[0], cs[1], b, c); !equalIDs(order(tb, 0), want) {
		t.Fatalf("bucket %v, want %v (then the most recent)", short(order(tb, 0)), short(want))
	}
	checkInvariants(t, tb)
}

// A cached contact whose address answered us keeps it against unverified
// claims; an answer from a new address moves it.
func TestCachedVerifiedAddressResistsClaims(t *testing.T) {
	tb, _, fresh := fullBucket(t, Config{})
	r := fresh()
	tb.Verified(r, at(time.Minute))
	claim := id.Contact{ID: r.ID, Addr: addr(900)}
	if res, _, _ := tb.Seen(claim, at(2*time.Minute)); res != Conflict {
		t.Fatalf("claim against a verified replacement: %v, want Conflict", res)
	}
	if rs := tb.Replacements(0); rs[0].Contact != r || !rs[0].Verified {
		t.Fatalf("replacement %+v, want %v verified", rs[0], r)
	}
	if res, _, _ := tb.Verified(claim, at(3*time.Minute)); res != Full {
		t.Fatalf("answer from a new address: %v, want Full", res)
	}
	if rs := tb.Replacements(0); rs[0].Contact != claim || !rs[0].Verified {
		t.Fatalf("replacement %+v, want %v verified", rs[0], claim)
	}
	checkInvariants(t, tb)
}

// Seen and Verified of a known contact at its own address stay
// allocation-free, as do the conflict paths a flood drives.
func TestSightingsDoNotAllocate(t *testing.T) {
	tb, cs := bigTable(20, 10000)
	held := cs[0].Addr
	r := newRand(3)
	newIDs := make([]id.Contact, 64)
	for i := range newIDs {
		newIDs[i] = id.Contact{ID: id.Random(r), Addr: held}
	}
	i := 0
	for name, fn := range map[string]func(){
		"Verified known":                func() { tb.Verified(cs[i%len(cs)], t0) },
		"Seen new ID at a held address": func() { tb.Seen(newIDs[i%len(newIDs)], t0) },
		"Seen known ID elsewhere": func() {
			tb.Seen(id.Contact{ID: cs[i%len(cs)].ID, Addr: addr(300000 + i%50)}, t0)
		},
	} {
		if allocs := testing.AllocsPerRun(1000, func() { fn(); i++ }); allocs != 0 {
			t.Errorf("%s allocates %.1f times", name, allocs)
		}
	}
}

// A full cache of verified replacements keeps them all against an
// unverified newcomer (which is dropped, reported as Full), and gives up its
// oldest to a verified one: only an answer outranks an answer.
func TestFullVerifiedCacheDropsUnverifiedNewcomer(t *testing.T) {
	r := newRand(73)
	self := id.Random(r)
	tb := New(self, Config{K: 2, ReplacementCache: 2})
	i := 0
	next := func() id.Contact { i++; return inBucket(r, self, 0, i) }
	for range 2 {
		tb.Verified(next(), at(0))
	}
	var cached []id.Contact
	for range 2 {
		c := next()
		tb.Verified(c, at(0))
		cached = append(cached, c)
	}
	forged := next()
	if res, _, _ := tb.Seen(forged, at(0)); res != Full {
		t.Errorf("Seen of a newcomer to a full bucket = %v, want Full", res)
	}
	if got := replIDs(tb, 0); !equalIDs(got, ids(cached...)) {
		t.Fatalf("after an unverified newcomer the cache is %v, want %v", short(got), short(ids(cached...)))
	}
	checkInvariants(t, tb)
	answered := next()
	tb.Verified(answered, at(0))
	if got, want := replIDs(tb, 0), ids(cached[1], answered); !equalIDs(got, want) {
		t.Errorf("after a verified newcomer the cache is %v, want %v", short(got), short(want))
	}
	checkInvariants(t, tb)
	// The dropped newcomer's address is free again.
	if res, _, _ := tb.Verified(id.Contact{ID: id.Random(r), Addr: forged.Addr}, at(0)); res == Conflict || res == Ignored {
		t.Errorf("Verified at the dropped newcomer's address = %v", res)
	}
}

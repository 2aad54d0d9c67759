package routing

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
)

// sighting is Seen or Verified.
type sighting func(*Table, id.Contact, time.Time) (Result, id.Contact, bool)

// holdersOf returns the IDs at a, in buckets and replacement caches.
func holdersOf(tb *Table, a netip.AddrPort) []id.ID {
	var out []id.ID
	tb.ForEach(func(_ int, e Entry) {
		if e.Contact.Addr == a {
			out = append(out, e.Contact.ID)
		}
	})
	for i := range tb.Buckets() {
		for _, e := range tb.Replacements(i) {
			if e.Contact.Addr == a {
				out = append(out, e.Contact.ID)
			}
		}
	}
	return out
}

// verifyAll marks the contacts as having answered, at the times fullBucket
// saw them, which leaves the bucket's order as it was.
func verifyAll(t *testing.T, tb *Table, cs []id.Contact) {
	t.Helper()
	for i, c := range cs {
		if res, _, need := tb.Verified(c, at(time.Duration(i)*time.Second)); res != Updated || need {
			t.Fatalf("Verified(%v) = %v (%v), want Updated", c, res, need)
		}
	}
}

// One host sending datagrams under 2,000 IDs holds one entry: a second ID at
// an address a live entry holds is not added, whether the table is empty or
// already populated, and an answer under a new ID replaces the old one
// rather than adding to it.
func TestManyIDsFromOneAddressTakeOneEntry(t *testing.T) {
	tests := []struct {
		name      string
		sight     sighting
		addr      netip.AddrPort
		populated bool
		keepFirst bool // the first ID keeps the address (else the last takes it)
	}{
		{"requests into an empty table", (*Table).Seen, netip.MustParseAddrPort("192.0.2.9:6881"), false, true},
		{"requests into a populated table", (*Table).Seen, netip.MustParseAddrPort("192.0.2.9:6881"), true, true},
		{"requests from a link-local IPv6 address", (*Table).Seen, netip.MustParseAddrPort("[fe80::9%eth0]:6881"), true, true},
		{"answers under ever new IDs", (*Table).Verified, netip.MustParseAddrPort("192.0.2.9:6881"), true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRand(11)
			tb := New(id.Random(r), Config{K: 8})
			if tt.populated {
				for i := range 300 {
					tb.Seen(id.Contact{ID: id.Random(r), Addr: addr(i + 1)}, t0)
				}
			}
			var first, last id.ID
			for i := range 2000 {
				c := id.Contact{ID: id.Random(r), Addr: tt.addr}
				if i == 0 {
					first = c.ID
				}
				last = c.ID
				tt.sight(tb, c, at(time.Duration(i)*time.Millisecond))
			}
			got := holdersOf(tb, tt.addr)
			want := last
			if tt.keepFirst {
				want = first
			}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("IDs at %v: %v, want only %s", tt.addr, short(got), want.Short())
			}
			checkInvariants(t, tb)
		})
	}
}

// A datagram claiming a known ID from another address is not proof of
// anything: it never moves the entry, healthy or failing, and it does not
// refresh it. It asks for a ping instead: of the stored address while that
// has not failed, of the claimed address once it has (only an answer from
// there can move the entry).
func TestUnverifiedDatagramCannotMoveAnEntry(t *testing.T) {
	tests := []struct {
		name        string
		verified    bool
		failures    int
		pingClaimed bool // the ping asked for is of the claimed address
		freshStored bool // the stored address spoke within Fresh: no ping
	}{
		{name: "healthy entry", failures: 0},
		{name: "healthy verified entry", verified: true, failures: 0},
		{name: "healthy entry heard from just now", failures: 0, freshStored: true},
		{name: "once-failed entry", failures: 1, pingClaimed: true},
		{name: "once-failed verified entry", verified: true, failures: 1, pingClaimed: true},
		{name: "twice-failed entry", failures: 2, pingClaimed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, cs, _ := fullBucket(t, Config{MaxFailures: 3})
			if tt.verified {
				verifyAll(t, tb, cs)
			}
			x := cs[1]
			for range tt.failures {
				tb.FailedAt(x, at(time.Hour))
			}
			when := at(2 * time.Hour)
			if tt.freshStored {
				tb.Seen(x, when.Add(-time.Second))
			}
			before, _ := tb.Get(x.ID)
			order0 := order(tb, 0)
			claimed := id.Contact{ID: x.ID, Addr: netip.MustParseAddrPort("[2001:db8::7]:9999")}
			res, ping, need := tb.Seen(claimed, when)
			if res != Conflict {
				t.Fatalf("Seen(%v) = %v, want Conflict", claimed, res)
			}
			after, _ := tb.Get(x.ID)
			if after != before || !equalIDs(order(tb, 0), order0) {
				t.Fatalf("entry %+v became %+v, bucket %v became %v", before, after, short(order0), short(order(tb, 0)))
			}
			switch {
			case tt.freshStored:
				if need {
					t.Fatalf("asked for a ping of %v though the stored address just spoke", ping)
				}
			case tt.pingClaimed:
				if !need || ping != claimed {
					t.Fatalf("ping %v (%v), want the claimed address %v", ping, need, claimed)
				}
			default:
				if !need || ping != x {
					t.Fatalf("ping %v (%v), want the stored address %v", ping, need, x)
				}
			}
			// A flood of claims from other addresses changes nothing either.
			for i := range 100 {
				c := id.Contact{ID: x.ID, Addr: addr(5000 + i)}
				if res, _, _ := tb.Seen(c, when.Add(time.Duration(i)*time.Second)); res != Conflict {
					t.Fatalf("claim %d: %v, want Conflict", i, res)
				}
			}
			if after, _ := tb.Get(x.ID); after != before {
				t.Fatalf("after the flood: %+v, want %+v", after, before)
			}
			checkInvariants(t, tb)
		})
	}
}

// An entry moves only once its stored address has failed a ping and the new
// address has answered one: an answer from the new address while the old
// one is healthy leaves it in place and asks for a ping of the old one.
func TestVerifiedAnswerAfterAFailedPingMovesTheEntry(t *testing.T) {
	tests := []struct {
		name string
		// viaClaim: after the failure an unverified datagram from the new
		// address comes first, and the answer is to the ping it asks for.
		viaClaim bool
	}{
		{"answer from the new address", false},
		{"datagram from the new address, then its ping's answer", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, cs, _ := fullBucket(t, Config{MaxFailures: 3})
			verifyAll(t, tb, cs)
			x := cs[0]
			moved := id.Contact{ID: x.ID, Addr: netip.MustParseAddrPort("[2001:db8::7]:9999")}

			res, ping, need := tb.Verified(moved, at(time.Hour))
			if res != Conflict || !need || ping != x {
				t.Fatalf("answer from a new address while the old is healthy: %v, ping %v (%v); want Conflict and a ping of %v", res, ping, need, x)
			}
			if e, _ := tb.Get(x.ID); e.Contact != x {
				t.Fatalf("moved to %v before the old address failed", e.Contact.Addr)
			}
			if tb.FailedAt(ping, at(time.Hour+time.Minute)) {
				t.Fatal("one failure removed a verified entry with no replacement waiting")
			}
			if tt.viaClaim {
				res, ping, need = tb.Seen(moved, at(time.Hour+2*time.Minute))
				if res != Conflict || !need || ping != moved {
					t.Fatalf("datagram from the new address: %v, ping %v (%v); want a ping of %v", res, ping, need, moved)
				}
			}
			if res, _, need := tb.Verified(moved, at(time.Hour+3*time.Minute)); res != Updated || need {
				t.Fatalf("answer from the new address after the failure: %v (%v), want Updated", res, need)
			}
			e, _ := tb.Get(x.ID)
			if e.Contact != moved || e.Failures != 0 || !e.LastSeen.Equal(at(time.Hour+3*time.Minute)) {
				t.Fatalf("entry %+v, want %v with no failures", e, moved)
			}
			if got := order(tb, 0); got[len(got)-1] != x.ID {
				t.Fatal("the moved entry is not the most recently seen")
			}
			if holders := holdersOf(tb, x.Addr); len(holders) != 0 {
				t.Fatalf("the old address is still held by %v", short(holders))
			}
			checkInvariants(t, tb)
		})
	}
}

// A contact whose address has answered us survives a failure while only
// unverified replacements wait, and goes only after MaxFailures in a row; one
// that has never answered goes at its first failure, as before; and one that
// fails while a replacement that answered us waits gives it its place at
// once (under churn, a contact that stopped answering has most likely left).
func TestLongLivedContactSurvivesOneFailureWithReplacementsWaiting(t *testing.T) {
	tests := []struct {
		name         string
		verified     bool
		verifiedRepl bool
		removedAfter int
	}{
		{"verified contact", true, false, 3},
		{"never verified contact", false, false, 1},
		{"verified contact, verified replacement", true, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, cs, fresh := fullBucket(t, Config{MaxFailures: 3})
			if tt.verified {
				verifyAll(t, tb, cs)
			}
			e, f := fresh(), fresh()
			_, ping, need := tb.Seen(e, at(time.Minute))
			if tt.verifiedRepl {
				tb.Verified(f, at(time.Minute+time.Second))
			} else {
				tb.Seen(f, at(time.Minute+time.Second))
			}
			if !need || ping != cs[0] {
				t.Fatalf("ping %v (%v), want %v", ping, need, cs[0])
			}
			for i := 1; i <= tt.removedAfter; i++ {
				removed := tb.FailedAt(cs[0], at(time.Hour+time.Duration(i)*time.Minute))
				if removed != (i == tt.removedAfter) {
					t.Fatalf("failure %d: removed %v, want removal at failure %d", i, removed, tt.removedAfter)
				}
			}
			want := ids(cs[1], cs[2], cs[3], f)
			if got := order(tb, 0); !equalIDs(got, want) {
				t.Fatalf("bucket %v, want %v", short(got), short(want))
			}
			checkInvariants(t, tb)
		})
	}
}

// A newcomer to a full bucket with a failing entry waits in the cache and
// the failing entry is pinged: the newcomer gets the slot only if that ping
// fails too.
func TestUnverifiedNewcomerDoesNotDisplaceAFailingEntryWithoutAPing(t *testing.T) {
	tests := []struct {
		name    string
		answers bool // the failing entry answers the ping
	}{
		{"the failing entry answers", true},
		{"the failing entry fails again", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRand(80)
			self := id.Random(r)
			tb := New(self, Config{K: 3, MaxFailures: 3})
			a, b, c := inBucket(r, self, 0, 1), inBucket(r, self, 0, 2), inBucket(r, self, 0, 3)
			tb.Seen(inBucket(r, self, 1, 9), at(0)) // split off the root, so bucket 0 cannot split
			for _, x := range []id.Contact{a, b, c} {
				tb.Seen(x, at(0))
			}
			tb.FailedAt(b, at(time.Second))
			tb.FailedAt(c, at(time.Second))
			tb.FailedAt(c, at(2*time.Second))
			d := inBucket(r, self, 0, 4)
			res, ping, need := tb.Seen(d, at(3*time.Second))
			if res != Full || !need || ping != c {
				t.Fatalf("newcomer: %v, ping %v (%v); want Full and a ping of the most failing entry %v", res, ping, need, c)
			}
			if got, want := order(tb, 0), ids(a, b, c); !equalIDs(got, want) || !equalIDs(replIDs(tb, 0), ids(d)) {
				t.Fatalf("bucket %v, cache %v; want %v and [%s]", short(got), short(replIDs(tb, 0)), short(want), d.ID.Short())
			}
			if tt.answers {
				tb.Verified(c, at(4*time.Second))
				if got, want := order(tb, 0), ids(a, b, c); !equalIDs(got, want) {
					t.Fatalf("after the answer: bucket %v, want %v", short(got), short(want))
				}
			} else {
				if !tb.FailedAt(c, at(4*time.Second)) {
					t.Fatal("the failing entry failed its ping and stayed")
				}
				if got, want := order(tb, 0), ids(a, b, d); !equalIDs(got, want) {
					t.Fatalf("after the failure: bucket %v, want %v", short(got), short(want))
				}
			}
			checkInvariants(t, tb)
		})
	}
}

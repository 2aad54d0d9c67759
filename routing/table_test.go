package routing

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
)

// fullBucket returns a table with K=4 whose bucket 0 holds four contacts
// (least recently seen first), and a source of more contacts for bucket 0.
func fullBucket(t *testing.T, cfg Config) (*Table, []id.Contact, func() id.Contact) {
	t.Helper()
	r := newRand(1)
	self := id.Random(r)
	cfg.K = 4
	if cfg.PingTimeout == 0 {
		// Long enough that no test below sees a ping mark expire unless
		// it asks for that.
		cfg.PingTimeout = 24 * time.Hour
	}
	if cfg.Fresh == 0 {
		// The tests below fill the bucket at time 0 and bring newcomers a
		// minute or more later, when its contacts are no longer fresh.
		cfg.Fresh = time.Minute
	}
	tb := New(self, cfg)
	next := 0
	fresh := func() id.Contact {
		next++
		return inBucket(r, self, 0, next)
	}
	var cs []id.Contact
	for i := range 4 {
		c := fresh()
		if res, _, ping := tb.Seen(c, at(time.Duration(i)*time.Second)); res != Added || ping {
			t.Fatalf("Seen(%v) = %v, ping %v; want Added without ping", c, res, ping)
		}
		cs = append(cs, c)
	}
	return tb, cs, fresh
}

func TestLeastRecentlySeenIsPingedBeforeEviction(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{})
	e, f := fresh(), fresh()

	res, ping, need := tb.Seen(e, at(time.Minute))
	if res != Full || !need || ping != cs[0] {
		t.Fatalf("newcomer to a full bucket: %v, ping %v (%v); want Full, ping of the LRS %v", res, ping, need, cs[0])
	}
	// A second newcomer while the ping is out must not ask for another.
	if res, ping, need := tb.Seen(f, at(time.Minute)); res != Full || need || ping != (id.Contact{}) {
		t.Fatalf("second newcomer: %v, ping %v (%v); want Full with no ping", res, ping, need)
	}
	if got, want := replIDs(tb, 0), ids(e, f); !equalIDs(got, want) {
		t.Fatalf("replacements %v, want %v", short(got), short(want))
	}
	// Nothing was evicted for the newcomers.
	if got := order(tb, 0); !equalIDs(got, ids(cs...)) {
		t.Fatalf("bucket %v, want unchanged %v", short(got), short(ids(cs...)))
	}
	if _, ok := tb.Get(e.ID); ok {
		t.Fatal("newcomer is in the bucket before the ping failed")
	}
	checkInvariants(t, tb)
}

func TestPingedContactAnsweringStaysAndNewcomersWait(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{})
	e, f := fresh(), fresh()
	tb.Seen(e, at(time.Minute))
	tb.Seen(f, at(time.Minute))

	// The pinged contact answers.
	if res, _, need := tb.Seen(cs[0], at(2*time.Minute)); res != Updated || need {
		t.Fatalf("pinged contact answering: %v (%v), want Updated", res, need)
	}
	want := ids(cs[1], cs[2], cs[3], cs[0])
	if got := order(tb, 0); !equalIDs(got, want) {
		t.Fatalf("bucket %v, want the pinged contact moved to most recently seen %v", short(got), short(want))
	}
	if got := replIDs(tb, 0); !equalIDs(got, ids(e, f)) {
		t.Fatalf("replacements %v, want the newcomers kept %v", short(got), short(ids(e, f)))
	}
	// The ping is resolved, so the next newcomer pings the new LRS.
	g := fresh()
	if res, ping, need := tb.Seen(g, at(3*time.Minute)); res != Full || !need || ping != cs[1] {
		t.Fatalf("newcomer after the answer: %v, ping %v (%v); want Full, ping %v", res, ping, need, cs[1])
	}
	checkInvariants(t, tb)
}

func TestPingedContactFailingIsReplacedByMostRecentReplacement(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{})
	e, f := fresh(), fresh()
	_, ping, _ := tb.Seen(e, at(time.Minute))
	tb.Seen(f, at(time.Minute+time.Second))
	tb.Seen(e, at(time.Minute+2*time.Second)) // e is now the most recent replacement

	if !tb.Failed(ping.ID, at(2*time.Minute)) {
		t.Fatal("Failed(pinged) with replacements waiting did not remove it")
	}
	want := ids(cs[1], cs[2], cs[3], e)
	if got := order(tb, 0); !equalIDs(got, want) {
		t.Fatalf("bucket %v, want %v (most recent replacement appended as MRS)", short(got), short(want))
	}
	if got := replIDs(tb, 0); !equalIDs(got, ids(f)) {
		t.Fatalf("replacements %v, want %v", short(got), short(ids(f)))
	}
	got, ok := tb.Get(e.ID)
	if !ok || !got.LastSeen.Equal(at(time.Minute+2*time.Second)) || got.Failures != 0 || got.Contact != e {
		t.Fatalf("promoted entry %+v, %v", got, ok)
	}
	// The mark is clear: a newcomer triggers a fresh ping.
	if _, ping, need := tb.Seen(fresh(), at(3*time.Minute)); !need || ping != cs[1] {
		t.Fatalf("after the failure: ping %v (%v), want %v", ping, need, cs[1])
	}
	checkInvariants(t, tb)
}

func TestLiveContactsAreNeverEvictedForNewOnes(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{})
	now := at(time.Minute)
	for i := range 1000 {
		now = now.Add(time.Second)
		res, ping, need := tb.Seen(fresh(), now)
		if res != Full {
			t.Fatalf("newcomer %d: %v, want Full", i, res)
		}
		if need {
			// Every pinged contact is alive and answers.
			if r, _, _ := tb.Seen(ping, now.Add(time.Millisecond)); r != Updated {
				t.Fatalf("pinged %v answered: %v", ping, r)
			}
		}
	}
	got := order(tb, 0)
	for _, c := range cs {
		if _, ok := tb.Get(c.ID); !ok {
			t.Fatalf("live contact %v was evicted; bucket is %v", c, short(got))
		}
	}
	if tb.Len() != 4 || len(tb.Replacements(0)) != 4 {
		t.Fatalf("Len %d, cache %d; want 4 and 4", tb.Len(), len(tb.Replacements(0)))
	}
	checkInvariants(t, tb)
}

func TestReplacementCacheKeepsMostRecentWithoutDuplicates(t *testing.T) {
	tb, _, fresh := fullBucket(t, Config{ReplacementCache: 3})
	a, b, c, d := fresh(), fresh(), fresh(), fresh()
	steps := []struct {
		c    id.Contact
		want []id.ID
	}{
		{a, ids(a)},
		{b, ids(a, b)},
		{a, ids(b, a)}, // refreshed, not duplicated
		{c, ids(b, a, c)},
		{d, ids(a, c, d)}, // full: the oldest (b) is dropped
		{c, ids(a, d, c)},
	}
	for i, s := range steps {
		if res, _, _ := tb.Seen(s.c, at(time.Hour+time.Duration(i)*time.Second)); res != Full {
			t.Fatalf("step %d: %v, want Full", i, res)
		}
		if got := replIDs(tb, 0); !equalIDs(got, s.want) {
			t.Fatalf("step %d: cache %v, want %v", i, short(got), short(s.want))
		}
	}
	if e := tb.Replacements(0); !e[2].LastSeen.Equal(at(time.Hour + 5*time.Second)) {
		t.Fatalf("refreshed replacement LastSeen %v", e[2].LastSeen)
	}
	// A replacement is unverified either way, so a refresh takes the new
	// address (unlike a healthy bucket entry).
	moved := id.Contact{ID: d.ID, Addr: addr(9999)}
	tb.Seen(moved, at(2*time.Hour))
	if e := tb.Replacements(0); e[2].Contact != moved || !equalIDs(replIDs(tb, 0), ids(a, c, d)) {
		t.Fatalf("refreshed replacement %v, cache %v", e[2].Contact, short(replIDs(tb, 0)))
	}
	checkInvariants(t, tb)
}

func TestZeroReplacementCacheStillPings(t *testing.T) {
	// ReplacementCache 0 means the default (K); check that default sizing.
	tb, _, fresh := fullBucket(t, Config{})
	for range 10 {
		tb.Seen(fresh(), at(time.Hour))
	}
	if got := len(tb.Replacements(0)); got != 4 {
		t.Fatalf("default cache holds %d, want K=4", got)
	}
}

func TestMaxFailuresRemovesContactWithoutReplacement(t *testing.T) {
	for _, max := range []int{1, 2, 3, 5} {
		tb, cs, _ := fullBucket(t, Config{MaxFailures: max})
		x := cs[2].ID
		for i := 1; i < max; i++ {
			if tb.Failed(x, at(time.Hour)) {
				t.Fatalf("MaxFailures %d: removed after %d failures", max, i)
			}
			if e, ok := tb.Get(x); !ok || e.Failures != i {
				t.Fatalf("MaxFailures %d: after %d failures Get = %+v, %v", max, i, e, ok)
			}
		}
		if !tb.Failed(x, at(time.Hour)) {
			t.Fatalf("MaxFailures %d: not removed at %d failures", max, max)
		}
		if _, ok := tb.Get(x); ok || tb.Len() != 3 {
			t.Fatalf("MaxFailures %d: still present (Len %d)", max, tb.Len())
		}
		if tb.Failed(x, at(time.Hour)) {
			t.Fatal("Failed of an unknown ID returned true")
		}
		checkInvariants(t, tb)
	}
}

// Only an answer (Verified) clears a contact's failures: a request
// (Seen) updates when it was last heard from, but its source address can
// be forged, and forged PINGs under a departed contact's address must not
// keep it from failing out of the table.
func TestOnlyAnAnswerResetsFailures(t *testing.T) {
	tb, cs, _ := fullBucket(t, Config{MaxFailures: 3})
	x := cs[1]
	tb.Failed(x.ID, at(time.Hour))
	tb.Failed(x.ID, at(time.Hour))
	if res, _, _ := tb.Seen(x, at(2*time.Hour)); res != Updated {
		t.Fatalf("Seen = %v, want Updated", res)
	}
	if e, _ := tb.Get(x.ID); e.Failures != 2 || !e.LastSeen.Equal(at(2*time.Hour)) {
		t.Fatalf("after Seen: %+v, want 2 failures still, LastSeen %v", e, at(2*time.Hour))
	}
	if res, _, _ := tb.Verified(x, at(2*time.Hour)); res != Updated {
		t.Fatalf("Verified = %v, want Updated", res)
	}
	if e, _ := tb.Get(x.ID); e.Failures != 0 {
		t.Fatalf("after Verified: %+v, want 0 failures", e)
	}
	// Two more failures must not remove it: the count started over.
	tb.Failed(x.ID, at(3*time.Hour))
	if tb.Failed(x.ID, at(3*time.Hour)) {
		t.Fatal("removed after 2 failures following a reset")
	}
	// A request alone does not start the count over.
	tb.Seen(x, at(4*time.Hour))
	if !tb.Failed(x.ID, at(4*time.Hour)) {
		t.Fatal("a third failure in a row, with only a request between, did not remove the contact")
	}
}

func TestSeenIgnoresSelfAndUnusableAddresses(t *testing.T) {
	r := newRand(2)
	self := id.Random(r)
	other := id.Random(r)
	tests := []struct {
		name string
		c    id.Contact
	}{
		{"own ID", id.Contact{ID: self, Addr: addr(1)}},
		{"invalid address", id.Contact{ID: other}},
		{"port 0", id.Contact{ID: other, Addr: netip.MustParseAddrPort("127.0.0.1:0")}},
		{"unspecified IPv4", id.Contact{ID: other, Addr: netip.MustParseAddrPort("0.0.0.0:4000")}},
		{"unspecified IPv6", id.Contact{ID: other, Addr: netip.MustParseAddrPort("[::]:4000")}},
		{"unspecified IPv4-mapped", id.Contact{ID: other, Addr: netip.MustParseAddrPort("[::ffff:0.0.0.0]:4000")}},
		{"multicast", id.Contact{ID: other, Addr: netip.MustParseAddrPort("224.0.0.1:4000")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := New(self, Config{})
			if res, _, need := tb.Seen(tt.c, t0); res != Ignored || need {
				t.Fatalf("Seen = %v (%v), want Ignored", res, need)
			}
			if tb.Len() != 0 {
				t.Fatalf("Len = %d", tb.Len())
			}
		})
	}
}

func TestAddressesRoundTrip(t *testing.T) {
	addrs := []string{
		"127.0.0.1:4000",
		"203.0.113.7:65535",
		"[2001:db8::1]:4000",
		"[::ffff:192.0.2.1]:4000", // IPv4-mapped: comes back unmapped
		"[fe80::1%eth0]:4000",
		"[fe80::2%eth1]:4001",
		"[fe80::3%eth0]:4002",
	}
	r := newRand(3)
	tb := New(id.Random(r), Config{})
	var cs []id.Contact
	for _, s := range addrs {
		c := id.Contact{ID: id.Random(r), Addr: netip.MustParseAddrPort(s)}
		if res, _, _ := tb.Seen(c, t0); res != Added {
			t.Fatalf("Seen(%v) = %v", c, res)
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		e, ok := tb.Get(c.ID)
		want := c
		if c.Addr.Addr().Is4In6() {
			// One host, one address: the table keeps the IPv4 form.
			want.Addr = netip.AddrPortFrom(c.Addr.Addr().Unmap(), c.Addr.Port())
		}
		if !ok || e.Contact != want {
			t.Errorf("Get(%v) = %v, %v; want %v", c, e.Contact, ok, want)
		}
	}
	if len(tb.zones) != 2 {
		t.Errorf("interned %d zones, want 2", len(tb.zones))
	}
}

func TestZoneTableIsBounded(t *testing.T) {
	r := newRand(4)
	tb := New(id.Random(r), Config{K: 200})
	added := 0
	for i := range maxZones + 10 {
		a := netip.MustParseAddr("fe80::1").WithZone("if" + strings.Repeat("x", i))
		res, _, _ := tb.Seen(id.Contact{ID: id.Random(r), Addr: netip.AddrPortFrom(a, 4000)}, t0)
		if res == Added {
			added++
		} else if res != Ignored {
			t.Fatalf("zone %d: %v", i, res)
		}
	}
	if added != maxZones || len(tb.zones) != maxZones {
		t.Fatalf("added %d contacts with %d zones, want %d", added, len(tb.zones), maxZones)
	}
}

func TestRemove(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{})
	e, f := fresh(), fresh()
	_, ping, _ := tb.Seen(e, at(time.Minute))
	tb.Seen(f, at(time.Minute))

	if !tb.Remove(e.ID) || !equalIDs(replIDs(tb, 0), ids(f)) {
		t.Fatalf("Remove from the cache: cache %v", short(replIDs(tb, 0)))
	}
	if !tb.Remove(ping.ID) {
		t.Fatal("Remove of a bucket contact returned false")
	}
	if want := ids(cs[1], cs[2], cs[3], f); !equalIDs(order(tb, 0), want) {
		t.Fatalf("bucket %v, want %v (replacement promoted)", short(order(tb, 0)), short(want))
	}
	if tb.Remove(ping.ID) || tb.Remove(id.Random(newRand(9))) {
		t.Fatal("Remove of an absent ID returned true")
	}
	// The pinged contact is gone, so its ping no longer blocks a new one.
	if _, p, need := tb.Seen(fresh(), at(2*time.Minute)); !need || p != cs[1] {
		t.Fatalf("ping %v (%v), want %v", p, need, cs[1])
	}
	checkInvariants(t, tb)
}

func TestFailedReplacementIsDropped(t *testing.T) {
	tb, _, fresh := fullBucket(t, Config{})
	e := fresh()
	tb.Seen(e, at(time.Minute))
	if !tb.Failed(e.ID, at(2*time.Minute)) || len(tb.Replacements(0)) != 0 {
		t.Fatalf("failed replacement kept: %v", short(replIDs(tb, 0)))
	}
	if tb.Len() != 4 {
		t.Fatalf("Len %d", tb.Len())
	}
}

func TestCancelPingLetsTheNextNewcomerPing(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{})
	_, ping, _ := tb.Seen(fresh(), at(time.Minute))
	if tb.CancelPing(cs[1].ID) {
		t.Fatal("CancelPing of a contact that was not pinged returned true")
	}
	if _, _, need := tb.Seen(fresh(), at(time.Minute)); need {
		t.Fatal("second ping while the first is outstanding")
	}
	if !tb.CancelPing(ping.ID) || tb.CancelPing(ping.ID) {
		t.Fatal("CancelPing of the pinged contact: want true once")
	}
	if e, ok := tb.Get(ping.ID); !ok || e.Failures != 0 || !equalIDs(order(tb, 0), ids(cs...)) {
		t.Fatalf("CancelPing changed the entry or the bucket: %+v, %v", e, short(order(tb, 0)))
	}
	if _, p, need := tb.Seen(fresh(), at(time.Minute)); !need || p != cs[0] {
		t.Fatalf("after CancelPing: ping %v (%v), want %v", p, need, cs[0])
	}
}

func TestUnansweredPingMarkExpires(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{PingTimeout: time.Minute})
	if _, _, need := tb.Seen(fresh(), at(time.Hour)); !need {
		t.Fatal("no ping asked for")
	}
	if _, _, need := tb.Seen(fresh(), at(time.Hour+59*time.Second)); need {
		t.Fatal("second ping within PingTimeout")
	}
	// The outcome was never reported: after PingTimeout the bucket pings again.
	if _, p, need := tb.Seen(fresh(), at(time.Hour+time.Minute)); !need || p != cs[0] {
		t.Fatalf("after PingTimeout: ping %v (%v), want %v", p, need, cs[0])
	}
}

func TestSplitKeepsContactsReachableAndBucketRanges(t *testing.T) {
	for seed := range uint64(5) {
		r := newRand(100 + seed)
		self := id.Random(r)
		k := []int{1, 2, 4, 8, 20}[seed]
		tb := New(self, Config{K: k})
		added := map[id.ID]bool{}
		for i := range 3000 {
			// Mix random IDs with IDs deep in self's subtree so that many
			// splits happen.
			var c id.Contact
			if i%2 == 0 {
				c = id.Contact{ID: id.Random(r), Addr: addr(i + 1)}
			} else {
				c = inBucket(r, self, r.IntN(40), i+1)
			}
			res, _, _ := tb.Seen(c, at(time.Duration(i)*time.Millisecond))
			if res == Added {
				added[c.ID] = true
			}
			if i%100 == 0 {
				checkInvariants(t, tb)
			}
		}
		checkInvariants(t, tb)
		for x := range added {
			if _, ok := tb.Get(x); !ok {
				t.Fatalf("K=%d: %s was added but Get cannot find it", k, x.Short())
			}
			if b := tb.BucketOf(x); b < tb.Buckets()-1 && b != x.CommonPrefixLen(self) {
				t.Fatalf("BucketOf(%s) = %d, cpl %d", x.Short(), b, x.CommonPrefixLen(self))
			}
		}
		if tb.Len() != len(added) {
			t.Fatalf("K=%d: Len %d, added %d (nothing was removed)", k, tb.Len(), len(added))
		}
	}
}

func TestBucketCountGrowsLogarithmically(t *testing.T) {
	for _, n := range []int{100, 1000, 10000, 100000} {
		const k = 20
		r := newRand(uint64(n))
		tb := New(id.Random(r), Config{K: k})
		for i := range n {
			tb.Seen(id.Contact{ID: id.Random(r), Addr: addr(i + 1)}, t0)
		}
		want := math.Log2(float64(n)/k) + 1
		if got := float64(tb.Buckets()); math.Abs(got-want) > 2 {
			t.Errorf("N=%d: %d buckets, want about log2(N/K)+1 = %.1f", n, tb.Buckets(), want)
		}
		checkInvariants(t, tb)
	}
}

func TestSplitStopsAtMaxBuckets(t *testing.T) {
	r := newRand(6)
	self := id.Random(r)
	tb := New(self, Config{K: 1})
	// One contact per depth, deepest last, forces a split at every depth.
	for cpl := range id.Bits {
		tb.Seen(inBucket(r, self, cpl, cpl+1), t0)
	}
	if tb.Buckets() != MaxBuckets || tb.Len() != id.Bits {
		t.Fatalf("%d buckets, %d contacts; want %d and %d", tb.Buckets(), tb.Len(), MaxBuckets, id.Bits)
	}
	checkInvariants(t, tb)
	// Past Config.Fresh, so that the full bucket asks for a ping.
	if res, _, need := tb.Seen(inBucket(r, self, 10, 999), t0.Add(DefaultFresh)); res != Full || !need {
		t.Fatalf("newcomer to a full middle bucket: %v (%v)", res, need)
	}
}

func TestStaleAndTouch(t *testing.T) {
	r := newRand(7)
	self := id.Random(r)
	tb := New(self, Config{K: 2})
	const age = time.Hour
	// The table's creation time is the first time it is given.
	tb.Seen(inBucket(r, self, 0, 1), at(0))
	if got := tb.Stale(at(age), age, nil); len(got) != 0 {
		t.Fatalf("Stale at exactly age: %v, want none", got)
	}
	if got := tb.Stale(at(age+1), age, nil); len(got) != 1 || got[0] != 0 {
		t.Fatalf("Stale after age: %v, want [0]", got)
	}
	// Filling bucket 0 and adding a deeper contact splits at 10m: bucket 1
	// is created then, bucket 0 keeps its own time.
	tb.Seen(inBucket(r, self, 0, 2), at(5*time.Minute))
	tb.Seen(inBucket(r, self, 3, 3), at(10*time.Minute))
	if tb.Buckets() != 2 {
		t.Fatalf("%d buckets, want 2", tb.Buckets())
	}
	if got := tb.Stale(at(age+5*time.Minute), age, nil); len(got) != 1 || got[0] != 0 {
		t.Fatalf("Stale: %v, want [0] (bucket 1 created at 10m)", got)
	}
	tb.Touch(tb.RefreshTarget(0, r), at(age+5*time.Minute))
	if got := tb.Stale(at(age+11*time.Minute), age, []int{-1}); len(got) != 2 || got[1] != 1 {
		t.Fatalf("Stale after touching bucket 0: %v, want [-1 1]", got)
	}
	// An older Touch does not turn a fresher bucket back.
	tb.Touch(self, at(0))
	if got := tb.Stale(at(age+5*time.Minute), age, nil); len(got) != 0 {
		t.Fatalf("Stale after an older Touch: %v, want none", got)
	}
}

func TestRefreshTargetLandsInItsBucket(t *testing.T) {
	r := newRand(8)
	self := id.Random(r)
	tb := New(self, Config{K: 4})
	for i := range 5000 {
		tb.Seen(id.Contact{ID: id.Random(r), Addr: addr(i + 1)}, t0)
	}
	if tb.Buckets() < 8 {
		t.Fatalf("only %d buckets", tb.Buckets())
	}
	for i := range tb.Buckets() {
		for range 200 {
			x := tb.RefreshTarget(i, r)
			if got := tb.BucketOf(x); got != i || x == self {
				t.Fatalf("RefreshTarget(%d) = %s in bucket %d", i, x.Short(), got)
			}
		}
	}
	// The last bucket's targets cover its whole range, not only cpl == last.
	last := tb.Buckets() - 1
	deeper := 0
	for range 200 {
		if tb.RefreshTarget(last, r).CommonPrefixLen(self) > last {
			deeper++
		}
	}
	if deeper == 0 || deeper == 200 {
		t.Fatalf("%d of 200 last-bucket targets are deeper than %d", deeper, last)
	}
	// A single-bucket table: any ID but self.
	one := New(self, Config{})
	for range 100 {
		if x := one.RefreshTarget(0, r); x == self || one.BucketOf(x) != 0 {
			t.Fatalf("RefreshTarget(0) = %s", x.Short())
		}
	}
}

func TestRefreshTargetPanicsOutOfRange(t *testing.T) {
	tb := New(id.ID{}, Config{})
	for _, i := range []int{-1, 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RefreshTarget(%d) did not panic", i)
				}
			}()
			tb.RefreshTarget(i, newRand(1))
		}()
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg     Config
		wantErr string // substring; "" for valid
	}{
		{Config{}, ""},
		{Config{K: 1, ReplacementCache: 1, MaxFailures: 1, PingTimeout: time.Second}, ""},
		{Config{K: MaxK}, ""},
		{Config{K: -1}, "K is -1"},
		{Config{K: MaxK + 1}, "K is 257"},
		{Config{ReplacementCache: -3}, "ReplacementCache is -3"},
		{Config{MaxFailures: -1}, "MaxFailures is -1"},
		{Config{MaxFailures: 256}, "MaxFailures is 256"},
		{Config{PingTimeout: -time.Second}, "PingTimeout is -1s"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("%+v: Validate() = %v, want %q", tt.cfg, err, tt.wantErr)
		}
		func() {
			defer func() {
				if p := recover(); (p != nil) != (tt.wantErr != "") {
					t.Errorf("%+v: New panicked %v", tt.cfg, p)
				}
			}()
			New(id.ID{}, tt.cfg)
		}()
	}
	tb := New(id.ID{}, Config{})
	if tb.K() != DefaultK || tb.r != DefaultK || tb.maxFailures != DefaultMaxFailures {
		t.Fatalf("defaults: K %d, cache %d, failures %d", tb.K(), tb.r, tb.maxFailures)
	}
}

func TestResultString(t *testing.T) {
	for r, want := range map[Result]string{Updated: "Updated", Added: "Added", Full: "Full", Ignored: "Ignored", Conflict: "Conflict", 0: "Result(0)"} {
		if r.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(r), r.String(), want)
		}
	}
}

func TestSeenExistingDoesNotAllocate(t *testing.T) {
	tb, cs := bigTable(20, 10000)
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		tb.Seen(cs[i%len(cs)], t0)
		i++
	})
	if allocs != 0 {
		t.Fatalf("Seen of an existing contact allocates %.1f times", allocs)
	}
}

func TestEntryIsCompact(t *testing.T) {
	// 56 bytes and no pointers: the budget of a 100,000-node simulation
	// rests on it (48 for the contact and its record, 8 for the round-trip
	// estimate that sets its requests' timeouts).
	if s := entrySize; s != 56 {
		t.Fatalf("entry is %d bytes, want 56", s)
	}
}

// A contact heard from again within a second keeps its place in the bucket
// (a busy peer costs a timestamp update per datagram); after that, it moves
// to the most-recently-seen end as Kademlia orders buckets.
func TestSeenWithinASecondUpdatesTimeButNotOrder(t *testing.T) {
	r := newRand(77)
	self := id.Random(r)
	tb := New(self, Config{K: 4})
	a, b := inBucket(r, self, 0, 1), inBucket(r, self, 0, 2)
	tb.Seen(a, at(0))
	tb.Seen(b, at(0))
	order := func() []id.ID {
		var ids []id.ID
		tb.ForEach(func(_ int, e Entry) { ids = append(ids, e.Contact.ID) })
		return ids
	}
	if res, _, _ := tb.Seen(a, at(500*time.Millisecond)); res != Updated {
		t.Fatalf("Seen = %v, want Updated", res)
	}
	if got := order(); got[0] != a.ID {
		t.Fatal("a contact seen again within a second moved")
	}
	if e, _ := tb.Get(a.ID); !e.LastSeen.Equal(at(500 * time.Millisecond)) {
		t.Fatalf("LastSeen = %v, want the new time", e.LastSeen)
	}
	tb.Seen(a, at(2*time.Second))
	if got := order(); got[0] != b.ID || got[1] != a.ID {
		t.Fatal("a contact seen again after a second should become the most recent")
	}
	// A failing contact is always handled in full; an answer resets its
	// failures (a request does not: TestOnlyAnAnswerResetsFailures).
	tb.Failed(b.ID, at(2*time.Second))
	tb.Verified(b, at(2*time.Second+time.Millisecond))
	if e, _ := tb.Get(b.ID); e.Failures != 0 {
		t.Fatalf("failures = %d after Verified, want 0", e.Failures)
	}
	checkInvariants(t, tb)
}

// A full bucket pings its least-recently-seen contact for a newcomer only
// when that contact has not been heard from for Config.Fresh: a contact that
// just spoke is known to be alive.
func TestFreshContactsAreNotPinged(t *testing.T) {
	r := newRand(78)
	self := id.Random(r)
	tb := New(self, Config{K: 2, Fresh: time.Minute})
	a, b := inBucket(r, self, 0, 1), inBucket(r, self, 0, 2)
	tb.Seen(a, at(0))
	tb.Seen(b, at(0))
	if res, _, need := tb.Seen(inBucket(r, self, 0, 3), at(59*time.Second)); res != Full || need {
		t.Fatalf("newcomer while the LRS is fresh: %v, ping %v; want Full without a ping", res, need)
	}
	res, ping, need := tb.Seen(inBucket(r, self, 0, 4), at(time.Minute))
	if res != Full || !need || ping.ID != a.ID {
		t.Fatalf("newcomer once the LRS is stale: %v, ping %v %v; want a ping of the LRS", res, need, ping)
	}
	// The paper's rule, pinging every time, is Fresh < 0.
	always := New(self, Config{K: 2, Fresh: -1})
	always.Seen(a, at(0))
	always.Seen(b, at(0))
	if _, _, need := always.Seen(inBucket(r, self, 0, 3), at(0)); !need {
		t.Fatal("with Fresh < 0 a full bucket should always ask for a ping")
	}
}

// The pinged contact answering within a second of its last message (the
// fast path of Seen) still clears the bucket's outstanding ping, so the
// bucket can ping again for the next newcomer.
func TestFastPathAnswerClearsThePing(t *testing.T) {
	r := newRand(79)
	self := id.Random(r)
	tb := New(self, Config{K: 1, Fresh: -1})
	a := inBucket(r, self, 0, 1)
	tb.Seen(a, at(0))
	tb.Seen(inBucket(r, self, 1, 9), at(0)) // split, so bucket 0 can fill
	if _, ping, need := tb.Seen(inBucket(r, self, 0, 2), at(100*time.Millisecond)); !need || ping.ID != a.ID {
		t.Fatalf("want a ping of a, got %v %v", need, ping)
	}
	tb.Seen(a, at(200*time.Millisecond)) // a answers, 200ms after it was last seen
	if _, ping, need := tb.Seen(inBucket(r, self, 0, 3), at(300*time.Millisecond)); !need || ping.ID != a.ID {
		t.Fatalf("after a answered, the next newcomer should bring a new ping; got %v %v", need, ping)
	}
}

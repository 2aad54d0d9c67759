package routing

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
)

// prefixCounts counts a table's contacts, caches included, by /24 or /48:
// per bucket and over the table, the brute-force way.
func prefixCounts(t *Table) (perBucket []map[netip.Prefix]int, perTable map[netip.Prefix]int) {
	perTable = map[netip.Prefix]int{}
	for i := range t.Buckets() {
		m := map[netip.Prefix]int{}
		add := func(e Entry) {
			a := e.Contact.Addr.Addr()
			bits := 24
			if a.Is6() {
				bits = 48
			}
			p, _ := a.Prefix(bits)
			m[p]++
			perTable[p]++
		}
		t.ForEach(func(b int, e Entry) {
			if b == i {
				add(e)
			}
		})
		for _, e := range t.Replacements(i) {
			add(e)
		}
		perBucket = append(perBucket, m)
	}
	return perBucket, perTable
}

func checkCaps(t *testing.T, tb *Table, d Diversity, step int) {
	t.Helper()
	d = d.withDefaults()
	perBucket, perTable := prefixCounts(tb)
	for i, m := range perBucket {
		for p, n := range m {
			if n > d.PerBucket {
				t.Fatalf("step %d: bucket %d holds %d contacts of %v, cap %d", step, i, n, p, d.PerBucket)
			}
		}
	}
	for p, n := range perTable {
		if n > d.PerTable {
			t.Fatalf("step %d: table holds %d contacts of %v, cap %d", step, n, p, d.PerTable)
		}
		var key uint64
		if p.Addr().Is4() {
			a := p.Addr().As4()
			key = 4<<56 | uint64(a[0])<<16 | uint64(a[1])<<8 | uint64(a[2])
		} else {
			a := p.Addr().As16()
			key = 6<<56 | uint64(a[0])<<40 | uint64(a[1])<<32 | uint64(a[2])<<24 | uint64(a[3])<<16 | uint64(a[4])<<8 | uint64(a[5])
		}
		if got := int(tb.div.counts[key]); got != n {
			t.Fatalf("step %d: the table counts %d contacts of %v, it holds %d", step, got, p, n)
		}
	}
	if len(tb.div.counts) != len(perTable) {
		t.Fatalf("step %d: the table counts %d prefixes, it holds %d", step, len(tb.div.counts), len(perTable))
	}
}

// TestDiversityCapsHoldUnderRandomSequences drives a table with random
// sightings, answers, failures and removals from a few public prefixes
// (IPv4 and IPv6), and checks after every step that no bucket and no
// table holds more contacts of one prefix than its cap, and that the
// table's own counts agree with a recount.
func TestDiversityCapsHoldUnderRandomSequences(t *testing.T) {
	for _, d := range []Diversity{{}, {PerBucket: 1, PerTable: 3}, {PerBucket: 3, PerTable: 4}} {
		r := rand.New(rand.NewPCG(7, uint64(d.PerBucket)))
		self := id.Random(r)
		tb := New(self, Config{K: 8, ReplacementCache: 4, Diversity: d})
		prefixes := []netip.Addr{
			netip.MustParseAddr("81.2.69.0"), netip.MustParseAddr("81.2.70.0"), netip.MustParseAddr("5.9.1.0"),
			netip.MustParseAddr("2a01:4f8:1:2::"), netip.MustParseAddr("2a01:4f8:1:3::"),
		}
		var known []id.Contact
		now := time.Unix(1000, 0)
		for step := range 20000 {
			now = now.Add(time.Duration(r.IntN(int(2 * time.Second))))
			var c id.Contact
			if len(known) > 0 && r.IntN(3) == 0 {
				c = known[r.IntN(len(known))]
				if r.IntN(4) == 0 { // the same ID at another address of some prefix
					c.Addr = randAddrIn(r, prefixes)
				}
			} else {
				c = id.Contact{ID: randNear(r, self), Addr: randAddrIn(r, prefixes)}
				if len(known) < 500 {
					known = append(known, c)
				}
			}
			switch r.IntN(10) {
			case 0, 1, 2, 3:
				tb.Seen(c, now)
			case 4, 5, 6:
				tb.Verified(c, now)
			case 7, 8:
				tb.FailedAt(c, now)
			case 9:
				tb.Remove(c.ID)
			}
			checkCaps(t, tb, d, step)
		}
		if tb.Crowded() == 0 {
			t.Errorf("%+v: no sighting was refused: the caps were never tested", d)
		}
	}
}

// randNear draws an ID sharing a random number (0 to 12) of leading bits
// with self, so that the table splits into several buckets.
func randNear(r *rand.Rand, self id.ID) id.ID {
	return id.RandomInBucket(r, self, r.IntN(12))
}

func randAddrIn(r *rand.Rand, prefixes []netip.Addr) netip.AddrPort {
	p := prefixes[r.IntN(len(prefixes))]
	if p.Is4() {
		a := p.As4()
		a[3] = byte(r.IntN(256))
		return netip.AddrPortFrom(netip.AddrFrom4(a), uint16(1+r.IntN(3)))
	}
	a := p.As16()
	for i := 6; i < 16; i++ {
		a[i] = byte(r.IntN(256))
	}
	return netip.AddrPortFrom(netip.AddrFrom16(a), uint16(1+r.IntN(3)))
}

// TestDiversityOneSlash24TakesAtMostItsCap is the hostile case: 10,000
// IDs from one /24, sighted and answering, take at most the table's cap
// per prefix, while contacts from other prefixes still get in.
func TestDiversityOneSlash24TakesAtMostItsCap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	self := id.Random(r)
	tb := New(self, Config{})
	now := time.Unix(1000, 0)
	for i := range 10000 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{81, 2, 69, byte(i)}), uint16(1000+i))
		c := id.Contact{ID: randNear(r, self), Addr: a}
		if i%2 == 0 {
			tb.Seen(c, now)
		} else {
			tb.Verified(c, now)
		}
	}
	_, perTable := prefixCounts(tb)
	p := netip.MustParsePrefix("81.2.69.0/24")
	if perTable[p] > DefaultPerTable || perTable[p] == 0 {
		t.Fatalf("one /24 holds %d places, want 1 to %d", perTable[p], DefaultPerTable)
	}
	if tb.Crowded() < 10000-DefaultPerTable {
		t.Errorf("Crowded = %d, want at least %d", tb.Crowded(), 10000-DefaultPerTable)
	}
	for i := range 50 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{5, 9, byte(i), 1}), 4000)
		if res, _, _ := tb.Verified(id.Contact{ID: randNear(r, self), Addr: a}, now); res == Crowded {
			t.Fatalf("a contact from another prefix was refused")
		}
	}
	if got := tb.Len(); got < 50 {
		t.Errorf("the table holds %d contacts after 50 from other prefixes", got)
	}
}

// TestDiversityLeavesLoopbackAlone: loopback test networks and the
// simulator's in-memory network (127.0.0.0/8) are not capped unless
// AllScopes says so; documentation and private prefixes neither.
func TestDiversityLeavesLoopbackAlone(t *testing.T) {
	for _, tc := range []struct {
		base   [4]byte
		all    bool
		capped bool
	}{
		{[4]byte{127, 0, 0, 0}, false, false},
		{[4]byte{10, 1, 2, 0}, false, false},
		{[4]byte{192, 0, 2, 0}, false, false},
		{[4]byte{127, 0, 0, 0}, true, true},
		{[4]byte{81, 2, 69, 0}, false, true},
	} {
		r := rand.New(rand.NewPCG(3, 4))
		self := id.Random(r)
		tb := New(self, Config{Diversity: Diversity{AllScopes: tc.all}})
		for i := range 200 {
			a := tc.base
			a[3] = byte(i)
			tb.Verified(id.Contact{ID: randNear(r, self), Addr: netip.AddrPortFrom(netip.AddrFrom4(a), 4000)}, time.Unix(1000, 0))
		}
		if got := tb.Len() <= DefaultPerTable; got != tc.capped {
			t.Errorf("%v (AllScopes %v): %d contacts held; capped = %v, want %v", tc.base, tc.all, tb.Len(), got, tc.capped)
		}
	}
}

func TestDiversityValidate(t *testing.T) {
	if err := (Config{Diversity: Diversity{PerBucket: 5, PerTable: 3}}).Validate(); err == nil {
		t.Error("PerBucket above PerTable accepted")
	}
	if err := (Config{Diversity: Diversity{PerBucket: -1, PerTable: -1}}).Validate(); err != nil {
		t.Errorf("caps turned off refused: %v", err)
	}
}

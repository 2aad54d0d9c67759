package routing

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
)

// t0 is an arbitrary start for virtual time.
var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// addr returns a distinct loopback address for each i.
func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)}), 4000)
}

// inBucket returns a contact whose ID shares exactly cpl bits with self.
func inBucket(r *rand.Rand, self id.ID, cpl, i int) id.Contact {
	return id.Contact{ID: id.RandomInBucket(r, self, cpl), Addr: addr(i)}
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// checkInvariants verifies the table's structure: bucket ranges, sizes,
// uniqueness of IDs and of addresses (buckets and caches together), the
// contact count, that a non-empty cache means a full bucket, and that the
// address index matches the entries.
func checkInvariants(t testing.TB, tb *Table) {
	t.Helper()
	if err := invariantError(tb); err != nil {
		t.Fatal(err)
	}
}

func invariantError(tb *Table) error {
	last := len(tb.buckets) - 1
	if last+1 > MaxBuckets || last < 0 {
		return fmt.Errorf("%d buckets", last+1)
	}
	seen := map[key]bool{}
	addrs := map[addrOf]key{}
	n := 0
	for i := range tb.buckets {
		b := &tb.buckets[i]
		if len(b.entries) > tb.k {
			return fmt.Errorf("bucket %d holds %d > K=%d", i, len(b.entries), tb.k)
		}
		if len(b.repl) > tb.r {
			return fmt.Errorf("bucket %d cache holds %d > %d", i, len(b.repl), tb.r)
		}
		if i == last && last+1 < MaxBuckets && len(b.repl) > 0 {
			return fmt.Errorf("the last bucket (%d), which can still split, has %d replacements", i, len(b.repl))
		}
		if b.pinging && find(b.entries, b.pinged) < 0 {
			return fmt.Errorf("bucket %d has a ping out for %s, which is not among its entries", i, b.pinged.id().Short())
		}
		if len(b.repl) > 0 && len(b.entries) < tb.k {
			return fmt.Errorf("bucket %d has room (%d/%d) but %d replacements", i, len(b.entries), tb.k, len(b.repl))
		}
		for _, s := range [][]entry{b.entries, b.repl} {
			for j := range s {
				k := s[j].key()
				c := cpl(tb.self, k)
				if (i < last && c != i) || (i == last && c < last) {
					return fmt.Errorf("bucket %d of %d holds %s with cpl %d", i, last+1, k.id().Short(), c)
				}
				if seen[k] {
					return fmt.Errorf("%s is in the table twice", k.id().Short())
				}
				seen[k] = true
				a := addrOf{s[j].addr, s[j].port, s[j].flags & addrMask}
				if o, dup := addrs[a]; dup {
					return fmt.Errorf("%s and %s share the address %v", o.id().Short(), k.id().Short(), s[j].contact(tb.zones).Addr)
				}
				addrs[a] = k
				if s[j].flags&addrMask&^familyMask>>zoneShift > uint8(len(tb.zones)) || s[j].flags&familyMask == 0 {
					return fmt.Errorf("%s has flags %#x with %d zones", k.id().Short(), s[j].flags, len(tb.zones))
				}
				if int(s[j].failures) > tb.maxFailures {
					return fmt.Errorf("%s has %d failures", k.id().Short(), s[j].failures)
				}
			}
		}
		n += len(b.entries)
	}
	if n != tb.n || tb.Len() != n {
		return fmt.Errorf("Len() = %d, buckets hold %d", tb.Len(), n)
	}
	return indexError(tb)
}

// addrOf is an entry's address as the table compares it.
type addrOf struct {
	addr  [16]byte
	port  uint16
	flags uint8
}

// order returns the IDs of bucket i, least recently seen first.
func order(tb *Table, i int) []id.ID {
	var out []id.ID
	tb.ForEach(func(b int, e Entry) {
		if b == i {
			out = append(out, e.Contact.ID)
		}
	})
	return out
}

func replIDs(tb *Table, i int) []id.ID {
	var out []id.ID
	for _, e := range tb.Replacements(i) {
		out = append(out, e.Contact.ID)
	}
	return out
}

func ids(cs ...id.Contact) []id.ID {
	out := make([]id.ID, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}

func equalIDs(a, b []id.ID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func short(xs []id.ID) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.Short()
	}
	return out
}

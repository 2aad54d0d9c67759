package routing

import (
	"net/netip"
	"testing"

	"github.com/dhtkit/dht/id"
)

// The table holds one entry per address, but compares addresses by their
// bytes and family: an IPv4 address and its IPv4-mapped IPv6 form
// (::ffff:a.b.c.d), which are one host and one socket address (rpc.Match
// already treats them as equal), count as two addresses. A caller that does
// not unmap every address first (the node does today; Table is a public
// package) lets one host hold two entries.
func TestOneEntryPerAddressTreatsIPv4MappedAsIPv4(t *testing.T) {
	r := newRand(71)
	self := id.Random(r)
	tb := New(self, Config{})
	v4 := netip.MustParseAddrPort("127.9.9.9:4000")
	mapped := netip.AddrPortFrom(netip.AddrFrom16(v4.Addr().As16()), v4.Port())
	if !mapped.Addr().Is4In6() {
		t.Fatal("test setup: not a mapped address")
	}
	a := id.Contact{ID: id.Random(r), Addr: v4}
	b := id.Contact{ID: id.Random(r), Addr: mapped}
	tb.Verified(a, at(0))
	res, _, _ := tb.Seen(b, at(0))
	if res == Added || res == Full {
		t.Errorf("a request from %v under a new ID was %v while %v holds %v: one host, two entries", mapped, res, a.ID, v4)
	}
	if tb.Proven(id.Contact{ID: a.ID, Addr: mapped}) != tb.Proven(a) {
		t.Errorf("Proven differs between %v and %v for the same verified host", v4, mapped)
	}
}

// A full replacement cache drops its oldest entry for any newcomer, so
// unverified sightings (requests with forged sources cost nothing) flush
// every verified replacement: when an entry then fails, the slot goes to an
// address nothing has proved, and promote's preference for verified
// replacements never gets a chance. A newcomer should push out an
// unverified replacement before a verified one.
func TestUnverifiedSightingsDoNotFlushVerifiedReplacements(t *testing.T) {
	r := newRand(72)
	self := id.Random(r)
	tb := New(self, Config{K: 2, ReplacementCache: 2})
	i := 0
	next := func() id.Contact { i++; return inBucket(r, self, 0, i) }
	// Two verified entries fill bucket 0; the third splits the table, and
	// bucket 0 (cpl 0) is then full and cannot split.
	for range 2 {
		tb.Verified(next(), at(0))
	}
	for range 2 {
		tb.Verified(next(), at(0)) // verified replacements
	}
	if got := len(tb.Replacements(0)); got != 2 {
		t.Fatalf("test setup: %d replacements, want 2", got)
	}
	for range 2 {
		tb.Seen(next(), at(0)) // forged requests under new IDs
	}
	checkInvariants(t, tb)
	verified := 0
	for _, e := range tb.Replacements(0) {
		if e.Verified {
			verified++
		}
	}
	if verified == 0 {
		t.Errorf("two unverified sightings flushed both verified replacements: %v", tb.Replacements(0))
	}
}

package routing

import (
	"net/netip"
	"testing"
	"time"
)

// Round-trip estimates live in the entries: a contact the table holds (in a
// bucket or a replacement cache) keeps its estimate, one it does not hold
// gets none (nothing grows with what peers send), and an entry that changes
// address starts over, so one host's answers never set another's timeout.
func TestRTTEstimateFollowsTheEntryAndItsAddress(t *testing.T) {
	tb, cs, fresh := fullBucket(t, Config{K: 4, MaxFailures: 3})
	c := cs[1]
	if e, ok := tb.RTT(c); !ok || e.Known() {
		t.Fatalf("a contact with no answer yet: RTT %+v, held %v; want no estimate, held", e, ok)
	}
	if !tb.ObserveRTT(c, 40*time.Millisecond) {
		t.Fatal("ObserveRTT of a bucket contact reported it unknown")
	}
	if e, _ := tb.RTT(c); e.SRTT() != 40*time.Millisecond {
		t.Fatalf("SRTT %v after one 40ms sample", e.SRTT())
	}
	if got, _ := tb.Get(c.ID); got.RTT.SRTT() != 40*time.Millisecond {
		t.Fatalf("Get's Entry.RTT = %+v", got.RTT)
	}
	if e, x, ok := tb.RTTAt(c.Addr); !ok || x != c.ID || e.SRTT() != 40*time.Millisecond {
		t.Fatalf("RTTAt(%v) = %+v, %v, %v; want the contact's estimate", c.Addr, e, x.Short(), ok)
	}
	// The same ID at another address is not the entry.
	other := c
	other.Addr = netip.AddrPortFrom(c.Addr.Addr(), c.Addr.Port()+1)
	if _, _, ok := tb.RTTAt(other.Addr); ok {
		t.Fatal("RTTAt found an entry at an address nobody holds")
	}
	if _, ok := tb.RTT(other); ok || tb.ObserveRTT(other, time.Millisecond) {
		t.Fatal("an estimate was read or written for the right ID at the wrong address")
	}
	// The entry moves to a new address (its old one failed, the new one
	// answered): the estimate starts over.
	tb.FailedAt(c, at(3*time.Minute))
	moved := c
	moved.Addr = addr(9999)
	if res, _, _ := tb.Verified(moved, at(4*time.Minute)); res != Updated {
		t.Fatalf("the move: %v, want Updated", res)
	}
	if e, ok := tb.RTT(moved); !ok || e.Known() {
		t.Fatalf("after moving to a new address: RTT %+v (held %v), want held with no estimate", e, ok)
	}
	// Unknown contacts are ignored.
	stranger := fresh()
	if tb.ObserveRTT(stranger, time.Millisecond) {
		t.Fatal("ObserveRTT stored an estimate for a contact the table does not hold")
	}
	// A replacement keeps its estimate, and its sightings keep it too.
	tb.Verified(stranger, at(time.Minute))
	if !tb.ObserveRTT(stranger, 70*time.Millisecond) {
		t.Fatal("ObserveRTT of a replacement reported it unknown")
	}
	tb.Seen(stranger, at(2*time.Minute))
	if e, ok := tb.RTT(stranger); !ok || e.SRTT() != 70*time.Millisecond {
		t.Fatalf("replacement's estimate after a sighting: %+v (held %v)", e, ok)
	}
	checkInvariants(t, tb)
}

func TestObserveRTTDoesNotAllocate(t *testing.T) {
	tb, cs, _ := fullBucket(t, Config{K: 8})
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		tb.ObserveRTT(cs[i%len(cs)], 25*time.Millisecond)
		tb.RTT(cs[i%len(cs)])
		tb.RTTAt(cs[i%len(cs)].Addr)
		i++
	})
	if allocs != 0 {
		t.Fatalf("ObserveRTT+RTT allocate %.1f times", allocs)
	}
}

package routing

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
)

// hostile drives a table with a sequence of operations drawn from next
// (next(n) returns a choice in [0, n)): many IDs, few addresses, random
// Seen, Verified, Failed, FailedAt, CancelPing and Remove, outcomes of the
// pings the table asked for, queries, and times that jump forward and
// sometimes back. After every step it checks the table's invariants (see
// invariantError: among them, no two entries in buckets and caches share an
// address, bucket sizes <= K, caches <= ReplacementCache, Len equals the
// count) and these guarantees:
//
//   - Seen never changes a bucket entry's address or verification, and
//     never removes a bucket entry;
//   - Verified moves a bucket entry's address only if it was failing;
//   - every ping asked for is of an ID in a bucket, at a usable address;
//   - Proven agrees with Get, for an address in either of its forms
//     (IPv4, IPv4-mapped IPv6).
func hostile(steps int, next func(n int) int) error {
	r := newRand(uint64(next(1 << 16)))
	self := id.Random(r)
	cfg := Config{
		K:                []int{1, 2, 3, 4}[next(4)],
		ReplacementCache: []int{1, 2, 3}[next(3)],
		MaxFailures:      []int{1, 2, 3}[next(3)],
		Fresh:            []time.Duration{-1, 0, time.Second, time.Minute}[next(4)],
		PingTimeout:      []time.Duration{time.Second, time.Minute}[next(2)],
	}
	tb := New(self, cfg)
	var idsPool []id.ID
	for i := range 24 {
		if i < 20 {
			idsPool = append(idsPool, id.RandomInBucket(r, self, i%4))
		} else {
			idsPool = append(idsPool, id.Random(r))
		}
	}
	addrs := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:4000"),
		netip.MustParseAddrPort("127.0.0.1:4001"),
		netip.MustParseAddrPort("127.0.0.2:4000"),
		netip.MustParseAddrPort("10.0.0.1:4000"),
		netip.MustParseAddrPort("[2001:db8::1]:4000"),
		netip.MustParseAddrPort("[fe80::1%eth0]:4000"),
		netip.MustParseAddrPort("[fe80::1%eth1]:4000"),
		netip.MustParseAddrPort("[::ffff:127.0.0.1]:4000"),
	}
	contact := func() id.Contact {
		return id.Contact{ID: idsPool[next(len(idsPool))], Addr: addrs[next(len(addrs))]}
	}
	now := t0
	var pings []id.Contact // pings asked for and not yet answered
	dst := make([]id.Contact, 0, 8)

	type snap struct {
		addr     netip.AddrPort
		verified bool
		failures int
	}
	snapshot := func() map[id.ID]snap {
		m := map[id.ID]snap{}
		tb.ForEach(func(_ int, e Entry) { m[e.Contact.ID] = snap{e.Contact.Addr, e.Verified, e.Failures} })
		return m
	}
	for step := range steps {
		now = now.Add([]time.Duration{0, time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 90 * time.Second, 10 * time.Minute, -time.Second}[next(7)])
		before := snapshot()
		var op string
		var res Result
		var ping id.Contact
		var need bool
		switch next(9) {
		case 0, 1:
			c := contact()
			op = fmt.Sprintf("Seen(%v)", c)
			res, ping, need = tb.Seen(c, now)
			after := snapshot()
			for x, s := range before {
				a, ok := after[x]
				if !ok {
					return fmt.Errorf("step %d: %s removed %s from its bucket", step, op, x.Short())
				}
				if a.addr != s.addr || a.verified != s.verified {
					return fmt.Errorf("step %d: %s changed %s from %+v to %+v", step, op, x.Short(), s, a)
				}
			}
		case 2, 3:
			c := contact()
			op = fmt.Sprintf("Verified(%v)", c)
			res, ping, need = tb.Verified(c, now)
			if s, ok := before[c.ID]; ok && s.addr != c.Addr {
				if e, ok := tb.Get(c.ID); ok && e.Contact.Addr != s.addr && s.failures == 0 {
					return fmt.Errorf("step %d: %s moved a healthy entry from %v", step, op, s.addr)
				}
			}
		case 4:
			if len(pings) == 0 {
				continue
			}
			i := next(len(pings))
			p := pings[i]
			pings[i] = pings[len(pings)-1]
			pings = pings[:len(pings)-1]
			switch next(4) {
			case 0:
				op = fmt.Sprintf("Verified(pinged %v)", p)
				res, ping, need = tb.Verified(p, now)
			case 1:
				op = fmt.Sprintf("FailedAt(pinged %v)", p)
				tb.FailedAt(p, now)
			case 2:
				// Answered under another ID: a restart.
				c := id.Contact{ID: idsPool[next(len(idsPool))], Addr: p.Addr}
				op = fmt.Sprintf("FailedAt(pinged %v), Verified(%v)", p, c)
				tb.FailedAt(p, now)
				res, ping, need = tb.Verified(c, now)
			default:
				op = fmt.Sprintf("CancelPing(%s)", p.ID.Short())
				tb.CancelPing(p.ID)
			}
		case 5:
			c := contact()
			op = fmt.Sprintf("FailedAt(%v)", c)
			tb.FailedAt(c, now)
		case 6:
			x := idsPool[next(len(idsPool))]
			switch next(3) {
			case 0:
				op = "Failed(" + x.Short() + ")"
				tb.Failed(x, now)
			case 1:
				op = "CancelPing(" + x.Short() + ")"
				tb.CancelPing(x)
			default:
				op = "Remove(" + x.Short() + ")"
				tb.Remove(x)
			}
		case 7:
			op = "queries"
			x := idsPool[next(len(idsPool))]
			dst = tb.Closest(x, 8, dst[:0])
			dst = tb.ClosestResponsive(x, 8, dst[:0])
			for i := range tb.Buckets() {
				tb.Replacements(i)
			}
			tb.Stale(now, time.Minute, nil)
			tb.Touch(x, now)
		default:
			op = "Seen(self)"
			res, ping, need = tb.Seen(id.Contact{ID: self, Addr: addrs[0]}, now)
			if res != Ignored {
				return fmt.Errorf("step %d: %s = %v", step, op, res)
			}
		}
		if need {
			if e, ok := tb.Get(ping.ID); !ok || !ping.Addr.IsValid() || ping.Addr.Port() == 0 {
				return fmt.Errorf("step %d: %s asked for a ping of %v (in a bucket: %v, %+v)", step, op, ping, ok, e)
			}
			pings = append(pings, ping)
		}
		if err := invariantError(tb); err != nil {
			return fmt.Errorf("step %d, after %s (%v): %w", step, op, res, err)
		}
		for _, x := range idsPool {
			for _, a := range addrs {
				c := id.Contact{ID: x, Addr: a}
				e, ok := tb.Get(x)
				// The table stores a mapped address unmapped, and Proven
				// takes either form.
				same := e.Contact.Addr == netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
				if want := ok && e.Verified && same; tb.Proven(c) != want {
					return fmt.Errorf("step %d: Proven(%v) = %v, Get = %+v, %v", step, c, !want, e, ok)
				}
			}
		}
	}
	return nil
}

func TestHostileSequencesKeepInvariants(t *testing.T) {
	seeds, steps := 400, 300
	if testing.Short() {
		seeds = 50
	}
	for seed := range uint64(seeds) {
		r := newRand(seed + 9e6)
		if err := hostile(steps, r.IntN); err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
	}
}

// FuzzHostileSequences drives hostile from the fuzzer's bytes: each choice
// takes the next two bytes (zero once they run out).
func FuzzHostileSequences(f *testing.F) {
	f.Add([]byte{0})
	f.Add([]byte("\x01\x00\x02\x00\x01\x00\x00\x03\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08"))
	f.Fuzz(func(t *testing.T, data []byte) {
		next := func(n int) int {
			if len(data) < 2 {
				data = nil
				return 0
			}
			v := int(data[0])<<8 | int(data[1])
			data = data[2:]
			return v % n
		}
		if err := hostile(min(len(data)/4+1, 1000), next); err != nil {
			t.Fatal(err)
		}
	})
}

package store

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
)

var base = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// TestExpiryHeapPopsInOrder checks the hand-written heap against sorting.
func TestExpiryHeapPopsInOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 50 {
		var h expiryHeap
		var want []stamp
		n := r.IntN(200)
		for range n {
			// Few distinct seconds, so that ties and the nanosecond field matter.
			s := stamp{sec: int64(r.IntN(10)), nsec: int32(r.IntN(3))}
			want = append(want, s)
			h.push(expiryEntry{at: s})
		}
		if round%2 == 1 {
			h.init() // init on a valid heap must keep it valid
		}
		slices.SortFunc(want, func(a, b stamp) int {
			switch {
			case a.before(b):
				return -1
			case b.before(a):
				return 1
			}
			return 0
		})
		for i, w := range want {
			if got := h.pop().at; got != w {
				t.Fatalf("round %d: pop %d = %v, want %v", round, i, got, w)
			}
		}
		if len(h) != 0 {
			t.Fatalf("round %d: %d entries left after popping all", round, len(h))
		}
	}
}

func TestStampOfOrdersLikeTime(t *testing.T) {
	times := []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), // before UnixNano's range
		time.Unix(-1, 999_999_999),
		time.Unix(0, 0),
		time.Unix(0, 1),
		base,
		base.Add(time.Nanosecond),
		time.Date(3000, 1, 1, 0, 0, 0, 0, time.UTC), // after UnixNano's range
	}
	for i, a := range times {
		for j, b := range times {
			if got, want := stampOf(a).before(stampOf(b)), a.Before(b); got != want {
				t.Errorf("stampOf(times[%d]).before(stampOf(times[%d])) = %v, want %v", i, j, got, want)
			}
		}
	}
}

// TestMemoryHeapStaysBounded checks that stale heap entries left by
// refreshes and per-key purges are compacted away.
func TestMemoryHeapStaysBounded(t *testing.T) {
	m := NewMemory(Limits{})
	keys := []id.ID{id.Key("a"), id.Key("b"), id.Key("c")}
	now := base
	for i := range 20_000 {
		now = now.Add(time.Second)
		k := keys[i%len(keys)]
		// Refresh one value forever, and churn short-lived ones.
		if err := m.Put(k, []byte("stable"), netip.Addr{}, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
		if err := m.Put(k, []byte{byte(i)}, netip.Addr{}, now.Add(2*time.Second), now); err != nil {
			t.Fatal(err)
		}
		if limit := 2*m.n + compactSlack; len(m.exp) > limit {
			t.Fatalf("after %d rounds the heap holds %d entries for %d values (limit %d)", i, len(m.exp), m.n, limit)
		}
	}
}

// recount computes from the stored entries alone what the store's counters
// must say.
func recount(m *Memory) (n, bytes int, srcs map[source]usage) {
	srcs = map[source]usage{}
	for _, vals := range m.keys {
		for _, v := range vals {
			n++
			bytes += len(v.Data)
			for _, g := range []source{v.src, v.src.site()} {
				if g.kind != kindSelf {
					u := srcs[g]
					u.values++
					u.bytes += len(v.Data)
					srcs[g] = u
				}
			}
		}
	}
	return n, bytes, srcs
}

// TestMemoryAccountingMatchesRecount drives a store with random Puts from a
// few sources, Gets, Sweeps and NextExpiry calls, and checks after every
// step that its running counts of values, bytes and per-source and per-site
// usage equal a recount from scratch, that the table of sources holds only
// sources and sites that hold values, and that no limit or quota is exceeded. (The conformance
// suite checks the answers against a model; this checks the bookkeeping
// behind them.)
func TestMemoryAccountingMatchesRecount(t *testing.T) {
	l := Limits{MaxValues: 30, MaxPerKey: 6, MaxValueSize: 50, MaxBytes: 700,
		MaxPerSource: 12, MaxBytesPerSource: 200, MaxPerKeyPerSource: 2,
		MaxPerSite: 18, MaxBytesPerSite: 300, MaxPerKeyPerSite: 3}
	srcs := []netip.Addr{{}, {},
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.1"),
		netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8:0:1::1"),
		netip.MustParseAddr("2001:db8:0:ff::1"), netip.MustParseAddr("2001:db8:1::1")}
	outcomes := map[error]int{}
	for seed := range uint64(6) {
		r := rand.New(rand.NewPCG(seed, 7))
		m := NewMemory(l)
		now := base
		for step := range 5000 {
			if r.IntN(4) == 0 {
				now = now.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
			}
			k := id.Key(fmt.Sprint(r.IntN(10)))
			switch op := r.IntN(10); {
			case op < 7:
				data := make([]byte, r.IntN(l.MaxValueSize+5))
				if len(data) > 0 {
					data[0] = byte(r.IntN(8))
				}
				exp := now.Add(time.Duration(r.IntN(40_000)-1000) * time.Millisecond)
				err := m.Put(k, data, srcs[r.IntN(len(srcs))], exp, now)
				for _, e := range []error{nil, ErrQuota, ErrFull, ErrKeyFull} {
					if errors.Is(err, e) {
						outcomes[e]++
					}
				}
			case op < 8:
				m.Get(k, now, nil)
			case op < 9:
				m.Sweep(now)
			default:
				m.NextExpiry()
			}
			n, b, want := recount(m)
			if m.n != n || m.bytes != b {
				t.Fatalf("seed %d step %d: counters say %d values, %d bytes; recount %d, %d", seed, step, m.n, m.bytes, n, b)
			}
			if len(m.srcs) != len(want) {
				t.Fatalf("seed %d step %d: table holds %d sources, %d hold values: %v vs %v", seed, step, len(m.srcs), len(want), m.srcs, want)
			}
			for s, u := range want {
				if m.srcs[s] != u {
					t.Fatalf("seed %d step %d: table says %s holds %+v, recount %+v", seed, step, s, m.srcs[s], u)
				}
				_, values, bytes := m.quotas(s)
				if u.values > values || u.bytes > bytes {
					t.Fatalf("seed %d step %d: %s holds %+v, over its quotas", seed, step, s, u)
				}
			}
			for k, vals := range m.keys {
				held := map[source]int{}
				for _, v := range vals {
					for _, g := range v.src.groups() {
						if g.kind != kindSelf {
							held[g]++
						}
					}
				}
				for g, h := range held {
					if limit, _, _ := m.quotas(g); h > limit {
						t.Fatalf("seed %d step %d: %s holds %d values under %s, over its quota of %d", seed, step, g, h, k.Short(), limit)
					}
				}
			}
			if n > l.MaxValues || b > l.MaxBytes {
				t.Fatalf("seed %d step %d: store holds %d values, %d bytes, over its limits", seed, step, n, b)
			}
		}
		// Sweeping everything away, or closing, leaves nothing behind.
		if seed%2 == 0 {
			m.Sweep(now.Add(time.Hour))
		} else {
			_ = m.Close()
		}
		if m.n != 0 || m.bytes != 0 || m.srcs != nil || m.keys != nil {
			t.Fatalf("seed %d: emptied store keeps %d values, %d bytes, %d sources, %d keys", seed, m.n, m.bytes, len(m.srcs), len(m.keys))
		}
	}
	for _, e := range []error{nil, ErrQuota, ErrFull, ErrKeyFull} {
		if outcomes[e] == 0 {
			t.Errorf("no Put in the walk returned %v: it did not reach that limit", e)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

// TestSourceOfGroupsLikePrefixes checks the compact source against the
// grouping written with netip.Prefix: IPv4 (mapped or not) by address, IPv6
// by /64, zones ignored; that IPv6 sources have their /48 as site; and that
// String names the group.
func TestSourceOfGroupsLikePrefixes(t *testing.T) {
	prefixOf := func(a netip.Addr) netip.Prefix {
		a = a.Unmap().WithZone("")
		if a.Is4() {
			return netip.PrefixFrom(a, 32)
		}
		return netip.PrefixFrom(a, 64).Masked()
	}
	r := rand.New(rand.NewPCG(3, 4))
	// Few distinct bits, so that equal groups are common.
	random := func() netip.Addr {
		var b [16]byte
		switch r.IntN(3) {
		case 0:
			return netip.AddrFrom4([4]byte{0, 0, byte(r.IntN(3)), byte(r.IntN(3))})
		case 1:
			b[10], b[11] = 0xff, 0xff
			b[14], b[15] = byte(r.IntN(3)), byte(r.IntN(3))
		default:
			b[5], b[7], b[15] = byte(r.IntN(2)), byte(r.IntN(3)), byte(r.IntN(3))
		}
		a := netip.AddrFrom16(b)
		if r.IntN(4) == 0 && !a.Is4In6() {
			a = a.WithZone("eth0")
		}
		return a
	}
	for range 5000 {
		a, b := random(), random()
		if got, want := sourceOf(a) == sourceOf(b), prefixOf(a) == prefixOf(b); got != want {
			t.Fatalf("sourceOf(%v) == sourceOf(%v) is %v, want %v", a, b, got, want)
		}
		want := prefixOf(a).String()
		if prefixOf(a).Addr().Is4() {
			want = prefixOf(a).Addr().String()
		}
		if got := sourceOf(a).String(); got != want {
			t.Fatalf("sourceOf(%v).String() = %q, want %q", a, got, want)
		}
		// IPv6 sources, and only they, have a site: their /48.
		siteOf := func(a netip.Addr) netip.Prefix {
			if a = a.Unmap().WithZone(""); a.Is4() {
				return netip.Prefix{}
			}
			return netip.PrefixFrom(a, 48).Masked()
		}
		sa, sb := sourceOf(a).site(), sourceOf(b).site()
		if got, want := sa == sb, siteOf(a) == siteOf(b); got != want {
			t.Fatalf("sites of %v and %v equal is %v, want %v", a, b, got, want)
		}
		if p := siteOf(a); p.IsValid() != (sa.kind == kindSite) || (p.IsValid() && sa.String() != p.String()) {
			t.Fatalf("site of %v is %v, want %v", a, sa, p)
		}
	}
	if s := sourceOf(netip.Addr{}); s != (source{}) {
		t.Errorf("sourceOf(zero Addr) = %+v, want the node itself", s)
	}
}

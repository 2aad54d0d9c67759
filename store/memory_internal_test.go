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

// TestMemoryHeapStaysBounded checks that heap entries superseded by
// refreshes, new versions and per-key purges are compacted away.
func TestMemoryHeapStaysBounded(t *testing.T) {
	m := NewMemory(Limits{})
	keys := []id.ID{id.Key("a"), id.Key("b"), id.Key("c")}
	stable, churn := id.Key("stable"), id.Key("churn")
	now := base
	for i := range 20_000 {
		now = now.Add(time.Second)
		k := keys[i%len(keys)]
		// Refresh one record forever, and churn short-lived versions and
		// short-lived records.
		if err := m.Put(k, Value{Publisher: stable, Version: 1, Expires: now.Add(time.Hour), Data: []byte("stable")}, netip.Addr{}, now); err != nil {
			t.Fatal(err)
		}
		if err := m.Put(k, Value{Publisher: churn, Version: uint64(i), Expires: now.Add(time.Duration(1+i%5) * time.Second), Data: []byte{byte(i)}}, netip.Addr{}, now); err != nil {
			t.Fatal(err)
		}
		if err := m.Put(k, Value{Publisher: id.Key(fmt.Sprint(i)), Expires: now.Add(2 * time.Second)}, netip.Addr{}, now); err != nil {
			t.Fatal(err)
		}
		if limit := 2*m.n + compactSlack; len(m.exp) > limit {
			t.Fatalf("after %d rounds the heap holds %d entries for %d records (limit %d)", i, len(m.exp), m.n, limit)
		}
	}
}

// recount computes from the stored entries alone what the store's counters
// must say.
func recount(m *Memory) (n, bytes int, pubs map[id.ID]int, srcs map[source]usage) {
	pubs, srcs = map[id.ID]int{}, map[source]usage{}
	for _, recs := range m.keys {
		for _, e := range recs {
			n++
			bytes += len(e.Data)
			pubs[e.Publisher]++
			for _, g := range []source{e.src, e.src.site()} {
				if g.kind != kindSelf {
					u := srcs[g]
					u.values++
					u.bytes += len(e.Data)
					srcs[g] = u
				}
			}
		}
	}
	return n, bytes, pubs, srcs
}

// checkInvariants checks the bookkeeping behind the answers: the running
// counts of records, bytes, and per-publisher, per-source and per-site
// usage equal a recount from scratch; the tables hold only those that hold
// records; no bound is passed; every key's records are in order, one per
// publisher, with their stamps matching their expiries; every record has a
// heap entry carrying its stamp.
func checkInvariants(t *testing.T, where string, m *Memory) {
	t.Helper()
	n, b, pubs, want := recount(m)
	l := m.limits
	if m.n != n || m.bytes != b {
		t.Fatalf("%s: counters say %d records, %d bytes; recount %d, %d", where, m.n, m.bytes, n, b)
	}
	if len(m.pubs) != len(pubs) {
		t.Fatalf("%s: table holds %d publishers, %d hold records", where, len(m.pubs), len(pubs))
	}
	for p, c := range pubs {
		if m.pubs[p] != c || c > l.MaxPerPublisher {
			t.Fatalf("%s: table says %s holds %d, recount %d (limit %d)", where, p.Short(), m.pubs[p], c, l.MaxPerPublisher)
		}
	}
	if len(m.srcs) != len(want) {
		t.Fatalf("%s: table holds %d sources, %d hold records: %v vs %v", where, len(m.srcs), len(want), m.srcs, want)
	}
	for s, u := range want {
		if m.srcs[s] != u {
			t.Fatalf("%s: table says %s holds %+v, recount %+v", where, s, m.srcs[s], u)
		}
		qn, qb := m.storeQuotas(s)
		if u.values > qn.limit || u.bytes > qb.limit {
			t.Fatalf("%s: %s holds %+v, over its quotas", where, s, u)
		}
	}
	inHeap := map[expiryEntry]bool{}
	for _, e := range m.exp {
		inHeap[e] = true
	}
	for k, recs := range m.keys {
		if len(recs) == 0 {
			t.Fatalf("%s: key %s is held with no records", where, k.Short())
		}
		kb := 0
		held := map[source][2]int{}
		for i, e := range recs {
			kb += len(e.Data)
			if i > 0 && !sortsBefore(recs[i-1].Version, recs[i-1].Publisher, e.Version, e.Publisher) {
				t.Fatalf("%s: records of %s out of order at %d", where, k.Short(), i)
			}
			if e.at != stampOf(e.Expires) || (e.Deleted && e.Data != nil) {
				t.Fatalf("%s: entry %+v is inconsistent", where, e)
			}
			if !inHeap[expiryEntry{at: e.at, key: k, pub: e.Publisher}] {
				t.Fatalf("%s: the record of %s under %s has no heap entry", where, e.Publisher.Short(), k.Short())
			}
			for _, g := range e.src.groups() {
				if g.kind != kindSelf {
					h := held[g]
					h[0]++
					h[1] += len(e.Data)
					held[g] = h
				}
			}
		}
		if len(recs) > l.MaxPerKey || kb > l.MaxBytesPerKey {
			t.Fatalf("%s: key %s holds %d records, %d bytes, over its bounds", where, k.Short(), len(recs), kb)
		}
		for g, h := range held {
			if qn, qb := m.keyQuotas(g); h[0] > qn.limit || h[1] > qb.limit {
				t.Fatalf("%s: %s holds %v under %s, over its quotas", where, g, h, k.Short())
			}
		}
	}
	if n > l.MaxValues || b > l.MaxBytes {
		t.Fatalf("%s: store holds %d records, %d bytes, over its limits", where, n, b)
	}
	if len(m.exp) > 2*m.n+compactSlack {
		t.Fatalf("%s: heap holds %d entries for %d records", where, len(m.exp), m.n)
	}
}

// TestMemoryAccountingMatchesRecount drives a store with random Puts of
// values and tombstones from a few publishers and sources, Gets, Sweeps and
// NextExpiry calls, and checks the bookkeeping after every step. (The
// conformance suite checks the answers against a model; this checks the
// bookkeeping behind them.)
func TestMemoryAccountingMatchesRecount(t *testing.T) {
	l := Limits{MaxValues: 30, MaxPerKey: 6, MaxBytesPerKey: 120, MaxValueSize: 50, MaxBytes: 700, MaxPerPublisher: 8,
		MaxPerSource: 12, MaxBytesPerSource: 200, MaxPerKeyPerSource: 2, MaxBytesPerKeyPerSource: 60,
		MaxPerSite: 18, MaxBytesPerSite: 300, MaxPerKeyPerSite: 3, MaxBytesPerKeyPerSite: 90}
	srcs := []netip.Addr{{}, {},
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.1"),
		netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::1"),
		netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8:0:1::1"),
		netip.MustParseAddr("2001:db8:0:ff::1"), netip.MustParseAddr("2001:db8:1::1")}
	outcomes := map[error]int{}
	sentinels := []error{nil, ErrQuota, ErrFull, ErrKeyFull, ErrStale}
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
				v := Value{Publisher: id.Key(fmt.Sprint(r.IntN(12))), Version: uint64(r.IntN(4)),
					Expires: now.Add(time.Duration(r.IntN(40_000)-1000) * time.Millisecond), Deleted: r.IntN(6) == 0}
				v.Data = make([]byte, r.IntN(l.MaxValueSize+5))
				if len(v.Data) > 0 {
					v.Data[0] = byte(r.IntN(3))
				}
				err := m.Put(k, v, srcs[r.IntN(len(srcs))], now)
				for _, e := range sentinels {
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
			checkInvariants(t, fmt.Sprintf("seed %d step %d", seed, step), m)
		}
		// Sweeping everything away, or closing, leaves nothing behind.
		if seed%2 == 0 {
			m.Sweep(now.Add(time.Hour))
		} else {
			_ = m.Close()
		}
		if m.n != 0 || m.bytes != 0 || m.srcs != nil || m.pubs != nil || m.keys != nil || m.exp != nil {
			t.Fatalf("seed %d: emptied store keeps %d records, %d bytes, %d sources, %d publishers, %d keys, %d heap entries",
				seed, m.n, m.bytes, len(m.srcs), len(m.pubs), len(m.keys), len(m.exp))
		}
	}
	for _, e := range sentinels {
		if outcomes[e] == 0 {
			t.Errorf("no Put in the walk returned %v: it did not reach that rule", e)
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

package store

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
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

// change is one call of the observer, copied.
type change struct {
	key, pub id.ID
	v        *Value
	src      netip.Addr
}

// TestMemoryObserverReplayRestores checks what a persistent store relies
// on: replaying every change the observer reported, with Restore into a new
// store, rebuilds the same store, records, expiries, charges and all. It
// drives an observed store with random Puts, Sweeps and expiries, keeps a
// mirror from the observer's calls alone, and now and then restores the
// mirror into a fresh store and compares everything, then drives both with
// the same Puts for a while and compares every answer, so that a charge
// restored to the wrong source or site would show.
func TestMemoryObserverReplayRestores(t *testing.T) {
	l := Limits{MaxValues: 40, MaxPerKey: 6, MaxBytesPerKey: 120, MaxValueSize: 50, MaxBytes: 800, MaxPerPublisher: 9,
		MaxPerSource: 12, MaxBytesPerSource: 200, MaxPerKeyPerSource: 2, MaxBytesPerKeyPerSource: 60,
		MaxPerSite: 18, MaxBytesPerSite: 300, MaxPerKeyPerSite: 3, MaxBytesPerKeyPerSite: 90}
	srcs := []netip.Addr{{}, {}, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.2"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8:0:1::1")}
	type rk struct{ key, pub id.ID }
	type held struct {
		v   Value
		src netip.Addr
	}
	r := rand.New(rand.NewPCG(5, 6))
	mirror := map[rk]held{}
	calls := 0
	m := NewMemoryObserved(l, func(key, pub id.ID, v *Value, src netip.Addr) {
		calls++
		if v == nil {
			if _, ok := mirror[rk{key, pub}]; !ok {
				t.Fatalf("observer: deletion of %s/%s, which it never reported stored", key.Short(), pub.Short())
			}
			delete(mirror, rk{key, pub})
			return
		}
		if v.Publisher != pub {
			t.Fatalf("observer: record of %s reported for publisher %s", v.Publisher.Short(), pub.Short())
		}
		mirror[rk{key, pub}] = held{*v, src}
	})
	randomPut := func(now time.Time) (id.ID, Value, netip.Addr) {
		v := Value{Publisher: id.Key(fmt.Sprint(r.IntN(12))), Version: uint64(r.IntN(4)),
			Expires: now.Add(time.Duration(r.IntN(40_000)-1000) * time.Millisecond), Deleted: r.IntN(6) == 0}
		v.Data = make([]byte, r.IntN(l.MaxValueSize+5))
		if len(v.Data) > 0 {
			v.Data[0] = byte(r.IntN(3))
		}
		return id.Key(fmt.Sprint(r.IntN(10))), v, srcs[r.IntN(len(srcs))]
	}
	now := base
	for round := range 40 {
		for range 200 {
			if r.IntN(4) == 0 {
				now = now.Add(time.Duration(r.IntN(3000)) * time.Millisecond)
			}
			if r.IntN(10) == 0 {
				m.Sweep(now)
				continue
			}
			k, v, src := randomPut(now)
			_ = m.Put(k, v, src, now)
		}
		// Restore the mirror, as a persistent store opens its file.
		restored := NewMemory(l)
		for rec, h := range mirror {
			if err := restored.Restore(rec.key, h.v, h.src, base); err != nil {
				t.Fatalf("round %d: Restore(%s, %+v, %v) = %v", round, rec.key.Short(), h.v, h.src, err)
			}
		}
		compare := func(where string) {
			t.Helper()
			if restored.n != m.n || restored.bytes != m.bytes || !maps.Equal(restored.srcs, m.srcs) || !maps.Equal(restored.pubs, m.pubs) {
				t.Fatalf("%s: restored store holds %d records, %d bytes, sources %v, publishers %v; the original %d, %d, %v, %v",
					where, restored.n, restored.bytes, restored.srcs, restored.pubs, m.n, m.bytes, m.srcs, m.pubs)
			}
			for i := range 10 {
				k := id.Key(fmt.Sprint(i))
				if got, want := restored.Records(k, base, nil), m.Records(k, base, nil); !slices.EqualFunc(got, want, equalValues) {
					t.Fatalf("%s: restored key %d holds %+v, the original %+v", where, i, got, want)
				}
			}
			e1, ok1 := restored.NextExpiry()
			e2, ok2 := m.NextExpiry()
			if ok1 != ok2 || !e1.Equal(e2) {
				t.Fatalf("%s: restored NextExpiry %v, %v; the original %v, %v", where, e1, ok1, e2, ok2)
			}
		}
		compare(fmt.Sprintf("round %d", round))
		// The two behave alike from here on.
		for step := range 100 {
			k, v, src := randomPut(now)
			e1, e2 := restored.Put(k, v, src, now), m.Put(k, v, src, now)
			if fmt.Sprint(e1) != fmt.Sprint(e2) {
				t.Fatalf("round %d step %d: Put(%s, %+v, %v) = %v on the restored store, %v on the original", round, step, k.Short(), v, src, e1, e2)
			}
		}
		compare(fmt.Sprintf("round %d, after more puts", round))
	}
	if calls == 0 {
		t.Fatal("the observer was never called")
	}
}

func equalValues(a, b Value) bool {
	return a.Publisher == b.Publisher && a.Version == b.Version && a.Deleted == b.Deleted &&
		a.Expires.Equal(b.Expires) && bytes.Equal(a.Data, b.Data)
}

// TestMemoryObserverReportsEachChangeOnce checks which calls report what:
// each change once, with the record as stored and the sender; deletions of
// expired records, by Sweep or by a Put that finds them, as nil; and nothing
// for what changes nothing, for Restore, and for Close.
func TestMemoryObserverReportsEachChangeOnce(t *testing.T) {
	var got []change
	m := NewMemoryObserved(Limits{MaxPerKey: 3}, func(key, pub id.ID, v *Value, src netip.Addr) {
		c := change{key: key, pub: pub, src: src}
		if v != nil {
			cp := *v
			c.v = &cp
		}
		got = append(got, c)
	})
	k, p, q := id.Key("k"), id.Key("p"), id.Key("q")
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	steps := []struct {
		name string
		do   func() error
		want []change
	}{
		{"New", func() error {
			return m.Put(k, Value{Publisher: p, Version: 1, Expires: at(10), Data: []byte("one")}, a, at(0))
		},
			[]change{{k, p, &Value{Publisher: p, Version: 1, Expires: at(10), Data: []byte("one")}, a}}},
		{"RefreshExtends", func() error {
			return m.Put(k, Value{Publisher: p, Version: 1, Expires: at(20), Data: []byte("one")}, b, at(0))
		},
			[]change{{k, p, &Value{Publisher: p, Version: 1, Expires: at(20), Data: []byte("one")}, b}}},
		{"RefreshExtendsNothing", func() error {
			return m.Put(k, Value{Publisher: p, Version: 1, Expires: at(5), Data: []byte("one")}, a, at(0))
		}, nil},
		{"Stale", func() error {
			if err := m.Put(k, Value{Publisher: p, Version: 0, Expires: at(30), Data: []byte("zero")}, a, at(0)); !errors.Is(err, ErrStale) {
				return fmt.Errorf("Put = %v, want ErrStale", err)
			}
			return nil
		}, nil},
		{"TooLarge", func() error {
			if err := m.Put(k, Value{Publisher: p, Version: 5, Expires: at(30), Data: make([]byte, 70_000)}, a, at(0)); !errors.Is(err, ErrTooLarge) {
				return fmt.Errorf("Put = %v, want ErrTooLarge", err)
			}
			return nil
		}, nil},
		{"NewVersion", func() error {
			return m.Put(k, Value{Publisher: p, Version: 2, Expires: at(15), Data: []byte("two")}, a, at(1))
		},
			[]change{{k, p, &Value{Publisher: p, Version: 2, Expires: at(15), Data: []byte("two")}, a}}},
		{"Tombstone", func() error {
			return m.Put(k, Value{Publisher: p, Version: 3, Expires: at(5), Deleted: true}, netip.Addr{}, at(2))
		},
			[]change{{k, p, &Value{Publisher: p, Version: 3, Expires: at(15), Deleted: true}, netip.Addr{}}}},
		{"Restore", func() error {
			return m.Restore(k, Value{Publisher: q, Version: 1, Expires: at(8), Data: []byte("q")}, b, at(2))
		}, nil},
		{"PutFindsExpired", func() error {
			return m.Put(k, Value{Publisher: p, Version: 4, Expires: at(30), Data: []byte("four")}, a, at(9))
		},
			[]change{{k, q, nil, netip.Addr{}}, {k, p, &Value{Publisher: p, Version: 4, Expires: at(30), Data: []byte("four")}, a}}},
		{"Sweep", func() error {
			if n := m.Sweep(at(30)); n != 1 {
				return fmt.Errorf("Sweep = %d, want 1", n)
			}
			return nil
		}, []change{{k, p, nil, netip.Addr{}}}},
		{"Close", func() error {
			if err := m.Restore(k, Value{Publisher: q, Version: 1, Expires: at(80), Data: []byte("q")}, b, at(30)); err != nil {
				return err
			}
			return m.Close()
		}, nil},
	}
	for _, st := range steps {
		got = nil
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if !slices.EqualFunc(got, st.want, func(a, b change) bool {
			return a.key == b.key && a.pub == b.pub && a.src == b.src && (a.v == nil) == (b.v == nil) && (a.v == nil || equalValues(*a.v, *b.v))
		}) {
			t.Errorf("%s: observer saw %+v, want %+v", st.name, got, st.want)
		}
	}
}

// TestRestore checks that Restore puts a record back as given, whatever
// the ordering rule and the quotas of sources and sites would say, but not
// past the hard bounds, and that a store restored over its quotas refuses
// what would add to them while accepting what does not.
func TestRestore(t *testing.T) {
	l := Limits{MaxValueSize: 10, MaxPerKey: 4, MaxBytesPerKey: 20, MaxValues: 8, MaxBytes: 60, MaxPerPublisher: 3,
		MaxPerSource: 2, MaxBytesPerSource: 15, MaxPerKeyPerSource: 1, MaxBytesPerKeyPerSource: 10}
	a := netip.MustParseAddr("192.0.2.1")
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	pubN := func(i int) id.ID { return id.Key(fmt.Sprint("publisher ", i)) }
	rec := func(i int, ver uint64, data string) Value {
		return Value{Publisher: pubN(i), Version: ver, Expires: at(100), Data: []byte(data)}
	}
	m := NewMemory(l)
	k := id.Key("k")
	// Over the source's quotas, under one key and over the store.
	for i := range 3 {
		if err := m.Restore(k, rec(i, 5, "0123456789"[:2+i]), a, at(0)); err != nil {
			t.Fatalf("Restore %d: %v", i, err)
		}
	}
	// An older version replaces a newer one.
	if err := m.Restore(k, rec(0, 1, "older"), a, at(0)); err != nil {
		t.Fatal(err)
	}
	if v, _ := m.Lookup(k, pubN(0), at(0)); v.Version != 1 || string(v.Data) != "older" {
		t.Errorf("after restoring version 1 over 5, Lookup = %+v", v)
	}
	// The source, over its quotas, may not add, but may shrink or keep.
	if err := m.Put(k, rec(9, 1, "x"), a, at(0)); !errors.Is(err, ErrQuota) {
		t.Errorf("Put of a new record from a source over its quota = %v, want ErrQuota", err)
	}
	if err := m.Put(k, rec(1, 6, "333"), a, at(0)); err != nil {
		t.Errorf("Put of a new version no larger, from a source over its quota = %v, want nil", err)
	}
	// Growing in bytes is refused by the bytes quota alone: the record
	// count, over its quota too, does not grow.
	var le *LimitError
	if err := m.Put(k, rec(1, 7, "4444"), a, at(0)); !errors.As(err, &le) || le.Bound != "MaxBytesPerKeyPerSource" {
		t.Errorf("Put of a larger version from a source over its quotas = %v, want a refusal for MaxBytesPerKeyPerSource", err)
	}
	// The hard bounds hold, each refusing with its LimitError.
	for _, tc := range []struct {
		bound string
		key   id.ID
		v     Value
	}{
		{"MaxValueSize", k, rec(5, 1, "01234567890")},
		{"MaxPerKey", k, func() Value {
			if err := m.Restore(k, rec(3, 1, "3"), a, at(0)); err != nil {
				t.Fatal(err)
			}
			return rec(4, 1, "4")
		}()},
		{"MaxBytesPerKey", k, rec(3, 1, "0123456789")},
		{"MaxPerPublisher", id.Key("k4"), func() Value {
			for _, kk := range []string{"k2", "k3"} {
				if err := m.Restore(id.Key(kk), rec(0, 1, "p"), a, at(0)); err != nil {
					t.Fatal(err)
				}
			}
			return rec(0, 1, "p")
		}()},
		{"MaxValues", id.Key("k5"), func() Value {
			for _, kk := range []string{"k6", "k7"} {
				if err := m.Restore(id.Key(kk), rec(6, 1, "0123456789"), a, at(0)); err != nil {
					t.Fatal(err)
				}
			}
			return rec(7, 1, "0123456789")
		}()},
	} {
		if err := m.Restore(tc.key, tc.v, a, at(0)); !errors.As(err, &le) || le.Bound != tc.bound {
			t.Errorf("Restore over %s = %v, want its LimitError", tc.bound, err)
		}
	}
	if err := m.Restore(k, rec(0, 9, "late"), a, at(100)); !errors.Is(err, ErrExpired) {
		t.Errorf("Restore of an expired record = %v, want ErrExpired", err)
	}
	checkInvariantsCounts(t, m)
	_ = m.Close()
	if err := m.Restore(k, rec(0, 9, "x"), a, at(0)); !errors.Is(err, ErrClosed) {
		t.Errorf("Restore after Close = %v, want ErrClosed", err)
	}
}

// checkInvariantsCounts checks the counters against a recount, for a store
// that may be over its quotas.
func checkInvariantsCounts(t *testing.T, m *Memory) {
	t.Helper()
	n, b, pubs, srcs := recount(m)
	if m.n != n || m.bytes != b || !maps.Equal(m.pubs, pubs) || !maps.Equal(m.srcs, srcs) {
		t.Fatalf("counters say %d, %d, %v, %v; recount %d, %d, %v, %v", m.n, m.bytes, m.pubs, m.srcs, n, b, pubs, srcs)
	}
}

package storetest

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
	"github.com/dhtkit/dht/store"
)

// model is the Store contract written as plainly as possible: maps, linear
// scans, no heap, no counters, no cleverness; every bound is recounted from
// the records themselves, before and after the write. testMatchesModel
// drives a store and the model with the same random operations and compares
// every answer.
type model struct {
	l    store.Limits
	keys state
}

// state is what a store holds: per key, per publisher, the record and the
// source it is charged to.
type state map[id.ID]map[id.ID]mrec

type mrec struct {
	v   store.Value
	src netip.Prefix // the zero Prefix for the node itself
}

func (st state) clone() state {
	out := state{}
	for k, recs := range st {
		out[k] = maps.Clone(recs)
	}
	return out
}

// set returns a copy of st in which publisher p's record under k is r, or
// none if r is nil.
func (st state) set(k, p id.ID, r *mrec) state {
	out := st.clone()
	if r != nil {
		if out[k] == nil {
			out[k] = map[id.ID]mrec{}
		}
		out[k][p] = *r
	} else if delete(out[k], p); len(out[k]) == 0 {
		delete(out, k)
	}
	return out
}

// all calls fn for every record of st.
func (st state) all(fn func(k id.ID, r mrec)) {
	for k, recs := range st {
		for _, r := range recs {
			fn(k, r)
		}
	}
}

// groupOf is the source a sender's address counts as, written with
// netip.Prefix: the address itself for IPv4 (mapped or not), its /64 for
// IPv6, zones dropped; the zero Prefix for the node itself.
func groupOf(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	return netip.PrefixFrom(a, 64).Masked()
}

// groupsOf lists the groups a record charged to the source g is charged to:
// g itself and, for an IPv6 /64, its site, the /48. The node itself has
// none.
func groupsOf(g netip.Prefix) []netip.Prefix {
	switch {
	case !g.IsValid():
		return nil
	case g.Addr().Is4():
		return []netip.Prefix{g}
	}
	return []netip.Prefix{g, netip.PrefixFrom(g.Addr(), 48).Masked()}
}

// chargedTo reports whether a record charged to the source src counts
// against the group g.
func chargedTo(src, g netip.Prefix) bool { return slices.Contains(groupsOf(src), g) }

// nameOf is how a refusal names the group g.
func nameOf(g netip.Prefix) string {
	if g.Addr().Is4() {
		return g.Addr().String()
	}
	return g.String()
}

// bound is one bound of Limits and how to count what holds against it.
type bound struct {
	name     string
	limit    int
	sentinel error
	group    string
	count    func(st state) int
}

// keyBounds are the bounds a write of the source g under k must pass, in the
// order the store checks them.
func (m *model) keyBounds(k id.ID, g netip.Prefix) []bound {
	l := m.l
	records := func(in func(mrec) bool) func(state) int {
		return func(st state) int {
			n := 0
			for _, r := range st[k] {
				if in(r) {
					n++
				}
			}
			return n
		}
	}
	bytesOf := func(in func(mrec) bool) func(state) int {
		return func(st state) int {
			n := 0
			for _, r := range st[k] {
				if in(r) {
					n += len(r.v.Data)
				}
			}
			return n
		}
	}
	any := func(mrec) bool { return true }
	bs := []bound{
		{"MaxPerKey", l.MaxPerKey, store.ErrKeyFull, "", records(any)},
		{"MaxBytesPerKey", l.MaxBytesPerKey, store.ErrKeyFull, "", bytesOf(any)},
	}
	for _, h := range groupsOf(g) {
		in := func(r mrec) bool { return chargedTo(r.src, h) }
		if h.Bits() == 48 {
			bs = append(bs, bound{"MaxPerKeyPerSite", l.MaxPerKeyPerSite, store.ErrQuota, nameOf(h), records(in)},
				bound{"MaxBytesPerKeyPerSite", l.MaxBytesPerKeyPerSite, store.ErrQuota, nameOf(h), bytesOf(in)})
		} else {
			bs = append(bs, bound{"MaxPerKeyPerSource", l.MaxPerKeyPerSource, store.ErrQuota, nameOf(h), records(in)},
				bound{"MaxBytesPerKeyPerSource", l.MaxBytesPerKeyPerSource, store.ErrQuota, nameOf(h), bytesOf(in)})
		}
	}
	return bs
}

// storeBounds are the bounds over the store a write of publisher p from the
// source g must pass, in the order the store checks them.
func (m *model) storeBounds(p id.ID, g netip.Prefix) []bound {
	l := m.l
	records := func(in func(mrec) bool) func(state) int {
		return func(st state) int {
			n := 0
			st.all(func(_ id.ID, r mrec) {
				if in(r) {
					n++
				}
			})
			return n
		}
	}
	bytesOf := func(in func(mrec) bool) func(state) int {
		return func(st state) int {
			n := 0
			st.all(func(_ id.ID, r mrec) {
				if in(r) {
					n += len(r.v.Data)
				}
			})
			return n
		}
	}
	bs := []bound{{"MaxPerPublisher", l.MaxPerPublisher, store.ErrQuota, fmt.Sprintf("publisher %x", p[:]),
		records(func(r mrec) bool { return r.v.Publisher == p })}}
	for _, h := range groupsOf(g) {
		in := func(r mrec) bool { return chargedTo(r.src, h) }
		if h.Bits() == 48 {
			bs = append(bs, bound{"MaxPerSite", l.MaxPerSite, store.ErrQuota, nameOf(h), records(in)},
				bound{"MaxBytesPerSite", l.MaxBytesPerSite, store.ErrQuota, nameOf(h), bytesOf(in)})
		} else {
			bs = append(bs, bound{"MaxPerSource", l.MaxPerSource, store.ErrQuota, nameOf(h), records(in)},
				bound{"MaxBytesPerSource", l.MaxBytesPerSource, store.ErrQuota, nameOf(h), bytesOf(in)})
		}
	}
	any := func(mrec) bool { return true }
	return append(bs, bound{"MaxValues", l.MaxValues, store.ErrFull, "", records(any)},
		bound{"MaxBytes", l.MaxBytes, store.ErrFull, "", bytesOf(any)})
}

// outcome is what a Put returns, in a form the model can build: the
// sentinel and, for a refusal for a bound, its fields.
type outcome struct {
	sentinel          error
	bound, group      string
	limit, have, want int
}

func (o outcome) String() string {
	if o.bound != "" {
		return fmt.Sprintf("%v (%s %q limit %d have %d want %d)", o.sentinel, o.bound, o.group, o.limit, o.have, o.want)
	}
	return fmt.Sprint(o.sentinel)
}

// outcomeOf reads an outcome from what a store returned.
func outcomeOf(err error) outcome {
	var le *store.LimitError
	if errors.As(err, &le) {
		o := outcome{bound: le.Bound, group: le.Group, limit: le.Limit, have: le.Have, want: le.Want}
		for _, s := range []error{store.ErrTooLarge, store.ErrFull, store.ErrKeyFull, store.ErrQuota} {
			if errors.Is(err, s) {
				o.sentinel = s
			}
		}
		return o
	}
	for _, s := range []error{store.ErrStale, store.ErrExpired, store.ErrClosed} {
		if errors.Is(err, s) {
			return outcome{sentinel: s}
		}
	}
	if err != nil {
		return outcome{sentinel: fmt.Errorf("unexpected error %w", err)}
	}
	return outcome{}
}

// check returns the first bound of bs that the write from before to after
// passes: one it takes over its limit, and that counts more than before.
// without is before with the record the write replaces taken out, which is
// what Have counts.
func check(bs []bound, before, without, after state) (outcome, bool) {
	for _, b := range bs {
		if n := b.count(after); n > b.limit && n > b.count(before) {
			have := b.count(without)
			return outcome{sentinel: b.sentinel, bound: b.name, group: b.group, limit: b.limit, have: have, want: n - have}, true
		}
	}
	return outcome{}, false
}

func (m *model) purge(k id.ID, now time.Time) int {
	n := 0
	for p, r := range m.keys[k] {
		if !r.v.Expires.After(now) {
			m.keys = m.keys.set(k, p, nil)
			n++
		}
	}
	return n
}

func (m *model) sweep(now time.Time) int {
	n := 0
	for k := range m.keys {
		n += m.purge(k, now)
	}
	return n
}

// put returns what the store must return, and which rule decided, so that
// the walk can tell it has tried every rule.
func (m *model) put(k id.ID, v store.Value, src netip.Addr, now time.Time) (kind string, o outcome) {
	v.Expires = v.Expires.Round(0)
	if v.Deleted {
		v.Data, v.Envelope = nil, false
	}
	v.Data = bytes.Clone(v.Data)
	switch {
	case len(v.Data) > m.l.MaxValueSize:
		return "too large", outcome{sentinel: store.ErrTooLarge, bound: "MaxValueSize", limit: m.l.MaxValueSize, want: len(v.Data)}
	case !v.Expires.After(now):
		return "expired", outcome{sentinel: store.ErrExpired}
	}
	m.purge(k, now)
	g := groupOf(src)
	held, ok := m.keys[k][v.Publisher]
	kind = "new value"
	if v.Deleted {
		kind = "new tombstone"
	}
	if ok {
		h := held.v
		stale := outcome{sentinel: store.ErrStale}
		switch {
		case v.Envelope && !h.Envelope:
			kind = "envelope beats plain"
		case h.Envelope && !v.Envelope:
			return "stale: plain after an envelope", stale
		case v.Version < h.Version:
			return "stale: lower version", stale
		case v.Version > h.Version:
			kind = "replaced by a higher version"
		case v.Deleted && !h.Deleted:
			kind = "tombstone beats the value of its version"
		case h.Deleted && !v.Deleted:
			return "stale: value at a tombstone's version", stale
		case h.Deleted || bytes.Equal(h.Data, v.Data):
			if !v.Expires.After(h.Expires) {
				return "refresh keeps the later expiry", outcome{}
			}
			kind = "refresh extends"
		default:
			return "stale: other bytes", stale
		}
		if v.Deleted && h.Expires.After(v.Expires) {
			v.Expires = h.Expires
		}
		if held.src != g {
			kind += ", the charge moves"
		}
	}
	r := &mrec{v: v, src: g}
	before := m.keys
	if o, over := check(m.keyBounds(k, g), before, before.set(k, v.Publisher, nil), before.set(k, v.Publisher, r)); over {
		return "refused " + o.bound, o
	}
	sb := m.storeBounds(v.Publisher, g)
	if _, over := check(sb, before, before.set(k, v.Publisher, nil), before.set(k, v.Publisher, r)); over {
		// Expired records are deleted before a bound over the store refuses;
		// this key holds none since the purge.
		if m.sweep(now) > 0 {
			kind += " after a sweep"
		}
		before = m.keys
		if o, over := check(sb, before, before.set(k, v.Publisher, nil), before.set(k, v.Publisher, r)); over {
			return "refused " + o.bound, o
		}
	}
	m.keys = before.set(k, v.Publisher, r)
	return kind, outcome{}
}

// records returns k's records live at now, in the order of Store,
// tombstones included if tombstones is set.
func (m *model) records(k id.ID, now time.Time, tombstones bool) []store.Value {
	var out []store.Value
	for _, r := range m.keys[k] {
		if r.v.Expires.After(now) && (tombstones || !r.v.Deleted) {
			out = append(out, r.v)
		}
	}
	if out == nil {
		return nil
	}
	return sorted(out...)
}

func (m *model) lookup(k, p id.ID, now time.Time) (store.Value, bool) {
	r, ok := m.keys[k][p]
	if !ok || !r.v.Expires.After(now) {
		return store.Value{}, false
	}
	return r.v, true
}

func (m *model) len() int {
	n := 0
	m.keys.all(func(id.ID, mrec) { n++ })
	return n
}

func (m *model) bytes() int {
	n := 0
	m.keys.all(func(_ id.ID, r mrec) { n += len(r.v.Data) })
	return n
}

func (m *model) nextExpiry() (time.Time, bool) {
	var min time.Time
	ok := false
	m.keys.all(func(_ id.ID, r mrec) {
		if !ok || r.v.Expires.Before(min) {
			min, ok = r.v.Expires, true
		}
	})
	return min, ok
}

// walkSources are the senders of the random walk: the node itself, most
// often, so that the store fills, and addresses that share groups in every
// way the contract names (a mapped IPv4 address, two addresses of one /64,
// a zone), next to ones that must not.
var walkSources = []netip.Addr{
	{}, {}, {}, {}, {},
	netip.MustParseAddr("203.0.113.7"),
	netip.MustParseAddr("::ffff:203.0.113.7"), // the same source as 203.0.113.7
	netip.MustParseAddr("203.0.113.8"),
	netip.MustParseAddr("2001:db8:1:2::1"),
	netip.MustParseAddr("2001:db8:1:2:ffff:ffff:ffff:ffff"), // the same /64
	netip.MustParseAddr("2001:db8:1:3::1"),                  // another /64 of the same /48
	netip.MustParseAddr("2001:db8:1:ff00::1"),               // and another
	netip.MustParseAddr("2001:db8:1:ff00::2"),               // of that /64 again, so that the site is busy
	netip.MustParseAddr("fe80::1%eth0"),
	netip.MustParseAddr("fe80::2%eth1"), // the same /64, another zone
}

// testMatchesModel runs random operations, chosen to crowd every bound and
// to try every case of the ordering rule (puts and tombstones of several
// publishers at random versions, from several sources, some expiring while
// others arrive), on the store and on the model, and fails at the first
// answer that differs. It compares every Put's outcome (for a refusal: the
// bound and its numbers) and the key's records after it, so that a refused
// Put that changed something shows at once; and, now and then, Get, Lookup,
// Sweep, NextExpiry and Keys. Because every later answer depends on them,
// this checks the store's accounting of records, bytes, publishers and
// sources through purges, sweeps, replacements and refreshes against the
// model's recount from scratch.
func testMatchesModel(t *testing.T, s store.Store) {
	const (
		seeds   = 6
		steps   = 5000
		numKeys = 16 // more than MaxPerPublisher, so that one publisher can reach it
		numPubs = 10
	)
	l := Limits()
	outcomes := map[string]int{}
	for seed := range seeds {
		if seed > 0 {
			// Start from a store emptied by sweeping far in the future; the
			// same store object keeps any stale internal state, which is
			// part of what is under test.
			s.Sweep(at(1 << 30))
		}
		m := &model{l: l, keys: state{}}
		r := rand.New(rand.NewPCG(uint64(seed), 42))
		now := at(0).Add(time.Duration(seed) * time.Hour * 24 * 365)
		payloads := [][]byte{nil, []byte("a"), []byte("b"), []byte("ab"),
			[]byte("service at 192.0.2.1:4000"), bytes.Repeat([]byte("w"), l.MaxValueSize/2),
			bytes.Repeat([]byte("y"), l.MaxValueSize+1), []byte("c")}
		// Large values, so that the bytes fill up before the records do.
		var large [][]byte
		for i := range 6 {
			large = append(large, bytes.Repeat([]byte{'p' + byte(i)}, l.MaxValueSize-7*i))
		}
		// Hot keys and a busy publisher, so that the bounds of a key and of
		// a publisher are reached too.
		pickKey := func() id.ID {
			if r.IntN(2) == 0 {
				return key(r.IntN(3))
			}
			return key(r.IntN(numKeys))
		}
		pickPub := func() id.ID {
			if r.IntN(3) == 0 {
				return pub(0)
			}
			return pub(r.IntN(numPubs))
		}
		for step := range steps {
			// Odd seeds move the clock slower, so that more records are alive
			// at once and the bounds of records bind.
			if r.IntN(5+20*(seed%2)) == 0 {
				now = now.Add(time.Duration(1+r.IntN(5000)) * time.Millisecond)
			}
			k := pickKey()
			where := fmt.Sprintf("seed %d step %d", seed, step)
			switch op := r.IntN(20); {
			case op < 13:
				src := walkSources[r.IntN(len(walkSources))]
				v := store.Value{Publisher: pickPub(), Version: uint64(r.IntN(5)),
					Expires: now.Add(time.Duration(r.IntN(60_000)-2000) * time.Millisecond)}
				switch {
				case r.IntN(7) == 0:
					v.Deleted = true
					if r.IntN(4) == 0 {
						v.Data = []byte("data a tombstone does not keep")
					}
				case (!src.IsValid() && r.IntN(3) > 0) || r.IntN(8) == 0:
					// Mostly from the node itself, which can fill the
					// store's bytes; a source would mostly hit its quota.
					v.Data = large[r.IntN(len(large))]
				default:
					v.Data = payloads[r.IntN(len(payloads))]
				}
				// A few enveloped records, which beat plain ones whatever
				// the versions (few, so that the plain rules are still
				// reached between plain records).
				v.Envelope = r.IntN(12) == 0
				kind, want := m.put(k, v, src, now)
				got := outcomeOf(put(s, k, v, src, now))
				if got.String() != want.String() {
					t.Fatalf("%s: Put(%s, %s, from %v, now %v) = %v, model says %v (%s)",
						where, k.Short(), describe(v), src, now, got, want, kind)
				}
				outcomes[kind]++
				compareRecords(t, where+" after Put", s, m, k, now)
			case op < 15:
				want := m.records(k, now, false)
				if got := s.Get(k, now, nil); !sameAll(got, want) {
					t.Fatalf("%s: Get(%s, %v) = %s, model says %s", where, k.Short(), now, describeAll(got), describeAll(want))
				}
			case op < 16:
				p := pickPub()
				got, gok := s.Lookup(k, p, now)
				want, wok := m.lookup(k, p, now)
				if gok != wok || (gok && !same(got, want)) {
					t.Fatalf("%s: Lookup(%s, %s) = %s, %v; model says %s, %v", where, k.Short(), p.Short(), describe(got), gok, describe(want), wok)
				}
			case op < 17:
				if got, want := s.Sweep(now), m.sweep(now); got != want {
					t.Fatalf("%s: Sweep(%v) = %d, model says %d", where, now, got, want)
				}
			case op < 18:
				got, gok := s.NextExpiry()
				want, wok := m.nextExpiry()
				if gok != wok || !got.Equal(want) {
					t.Fatalf("%s: NextExpiry() = %v, %v; model says %v, %v", where, got, gok, want, wok)
				}
			case op < 19:
				compareRecords(t, where, s, m, k, now)
			default:
				got := keySet(t, s)
				if len(got) != len(m.keys) {
					t.Fatalf("%s: Keys reported %d keys, model holds %d", where, len(got), len(m.keys))
				}
				for k := range m.keys {
					if !got[k] {
						t.Fatalf("%s: Keys did not report %s", where, k.Short())
					}
				}
				if asc, want := ascended(s, id.ID{}), sortedKeys(t, s, id.ID{}); !slices.Equal(asc, want) {
					t.Fatalf("%s: Ascend reported %d keys, want the %d held in key order", where, len(asc), len(want))
				}
			}
			if got, want := s.Len(), m.len(); got != want {
				t.Fatalf("%s: Len() = %d, model says %d", where, got, want)
			}
			if got, want := s.Bytes(), m.bytes(); got != want {
				t.Fatalf("%s: Bytes() = %d, model says %d", where, got, want)
			}
		}
		for i := range numKeys {
			compareRecords(t, fmt.Sprintf("seed %d end", seed), s, m, key(i), now)
		}
	}
	// The walk must have reached every rule, or it proves less than it
	// claims.
	want := []string{"new value", "new tombstone", "replaced by a higher version", "tombstone beats the value of its version",
		"refresh extends", "refresh keeps the later expiry", "stale: lower version", "stale: value at a tombstone's version",
		"stale: other bytes", "too large", "expired", "refresh extends, the charge moves", "replaced by a higher version, the charge moves",
		"new value after a sweep", "envelope beats plain", "stale: plain after an envelope"}
	for _, b := range []string{"MaxPerKey", "MaxBytesPerKey", "MaxPerKeyPerSource", "MaxBytesPerKeyPerSource",
		"MaxPerKeyPerSite", "MaxBytesPerKeyPerSite", "MaxPerPublisher", "MaxPerSource", "MaxBytesPerSource",
		"MaxPerSite", "MaxBytesPerSite", "MaxValues", "MaxBytes"} {
		want = append(want, "refused "+b)
	}
	for _, o := range want {
		if outcomes[o] == 0 {
			t.Errorf("no Put in the random walk ended with %q", o)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

// compareRecords checks that Records(k, now) is what the model holds.
func compareRecords(t *testing.T, where string, s store.Store, m *model, k id.ID, now time.Time) {
	t.Helper()
	got, want := s.Records(k, now, nil), m.records(k, now, true)
	if !sameAll(got, want) {
		t.Fatalf("%s: Records(%s, %v) = %s, model says %s", where, k.Short(), now, describeAll(got), describeAll(want))
	}
}

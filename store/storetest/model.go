package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
)

// model is the Store contract written as plainly as possible: linear scans,
// no heap, no counters, no cleverness; every quota is recomputed from the
// values themselves. testMatchesModel drives a store and the model with the
// same random operations and compares every answer.
type model struct {
	l    store.Limits
	keys map[id.ID][]mval
}

// mval is a stored value and the source it is charged to.
type mval struct {
	v   store.Value
	src netip.Prefix // the zero Prefix for the node itself
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

// groupsOf lists the groups a value charged to the source g is charged to:
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

// chargedTo reports whether a value charged to the source src counts
// against the group g.
func chargedTo(src, g netip.Prefix) bool { return slices.Contains(groupsOf(src), g) }

// quotas returns the limits of the group g: per key, values, bytes.
func (m *model) quotas(g netip.Prefix) (perKey, values, bytes int) {
	if g.Bits() == 48 {
		return m.l.MaxPerKeyPerSite, m.l.MaxPerSite, m.l.MaxBytesPerSite
	}
	return m.l.MaxPerKeyPerSource, m.l.MaxPerSource, m.l.MaxBytesPerSource
}

// kindOf names g's kind of group, for the outcomes of the walk.
func kindOf(g netip.Prefix) string {
	if g.Bits() == 48 {
		return "site"
	}
	return "source"
}

func (m *model) len() int {
	n := 0
	for _, vals := range m.keys {
		n += len(vals)
	}
	return n
}

func (m *model) bytes() int {
	n := 0
	for _, vals := range m.keys {
		for _, v := range vals {
			n += len(v.v.Data)
		}
	}
	return n
}

// usage counts the values and bytes charged to the group g over all keys.
func (m *model) usage(g netip.Prefix) (values, bytes int) {
	for _, vals := range m.keys {
		for _, v := range vals {
			if chargedTo(v.src, g) {
				values++
				bytes += len(v.v.Data)
			}
		}
	}
	return values, bytes
}

// purge deletes key's values expired at now and returns how many it deleted.
func (m *model) purge(k id.ID, now time.Time) int {
	vals := m.keys[k]
	kept := slices.DeleteFunc(slices.Clone(vals), func(v mval) bool { return !v.v.Expires.After(now) })
	if len(kept) == 0 {
		delete(m.keys, k)
	} else {
		m.keys[k] = kept
	}
	return len(vals) - len(kept)
}

func (m *model) sweep(now time.Time) int {
	n := 0
	for k := range m.keys {
		n += m.purge(k, now)
	}
	return n
}

// put returns nil or the sentinel the store must return, annotated with
// which rule decided, so that the walk can tell it has tried every rule.
func (m *model) put(k id.ID, data []byte, src netip.Addr, expires, now time.Time) (kind string, err error) {
	switch {
	case len(data) > m.l.MaxValueSize:
		return "too large", store.ErrTooLarge
	case !expires.After(now):
		return "expired", store.ErrExpired
	}
	m.purge(k, now)
	g := groupOf(src)
	// keyOver names a group of g holding more than its quota of k's
	// values, and overAll one holding more than its quota over the store,
	// counting every value as charged where the model says it is now.
	keyOver := func() (string, bool) {
		for _, h := range groupsOf(g) {
			n := 0
			for _, v := range m.keys[k] {
				if chargedTo(v.src, h) {
					n++
				}
			}
			if perKey, _, _ := m.quotas(h); n > perKey {
				return kindOf(h), true
			}
		}
		return "", false
	}
	overAll := func() (string, bool) {
		for _, h := range groupsOf(g) {
			n, b := m.usage(h)
			if _, values, bytes := m.quotas(h); n > values {
				return kindOf(h) + " quota of values", true
			} else if b > bytes {
				return kindOf(h) + " quota of bytes", true
			}
		}
		return "", false
	}
	for i, v := range m.keys[k] {
		if !bytes.Equal(v.v.Data, data) {
			continue
		}
		switch {
		case !expires.After(v.v.Expires):
			return "refresh keeps the later expiry", nil
		case v.src == g:
			m.keys[k][i].v.Expires = expires
			return "refresh extends", nil
		}
		// Another source extends it: it takes over the charge if it then
		// stays within its quotas. The key holds no expired value, so a
		// sweep leaves index i where it is.
		m.keys[k][i].src = g
		if kind, over := keyOver(); over {
			m.keys[k][i].src = v.src
			return "refresh by another over its " + kind + " quota under the key", store.ErrQuota
		}
		if _, over := overAll(); over {
			m.sweep(now)
			if kind, over := overAll(); over {
				m.keys[k][i].src = v.src
				return "refresh by another over its " + kind, store.ErrQuota
			}
		}
		m.keys[k][i].v.Expires = expires
		return "refresh moves the charge", nil
	}
	vals := m.keys[k]
	if len(vals) >= m.l.MaxPerKey {
		return "key full", store.ErrKeyFull
	}
	// Try the new value in place, as the refresh does, and take it back if
	// a limit is passed.
	m.keys[k] = append(slices.Clone(vals), mval{v: store.Value{Data: bytes.Clone(data), Expires: expires}, src: g})
	undo := func() {
		if len(vals) == 0 {
			delete(m.keys, k)
		} else {
			m.keys[k] = vals
		}
	}
	if kind, over := keyOver(); over {
		undo()
		return kind + " quota under the key", store.ErrQuota
	}
	check := func() (string, error) {
		if kind, over := overAll(); over {
			return kind, store.ErrQuota
		}
		if m.len() > m.l.MaxValues {
			return "full of values", store.ErrFull
		}
		if m.bytes() > m.l.MaxBytes {
			return "full of bytes", store.ErrFull
		}
		return "", nil
	}
	if _, err := check(); err != nil {
		m.sweep(now)
		if kind, err := check(); err != nil {
			// The sweep left k alone: it holds no expired value.
			vals = m.keys[k][:len(m.keys[k])-1]
			undo()
			return kind, err
		}
	}
	if g.IsValid() {
		return "new from a source", nil
	}
	return "new from the node itself", nil
}

func (m *model) get(k id.ID, now time.Time) []store.Value {
	var out []store.Value
	for _, v := range m.keys[k] {
		if v.v.Expires.After(now) {
			out = append(out, v.v)
		}
	}
	return out
}

func (m *model) nextExpiry() (time.Time, bool) {
	var min time.Time
	ok := false
	for _, vals := range m.keys {
		for _, v := range vals {
			if !ok || v.v.Expires.Before(min) {
				min, ok = v.v.Expires, true
			}
		}
	}
	return min, ok
}

// sentinelOf names the sentinel err wraps, for comparing outcomes.
func sentinelOf(err error) string {
	for _, s := range []error{store.ErrTooLarge, store.ErrFull, store.ErrKeyFull, store.ErrQuota, store.ErrExpired, store.ErrClosed} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err != nil {
		return "unexpected error: " + err.Error()
	}
	return "nil"
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

// testMatchesModel runs random operations, chosen to crowd every limit and
// quota, on the store and on the model, and fails at the first answer that
// differs. Because every later answer depends on them, this checks the
// store's accounting of values, bytes and sources through purges, sweeps
// and refreshes against the model's recount from scratch.
func testMatchesModel(t *testing.T, s store.Store) {
	const (
		seeds   = 6
		steps   = 4000
		numKeys = 8 // 8 keys x MaxPerKey 7 > MaxValues 41, so the store fills
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
		m := &model{l: l, keys: map[id.ID][]mval{}}
		r := rand.New(rand.NewPCG(uint64(seed), 42))
		now := at(0).Add(time.Duration(seed) * time.Hour * 24 * 365)
		payloads := [][]byte{nil, []byte("a"), []byte("b"), []byte("ab"), []byte("ba"),
			[]byte("service at 192.0.2.1:4000"), bytes.Repeat([]byte("w"), l.MaxValueSize/2),
			bytes.Repeat([]byte("y"), l.MaxValueSize+1), []byte("c"), []byte("d"), []byte("e")}
		// Large values, so that the bytes fill up before the values do.
		var large [][]byte
		for i := range 8 {
			large = append(large, bytes.Repeat([]byte{'p' + byte(i)}, l.MaxValueSize-5*i))
		}
		for step := range steps {
			// Odd seeds move the clock slower, so that more values are alive
			// at once and the quotas of values bind.
			if r.IntN(5+20*(seed%2)) == 0 {
				now = now.Add(time.Duration(1+r.IntN(5000)) * time.Millisecond)
			}
			k := key(r.IntN(numKeys))
			where := fmt.Sprintf("seed %d step %d", seed, step)
			switch op := r.IntN(20); {
			case op < 12:
				src := walkSources[r.IntN(len(walkSources))]
				data := payloads[r.IntN(len(payloads))]
				// Mostly from the node itself, which can fill the store's
				// bytes; a source would mostly hit its own quota of bytes.
				if (!src.IsValid() && r.IntN(3) > 0) || r.IntN(10) == 0 {
					data = large[r.IntN(len(large))]
				}
				expires := now.Add(time.Duration(r.IntN(60_000)-2000) * time.Millisecond)
				kind, err := m.put(k, data, src, expires, now)
				want := sentinelOf(err)
				got := sentinelOf(s.Put(k, data, src, expires, now))
				if got != want {
					t.Fatalf("%s: Put(%s, %q, from %v, %v, %v) = %s, model says %s (%s)",
						where, k.Short(), data, src, expires, now, got, want, kind)
				}
				outcomes[kind]++
			case op < 16:
				compareGet(t, where, s, m, k, now)
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
			}
			if got, want := s.Len(), m.len(); got != want {
				t.Fatalf("%s: Len() = %d, model says %d", where, got, want)
			}
		}
		for i := range numKeys {
			compareGet(t, fmt.Sprintf("seed %d end", seed), s, m, key(i), now)
		}
	}
	// The walk must have reached every rule, or it proves less than it
	// claims.
	for _, o := range []string{"new from a source", "new from the node itself", "refresh extends",
		"refresh keeps the later expiry", "refresh moves the charge", "refresh by another over its source quota under the key",
		"refresh by another over its site quota under the key", "refresh by another over its source quota of values",
		"refresh by another over its source quota of bytes", "refresh by another over its site quota of values",
		"refresh by another over its site quota of bytes",
		"too large", "expired", "key full", "source quota under the key", "site quota under the key",
		"source quota of values", "source quota of bytes", "site quota of values", "site quota of bytes",
		"full of values", "full of bytes"} {
		if outcomes[o] == 0 {
			t.Errorf("no Put in the random walk ended with %q; outcomes: %v", o, outcomes)
		}
	}
	t.Logf("outcomes: %v", outcomes)
}

func compareGet(t *testing.T, where string, s store.Store, m *model, k id.ID, now time.Time) {
	t.Helper()
	got, want := s.Get(k, now, nil), m.get(k, now)
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		same = bytes.Equal(got[i].Data, want[i].Data) && got[i].Expires.Equal(want[i].Expires)
	}
	if !same {
		t.Fatalf("%s: Get(%s, %v) = %v, model says %v", where, k.Short(), now, got, want)
	}
}

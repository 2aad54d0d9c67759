package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
)

// model is the Store contract written as plainly as possible: linear scans,
// no heap, no cleverness. testMatchesModel drives a store and the model with
// the same random operations and compares every answer.
type model struct {
	l    store.Limits
	keys map[id.ID][]store.Value
}

func (m *model) len() int {
	n := 0
	for _, vals := range m.keys {
		n += len(vals)
	}
	return n
}

// purge deletes key's values expired at now and returns how many it deleted.
func (m *model) purge(k id.ID, now time.Time) int {
	vals := m.keys[k]
	kept := slices.DeleteFunc(slices.Clone(vals), func(v store.Value) bool { return !v.Expires.After(now) })
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

func (m *model) put(k id.ID, data []byte, expires, now time.Time) error {
	switch {
	case len(data) > m.l.MaxValueSize:
		return store.ErrTooLarge
	case !expires.After(now):
		return store.ErrExpired
	}
	m.purge(k, now)
	vals := m.keys[k]
	for i := range vals {
		if bytes.Equal(vals[i].Data, data) {
			vals[i].Expires = expires
			return nil
		}
	}
	if len(vals) >= m.l.MaxPerKey {
		return store.ErrKeyFull
	}
	if m.len() >= m.l.MaxValues && m.sweep(now) == 0 {
		return store.ErrFull
	}
	m.keys[k] = append(vals, store.Value{Data: bytes.Clone(data), Expires: expires})
	return nil
}

func (m *model) get(k id.ID, now time.Time) []store.Value {
	var out []store.Value
	for _, v := range m.keys[k] {
		if v.Expires.After(now) {
			out = append(out, v)
		}
	}
	return out
}

func (m *model) nextExpiry() (time.Time, bool) {
	var min time.Time
	ok := false
	for _, vals := range m.keys {
		for _, v := range vals {
			if !ok || v.Expires.Before(min) {
				min, ok = v.Expires, true
			}
		}
	}
	return min, ok
}

// sentinelOf names the sentinel err wraps, for comparing outcomes.
func sentinelOf(err error) string {
	for _, s := range []error{store.ErrTooLarge, store.ErrFull, store.ErrKeyFull, store.ErrExpired, store.ErrClosed} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	if err != nil {
		return "unexpected error: " + err.Error()
	}
	return "nil"
}

// testMatchesModel runs random operations, chosen to crowd the limits, on the
// store and on the model, and fails at the first answer that differs.
func testMatchesModel(t *testing.T, s store.Store) {
	const (
		seeds   = 4
		steps   = 1500
		numKeys = 8 // 8 keys x MaxPerKey 7 > MaxValues 41, so the store fills
	)
	l := Limits()
	var outcomes = map[string]int{}
	for seed := range seeds {
		if seed > 0 {
			// Start from a store emptied by sweeping far in the future; the
			// same store object keeps any stale internal state, which is
			// part of what is under test.
			s.Sweep(at(1 << 30))
		}
		m := &model{l: l, keys: map[id.ID][]store.Value{}}
		r := rand.New(rand.NewPCG(uint64(seed), 42))
		now := at(0).Add(time.Duration(seed) * time.Hour * 24 * 365)
		payloads := [][]byte{nil, []byte("a"), []byte("b"), []byte("ab"), []byte("ba"),
			[]byte("service at 192.0.2.1:4000"), bytes.Repeat([]byte("z"), l.MaxValueSize),
			bytes.Repeat([]byte("y"), l.MaxValueSize+1), []byte("c"), []byte("d"), []byte("e")}
		for step := range steps {
			if r.IntN(5) == 0 {
				now = now.Add(time.Duration(1+r.IntN(5000)) * time.Millisecond)
			}
			k := key(r.IntN(numKeys))
			where := fmt.Sprintf("seed %d step %d", seed, step)
			switch op := r.IntN(20); {
			case op < 12:
				data := payloads[r.IntN(len(payloads))]
				expires := now.Add(time.Duration(r.IntN(60_000)-2000) * time.Millisecond)
				want := sentinelOf(m.put(k, data, expires, now))
				got := sentinelOf(s.Put(k, data, expires, now))
				if got != want {
					t.Fatalf("%s: Put(%s, %q, %v, %v) = %s, model says %s", where, k.Short(), data, expires, now, got, want)
				}
				outcomes[got]++
			case op < 16:
				compareGet(t, where, s, m, k, now)
			case op < 17:
				if got, want := s.Sweep(now), m.sweep(now); got != want {
					t.Fatalf("%s: Sweep(%v) = %d, model says %d", where, now, got, want)
				}
				outcomes["sweep"]++
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
	// The walk must have reached every outcome, or it proves less than it
	// claims.
	for _, o := range []string{"nil", store.ErrTooLarge.Error(), store.ErrExpired.Error(),
		store.ErrKeyFull.Error(), store.ErrFull.Error()} {
		if outcomes[o] == 0 {
			t.Errorf("no Put in the random walk ended with %s; outcomes: %v", o, outcomes)
		}
	}
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

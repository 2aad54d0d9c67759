package store

import (
	"bytes"
	"fmt"
	"sync"
	"time"

	"github.com/dhtkit/dht/id"
)

// Memory is a Store that keeps everything in memory. It is safe for
// concurrent use; Gets share a read lock, so they do not serialize. Create it
// with NewMemory; the zero value is not usable.
//
// An empty Memory is about a hundred bytes and allocates nothing until the
// first Put, because a simulated network holds one store per node.
type Memory struct {
	mu     sync.RWMutex
	limits Limits
	keys   map[id.ID][]Value // insertion order per key; nil while empty
	n      int               // values in keys, expired ones included
	exp    expiryHeap        // one entry per stored value, plus stale ones
	closed bool
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store bounded by l; zero fields of l
// take their defaults.
func NewMemory(l Limits) *Memory {
	return &Memory{limits: l.WithDefaults()}
}

// Limits returns the limits the store enforces, defaults filled in.
func (m *Memory) Limits() Limits { return m.limits }

// Put implements Store.
func (m *Memory) Put(key id.ID, data []byte, expires, now time.Time) error {
	// Drop the monotonic reading so that every comparison, the heap's
	// included, is on the wall clock.
	expires = expires.Round(0)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if len(data) > m.limits.MaxValueSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), m.limits.MaxValueSize)
	}
	if !expires.After(now) {
		return fmt.Errorf("%w: expires %s, now %s", ErrExpired,
			expires.Format(time.RFC3339Nano), now.Round(0).Format(time.RFC3339Nano))
	}
	vals := m.purgeKey(key, now)
	for i := range vals {
		if bytes.Equal(vals[i].Data, data) {
			vals[i].Expires = expires
			m.push(key, expires)
			return nil
		}
	}
	if len(vals) >= m.limits.MaxPerKey {
		return fmt.Errorf("%w: limit %d per key", ErrKeyFull, m.limits.MaxPerKey)
	}
	if m.n >= m.limits.MaxValues && m.sweepLocked(now) == 0 {
		return fmt.Errorf("%w: limit %d values", ErrFull, m.limits.MaxValues)
	}
	// The sweep left vals alone: purgeKey already removed this key's values
	// expired at now.
	var v Value
	if len(data) > 0 {
		v.Data = bytes.Clone(data)
	}
	v.Expires = expires
	if m.keys == nil {
		m.keys = make(map[id.ID][]Value)
	}
	m.keys[key] = append(vals, v)
	m.n++
	m.push(key, expires)
	return nil
}

// purgeKey deletes key's values expired at now and returns what remains. The
// caller holds the write lock.
func (m *Memory) purgeKey(key id.ID, now time.Time) []Value {
	vals, ok := m.keys[key]
	if !ok {
		return nil
	}
	kept := vals[:0]
	for _, v := range vals {
		if v.Expires.After(now) {
			kept = append(kept, v)
		}
	}
	if len(kept) == len(vals) {
		return vals
	}
	// Clear the tail so the deleted Data can be collected. This writes Value
	// headers in the store's own slice, never the bytes handed out by Get.
	clear(vals[len(kept):])
	m.n -= len(vals) - len(kept)
	if len(kept) == 0 {
		delete(m.keys, key)
		if m.n == 0 {
			m.release()
		}
		return nil
	}
	m.keys[key] = kept
	return kept
}

// release drops the map and the heap once the store is empty: Go maps never
// shrink, and most simulated stores empty out again.
func (m *Memory) release() {
	m.keys = nil
	m.exp = nil
}

// Get implements Store.
func (m *Memory) Get(key id.ID, now time.Time, dst []Value) []Value {
	m.mu.RLock()
	for _, v := range m.keys[key] {
		if v.Expires.After(now) {
			dst = append(dst, v)
		}
	}
	m.mu.RUnlock()
	return dst
}

// Sweep implements Store.
func (m *Memory) Sweep(now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sweepLocked(now)
}

// sweepLocked pops every heap entry expired at now and purges its key. Every
// stored value has an entry carrying its current expiry, so every expired
// value's key is visited; stale entries cost one harmless purge.
func (m *Memory) sweepLocked(now time.Time) int {
	before := m.n
	at := stampOf(now)
	for len(m.exp) > 0 && !at.before(m.exp[0].at) {
		key := m.exp.pop().key
		m.purgeKey(key, now) // may release the heap; the loop condition copes
	}
	return before - m.n
}

// NextExpiry implements Store. It takes the write lock because it discards
// stale heap entries it finds on top.
func (m *Memory) NextExpiry() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.exp) > 0 {
		top := m.exp[0]
		for _, v := range m.keys[top.key] {
			if stampOf(v.Expires) == top.at {
				return v.Expires, true
			}
		}
		m.exp.pop() // no value carries this expiry any more
	}
	return time.Time{}, false
}

// Len implements Store.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.n
}

// Keys implements Store. It copies the keys under the read lock and calls fn
// after releasing it, so that fn may use the store.
func (m *Memory) Keys(fn func(key id.ID) bool) {
	m.mu.RLock()
	keys := make([]id.ID, 0, len(m.keys))
	for k := range m.keys {
		keys = append(keys, k)
	}
	m.mu.RUnlock()
	for _, k := range keys {
		if !fn(k) {
			return
		}
	}
}

// Close implements Store. It drops every value.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.n = 0
	m.release()
	return nil
}

// push records that a value of key expires at t. Superseded entries stay in
// the heap until they surface; when they outnumber the live values the heap
// is rebuilt, which keeps it within 2*Len+compactSlack entries at an
// amortized O(1) cost per push.
func (m *Memory) push(key id.ID, t time.Time) {
	m.exp.push(expiryEntry{at: stampOf(t), key: key})
	if len(m.exp) > 2*m.n+compactSlack {
		m.rebuildHeap()
	}
}

// compactSlack keeps tiny stores from rebuilding their heap on every refresh.
const compactSlack = 32

// rebuildHeap replaces the heap with exactly one entry per stored value.
func (m *Memory) rebuildHeap() {
	h := m.exp[:0]
	if cap(h) > 4*(m.n+compactSlack) {
		h = make(expiryHeap, 0, m.n+compactSlack) // give back a large backing array
	}
	for k, vals := range m.keys {
		for _, v := range vals {
			h = append(h, expiryEntry{at: stampOf(v.Expires), key: k})
		}
	}
	h.init()
	m.exp = h
}

// stamp is an instant as Unix seconds and nanoseconds: exact for every
// time.Time (UnixNano overflows outside 1678-2262) and free of pointers, so
// the heap costs the garbage collector nothing to scan.
type stamp struct {
	sec  int64
	nsec int32
}

func stampOf(t time.Time) stamp { return stamp{t.Unix(), int32(t.Nanosecond())} }

func (a stamp) before(b stamp) bool {
	return a.sec < b.sec || (a.sec == b.sec && a.nsec < b.nsec)
}

type expiryEntry struct {
	at  stamp
	key id.ID
}

// expiryHeap is a binary min-heap on at. It is written out rather than built
// on container/heap, whose interface boxes every pushed entry.
type expiryHeap []expiryEntry

func (h *expiryHeap) push(e expiryEntry) {
	*h = append(*h, e)
	h.up(len(*h) - 1)
}

func (h *expiryHeap) pop() expiryEntry {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	*h = s[:last]
	h.down(0)
	return top
}

func (h expiryHeap) init() {
	for i := len(h)/2 - 1; i >= 0; i-- {
		h.down(i)
	}
}

func (h expiryHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !h[i].at.before(h[p].at) {
			return
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (h expiryHeap) down(i int) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if r := c + 1; r < len(h) && h[r].at.before(h[c].at) {
			c = r
		}
		if !h[c].at.before(h[i].at) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

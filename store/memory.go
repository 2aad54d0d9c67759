package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/dhtkit/dht/id"
)

// Memory is a Store that keeps everything in memory. It is safe for
// concurrent use; Gets share a read lock, so they do not serialize. Create it
// with NewMemory; the zero value is not usable.
//
// An empty Memory is under two hundred bytes and allocates nothing until the
// first Put, because a simulated network holds one store per node. Its
// table of sources and sites holds only groups that hold stored values, so
// it never has more than two entries per stored value.
type Memory struct {
	mu     sync.RWMutex
	limits Limits
	keys   map[id.ID][]entry // insertion order per key; nil while empty
	n      int               // values in keys, expired ones included
	bytes  int               // their len(Data), summed
	srcs   map[source]usage  // what each source and site holds, for those holding values; nil while empty
	exp    expiryHeap        // one entry per stored value, plus stale ones
	closed bool
}

// entry is a stored value and the source it is charged to (and, through
// the source, its site).
type entry struct {
	Value
	src source
}

// usage is what one source or site holds: values and their bytes, expired
// ones not yet deleted included.
type usage struct {
	values, bytes int
}

// source is a group a sender counts in (see Store), in a form that is cheap
// to hash and free of pointers: the IPv4 address, or the first 64 bits of
// the IPv6 address; or, for a site, the first 48 bits of it, the rest zero.
// The zero source is the node itself.
type source struct {
	bits uint64
	kind uint8
}

// The kinds of source.
const (
	kindSelf = 0  // the node itself
	kind4    = 4  // an IPv4 address
	kind6    = 6  // an IPv6 /64
	kindSite = 48 // an IPv6 /48, the site of its /64s
)

func sourceOf(a netip.Addr) source {
	switch {
	case !a.IsValid():
		return source{}
	case a.Is4() || a.Is4In6():
		b := a.Unmap().As4()
		return source{bits: uint64(binary.BigEndian.Uint32(b[:])), kind: kind4}
	default:
		b := a.As16() // the zone, if any, is not part of it
		return source{bits: binary.BigEndian.Uint64(b[:8]), kind: kind6}
	}
}

// site returns the site s is part of, and the node itself (no group) for a
// source that has none.
func (s source) site() source {
	if s.kind != kind6 {
		return source{}
	}
	return source{bits: s.bits &^ 0xffff, kind: kindSite}
}

// groups returns the groups a value of s is charged to: s and its site, with
// the zero source standing for none.
func (s source) groups() [2]source { return [2]source{s, s.site()} }

// in reports whether a value charged to c is charged to the group g.
func (g source) in(c source) bool { return g.kind != kindSelf && (g == c || g == c.site()) }

// String names the source as a publisher would recognize it: the IPv4
// address, or the IPv6 /64 or /48.
func (s source) String() string {
	switch s.kind {
	case kind4:
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(s.bits))
		return netip.AddrFrom4(b).String()
	case kind6, kindSite:
		var b [16]byte
		binary.BigEndian.PutUint64(b[:8], s.bits)
		bits := 64
		if s.kind == kindSite {
			bits = 48
		}
		return netip.PrefixFrom(netip.AddrFrom16(b), bits).String()
	}
	return "the node itself"
}

// quotas returns the limits of the group g: per key, values, bytes.
func (m *Memory) quotas(g source) (perKey, values, bytes int) {
	l := &m.limits
	if g.kind == kindSite {
		return l.MaxPerKeyPerSite, l.MaxPerSite, l.MaxBytesPerSite
	}
	return l.MaxPerKeyPerSource, l.MaxPerSource, l.MaxBytesPerSource
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
func (m *Memory) Put(key id.ID, data []byte, src netip.Addr, expires, now time.Time) error {
	// Drop the monotonic reading so that every comparison, the heap's
	// included, is on the wall clock.
	expires = expires.Round(0)
	s := sourceOf(src)
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
			return m.refresh(key, vals, i, s, expires, now)
		}
	}
	if len(vals) >= m.limits.MaxPerKey {
		return fmt.Errorf("%w: limit %d per key", ErrKeyFull, m.limits.MaxPerKey)
	}
	// A new value is charged to all of s's groups: none of them is spared.
	if err := m.keyRoom(vals, s, source{}); err != nil {
		return err
	}
	// Expired values are the only ones ever deleted to make room, and one
	// sweep deletes them all.
	if !m.fits(s, source{}, len(data), true) && (m.sweepLocked(now) == 0 || !m.fits(s, source{}, len(data), true)) {
		return m.noRoom(s, source{}, len(data), true)
	}
	// The sweep left vals alone: purgeKey already removed this key's values
	// expired at now.
	v := entry{src: s}
	if len(data) > 0 {
		v.Data = bytes.Clone(data)
	}
	v.Expires = expires
	if m.keys == nil {
		m.keys = make(map[id.ID][]entry)
	}
	m.keys[key] = append(vals, v)
	m.n++
	m.bytes += len(data)
	m.charge(s, len(data))
	m.push(key, expires)
	return nil
}

// refresh extends vals[i], which holds the bytes s sent, to expires if that
// is later, and moves its charge to s if another source was charged (see
// Store.Put). A refresh by the charged source allocates nothing.
func (m *Memory) refresh(key id.ID, vals []entry, i int, s source, expires, now time.Time) error {
	v := &vals[i]
	// A refresh only extends: a STORE from anyone must not be able to cut a
	// value's life short.
	if !expires.After(v.Expires) {
		return nil
	}
	if c := v.src; c != s {
		// Groups s shares with c are charged for the value already.
		if err := m.keyRoom(vals, s, c); err != nil {
			return fmt.Errorf("%w (extending another source's value charges it to you)", err)
		}
		size := len(v.Data)
		// The sweep leaves vals alone: purgeKey already removed this key's
		// values expired at now, and none of the others is touched.
		if !m.fits(s, c, size, false) && (m.sweepLocked(now) == 0 || !m.fits(s, c, size, false)) {
			return fmt.Errorf("%w (extending another source's value charges it to you)", m.noRoom(s, c, size, false))
		}
		m.uncharge(c, size)
		m.charge(s, size)
		v.src = s
	}
	v.Expires = expires
	m.push(key, expires)
	return nil
}

// keyRoom reports, as an ErrQuota error, whether a group of s other than
// those a value charged to spared is charged for already holds its quota
// of vals, the key's values.
func (m *Memory) keyRoom(vals []entry, s, spared source) error {
	for _, g := range s.groups() {
		if g.kind == kindSelf || g.in(spared) {
			continue
		}
		held := 0
		for i := range vals {
			if g.in(vals[i].src) {
				held++
			}
		}
		if limit, _, _ := m.quotas(g); held >= limit {
			return fmt.Errorf("%w: %d values from %s under this key, limit %d per key",
				ErrQuota, held, g, limit)
		}
	}
	return nil
}

// fits reports whether s's groups, those a value charged to spared is
// charged to aside, have room for another value of size bytes, and, if
// store is set, whether the store's capacity has. The comparisons subtract,
// because what is held never exceeds its limit and so cannot overflow.
func (m *Memory) fits(s, spared source, size int, store bool) bool {
	for _, g := range s.groups() {
		if g.kind == kindSelf || g.in(spared) {
			continue
		}
		_, values, bytes := m.quotas(g)
		if u := m.srcs[g]; u.values >= values || size > bytes-u.bytes {
			return false
		}
	}
	l := &m.limits
	return !store || (m.n < l.MaxValues && size <= l.MaxBytes-m.bytes)
}

// noRoom explains why fits said no, quotas first: a source over its share
// learns that, whether or not the store is also full.
func (m *Memory) noRoom(s, spared source, size int, store bool) error {
	for _, g := range s.groups() {
		if g.kind == kindSelf || g.in(spared) {
			continue
		}
		_, values, bytes := m.quotas(g)
		u := m.srcs[g]
		if u.values >= values {
			return fmt.Errorf("%w: %d values from %s, limit %d", ErrQuota, u.values, g, values)
		}
		if size > bytes-u.bytes {
			return fmt.Errorf("%w: %d bytes from %s and %d more, limit %d bytes",
				ErrQuota, u.bytes, g, size, bytes)
		}
	}
	l := &m.limits
	if !store {
		// Not reached: fits checks nothing else without store.
		return fmt.Errorf("%w: no room for %d bytes from %s", ErrQuota, size, s)
	}
	if m.n >= l.MaxValues {
		return fmt.Errorf("%w: limit %d values", ErrFull, l.MaxValues)
	}
	return fmt.Errorf("%w: %d bytes stored and %d more, limit %d bytes", ErrFull, m.bytes, size, l.MaxBytes)
}

// charge adds a value of size bytes to the usage of s's groups.
func (m *Memory) charge(s source, size int) {
	for _, g := range s.groups() {
		if g.kind == kindSelf {
			continue
		}
		if m.srcs == nil {
			m.srcs = make(map[source]usage)
		}
		u := m.srcs[g]
		u.values++
		u.bytes += size
		m.srcs[g] = u
	}
}

// uncharge takes a value of size bytes off the usage of s's groups, and
// forgets a group left holding nothing, so that the table stays as small as
// the set of groups holding values.
func (m *Memory) uncharge(s source, size int) {
	for _, g := range s.groups() {
		if g.kind == kindSelf {
			continue
		}
		u := m.srcs[g]
		u.values--
		u.bytes -= size
		if u.values <= 0 {
			delete(m.srcs, g)
			continue
		}
		m.srcs[g] = u
	}
}

// purgeKey deletes key's values expired at now, refunding them to their
// sources, and returns what remains. The caller holds the write lock.
func (m *Memory) purgeKey(key id.ID, now time.Time) []entry {
	vals, ok := m.keys[key]
	if !ok {
		return nil
	}
	kept := vals[:0]
	for _, v := range vals {
		if v.Expires.After(now) {
			kept = append(kept, v)
		} else {
			m.refund(&v)
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

// refund takes a deleted value off the totals and off its groups.
func (m *Memory) refund(v *entry) {
	m.bytes -= len(v.Data)
	m.uncharge(v.src, len(v.Data))
}

// release drops the maps and the heap once the store is empty: Go maps never
// shrink, and most simulated stores empty out again.
func (m *Memory) release() {
	m.keys = nil
	m.srcs = nil
	m.exp = nil
}

// Get implements Store.
func (m *Memory) Get(key id.ID, now time.Time, dst []Value) []Value {
	m.mu.RLock()
	vals := m.keys[key]
	for i := range vals {
		if vals[i].Expires.After(now) {
			dst = append(dst, vals[i].Value)
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
	m.bytes = 0
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

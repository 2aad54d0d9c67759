package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/dhtkit/dht/id"
)

// Memory is a Store that keeps everything in memory. It is safe for
// concurrent use; Gets share a read lock, so they do not serialize. Create it
// with NewMemory or NewMemoryObserved; the zero value is not usable.
//
// An empty Memory is under two hundred and fifty bytes and allocates nothing
// until the first Put, because a simulated network holds one store per node.
// Its tables of sources, sites and publishers hold only those that hold
// records, so they never have more than three entries per stored record.
//
// Expiry is indexed by a binary heap with one entry per record change, and
// entries superseded by a later change are dropped when they surface (lazy
// deletion): a Sweep pops only the entries whose instant has come, so it
// costs in proportion to what expired (and to superseded entries that came
// due), never to what the store holds. The heap is rebuilt when superseded
// entries outnumber the records, which keeps it within 2*Len+32 entries.
type Memory struct {
	mu       sync.RWMutex
	limits   Limits
	observe  func(key, publisher id.ID, v *Value, src netip.Addr) // nil for none
	keys     map[id.ID][]entry                                    // per key, in record order; nil while empty
	n        int                                                  // records in keys, expired ones included
	bytes    int                                                  // their len(Data), summed
	pubs     map[id.ID]int                                        // records of each publisher holding any; nil while empty
	srcs     map[source]usage                                     // what each source and site holds, for those holding records; nil while empty
	exp      expiryHeap                                           // at least one entry per record, plus superseded ones
	examined int                                                  // heap entries the last Sweep examined
	closed   bool
	// order is the key order for Ascend, kept only once Ascend has been
	// called (a simulated node that never walks its keys pays nothing).
	order *keyOrder
}

// keyOrder is the key order of a Memory: sorted holds keys in ascending
// order, some perhaps gone since; fresh holds keys added since, unsorted,
// merged in by the next Ascend.
type keyOrder struct {
	sorted, fresh []id.ID
}

// entry is a stored record, its expiry as a stamp (cheaper to compare than a
// time.Time, on the hot path), and the source it is charged to (and, through
// the source, its site).
type entry struct {
	Value
	at  stamp
	src source
}

// sortsBefore reports whether the record (v, p) comes before (w, q) in the
// order of Store: the higher version first, then the lower publisher.
func sortsBefore(v uint64, p id.ID, w uint64, q id.ID) bool {
	if v != w {
		return v > w
	}
	return p.Compare(q) < 0
}

// find returns the index of publisher's record in recs, or -1.
func find(recs []entry, publisher id.ID) int {
	for i := range recs {
		if recs[i].Publisher == publisher {
			return i
		}
	}
	return -1
}

// usage is what one source or site holds: records and their bytes, expired
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

// groups returns the groups a record of s is charged to: s and its site,
// with the zero source standing for none.
func (s source) groups() [2]source { return [2]source{s, s.site()} }

// in reports whether a record charged to c is charged to the group g.
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

// quota is one bound a group is held to: its name in Limits and its value.
type quota struct {
	name  string
	limit int
}

// keyQuotas returns the bounds of the group g under one key: records, bytes.
func (m *Memory) keyQuotas(g source) (values, bytes quota) {
	l := &m.limits
	if g.kind == kindSite {
		return quota{"MaxPerKeyPerSite", l.MaxPerKeyPerSite}, quota{"MaxBytesPerKeyPerSite", l.MaxBytesPerKeyPerSite}
	}
	return quota{"MaxPerKeyPerSource", l.MaxPerKeyPerSource}, quota{"MaxBytesPerKeyPerSource", l.MaxBytesPerKeyPerSource}
}

// storeQuotas returns the bounds of the group g over the store: records, bytes.
func (m *Memory) storeQuotas(g source) (values, bytes quota) {
	l := &m.limits
	if g.kind == kindSite {
		return quota{"MaxPerSite", l.MaxPerSite}, quota{"MaxBytesPerSite", l.MaxBytesPerSite}
	}
	return quota{"MaxPerSource", l.MaxPerSource}, quota{"MaxBytesPerSource", l.MaxBytesPerSource}
}

// over reports whether a write that takes what counts against a bound of
// limit from have (old of it being the replaced record's) to have-old+want
// passes the bound. Only a write that adds can: one that keeps or shrinks
// what counts is never refused, even where a bound was lowered under what is
// held (as Restore allows). It subtracts rather than adds, so that a limit of
// math.MaxInt cannot overflow.
func over(limit, have, old, want int) bool {
	return want > old && want-old > limit-have
}

// limitError builds the refusal for a bound over, Have counting what stays.
func limitError(sentinel error, q quota, have, old, want int, group string) *LimitError {
	return &LimitError{Bound: q.name, Limit: q.limit, Have: have - old, Want: want, Group: group, err: sentinel}
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory store bounded by l; zero fields of l
// take their defaults.
func NewMemory(l Limits) *Memory {
	return &Memory{limits: l.WithDefaults()}
}

// NewMemoryObserved is NewMemory with a hook called, under the store's lock,
// once for each record change: v != nil means (key, publisher) now holds *v
// charged to src (new, replaced, refreshed or tombstoned); v == nil means the
// record was deleted (swept, or found expired by a Put; src is then the zero
// Addr). A Put that changes nothing (refused, or a refresh that extends
// nothing) calls nothing, nor do Restore (for the record it restores) and
// Close. This is what a persistent store builds on: the Memory keeps the
// policy, and the hook writes its decisions down.
//
// v points into the store and is valid only during the call: copy *v to keep
// it. Its Data may be kept, since the store never writes into it. observe
// must not call the store, whose lock it runs under, and should be quick,
// since every Get waits for it.
func NewMemoryObserved(l Limits, observe func(key, publisher id.ID, v *Value, src netip.Addr)) *Memory {
	return &Memory{limits: l.WithDefaults(), observe: observe}
}

// Limits returns the limits the store enforces, defaults filled in.
func (m *Memory) Limits() Limits { return m.limits }

// Put implements Store.
func (m *Memory) Put(key id.ID, v Value, src netip.Addr, now time.Time) error {
	return m.put(key, v, src, now, false)
}

// Restore puts a record back as it was (used when loading from disk): no
// ordering or quota refusal except the hard limits; it does not call the
// observer.
//
// Precisely: v replaces whatever record v.Publisher holds under key, whatever
// its version, and is charged to src; the quotas of sources and sites are not
// checked (a store reopened with smaller quotas keeps what it held, and
// refuses the sources over them until they shrink). It is refused, and
// changes nothing, for the reasons Put has otherwise: ErrClosed, ErrExpired
// (the caller deletes that record), and a *LimitError for MaxValueSize,
// MaxPerKey, MaxBytesPerKey, MaxPerPublisher, MaxValues and MaxBytes. Records
// expired at now that it deletes on the way are reported to the observer as
// deletions, as Put reports them.
func (m *Memory) Restore(key id.ID, v Value, src netip.Addr, now time.Time) error {
	return m.put(key, v, src, now, true)
}

// put is Put, or Restore if restore is set.
func (m *Memory) put(key id.ID, v Value, src netip.Addr, now time.Time, restore bool) error {
	// Drop the monotonic reading so that every comparison, the heap's
	// included, is on the wall clock.
	v.Expires = v.Expires.Round(0)
	if v.Deleted {
		v.Data, v.Envelope = nil, false
	}
	s := sourceOf(src)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if len(v.Data) > m.limits.MaxValueSize {
		return &LimitError{Bound: "MaxValueSize", Limit: m.limits.MaxValueSize, Want: len(v.Data), err: ErrTooLarge}
	}
	if !v.Expires.After(now) {
		return fmt.Errorf("%w: expires %s, now %s", ErrExpired,
			v.Expires.Format(time.RFC3339Nano), now.Round(0).Format(time.RFC3339Nano))
	}
	recs := m.purgeKey(key, now)
	i := find(recs, v.Publisher)
	var old *entry
	shared := false // v.Data is the held record's, not the caller's
	if i >= 0 {
		old = &recs[i]
		if !restore {
			refresh, err := order(&old.Value, &v)
			switch {
			case err != nil:
				return err
			case refresh && !v.Expires.After(old.Expires):
				return nil // it extends nothing: nothing changes, and no charge moves
			case v.Deleted && old.Expires.After(v.Expires):
				v.Expires = old.Expires
			}
		}
		if bytes.Equal(old.Data, v.Data) {
			v.Data, shared = old.Data, true // the same bytes: share them rather than copy
		}
	}
	// A write by the charged source that does not grow the record adds to
	// no bound: the refresh of republishing takes this path.
	if old == nil || old.src != s || len(v.Data) > len(old.Data) {
		if err := m.room(recs, old, &v, s, now, restore); err != nil {
			return err
		}
	}
	// recs and old are still valid: a sweep in room leaves this key alone,
	// since purgeKey already removed its records expired at now.
	if !shared {
		v.Data = clone(v.Data)
	}
	at := stampOf(v.Expires)
	if old == nil {
		newKey := len(recs) == 0
		j := 0
		for j < len(recs) && sortsBefore(recs[j].Version, recs[j].Publisher, v.Version, v.Publisher) {
			j++
		}
		recs = slices.Insert(recs, j, entry{Value: v, at: at, src: s})
		if m.keys == nil {
			m.keys = make(map[id.ID][]entry)
		}
		m.keys[key] = recs
		if newKey && m.order != nil {
			m.order.fresh = append(m.order.fresh, key)
			if len(m.order.fresh) > len(m.keys)+1024 {
				// Keys that come and go between walks must not pile up:
				// merging now costs no more than the inserts it follows.
				m.mergeOrder()
			}
		}
		m.n++
		m.bytes += len(v.Data)
		if m.pubs == nil {
			m.pubs = make(map[id.ID]int)
		}
		m.pubs[v.Publisher]++
		m.charge(s, len(v.Data))
		m.push(key, v.Publisher, at)
		m.notify(key, &recs[j].Value, src, restore)
		return nil
	}
	m.bytes += len(v.Data) - len(old.Data)
	m.recharge(old.src, len(old.Data), s, len(v.Data))
	moved := old.at != at
	*old = entry{Value: v, at: at, src: s}
	j := reposition(recs, i)
	if moved {
		m.push(key, v.Publisher, at)
	}
	m.notify(key, &recs[j].Value, src, restore)
	return nil
}

// clone copies b, and makes an empty value nil so that it holds no memory.
func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

// order applies the ordering rule of Store.Put to v against held, a live
// record of the same publisher: it reports whether v is a refresh of held,
// and returns an ErrStale error if v must be refused.
func order(held, v *Value) (refresh bool, err error) {
	switch {
	case v.Envelope != held.Envelope:
		if v.Envelope {
			return false, nil // the signed record beats the plain one
		}
		return false, fmt.Errorf("%w (held version %d, this one %d)", ErrSigned, held.Version, v.Version)
	case v.Version > held.Version:
		return false, nil
	case v.Version < held.Version:
		return false, fmt.Errorf("%w: version %d, held %d", ErrStale, v.Version, held.Version)
	case v.Deleted && !held.Deleted:
		return false, nil // a withdrawal beats the value it withdraws
	case held.Deleted && !v.Deleted:
		return false, fmt.Errorf("%w: version %d is withdrawn", ErrStale, v.Version)
	case held.Deleted || bytes.Equal(held.Data, v.Data):
		return true, nil
	}
	return false, fmt.Errorf("%w: version %d is held with other bytes", ErrStale, v.Version)
}

// reposition moves recs[i], whose version changed, to its place in the
// record order, and returns its new index.
func reposition(recs []entry, i int) int {
	for i > 0 && sortsBefore(recs[i].Version, recs[i].Publisher, recs[i-1].Version, recs[i-1].Publisher) {
		recs[i], recs[i-1] = recs[i-1], recs[i]
		i--
	}
	for i+1 < len(recs) && sortsBefore(recs[i+1].Version, recs[i+1].Publisher, recs[i].Version, recs[i].Publisher) {
		recs[i], recs[i+1] = recs[i+1], recs[i]
		i++
	}
	return i
}

// notify reports a change to the observer, if there is one.
func (m *Memory) notify(key id.ID, v *Value, src netip.Addr, restore bool) {
	if m.observe != nil && !restore {
		m.observe(key, v.Publisher, v, src)
	}
}

// room checks that v, from s, replacing old (nil for none) among recs, the
// key's records, passes no bound, and returns the *LimitError of the first
// one it would pass: the key's bounds, then those over the store, after
// one sweep at now if one of the latter is passed. Restore skips the quotas
// of sources and sites.
func (m *Memory) room(recs []entry, old *entry, v *Value, s source, now time.Time, restore bool) error {
	l := &m.limits
	size := len(v.Data)
	oldN, oldSize := 0, 0
	if old != nil {
		oldN, oldSize = 1, len(old.Data)
	}
	keyBytes := 0
	for i := range recs {
		keyBytes += len(recs[i].Data)
	}
	if over(l.MaxPerKey, len(recs), oldN, 1) {
		return limitError(ErrKeyFull, quota{"MaxPerKey", l.MaxPerKey}, len(recs), oldN, 1, "")
	}
	if over(l.MaxBytesPerKey, keyBytes, oldSize, size) {
		return limitError(ErrKeyFull, quota{"MaxBytesPerKey", l.MaxBytesPerKey}, keyBytes, oldSize, size, "")
	}
	if !restore {
		for _, g := range s.groups() {
			if g.kind == kindSelf {
				continue
			}
			n, b := 0, 0
			for i := range recs {
				if g.in(recs[i].src) {
					n++
					b += len(recs[i].Data)
				}
			}
			on, ob := 0, 0
			if old != nil && g.in(old.src) {
				on, ob = 1, oldSize
			}
			qn, qb := m.keyQuotas(g)
			if over(qn.limit, n, on, 1) {
				return limitError(ErrQuota, qn, n, on, 1, g.String())
			}
			if over(qb.limit, b, ob, size) {
				return limitError(ErrQuota, qb, b, ob, size, g.String())
			}
		}
	}
	// Expired records are the only ones ever deleted to make room, and one
	// sweep deletes them all.
	err := m.storeRoom(old, v, s, restore)
	if err != nil && m.sweepLocked(now) > 0 {
		err = m.storeRoom(old, v, s, restore)
	}
	return err
}

// storeRoom is room's check of the bounds over the store.
func (m *Memory) storeRoom(old *entry, v *Value, s source, restore bool) error {
	l := &m.limits
	size := len(v.Data)
	oldN, oldSize := 0, 0
	if old != nil {
		oldN, oldSize = 1, len(old.Data)
	}
	if have := m.pubs[v.Publisher]; over(l.MaxPerPublisher, have, oldN, 1) {
		return limitError(ErrQuota, quota{"MaxPerPublisher", l.MaxPerPublisher}, have, oldN, 1,
			"publisher "+hex.EncodeToString(v.Publisher[:]))
	}
	if !restore {
		for _, g := range s.groups() {
			if g.kind == kindSelf {
				continue
			}
			u := m.srcs[g]
			on, ob := 0, 0
			if old != nil && g.in(old.src) {
				on, ob = 1, oldSize
			}
			qn, qb := m.storeQuotas(g)
			if over(qn.limit, u.values, on, 1) {
				return limitError(ErrQuota, qn, u.values, on, 1, g.String())
			}
			if over(qb.limit, u.bytes, ob, size) {
				return limitError(ErrQuota, qb, u.bytes, ob, size, g.String())
			}
		}
	}
	if over(l.MaxValues, m.n, oldN, 1) {
		return limitError(ErrFull, quota{"MaxValues", l.MaxValues}, m.n, oldN, 1, "")
	}
	if over(l.MaxBytes, m.bytes, oldSize, size) {
		return limitError(ErrFull, quota{"MaxBytes", l.MaxBytes}, m.bytes, oldSize, size, "")
	}
	return nil
}

// charge adds a record of size bytes to the usage of s's groups.
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

// uncharge takes a record of size bytes off the usage of s's groups, and
// forgets a group left holding nothing, so that the table stays as small as
// the set of groups holding records.
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

// recharge moves a record of size bytes charged to from to one of
// newSize bytes charged to to.
func (m *Memory) recharge(from source, size int, to source, newSize int) {
	switch {
	case from == to && size == newSize:
	case from == to:
		for _, g := range to.groups() {
			if g.kind != kindSelf {
				u := m.srcs[g]
				u.bytes += newSize - size
				m.srcs[g] = u
			}
		}
	default:
		m.uncharge(from, size)
		m.charge(to, newSize)
	}
}

// drop takes e, a record of key about to be deleted, off the counts and
// tells the observer.
func (m *Memory) drop(key id.ID, e *entry) {
	m.n--
	m.bytes -= len(e.Data)
	if c := m.pubs[e.Publisher] - 1; c > 0 {
		m.pubs[e.Publisher] = c
	} else {
		delete(m.pubs, e.Publisher)
	}
	m.uncharge(e.src, len(e.Data))
	if m.observe != nil {
		m.observe(key, e.Publisher, nil, netip.Addr{})
	}
}

// purgeKey deletes key's records expired at now and returns what remains.
// The caller holds the write lock.
func (m *Memory) purgeKey(key id.ID, now time.Time) []entry {
	recs := m.keys[key]
	at := stampOf(now)
	first := 0
	for first < len(recs) && at.before(recs[first].at) {
		first++
	}
	if first == len(recs) {
		return recs // the common case: nothing expired, nothing written
	}
	kept := recs[:first]
	for i := first; i < len(recs); i++ {
		if at.before(recs[i].at) {
			kept = append(kept, recs[i])
		} else {
			m.drop(key, &recs[i])
		}
	}
	// Clear the tail so the deleted Data can be collected. This writes
	// entries in the store's own slice, never the bytes handed out by Get.
	clear(recs[len(kept):])
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

// release drops the maps and the heap once the store is empty: Go maps never
// shrink, and most simulated stores empty out again.
func (m *Memory) release() {
	if m.order != nil {
		*m.order = keyOrder{}
	}
	m.keys = nil
	m.pubs = nil
	m.srcs = nil
	m.exp = nil
}

// Get implements Store.
func (m *Memory) Get(key id.ID, now time.Time, dst []Value) []Value {
	return m.appendLive(key, now, dst, false)
}

// Records implements Store.
func (m *Memory) Records(key id.ID, now time.Time, dst []Value) []Value {
	return m.appendLive(key, now, dst, true)
}

// appendLive appends key's records live at now to dst, tombstones too if
// asked: the node's hot path.
func (m *Memory) appendLive(key id.ID, now time.Time, dst []Value, tombstones bool) []Value {
	at := stampOf(now)
	m.mu.RLock()
	recs := m.keys[key]
	for i := range recs {
		e := &recs[i]
		if (!tombstones && e.Deleted) || !at.before(e.at) {
			continue
		}
		if len(dst) == cap(dst) {
			dst = slices.Grow(dst, 1)
		}
		// A store in place, without the temporary copy of the record
		// that append makes: half the cost of a Get.
		dst = dst[:len(dst)+1]
		dst[len(dst)-1] = e.Value
	}
	m.mu.RUnlock()
	return dst
}

// Lookup implements Store.
func (m *Memory) Lookup(key, publisher id.ID, now time.Time) (Value, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	recs := m.keys[key]
	if i := find(recs, publisher); i >= 0 && stampOf(now).before(recs[i].at) {
		return recs[i].Value, true
	}
	return Value{}, false
}

// Sweep implements Store.
func (m *Memory) Sweep(now time.Time) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	deleted, examined := m.sweep(now)
	m.examined = examined
	return deleted
}

// SweepExamined returns how many records the last Sweep examined: the heap
// entries it popped, each naming one record, expired or superseded. The
// conformance suite checks with it that a Sweep costs in proportion to what
// expired.
func (m *Memory) SweepExamined() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.examined
}

// sweepLocked deletes every record expired at now and returns how many.
func (m *Memory) sweepLocked(now time.Time) int {
	deleted, _ := m.sweep(now)
	return deleted
}

// sweep pops every heap entry whose instant has come at now, and deletes its
// record if the record still expires then; an entry a later change
// superseded names a record that is gone or expires later, and is dropped.
// It returns the records deleted and the entries examined.
func (m *Memory) sweep(now time.Time) (deleted, examined int) {
	at := stampOf(now)
	for len(m.exp) > 0 && !at.before(m.exp[0].at) {
		top := m.exp.pop()
		examined++
		recs := m.keys[top.key]
		i := find(recs, top.pub)
		if i < 0 || recs[i].at != top.at {
			continue
		}
		m.drop(top.key, &recs[i])
		copy(recs[i:], recs[i+1:])
		recs[len(recs)-1] = entry{}
		if recs = recs[:len(recs)-1]; len(recs) == 0 {
			delete(m.keys, top.key)
		} else {
			m.keys[top.key] = recs
		}
		deleted++
	}
	if m.n == 0 {
		m.release() // what is left in the heap is superseded
	}
	return deleted, examined
}

// NextExpiry implements Store. It takes the write lock because it discards
// superseded heap entries it finds on top.
func (m *Memory) NextExpiry() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.exp) > 0 {
		top := m.exp[0]
		recs := m.keys[top.key]
		if i := find(recs, top.pub); i >= 0 && recs[i].at == top.at {
			return recs[i].Expires, true
		}
		m.exp.pop()
	}
	return time.Time{}, false
}

// Len implements Store.
func (m *Memory) Len() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.n
}

// Bytes implements Store.
func (m *Memory) Bytes() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.bytes
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

// ascendBatch is how many keys Ascend copies under the lock at a time: the
// lock is never held for long, and a walk that stops early copies little.
const ascendBatch = 256

// Ascend implements Store. It copies the keys a batch at a time under the
// lock and calls fn after releasing it, so that fn may use the store. The
// first call builds the key order (a sort of every key); after that, new
// keys cost 20 bytes each until the next call merges them in, and a call
// costs O(new keys log new keys + keys) when keys were added or many went,
// O(log keys + keys reported) otherwise.
func (m *Memory) Ascend(from id.ID, fn func(key id.ID) bool) {
	var buf [ascendBatch]id.ID
	first := true
	for {
		batch := m.ascendCopy(from, !first, buf[:0])
		for _, k := range batch {
			if !fn(k) {
				return
			}
		}
		if len(batch) < ascendBatch {
			return
		}
		from, first = batch[len(batch)-1], false
	}
}

// ascendCopy appends to dst the held keys from from on (after from, when
// after is set), up to cap(dst), in ascending order.
func (m *Memory) ascendCopy(from id.ID, after bool, dst []id.ID) []id.ID {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return dst
	}
	if m.order == nil || len(m.order.fresh) > 0 || len(m.order.sorted) > 2*len(m.keys)+16 {
		m.mergeOrder()
	}
	sorted := m.order.sorted
	i, found := slices.BinarySearchFunc(sorted, from, func(a, b id.ID) int { return a.Compare(b) })
	if found && after {
		i++
	}
	for ; i < len(sorted) && len(dst) < cap(dst); i++ {
		if _, ok := m.keys[sorted[i]]; ok {
			dst = append(dst, sorted[i])
		}
	}
	return dst
}

// mergeOrder brings sorted up to date: fresh keys merged in, keys gone
// dropped. The caller holds the write lock.
func (m *Memory) mergeOrder() {
	cmp := func(a, b id.ID) int { return a.Compare(b) }
	if m.order == nil {
		o := &keyOrder{sorted: make([]id.ID, 0, len(m.keys))}
		for k := range m.keys {
			o.sorted = append(o.sorted, k)
		}
		slices.SortFunc(o.sorted, cmp)
		m.order = o
		return
	}
	o := m.order
	slices.SortFunc(o.fresh, cmp)
	merged := make([]id.ID, 0, len(m.keys))
	a, b := o.sorted, o.fresh
	for len(a) > 0 || len(b) > 0 {
		var k id.ID
		switch {
		case len(b) == 0 || (len(a) > 0 && a[0].Compare(b[0]) < 0):
			k, a = a[0], a[1:]
		default:
			k, b = b[0], b[1:]
		}
		if _, ok := m.keys[k]; !ok || (len(merged) > 0 && merged[len(merged)-1] == k) {
			continue // gone, or added again after it went
		}
		merged = append(merged, k)
	}
	o.sorted, o.fresh = merged, nil
}

// Close implements Store. It drops every record, without telling the
// observer: closing is not deleting.
func (m *Memory) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.n = 0
	m.bytes = 0
	m.release()
	return nil
}

// push records that the record of publisher under key expires at t.
// Superseded entries stay in the heap until they surface; when they
// outnumber the records the heap is rebuilt, which keeps it within
// 2*Len+compactSlack entries at an amortized O(1) cost per push.
func (m *Memory) push(key, publisher id.ID, t stamp) {
	m.exp.push(expiryEntry{at: t, key: key, pub: publisher})
	if len(m.exp) > 2*m.n+compactSlack {
		m.rebuildHeap()
	}
}

// compactSlack keeps tiny stores from rebuilding their heap on every refresh.
const compactSlack = 32

// rebuildHeap replaces the heap with exactly one entry per stored record.
func (m *Memory) rebuildHeap() {
	h := m.exp[:0]
	if cap(h) > 4*(m.n+compactSlack) {
		h = make(expiryHeap, 0, m.n+compactSlack) // give back a large backing array
	}
	for k, recs := range m.keys {
		for i := range recs {
			h = append(h, expiryEntry{at: recs[i].at, key: k, pub: recs[i].Publisher})
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

// expiryEntry says that the record of pub under key expires at at, unless a
// later change superseded it.
type expiryEntry struct {
	at       stamp
	key, pub id.ID
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

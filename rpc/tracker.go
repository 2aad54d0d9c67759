// Package rpc tracks the requests a node has in flight: it hands out
// transaction IDs, matches each response on its transaction ID and its source
// address, and reports requests whose deadline has passed so the caller can
// retry or give up.
//
// Like the rest of the protocol core it does no I/O, starts no goroutines and
// reads no clock: deadlines and the current time are passed in, so a Tracker
// behaves the same on the wall clock and on the simulator's virtual one.
package rpc

import (
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"
)

// ErrFull is returned by Add when the tracker holds as many requests as its
// capacity allows. The caller drops the request (and counts it).
var ErrFull = errors.New("rpc: too many requests in flight")

// ErrDuplicate is returned by Add for a transaction ID already in flight.
var ErrDuplicate = errors.New("rpc: transaction ID already in flight")

// shrinkAbove is the slot count above which a tracker that empties releases
// its memory. Smaller trackers keep theirs, so that a node cycling through a
// handful of requests does not allocate on every one. Maps never shrink in
// Go, so releasing is the only way a burst stops costing memory.
const shrinkAbove = 64

// entry is one request in flight.
type entry[T any] struct {
	txid     uint64
	to       netip.AddrPort
	deadline time.Time
	seq      uint64 // order of the last Add or Reschedule: breaks deadline ties
	heapIdx  int32  // position of this entry in Tracker.heap
	v        T
}

// expired is an entry removed by Expire, waiting for its callback.
type expired[T any] struct {
	txid uint64
	to   netip.AddrPort
	v    T
}

// Tracker remembers requests in flight, each with a caller value of type T,
// matched on (transaction ID, peer address): a response from any other
// address does not match. It is bounded: Add fails with ErrFull at capacity.
//
// Memory follows use: a new tracker holds no entries or tables (about a
// hundred bytes), grows as requests are added, and releases its tables when
// it empties after holding more than a few dozen requests.
//
// The zero value has capacity 0 (every Add fails); use NewTracker. A Tracker
// is not safe for concurrent use: the node serializes calls under its mutex.
type Tracker[T any] struct {
	capacity int
	seq      uint64

	// entries is dense (an entry removed from the middle is replaced by the
	// last one); byID maps a transaction ID to its index there; heap holds
	// entry indices as a binary min-heap on (deadline, seq).
	entries []entry[T]
	byID    map[uint64]int32
	heap    []int32

	scratch []expired[T] // reused by Expire; nil while an Expire runs
}

// NewTracker returns an empty tracker that holds at most capacity requests.
// It panics if capacity is not in [1, math.MaxInt32]: that is a configuration
// error the caller's validation should have caught.
func NewTracker[T any](capacity int) *Tracker[T] {
	if capacity <= 0 || capacity > math.MaxInt32 {
		panic("rpc: NewTracker capacity must be in [1, math.MaxInt32]")
	}
	return &Tracker[T]{capacity: capacity}
}

// Len returns the number of requests in flight.
func (t *Tracker[T]) Len() int { return len(t.entries) }

// Cap returns the most requests the tracker holds.
func (t *Tracker[T]) Cap() int { return t.capacity }

// NewTxID returns a transaction ID drawn from r that is neither 0 nor in
// use. The IDs are as unpredictable as r: a node draws them from a ChaCha8
// stream keyed from crypto/rand (or, in simulations and tests, from the
// configured seed), so that a peer who has seen many of them still cannot
// guess the next, and blind response spoofing is a guess over 64 bits. A
// non-cryptographic r, such as a PCG, would let a peer compute them.
func (t *Tracker[T]) NewTxID(r *rand.Rand) uint64 {
	for {
		x := r.Uint64()
		if _, used := t.byID[x]; x != 0 && !used {
			return x
		}
	}
}

// Add records a request with transaction ID txid sent to `to`, due to time out
// at deadline, carrying v. It returns ErrDuplicate if txid is in flight and
// ErrFull at capacity.
func (t *Tracker[T]) Add(txid uint64, to netip.AddrPort, deadline time.Time, v T) error {
	if _, dup := t.byID[txid]; dup {
		return ErrDuplicate
	}
	if len(t.entries) >= t.capacity {
		return ErrFull
	}
	if t.byID == nil {
		t.byID = make(map[uint64]int32)
	}
	i := int32(len(t.entries))
	t.seq++
	t.entries = append(t.entries, entry[T]{txid: txid, to: to, deadline: deadline, seq: t.seq, heapIdx: int32(len(t.heap)), v: v})
	t.byID[txid] = i
	t.heap = append(t.heap, i)
	t.up(len(t.heap) - 1)
	return nil
}

// Match returns and removes the request with txid if it was sent to from.
// A txid that exists but was sent to another address is left in place and
// not returned. An IPv4 address matches its IPv4-mapped IPv6 form, since a
// dual-stack socket may report either for the same peer.
func (t *Tracker[T]) Match(txid uint64, from netip.AddrPort) (T, bool) {
	i, ok := t.byID[txid]
	if !ok || !sameAddr(t.entries[i].to, from) {
		var zero T
		return zero, false
	}
	v := t.entries[i].v
	t.remove(i)
	return v, true
}

// Remove returns and removes the request with txid, whatever its address:
// for requests the caller abandons.
func (t *Tracker[T]) Remove(txid uint64) (T, bool) {
	i, ok := t.byID[txid]
	if !ok {
		var zero T
		return zero, false
	}
	v := t.entries[i].v
	t.remove(i)
	return v, true
}

// Reschedule sets a new deadline for a request still in flight (used for
// retries) and reports whether there was one. Among equal deadlines, a
// rescheduled request expires after those added or rescheduled before it.
func (t *Tracker[T]) Reschedule(txid uint64, deadline time.Time) bool {
	i, ok := t.byID[txid]
	if !ok {
		return false
	}
	e := &t.entries[i]
	t.seq++
	e.deadline, e.seq = deadline, t.seq
	if h := int(e.heapIdx); !t.down(h) {
		t.up(h)
	}
	return true
}

// Expire removes every request whose deadline is <= now, then calls fn (if
// not nil) for each, in deadline order, ties in the order of their Add or
// last Reschedule, so that runs are deterministic. fn may call any method of
// the tracker, typically Add to send a retry: requests added or rescheduled
// by fn are not expired by this call, even if already due.
func (t *Tracker[T]) Expire(now time.Time, fn func(txid uint64, to netip.AddrPort, v T)) {
	batch := t.scratch[:0]
	t.scratch = nil // a nested Expire (from fn) gets its own
	for len(t.heap) > 0 {
		i := t.heap[0]
		e := &t.entries[i]
		if e.deadline.After(now) {
			break
		}
		batch = append(batch, expired[T]{e.txid, e.to, e.v})
		t.remove(i)
	}
	if fn != nil {
		for _, x := range batch {
			fn(x.txid, x.to, x.v)
		}
	}
	clear(batch) // drop references to the callers' values
	if len(t.entries) == 0 && cap(batch) > shrinkAbove {
		batch = nil
	}
	t.scratch = batch[:0]
}

// NextDeadline returns the earliest deadline among requests in flight, and
// false when there are none: when the node should next call Expire.
func (t *Tracker[T]) NextDeadline() (time.Time, bool) {
	if len(t.heap) == 0 {
		return time.Time{}, false
	}
	return t.entries[t.heap[0]].deadline, true
}

func sameAddr(a, b netip.AddrPort) bool {
	return a.Port() == b.Port() && a.Addr().Unmap() == b.Addr().Unmap()
}

// remove deletes entry i from the heap, the index and the dense array.
func (t *Tracker[T]) remove(i int32) {
	e := &t.entries[i]
	delete(t.byID, e.txid)

	// Out of the heap: move the last heap element into the hole, re-sift.
	h, last := int(e.heapIdx), len(t.heap)-1
	if h != last {
		t.heap[h] = t.heap[last]
		t.entries[t.heap[h]].heapIdx = int32(h)
	}
	t.heap = t.heap[:last]
	if h < last && !t.down(h) {
		t.up(h)
	}

	// Out of the dense array: move the last entry into the hole.
	n := int32(len(t.entries) - 1)
	if i != n {
		t.entries[i] = t.entries[n]
		moved := &t.entries[i]
		t.byID[moved.txid] = i
		t.heap[moved.heapIdx] = i
	}
	t.entries[n] = entry[T]{} // drop references to the caller's value
	t.entries = t.entries[:n]

	if n == 0 && cap(t.entries) > shrinkAbove {
		t.entries, t.heap, t.byID = nil, nil, nil
		if cap(t.scratch) > shrinkAbove {
			t.scratch = nil
		}
	}
}

// less orders heap positions a and b by (deadline, seq).
func (t *Tracker[T]) less(a, b int) bool {
	x, y := &t.entries[t.heap[a]], &t.entries[t.heap[b]]
	if c := x.deadline.Compare(y.deadline); c != 0 {
		return c < 0
	}
	return x.seq < y.seq
}

func (t *Tracker[T]) swap(a, b int) {
	t.heap[a], t.heap[b] = t.heap[b], t.heap[a]
	t.entries[t.heap[a]].heapIdx = int32(a)
	t.entries[t.heap[b]].heapIdx = int32(b)
}

func (t *Tracker[T]) up(h int) {
	for h > 0 {
		p := (h - 1) / 2
		if !t.less(h, p) {
			return
		}
		t.swap(h, p)
		h = p
	}
}

// down sifts position h toward the leaves and reports whether it moved.
func (t *Tracker[T]) down(h int) bool {
	start, n := h, len(t.heap)
	for {
		c := 2*h + 1
		if c >= n {
			break
		}
		if r := c + 1; r < n && t.less(r, c) {
			c = r
		}
		if !t.less(c, h) {
			break
		}
		t.swap(h, c)
		h = c
	}
	return h > start
}

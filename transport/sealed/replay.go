package sealed

import "time"

// Window is how many of an instance's most recent counters Replay keeps:
// a datagram overtaken by more than Window later ones from the same sender
// is refused as a replay. It counts datagrams, not nanoseconds, so a gap of
// any length between two sends does not narrow it.
const Window = 64

// Defaults of Config.
const (
	DefaultFreshness  = 30 * time.Second
	DefaultMaxSources = 16384
)

// Replay refuses counters it has accepted before. It keeps, for each sender
// instance heard from (an authenticated 64-bit value in the nonce, so a
// replay from another source address finds the same entry), the Window
// highest counters it accepted and a floor below which it accepts none, in a
// table of at most max instances; when full it forgets the least recently
// heard one. It does not check freshness: Check's caller does, first.
//
// Replay is not safe for concurrent use; Transport guards it with a mutex.
// The zero value is not usable; use newReplay.
type Replay struct {
	max     int
	index   map[uint64]int32 // instance -> entries slot
	entries []entry
	head    int32 // most recently used, -1 when empty
	tail    int32 // least recently used
	// Evicted counts instances forgotten to make room; EvictedFresh
	// those of them heard from within the freshness window, whose recent
	// datagrams a replay could now pass once more.
	Evicted, EvictedFresh uint64
}

// entry is one instance's window: every counter it accepted is either in
// ctr[:n] or at most floor.
type entry struct {
	instance   uint64
	floor      uint64
	last       int64 // the receiver's clock (UnixNano) when last accepted
	prev, next int32
	n          uint8
	ctr        [Window]uint64
}

// NewReplay returns a table of at most n instances (at least 1).
func NewReplay(n int) *Replay {
	return &Replay{max: max(n, 1), index: make(map[uint64]int32), head: -1, tail: -1}
}

// Len returns how many instances the table holds.
func (r *Replay) Len() int { return len(r.entries) }

// Check accepts counter from instance once: it returns false if the table
// has seen it, or if it is older than the instance's window. now is the
// receiver's clock in nanoseconds and fresh the freshness window, which
// tell an eviction that opens a replay gap from one that does not.
func (r *Replay) Check(instance, counter uint64, now int64, fresh time.Duration) bool {
	i, ok := r.index[instance]
	if !ok {
		i = r.add(instance, now, fresh)
		e := &r.entries[i]
		e.ctr[0], e.n, e.last = counter, 1, now
		return true
	}
	e := &r.entries[i]
	if counter <= e.floor {
		return false
	}
	low := 0
	for j := range int(e.n) {
		if e.ctr[j] == counter {
			return false
		}
		if e.ctr[j] < e.ctr[low] {
			low = j
		}
	}
	switch {
	case int(e.n) < Window:
		e.ctr[e.n] = counter
		e.n++
	case counter < e.ctr[low]:
		// The oldest of the window is counter itself: accept it and keep
		// it out by the floor alone.
		e.floor = counter
	default:
		e.floor = max(e.floor, e.ctr[low])
		e.ctr[low] = counter
	}
	e.last = now
	r.touch(i)
	return true
}

// add returns the slot of a new entry for instance, at the head of the
// list: a new slot while under max, else the least recently used one's.
func (r *Replay) add(instance uint64, now int64, fresh time.Duration) int32 {
	var i int32
	if len(r.entries) < r.max {
		r.entries = append(r.entries, entry{})
		i = int32(len(r.entries) - 1)
	} else {
		i = r.tail
		old := &r.entries[i]
		r.Evicted++
		if now-old.last <= int64(fresh) {
			r.EvictedFresh++
		}
		delete(r.index, old.instance)
		r.unlink(i)
	}
	r.entries[i] = entry{instance: instance, prev: -1, next: -1}
	r.index[instance] = i
	r.pushFront(i)
	return i
}

func (r *Replay) touch(i int32) {
	if r.head == i {
		return
	}
	r.unlink(i)
	r.pushFront(i)
}

func (r *Replay) unlink(i int32) {
	e := &r.entries[i]
	if e.prev >= 0 {
		r.entries[e.prev].next = e.next
	} else {
		r.head = e.next
	}
	if e.next >= 0 {
		r.entries[e.next].prev = e.prev
	} else {
		r.tail = e.prev
	}
	e.prev, e.next = -1, -1
}

func (r *Replay) pushFront(i int32) {
	e := &r.entries[i]
	e.prev, e.next = -1, r.head
	if r.head >= 0 {
		r.entries[r.head].prev = i
	}
	r.head = i
	if r.tail < 0 {
		r.tail = i
	}
}

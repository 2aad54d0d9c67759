package clock

import (
	"math"
	"sync"
	"time"
)

// Event is work scheduled on a Virtual clock without a closure: a
// caller that schedules many events (memnet schedules one per datagram) can
// pool the values that implement it.
type Event interface {
	// Fire runs the event. It is called once per scheduling, on the goroutine
	// that advances the clock, without the clock's lock held.
	Fire()
}

// Scheduler is implemented by clocks that can schedule an Event directly,
// saving the Timer and closure that AfterFunc costs. *Virtual implements it.
type Scheduler interface {
	// ScheduleAfter fires ev once, d from now; d <= 0 means now, after the
	// events already due. The scheduled event cannot be cancelled.
	ScheduleAfter(d time.Duration, ev Event)
}

// Virtual is a deterministic clock whose time moves only when its owner runs
// events with Step or the Run methods. It doubles as the event loop of tests
// and the simulator: every AfterFunc callback runs on the goroutine that
// advances the clock, in order of due time, and events due at the same instant
// run in the order they were scheduled. Given the same calls, the same events
// run in the same order.
//
// AfterFunc, Schedule, Stop, Now, Len and NextAt are safe from any goroutine.
// Step and the Run methods are meant for one goroutine at a time and must not
// be called from inside an event. The zero value is not usable; use
// NewVirtual.
type Virtual struct {
	mu   sync.Mutex
	base time.Time // NewVirtual's start; times are kept as offsets from it
	now  int64     // nanoseconds since base
	seq  uint64    // scheduling counter: the tie-break for equal due times
	heap []entry   // 4-ary min-heap on (at, seq)
}

// entry is one pending event, held by value so the heap is one flat slice.
type entry struct {
	at  int64
	seq uint64
	ev  Event
}

// vtimer is the Timer AfterFunc returns; it is also the heap entry's Event,
// and remembers its heap position so Stop can remove it at once.
type vtimer struct {
	v     *Virtual
	f     func()
	index int // position in v.heap; -1 once fired or stopped
}

func (t *vtimer) Fire() { t.f() }

// Stop removes the event if it has not run and reports whether it did.
func (t *vtimer) Stop() bool {
	v := t.v
	v.mu.Lock()
	defer v.mu.Unlock()
	if t.index < 0 {
		return false
	}
	v.removeAt(t.index)
	t.index = -1
	return true
}

// NewVirtual returns a Virtual clock reading start.
func NewVirtual(start time.Time) *Virtual {
	// Drop the monotonic reading: virtual times are compared by wall value.
	return &Virtual{base: start.Round(0)}
}

// Now returns the virtual time.
func (v *Virtual) Now() time.Time {
	v.mu.Lock()
	n := v.now
	v.mu.Unlock()
	return v.base.Add(time.Duration(n))
}

// AfterFunc schedules f to run d from now; d <= 0 means now, after the events
// already due.
func (v *Virtual) AfterFunc(d time.Duration, f func()) Timer {
	t := &vtimer{v: v, f: f}
	v.mu.Lock()
	v.push(v.after(d), t)
	v.mu.Unlock()
	return t
}

// ScheduleAfter fires ev d from now, like AfterFunc but without a Timer: it
// allocates nothing once the heap has grown.
func (v *Virtual) ScheduleAfter(d time.Duration, ev Event) {
	v.mu.Lock()
	v.push(v.after(d), ev)
	v.mu.Unlock()
}

// Schedule fires ev at t, or now if t is not after Now.
func (v *Virtual) Schedule(t time.Time, ev Event) {
	at := int64(t.Sub(v.base)) // Sub saturates, so far-off times stay ordered
	v.mu.Lock()
	v.push(max(at, v.now), ev)
	v.mu.Unlock()
}

// after converts a delay to an absolute offset, saturating instead of
// wrapping. v.mu must be held.
func (v *Virtual) after(d time.Duration) int64 {
	if d <= 0 {
		return v.now
	}
	if int64(d) > math.MaxInt64-v.now {
		return math.MaxInt64
	}
	return v.now + int64(d)
}

// Step runs the earliest pending event, advancing Now to its due time, and
// reports whether there was one.
func (v *Virtual) Step() bool {
	v.mu.Lock()
	if len(v.heap) == 0 {
		v.mu.Unlock()
		return false
	}
	ev := v.pop()
	v.mu.Unlock()
	ev.Fire()
	return true
}

// RunUntil runs every event due at or before t, including those that events
// schedule meanwhile, then sets Now to t. It returns how many events ran. A t
// before Now is taken as Now: time never goes backwards.
func (v *Virtual) RunUntil(t time.Time) int {
	return v.runUntil(int64(t.Sub(v.base)))
}

// RunFor is RunUntil(Now() + d).
func (v *Virtual) RunFor(d time.Duration) int {
	v.mu.Lock()
	limit := v.after(d)
	v.mu.Unlock()
	return v.runUntil(limit)
}

func (v *Virtual) runUntil(limit int64) int {
	n := 0
	v.mu.Lock()
	for len(v.heap) > 0 && v.heap[0].at <= limit {
		ev := v.pop()
		v.mu.Unlock()
		ev.Fire()
		n++
		v.mu.Lock()
	}
	v.now = max(v.now, limit)
	v.mu.Unlock()
	return n
}

// RunWhile runs events one at a time while cond() returns true and an event
// is due at or before limit. It returns how many ran. When it stops because
// cond() turned false, Now stays at the last event's time; when it stops for
// lack of events, Now becomes limit, as with RunUntil. cond is checked before
// every event, on the calling goroutine.
func (v *Virtual) RunWhile(cond func() bool, limit time.Time) int {
	lim := int64(limit.Sub(v.base))
	n := 0
	for cond() {
		v.mu.Lock()
		if len(v.heap) == 0 || v.heap[0].at > lim {
			v.now = max(v.now, lim)
			v.mu.Unlock()
			return n
		}
		ev := v.pop()
		v.mu.Unlock()
		ev.Fire()
		n++
	}
	return n
}

// Len returns how many events are pending.
func (v *Virtual) Len() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.heap)
}

// NextAt returns the due time of the earliest pending event, and false if
// there is none.
func (v *Virtual) NextAt() (time.Time, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.heap) == 0 {
		return time.Time{}, false
	}
	return v.base.Add(time.Duration(v.heap[0].at)), true
}

// The heap is 4-ary: half the depth of a binary heap, and the four children
// of a node share a cache line or two, which matters with millions of
// pending events. Positions are kept current in vtimers so Stop is O(log n).

func less(a, b *entry) bool {
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

// set places e at position i, keeping a timer's index current.
func (v *Virtual) set(i int, e entry) {
	v.heap[i] = e
	if t, ok := e.ev.(*vtimer); ok {
		t.index = i
	}
}

func (v *Virtual) push(at int64, ev Event) {
	e := entry{at: at, seq: v.seq, ev: ev}
	v.seq++
	v.heap = append(v.heap, entry{})
	v.up(len(v.heap)-1, e)
}

// pop removes the earliest event, advances now to it and returns it.
func (v *Virtual) pop() Event {
	top := v.heap[0]
	v.now = max(v.now, top.at)
	v.removeAt(0)
	if t, ok := top.ev.(*vtimer); ok {
		t.index = -1
	}
	return top.ev
}

// removeAt deletes the entry at position i.
func (v *Virtual) removeAt(i int) {
	last := len(v.heap) - 1
	e := v.heap[last]
	v.heap[last] = entry{} // let the Event be collected
	v.heap = v.heap[:last]
	if i < last {
		if i > 0 && less(&e, &v.heap[(i-1)/4]) {
			v.up(i, e)
		} else {
			v.down(i, e)
		}
	}
	// Give memory back after a large burst, at most once per halving, so
	// the cost stays amortized O(1). Small heaps keep their room: shrinking
	// them would only make a bursty workload regrow them every burst.
	if c := cap(v.heap); c > 1<<16 && len(v.heap) < c/4 {
		v.heap = append(make([]entry, 0, c/2), v.heap...)
	}
}

// up moves the hole at i toward the root until e fits, then stores e.
func (v *Virtual) up(i int, e entry) {
	for i > 0 {
		p := (i - 1) / 4
		if !less(&e, &v.heap[p]) {
			break
		}
		v.set(i, v.heap[p])
		i = p
	}
	v.set(i, e)
}

// down moves the hole at i toward the leaves until e fits, then stores e.
func (v *Virtual) down(i int, e entry) {
	n := len(v.heap)
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		// Smallest of up to four children.
		m := c
		for j := c + 1; j < c+4 && j < n; j++ {
			if less(&v.heap[j], &v.heap[m]) {
				m = j
			}
		}
		if !less(&v.heap[m], &e) {
			break
		}
		v.set(i, v.heap[m])
		i = m
	}
	v.set(i, e)
}

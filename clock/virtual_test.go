package clock

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"
)

var epoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// recorder collects the order events ran in.
type recorder struct{ got []int }

func (r *recorder) fn(i int) func() { return func() { r.got = append(r.got, i) } }

func TestVirtualStartsAtTheGivenTime(t *testing.T) {
	v := NewVirtual(epoch)
	if !v.Now().Equal(epoch) {
		t.Fatalf("Now() = %v, want %v", v.Now(), epoch)
	}
	if v.Step() {
		t.Fatal("Step on an empty clock reported an event")
	}
	if _, ok := v.NextAt(); ok {
		t.Fatal("NextAt on an empty clock reported an event")
	}
}

func TestVirtualRunsEventsByDueTimeThenSchedulingOrder(t *testing.T) {
	tests := []struct {
		name   string
		delays []time.Duration
		want   []int
	}{
		{"ascending", []time.Duration{1, 2, 3}, []int{0, 1, 2}},
		{"descending", []time.Duration{3, 2, 1}, []int{2, 1, 0}},
		{"ties keep scheduling order", []time.Duration{5, 5, 5, 5}, []int{0, 1, 2, 3}},
		{"ties among others", []time.Duration{2, 1, 2, 1, 0}, []int{4, 1, 3, 0, 2}},
		{"non-positive means now", []time.Duration{1, 0, -5, 0}, []int{1, 2, 3, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewVirtual(epoch)
			var r recorder
			for i, d := range tt.delays {
				v.AfterFunc(d, r.fn(i))
			}
			for v.Step() {
			}
			if !slices.Equal(r.got, tt.want) {
				t.Fatalf("order %v, want %v", r.got, tt.want)
			}
		})
	}
}

// TestVirtualOrderMatchesStableSort checks the heap against a brute-force
// stable sort of (due time, scheduling order), with many ties and random
// stops.
func TestVirtualOrderMatchesStableSort(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		r := rand.New(rand.NewPCG(seed, 0))
		v := NewVirtual(epoch)
		n := 1 + r.IntN(3000)
		type ev struct {
			i       int
			d       time.Duration
			stopped bool
		}
		evs := make([]ev, n)
		timers := make([]Timer, n)
		var rec recorder
		for i := range evs {
			evs[i] = ev{i: i, d: time.Duration(r.IntN(50))}
			timers[i] = v.AfterFunc(evs[i].d, rec.fn(i))
		}
		for i := range evs {
			if r.IntN(4) == 0 {
				if !timers[i].Stop() {
					t.Fatalf("seed %d: Stop of pending event %d returned false", seed, i)
				}
				evs[i].stopped = true
			}
		}
		var want []int
		sorted := slices.Clone(evs)
		slices.SortStableFunc(sorted, func(a, b ev) int { return int(a.d - b.d) })
		for _, e := range sorted {
			if !e.stopped {
				want = append(want, e.i)
			}
		}
		if got := v.Len(); got != len(want) {
			t.Fatalf("seed %d: Len() = %d, want %d", seed, got, len(want))
		}
		for v.Step() {
		}
		if !slices.Equal(rec.got, want) {
			t.Fatalf("seed %d: order differs from the stable sort", seed)
		}
	}
}

func TestVirtualStepAdvancesNowToTheEvent(t *testing.T) {
	v := NewVirtual(epoch)
	var at time.Time
	v.AfterFunc(3*time.Second, func() { at = v.Now() })
	if next, ok := v.NextAt(); !ok || !next.Equal(epoch.Add(3*time.Second)) {
		t.Fatalf("NextAt() = %v, %v; want %v, true", next, ok, epoch.Add(3*time.Second))
	}
	if !v.Step() {
		t.Fatal("Step found no event")
	}
	if want := epoch.Add(3 * time.Second); !at.Equal(want) || !v.Now().Equal(want) {
		t.Fatalf("event saw %v, clock reads %v; want %v", at, v.Now(), want)
	}
}

func TestVirtualStop(t *testing.T) {
	v := NewVirtual(epoch)
	ran := 0
	a := v.AfterFunc(time.Second, func() { ran++ })
	b := v.AfterFunc(2*time.Second, func() { ran++ })
	if !a.Stop() {
		t.Fatal("Stop of a pending event returned false")
	}
	if a.Stop() {
		t.Fatal("second Stop returned true")
	}
	v.RunFor(time.Hour)
	if ran != 1 {
		t.Fatalf("%d events ran, want 1 (the unstopped one)", ran)
	}
	if b.Stop() {
		t.Fatal("Stop after the event ran returned true")
	}
}

func TestVirtualStopFromAnEarlierEvent(t *testing.T) {
	v := NewVirtual(epoch)
	ran := false
	later := v.AfterFunc(2*time.Second, func() { ran = true })
	stopped := false
	v.AfterFunc(time.Second, func() { stopped = later.Stop() })
	v.RunFor(time.Minute)
	if !stopped || ran {
		t.Fatalf("Stop from a callback returned %v and the event ran=%v; want true, false", stopped, ran)
	}
}

func TestVirtualEventsScheduledFromCallbacks(t *testing.T) {
	v := NewVirtual(epoch)
	var r recorder
	// Event 0 at 1s schedules event 10 "now": it must run after event 1,
	// which was already due at 1s, and before event 2 at 2s.
	v.AfterFunc(time.Second, func() {
		r.got = append(r.got, 0)
		v.AfterFunc(0, r.fn(10))
		v.AfterFunc(500*time.Millisecond, r.fn(11)) // 1.5s
		v.AfterFunc(time.Hour, r.fn(12))            // past the RunUntil limit
	})
	v.AfterFunc(time.Second, r.fn(1))
	v.AfterFunc(2*time.Second, r.fn(2))
	n := v.RunUntil(epoch.Add(time.Minute))
	if want := []int{0, 1, 10, 11, 2}; !slices.Equal(r.got, want) {
		t.Fatalf("order %v, want %v", r.got, want)
	}
	if n != 5 || v.Len() != 1 {
		t.Fatalf("RunUntil ran %d and left %d; want 5 and 1", n, v.Len())
	}
}

func TestVirtualRunUntil(t *testing.T) {
	v := NewVirtual(epoch)
	var r recorder
	for i := 1; i <= 5; i++ {
		v.AfterFunc(time.Duration(i)*time.Second, r.fn(i))
	}
	// The limit is inclusive.
	if n := v.RunUntil(epoch.Add(3 * time.Second)); n != 3 {
		t.Fatalf("RunUntil(3s) ran %d events, want 3", n)
	}
	if !v.Now().Equal(epoch.Add(3 * time.Second)) {
		t.Fatalf("Now() = %v after RunUntil(3s)", v.Now())
	}
	// Now moves to the limit even when no event is there.
	if n := v.RunUntil(epoch.Add(3500 * time.Millisecond)); n != 0 {
		t.Fatalf("RunUntil(3.5s) ran %d events, want 0", n)
	}
	if !v.Now().Equal(epoch.Add(3500 * time.Millisecond)) {
		t.Fatalf("Now() = %v, want 3.5s", v.Now())
	}
	// A limit in the past neither runs later events nor turns time back.
	if n := v.RunUntil(epoch); n != 0 || !v.Now().Equal(epoch.Add(3500*time.Millisecond)) {
		t.Fatalf("RunUntil(past) ran %d, Now() = %v; want 0 and unchanged", n, v.Now())
	}
	if n := v.RunFor(2 * time.Second); n != 2 {
		t.Fatalf("RunFor(2s) ran %d events, want 2", n)
	}
	if !v.Now().Equal(epoch.Add(5500 * time.Millisecond)) {
		t.Fatalf("Now() = %v, want 5.5s", v.Now())
	}
	if !slices.Equal(r.got, []int{1, 2, 3, 4, 5}) {
		t.Fatalf("order %v", r.got)
	}
}

func TestVirtualRunUntilRunsEventsDueNow(t *testing.T) {
	v := NewVirtual(epoch)
	ran := false
	v.AfterFunc(0, func() { ran = true })
	if n := v.RunUntil(v.Now()); n != 1 || !ran {
		t.Fatalf("RunUntil(Now) ran %d events, want the one due now", n)
	}
}

func TestVirtualRunWhile(t *testing.T) {
	t.Run("stops when the condition turns false", func(t *testing.T) {
		v := NewVirtual(epoch)
		count := 0
		for i := 1; i <= 10; i++ {
			v.AfterFunc(time.Duration(i)*time.Second, func() { count++ })
		}
		n := v.RunWhile(func() bool { return count < 4 }, epoch.Add(time.Hour))
		if n != 4 || count != 4 {
			t.Fatalf("ran %d (count %d), want 4", n, count)
		}
		if !v.Now().Equal(epoch.Add(4 * time.Second)) {
			t.Fatalf("Now() = %v, want the fourth event's time", v.Now())
		}
	})
	t.Run("stops at the limit", func(t *testing.T) {
		v := NewVirtual(epoch)
		for i := 1; i <= 10; i++ {
			v.AfterFunc(time.Duration(i)*time.Second, func() {})
		}
		limit := epoch.Add(6500 * time.Millisecond)
		n := v.RunWhile(func() bool { return true }, limit)
		if n != 6 || !v.Now().Equal(limit) || v.Len() != 4 {
			t.Fatalf("ran %d, Now() = %v, %d left; want 6, the limit, 4", n, v.Now(), v.Len())
		}
	})
	t.Run("false from the start runs nothing", func(t *testing.T) {
		v := NewVirtual(epoch)
		v.AfterFunc(time.Second, func() { t.Error("event ran") })
		if n := v.RunWhile(func() bool { return false }, epoch.Add(time.Hour)); n != 0 || !v.Now().Equal(epoch) {
			t.Fatalf("ran %d, Now() = %v", n, v.Now())
		}
	})
}

// trace runs a self-scheduling random workload and returns the sequence of
// (event, time) it ran.
func trace(seed uint64) []int64 {
	r := rand.New(rand.NewPCG(seed, 1))
	v := NewVirtual(epoch)
	var out []int64
	next := 0
	var spawn func()
	spawn = func() {
		id := next
		next++
		tm := v.AfterFunc(time.Duration(r.IntN(20))*time.Millisecond, func() {
			out = append(out, int64(id), int64(v.Now().Sub(epoch)))
			if next < 5000 {
				for range 1 + r.IntN(2) {
					spawn()
				}
			}
		})
		if r.IntN(10) == 0 {
			tm.Stop()
		}
	}
	for range 50 {
		spawn()
	}
	v.RunFor(time.Hour)
	return out
}

func TestVirtualIsDeterministic(t *testing.T) {
	a, b := trace(7), trace(7)
	if len(a) < 1000 {
		t.Fatalf("workload too small to prove anything: %d events", len(a)/2)
	}
	if !slices.Equal(a, b) {
		t.Fatal("two runs with the same seed ran different events")
	}
	if c := trace(8); slices.Equal(a, c) {
		t.Fatal("a different seed gave the same trace; the workload does not depend on the seed")
	}
}

func TestVirtualTimeNeverGoesBackwards(t *testing.T) {
	v := NewVirtual(epoch)
	v.RunFor(time.Hour)
	ran := false
	var at time.Time
	v.Schedule(epoch, eventFunc(func() { ran, at = true, v.Now() })) // in the past
	v.Step()
	if !ran || !at.Equal(epoch.Add(time.Hour)) {
		t.Fatalf("event scheduled in the past ran=%v at %v; want it to run at Now", ran, at)
	}
}

func TestVirtualFarFutureSaturates(t *testing.T) {
	v := NewVirtual(epoch)
	v.RunFor(time.Hour)
	var r recorder
	v.AfterFunc(math.MaxInt64, r.fn(1))
	v.AfterFunc(time.Hour, r.fn(0))
	for v.Step() {
	}
	if !slices.Equal(r.got, []int{0, 1}) {
		t.Fatalf("order %v; a huge delay must not wrap around to the past", r.got)
	}
}

type eventFunc func()

func (f eventFunc) Fire() { f() }

func TestVirtualScheduleAfterMixesWithTimers(t *testing.T) {
	v := NewVirtual(epoch)
	var r recorder
	v.ScheduleAfter(2*time.Second, eventFunc(r.fn(2)))
	tm := v.AfterFunc(time.Second, r.fn(1))
	v.Schedule(epoch.Add(time.Second), eventFunc(r.fn(3)))
	v.ScheduleAfter(0, eventFunc(r.fn(0)))
	// Removing the timer must leave the plain events in heap order.
	tm.Stop()
	v.RunFor(time.Minute)
	if !slices.Equal(r.got, []int{0, 3, 2}) {
		t.Fatalf("order %v, want [0 3 2]", r.got)
	}
}

func TestVirtualIsSafeForConcurrentSchedulingAndStop(t *testing.T) {
	v := NewVirtual(epoch)
	var mu sync.Mutex
	ran := 0
	var wg sync.WaitGroup
	const workers, each = 4, 500
	stopped := make([]int, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				tm := v.AfterFunc(time.Duration(i)*time.Millisecond, func() {
					mu.Lock()
					ran++
					mu.Unlock()
				})
				if i%5 == 0 && tm.Stop() {
					stopped[w]++
				}
				_ = v.Now()
			}
		})
	}
	// Run events while the workers schedule; Stop may race with Step and
	// must then lose cleanly.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			v.Step()
		}
	}
	for v.Step() {
	}
	total := 0
	for _, s := range stopped {
		total += s
	}
	if ran+total != workers*each {
		t.Fatalf("%d ran + %d stopped != %d scheduled", ran, total, workers*each)
	}
}

func TestVirtualScheduleAfterDoesNotAllocate(t *testing.T) {
	v := NewVirtual(epoch)
	ev := eventFunc(func() {})
	for range 1024 { // grow the heap first
		v.ScheduleAfter(time.Second, ev)
	}
	v.RunFor(time.Hour)
	allocs := testing.AllocsPerRun(1000, func() {
		for i := range 64 {
			v.ScheduleAfter(time.Duration(i)*time.Millisecond, ev)
		}
		for v.Step() {
		}
	})
	if allocs != 0 {
		t.Fatalf("ScheduleAfter+Step allocated %.1f times per 64 events, want 0", allocs)
	}
}

// BenchmarkVirtual schedules a million events at random delays up to a second
// and runs them all; ns/event and allocs/event are per event.
func BenchmarkVirtual(b *testing.B) {
	const events = 1 << 20
	delays := make([]time.Duration, events)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range delays {
		delays[i] = time.Duration(r.Int64N(int64(time.Second)))
	}
	b.Run("AfterFunc", func(b *testing.B) {
		v := NewVirtual(epoch)
		f := func() {}
		b.ReportAllocs()
		for b.Loop() {
			for _, d := range delays {
				v.AfterFunc(d, f)
			}
			v.RunFor(time.Second)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
	})
	b.Run("ScheduleAfter", func(b *testing.B) {
		v := NewVirtual(epoch)
		ev := eventFunc(func() {})
		b.ReportAllocs()
		for b.Loop() {
			for _, d := range delays {
				v.ScheduleAfter(d, ev)
			}
			v.RunFor(time.Second)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*events), "ns/event")
	})
}

// BenchmarkVirtualSteadyState keeps 100,000 events pending, the shape of a
// large simulation: each op runs the earliest event, which schedules one more.
func BenchmarkVirtualSteadyState(b *testing.B) {
	v := NewVirtual(epoch)
	r := rand.New(rand.NewPCG(3, 4))
	var ev eventFunc
	ev = func() { v.ScheduleAfter(time.Duration(r.Int64N(int64(time.Second))), ev) }
	for range 100_000 {
		v.ScheduleAfter(time.Duration(r.Int64N(int64(time.Second))), ev)
	}
	b.ReportAllocs()
	for b.Loop() {
		v.Step()
	}
}

func BenchmarkVirtualSteadyState1M(b *testing.B) {
	v := NewVirtual(epoch)
	r := rand.New(rand.NewPCG(3, 4))
	var ev eventFunc
	ev = func() { v.ScheduleAfter(time.Duration(r.Int64N(int64(time.Second))), ev) }
	for range 1_000_000 {
		v.ScheduleAfter(time.Duration(r.Int64N(int64(time.Second))), ev)
	}
	b.ReportAllocs()
	for b.Loop() {
		v.Step()
	}
}

func TestVirtualReturnsMemoryAfterABurst(t *testing.T) {
	v := NewVirtual(epoch)
	for i := range 1 << 18 {
		v.ScheduleAfter(time.Duration(i), eventFunc(func() {}))
	}
	big := cap(v.heap)
	v.RunFor(time.Hour)
	if c := cap(v.heap); c > 1<<16 || c >= big {
		t.Fatalf("heap capacity %d after draining %d events (peak %d); want it given back", c, 1<<18, big)
	}
}

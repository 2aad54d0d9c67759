package rpc

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func peer(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), uint16(4000+i))
}

// call is one callback of Expire.
type call struct {
	txid uint64
	to   netip.AddrPort
	v    string
}

func expireAll(tr *Tracker[string], now time.Time) []call {
	var got []call
	tr.Expire(now, func(txid uint64, to netip.AddrPort, v string) { got = append(got, call{txid, to, v}) })
	return got
}

func mustAdd[T any](t *testing.T, tr *Tracker[T], txid uint64, to netip.AddrPort, deadline time.Time, v T) {
	t.Helper()
	if err := tr.Add(txid, to, deadline, v); err != nil {
		t.Fatalf("Add(%d): %v", txid, err)
	}
}

// Rule 4 of the design: a response matches only if both its transaction ID
// and its source address are those of the request.
func TestMatchRequiresTransactionIDAndAddress(t *testing.T) {
	to := netip.MustParseAddrPort("192.0.2.1:4000")
	for _, tc := range []struct {
		name     string
		txid     uint64
		from     netip.AddrPort
		want     bool
		leftOver int // requests still in flight afterwards
	}{
		{"same txid and address", 7, to, true, 0},
		{"IPv4-mapped form of the address", 7, netip.MustParseAddrPort("[::ffff:192.0.2.1]:4000"), true, 0},
		{"other port", 7, netip.MustParseAddrPort("192.0.2.1:4001"), false, 1},
		{"other host", 7, netip.MustParseAddrPort("192.0.2.2:4000"), false, 1},
		{"other txid", 8, to, false, 1},
		{"zero address", 7, netip.AddrPort{}, false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker[string](4)
			mustAdd(t, tr, 7, to, at(100), "req")
			v, ok := tr.Match(tc.txid, tc.from)
			if ok != tc.want || (ok && v != "req") || (!ok && v != "") {
				t.Fatalf("Match(%d, %v) = %q, %v; want match=%v", tc.txid, tc.from, v, ok, tc.want)
			}
			if tr.Len() != tc.leftOver {
				t.Fatalf("Len = %d after Match, want %d", tr.Len(), tc.leftOver)
			}
			if !tc.want {
				// The genuine response still matches after a spoofed one.
				if v, ok := tr.Match(7, to); !ok || v != "req" {
					t.Fatalf("genuine response after a mismatch: Match = %q, %v", v, ok)
				}
			}
		})
	}
}

func TestAddFailsWhenFullAndHasRoomAgainAfterwards(t *testing.T) {
	for _, tc := range []struct {
		name string
		free func(tr *Tracker[string])
	}{
		{"Match", func(tr *Tracker[string]) { tr.Match(2, peer(2)) }},
		{"Remove", func(tr *Tracker[string]) { tr.Remove(2) }},
		{"Expire", func(tr *Tracker[string]) { tr.Expire(at(1), nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker[string](3)
			for i := 1; i <= 3; i++ {
				mustAdd(t, tr, uint64(i), peer(i), at(i), "")
			}
			if err := tr.Add(4, peer(4), at(4), ""); !errors.Is(err, ErrFull) {
				t.Fatalf("Add at capacity = %v, want ErrFull", err)
			}
			if tr.Len() != 3 || tr.Cap() != 3 {
				t.Fatalf("Len, Cap = %d, %d; want 3, 3", tr.Len(), tr.Cap())
			}
			tc.free(tr)
			if tr.Len() != 2 {
				t.Fatalf("Len = %d after freeing one, want 2", tr.Len())
			}
			mustAdd(t, tr, 4, peer(4), at(4), "")
		})
	}
}

func TestAddRejectsATransactionIDInFlight(t *testing.T) {
	tr := NewTracker[string](3)
	mustAdd(t, tr, 1, peer(1), at(1), "a")
	if err := tr.Add(1, peer(2), at(2), "b"); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second Add(1) = %v, want ErrDuplicate", err)
	}
	if v, ok := tr.Match(1, peer(1)); !ok || v != "a" {
		t.Fatalf("the first request was disturbed: Match = %q, %v", v, ok)
	}
}

func TestZeroTrackerIsFull(t *testing.T) {
	var tr Tracker[int]
	if err := tr.Add(1, peer(1), at(1), 0); !errors.Is(err, ErrFull) {
		t.Fatalf("Add on the zero Tracker = %v, want ErrFull", err)
	}
	if _, ok := tr.NextDeadline(); ok {
		t.Fatal("zero Tracker reports a deadline")
	}
	tr.Expire(at(1), func(uint64, netip.AddrPort, int) { t.Fatal("zero Tracker expired something") })
}

func TestNewTrackerRejectsNonPositiveCapacity(t *testing.T) {
	for _, c := range []int{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewTracker(%d) did not panic", c)
				}
			}()
			NewTracker[int](c)
		}()
	}
}

// scripted is a rand.Source that returns fixed values, then counts up.
type scripted struct {
	vals []uint64
	next uint64
}

func (s *scripted) Uint64() uint64 {
	if len(s.vals) > 0 {
		v := s.vals[0]
		s.vals = s.vals[1:]
		return v
	}
	s.next++
	return s.next
}

func TestNewTxIDSkipsZeroAndIDsInUse(t *testing.T) {
	tr := NewTracker[int](8)
	mustAdd(t, tr, 42, peer(1), at(1), 0)
	r := rand.New(&scripted{vals: []uint64{0, 42, 0, 42, 99}})
	if got := tr.NewTxID(r); got != 99 {
		t.Fatalf("NewTxID = %d, want 99 (0 and 42 are not allowed)", got)
	}
}

func TestExpireRunsInDeadlineThenInsertionOrder(t *testing.T) {
	tr := NewTracker[string](16)
	// Deadlines with ties, added out of order.
	adds := []struct {
		txid uint64
		ms   int
	}{{1, 30}, {2, 10}, {3, 20}, {4, 10}, {5, 40}, {6, 20}, {7, 10}, {8, 50}}
	for _, a := range adds {
		mustAdd(t, tr, a.txid, peer(int(a.txid)), at(a.ms), fmt.Sprint("v", a.txid))
	}
	if d, ok := tr.NextDeadline(); !ok || !d.Equal(at(10)) {
		t.Fatalf("NextDeadline = %v, %v; want %v", d, ok, at(10))
	}
	if got := expireAll(tr, at(9)); len(got) != 0 {
		t.Fatalf("Expire before any deadline = %v", got)
	}
	got := expireAll(tr, at(30)) // deadlines <= now expire: 30 included
	var ids []uint64
	for _, c := range got {
		ids = append(ids, c.txid)
		if c.to != peer(int(c.txid)) || c.v != fmt.Sprint("v", c.txid) {
			t.Fatalf("Expire reported %+v, want its own address and value", c)
		}
	}
	if want := []uint64{2, 4, 7, 3, 6, 1}; !slices.Equal(ids, want) {
		t.Fatalf("expired %v, want %v", ids, want)
	}
	if tr.Len() != 2 {
		t.Fatalf("Len = %d after Expire, want 2", tr.Len())
	}
	if d, ok := tr.NextDeadline(); !ok || !d.Equal(at(40)) {
		t.Fatalf("NextDeadline = %v, %v; want %v", d, ok, at(40))
	}
	// Expired requests no longer match.
	if _, ok := tr.Match(2, peer(2)); ok {
		t.Fatal("an expired request matched")
	}
}

func TestRescheduleMovesTheDeadline(t *testing.T) {
	tr := NewTracker[string](8)
	mustAdd(t, tr, 1, peer(1), at(10), "a")
	mustAdd(t, tr, 2, peer(2), at(20), "b")
	mustAdd(t, tr, 3, peer(3), at(30), "c")
	if !tr.Reschedule(1, at(35)) {
		t.Fatal("Reschedule of a request in flight returned false")
	}
	if !tr.Reschedule(3, at(5)) {
		t.Fatal("Reschedule of a request in flight returned false")
	}
	if tr.Reschedule(9, at(5)) {
		t.Fatal("Reschedule of an unknown txid returned true")
	}
	if d, _ := tr.NextDeadline(); !d.Equal(at(5)) {
		t.Fatalf("NextDeadline = %v, want %v", d, at(5))
	}
	// A rescheduled request ties after the ones set before it.
	if !tr.Reschedule(2, at(35)) {
		t.Fatal("Reschedule returned false")
	}
	var ids []uint64
	for _, c := range expireAll(tr, at(100)) {
		ids = append(ids, c.txid)
	}
	if want := []uint64{3, 1, 2}; !slices.Equal(ids, want) {
		t.Fatalf("expired %v, want %v", ids, want)
	}
}

// The node retries from inside Expire: the callback adds a new request (even
// one already due) and reschedules another. Both survive this Expire.
func TestExpireCallbackMayAddAndReschedule(t *testing.T) {
	tr := NewTracker[string](3)
	mustAdd(t, tr, 1, peer(1), at(10), "first")
	mustAdd(t, tr, 2, peer(2), at(10), "second")
	mustAdd(t, tr, 3, peer(3), at(50), "later")
	var got []uint64
	tr.Expire(at(10), func(txid uint64, to netip.AddrPort, v string) {
		got = append(got, txid)
		switch txid {
		case 1:
			// Room exists: both due requests were removed before callbacks.
			mustAdd(t, tr, 11, to, at(20), "retry")
			if !tr.Reschedule(3, at(5)) { // due, but not expired by this call
				t.Error("Reschedule from Expire's callback failed")
			}
			if tr.Reschedule(2, at(60)) {
				t.Error("Reschedule of a request being expired succeeded")
			}
		case 2:
			mustAdd(t, tr, 12, to, at(0), "due already")
		}
	})
	if !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("expired %v, want [1 2]", got)
	}
	if tr.Len() != 3 {
		t.Fatalf("Len = %d, want 3 (requests 3, 11, 12)", tr.Len())
	}
	got = got[:0]
	for _, c := range expireAll(tr, at(20)) {
		got = append(got, c.txid)
	}
	if want := []uint64{12, 3, 11}; !slices.Equal(got, want) {
		t.Fatalf("second Expire: %v, want %v", got, want)
	}
}

// Even a nested Expire from the callback is safe: each call reports its own
// requests exactly once.
func TestExpireMayBeCalledFromItsCallback(t *testing.T) {
	tr := NewTracker[string](8)
	for i := 1; i <= 8; i++ { // warm up: Expire keeps a scratch buffer
		mustAdd(t, tr, uint64(i), peer(i), at(0), "")
	}
	tr.Expire(at(0), nil)
	for i := 1; i <= 3; i++ {
		mustAdd(t, tr, uint64(i), peer(i), at(10), fmt.Sprint("v", i))
	}
	var outer, inner []string
	tr.Expire(at(10), func(txid uint64, to netip.AddrPort, v string) {
		outer = append(outer, v)
		if txid == 1 {
			mustAdd(t, tr, 4, peer(4), at(5), "v4")
			mustAdd(t, tr, 5, peer(5), at(6), "v5")
			tr.Expire(at(10), func(_ uint64, _ netip.AddrPort, v string) { inner = append(inner, v) })
		}
	})
	if want := []string{"v1", "v2", "v3"}; !slices.Equal(outer, want) {
		t.Fatalf("outer Expire reported %v, want %v", outer, want)
	}
	if want := []string{"v4", "v5"}; !slices.Equal(inner, want) {
		t.Fatalf("nested Expire reported %v, want %v", inner, want)
	}
	if tr.Len() != 0 {
		t.Fatalf("Len = %d, want 0", tr.Len())
	}
}

// model is the obviously-correct reference: a slice searched linearly.
type model struct {
	capacity int
	seq      uint64
	reqs     []modelReq
}

type modelReq struct {
	txid     uint64
	to       netip.AddrPort
	deadline time.Time
	seq      uint64
	v        int
}

func (m *model) find(txid uint64) int {
	return slices.IndexFunc(m.reqs, func(r modelReq) bool { return r.txid == txid })
}

func (m *model) add(txid uint64, to netip.AddrPort, d time.Time, v int) error {
	if m.find(txid) >= 0 {
		return ErrDuplicate
	}
	if len(m.reqs) >= m.capacity {
		return ErrFull
	}
	m.seq++
	m.reqs = append(m.reqs, modelReq{txid, to, d, m.seq, v})
	return nil
}

func (m *model) take(txid uint64, from *netip.AddrPort) (int, bool) {
	i := m.find(txid)
	if i < 0 {
		return 0, false
	}
	if from != nil {
		to := m.reqs[i].to
		if to.Port() != from.Port() || to.Addr().Unmap() != from.Addr().Unmap() {
			return 0, false
		}
	}
	v := m.reqs[i].v
	m.reqs = slices.Delete(m.reqs, i, i+1)
	return v, true
}

func (m *model) reschedule(txid uint64, d time.Time) bool {
	i := m.find(txid)
	if i < 0 {
		return false
	}
	m.seq++
	m.reqs[i].deadline, m.reqs[i].seq = d, m.seq
	return true
}

func (m *model) expire(now time.Time) []modelReq {
	var due, keep []modelReq
	for _, r := range m.reqs {
		if r.deadline.After(now) {
			keep = append(keep, r)
		} else {
			due = append(due, r)
		}
	}
	slices.SortFunc(due, func(a, b modelReq) int {
		if c := a.deadline.Compare(b.deadline); c != 0 {
			return c
		}
		return int(a.seq) - int(b.seq)
	})
	m.reqs = keep
	return due
}

func (m *model) nextDeadline() (time.Time, bool) {
	if len(m.reqs) == 0 {
		return time.Time{}, false
	}
	min := m.reqs[0].deadline
	for _, r := range m.reqs {
		if r.deadline.Before(min) {
			min = r.deadline
		}
	}
	return min, true
}

// Property: over thousands of random operations, including re-adds from
// inside Expire and bursts that make the tracker release its memory, the
// tracker behaves exactly like the slice-based model.
func TestTrackerMatchesReferenceModel(t *testing.T) {
	for seed := range uint64(6) {
		r := rand.New(rand.NewPCG(seed, 99))
		capacity := 1 + r.IntN(120)
		tr := NewTracker[int](capacity)
		m := &model{capacity: capacity}
		now := 0
		addrs := []netip.AddrPort{peer(1), peer(2), peer(3), netip.MustParseAddrPort("[::ffff:192.0.2.1]:4001")}
		for op := range 5000 {
			txid := uint64(1 + r.IntN(2*capacity)) // small range: duplicates happen
			addr := addrs[r.IntN(len(addrs))]
			d := at(now + r.IntN(50)) // coarse deadlines: ties happen
			switch k := r.IntN(100); {
			case k < 40:
				v := r.Int()
				if got, want := tr.Add(txid, addr, d, v), m.add(txid, addr, d, v); got != want {
					t.Fatalf("seed %d op %d: Add = %v, model %v", seed, op, got, want)
				}
			case k < 55:
				gv, gok := tr.Match(txid, addr)
				wv, wok := m.take(txid, &addr)
				if gv != wv || gok != wok {
					t.Fatalf("seed %d op %d: Match = %d, %v; model %d, %v", seed, op, gv, gok, wv, wok)
				}
			case k < 62:
				gv, gok := tr.Remove(txid)
				wv, wok := m.take(txid, nil)
				if gv != wv || gok != wok {
					t.Fatalf("seed %d op %d: Remove = %d, %v; model %d, %v", seed, op, gv, gok, wv, wok)
				}
			case k < 72:
				if got, want := tr.Reschedule(txid, d), m.reschedule(txid, d); got != want {
					t.Fatalf("seed %d op %d: Reschedule = %v, model %v", seed, op, got, want)
				}
			case k < 97:
				now += r.IntN(20)
				want := m.expire(at(now))
				var got []modelReq
				tr.Expire(at(now), func(txid uint64, to netip.AddrPort, v int) {
					got = append(got, modelReq{txid: txid, to: to, v: v})
					if v%3 == 0 { // a retry, sometimes already due
						rd := at(now - 5 + int(txid%20))
						if e1, e2 := tr.Add(txid+1000, to, rd, v+1), m.add(txid+1000, to, rd, v+1); e1 != e2 {
							t.Fatalf("seed %d op %d: Add in Expire = %v, model %v", seed, op, e1, e2)
						}
					}
				})
				if len(got) != len(want) {
					t.Fatalf("seed %d op %d: Expire reported %d, model %d", seed, op, len(got), len(want))
				}
				for i := range got {
					if got[i].txid != want[i].txid || got[i].to != want[i].to || got[i].v != want[i].v {
						t.Fatalf("seed %d op %d: Expire #%d = %+v, model %+v", seed, op, i, got[i], want[i])
					}
				}
			default: // drain everything: exercises releasing memory
				for _, req := range m.expire(at(1 << 30)) {
					if _, ok := tr.Remove(req.txid); !ok {
						t.Fatalf("seed %d op %d: Remove(%d) of a request in flight failed", seed, op, req.txid)
					}
				}
			}
			if tr.Len() != len(m.reqs) {
				t.Fatalf("seed %d op %d: Len = %d, model %d", seed, op, tr.Len(), len(m.reqs))
			}
			gd, gok := tr.NextDeadline()
			wd, wok := m.nextDeadline()
			if gok != wok || !gd.Equal(wd) {
				t.Fatalf("seed %d op %d: NextDeadline = %v, %v; model %v, %v", seed, op, gd, gok, wd, wok)
			}
			checkInvariants(t, tr)
		}
	}
}

// checkInvariants verifies the internal cross-references: index, dense array
// and heap agree, and the heap is ordered.
func checkInvariants[T any](t *testing.T, tr *Tracker[T]) {
	t.Helper()
	if len(tr.byID) != len(tr.entries) || len(tr.heap) != len(tr.entries) {
		t.Fatalf("sizes disagree: index %d, entries %d, heap %d", len(tr.byID), len(tr.entries), len(tr.heap))
	}
	for i, e := range tr.entries {
		if tr.byID[e.txid] != int32(i) {
			t.Fatalf("index of txid %d is %d, entry is at %d", e.txid, tr.byID[e.txid], i)
		}
		if tr.heap[e.heapIdx] != int32(i) {
			t.Fatalf("entry %d claims heap slot %d, which holds %d", i, e.heapIdx, tr.heap[e.heapIdx])
		}
	}
	for h := 1; h < len(tr.heap); h++ {
		if tr.less(h, (h-1)/2) {
			t.Fatalf("heap out of order at %d", h)
		}
	}
}

func TestEmptyTrackersAreSmall(t *testing.T) {
	const n = 1000
	keep := make([]*Tracker[int], n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range keep {
		keep[i] = NewTracker[int](1024)
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > 256 {
		t.Fatalf("an empty tracker costs %d bytes, want at most 256", per)
	} else {
		t.Logf("an empty tracker costs %d bytes", per)
	}
	// After a burst, an emptied tracker lets its tables go.
	tr := keep[0]
	for i := range 500 {
		mustAdd(t, tr, uint64(i+1), peer(i), at(i), i)
	}
	tr.Expire(at(1000), nil)
	if tr.Len() != 0 || tr.entries != nil || tr.heap != nil || tr.byID != nil || tr.scratch != nil {
		t.Fatalf("an emptied tracker kept its memory: %d entries, %d heap, %d scratch",
			cap(tr.entries), cap(tr.heap), cap(tr.scratch))
	}
	// A small tracker keeps its tables, so steady use does not allocate.
	tr = keep[1]
	for i := range 8 {
		mustAdd(t, tr, uint64(i+1), peer(i), at(i), i)
	}
	for i := range 8 {
		tr.Remove(uint64(i + 1))
	}
	if tr.entries == nil {
		t.Fatal("a tracker that held 8 requests let its tables go")
	}
	runtime.KeepAlive(keep)
}

// The hot path: once warm, sending and matching a request does not allocate.
func TestAddAndMatchDoNotAllocate(t *testing.T) {
	tr := NewTracker[int](256)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 32 {
		mustAdd(t, tr, tr.NewTxID(r), peer(i), at(i), i)
	}
	i := 0
	allocs := testing.AllocsPerRun(1000, func() {
		i++
		x := tr.NewTxID(r)
		if err := tr.Add(x, peer(i%250), at(i), i); err != nil {
			t.Fatal(err)
		}
		if _, ok := tr.Match(x, peer(i%250)); !ok {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Fatalf("Add+Match allocates %v times, want 0", allocs)
	}
}

// BenchmarkAddMatch: one request sent and answered, with 64 others in flight.
func BenchmarkAddMatch(b *testing.B) {
	tr := NewTracker[int](1024)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 64 {
		if err := tr.Add(tr.NewTxID(r), peer(i), at(1000+i), i); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		x := tr.NewTxID(r)
		if err := tr.Add(x, peer(i%250), at(i%2000), i); err != nil {
			b.Fatal(err)
		}
		if _, ok := tr.Match(x, peer(i%250)); !ok {
			b.Fatal("no match")
		}
	}
}

// BenchmarkExpire: per op, one request added and later expired, in batches
// of 32 with spread deadlines (small enough that the emptied tracker keeps
// its tables; see shrinkAbove).
func BenchmarkExpire(b *testing.B) {
	const batch = 32
	tr := NewTracker[int](batch)
	r := rand.New(rand.NewPCG(1, 2))
	deadlines := make([]time.Time, batch)
	for i := range deadlines {
		deadlines[i] = at(r.IntN(10000))
	}
	n := 0
	fn := func(uint64, netip.AddrPort, int) { n++ }
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if err := tr.Add(uint64(i+1), peer(i%250), deadlines[i%batch], i); err != nil {
			b.Fatal(err)
		}
		if tr.Len() == batch {
			tr.Expire(at(10000), fn)
		}
	}
}

package routing

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"unsafe"

	"github.com/dhtkit/dht/id"
)

const entrySize = unsafe.Sizeof(entry{})

// retainedBytes counts the memory a table holds: the Table, its bucket
// array and every entry slot (used or not), its address index and its zone
// names.
func retainedBytes(tb *Table) int {
	n := int(unsafe.Sizeof(*tb)) + cap(tb.buckets)*int(unsafe.Sizeof(bucket{}))
	for i := range tb.buckets {
		n += (cap(tb.buckets[i].entries) + cap(tb.buckets[i].repl)) * int(entrySize)
	}
	n += cap(tb.idx.slots) * int(unsafe.Sizeof(tb.idx.slots[0]))
	n += cap(tb.zones) * int(unsafe.Sizeof(""))
	for _, z := range tb.zones {
		n += len(z)
	}
	return n
}

// heapPerTable measures with the runtime what `count` tables fed n random
// contacts each retain, per table: the live heap marked by a full GC, which
// (unlike MemStats.HeapAlloc) does not count free slots of cached spans.
func heapPerTable(count, n int) float64 {
	liveHeap() // the first reading in a process comes out low; discard it
	before := liveHeap()
	tables := make([]*Table, count)
	for i := range tables {
		tables[i], _ = bigTableNoList(20, n, uint64(i))
	}
	after := liveHeap()
	runtime.KeepAlive(tables)
	return float64(after-before) / float64(count)
}

func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	runtime.GC()
	metrics.Read(s)
	return int64(s[0].Value.Uint64())
}

func bigTableNoList(k, n int, seed uint64) (*Table, int) {
	r := newRand(seed)
	tb := New(id.Random(r), Config{K: k})
	for i := range n {
		tb.Seen(id.Contact{ID: id.Random(r), Addr: addr(i + 1)}, t0)
	}
	return tb, tb.Len()
}

func TestTableOfA100000NodeNetworkFitsIn40KiB(t *testing.T) {
	tb, _ := bigTableNoList(20, 100000, 42)
	got := retainedBytes(tb)
	cached := 0
	for i := range tb.Buckets() {
		cached += len(tb.Replacements(i))
	}
	t.Logf("K=20, 100000 random contacts: %d buckets, %d contacts + %d replacements, %d bytes retained",
		tb.Buckets(), tb.Len(), cached, got)
	if got > 40<<10 {
		t.Fatalf("table retains %d bytes, budget 40 KiB", got)
	}
	if !testing.Short() && !raceEnabled {
		// Cross-check the accounting with the runtime's own figure.
		heap := heapPerTable(4, 100000)
		t.Logf("runtime live heap: %.0f bytes per table", heap)
		if heap > 1.25*float64(got)+1024 {
			t.Fatalf("heap grows %.0f bytes per table, accounting says %d", heap, got)
		}
	}
	runtime.KeepAlive(tb) // so that freeing it does not skew the measurement
}

func BenchmarkSeenExisting(b *testing.B) {
	tb, cs := bigTable(20, 100000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tb.Seen(cs[i%len(cs)], t0)
		i++
	}
}

func BenchmarkSeenNew(b *testing.B) {
	tb, _ := bigTable(20, 100000)
	r := newRand(77)
	fresh := make([]id.Contact, 1<<16)
	for i := range fresh {
		// Addresses the table does not hold (bigTable uses 1 to 100,000):
		// every newcomer is new by address as well as by ID.
		fresh[i] = id.Contact{ID: id.Random(r), Addr: addr(200001 + i)}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tb.Seen(fresh[i%len(fresh)], t0)
		i++
	}
}

// BenchmarkVerifiedExisting is BenchmarkSeenExisting for responses.
func BenchmarkVerifiedExisting(b *testing.B) {
	tb, cs := bigTable(20, 100000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tb.Verified(cs[i%len(cs)], t0)
		i++
	}
}

// BenchmarkSeenFlood is one host sending requests under ever new IDs from
// an address the table holds: each costs an address lookup and a refusal.
func BenchmarkSeenFlood(b *testing.B) {
	tb, cs := bigTable(20, 100000)
	r := newRand(80)
	flood := make([]id.Contact, 1<<12)
	for i := range flood {
		flood[i] = id.Contact{ID: id.Random(r), Addr: cs[0].Addr}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		tb.Seen(flood[i%len(flood)], t0)
		i++
	}
}

func BenchmarkClosest20(b *testing.B) {
	tb, _ := bigTable(20, 100000)
	r := newRand(78)
	targets := make([]id.ID, 1024)
	for i := range targets {
		targets[i] = id.Random(r)
	}
	dst := make([]id.Contact, 0, 20)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		dst = tb.Closest(targets[i%len(targets)], 20, dst[:0])
		i++
	}
}

// BenchmarkClosest20NearSelf looks up targets in the deepest buckets, where
// Closest has to gather from many small buckets.
func BenchmarkClosest20NearSelf(b *testing.B) {
	tb, _ := bigTable(20, 100000)
	r := newRand(79)
	targets := make([]id.ID, 1024)
	for i := range targets {
		targets[i] = tb.RefreshTarget(tb.Buckets()-1-r.IntN(3), r)
	}
	dst := make([]id.Contact, 0, 20)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		dst = tb.Closest(targets[i%len(targets)], 20, dst[:0])
		i++
	}
}

// BenchmarkTableMemory builds tables as nodes of a 100,000-node network see
// them and reports what each retains.
func BenchmarkTableMemory(b *testing.B) {
	for b.Loop() {
		b.ReportMetric(heapPerTable(8, 100000), "heap-bytes/table")
	}
	tb, _ := bigTableNoList(20, 100000, 1)
	b.ReportMetric(float64(retainedBytes(tb)), "counted-bytes/table")
}

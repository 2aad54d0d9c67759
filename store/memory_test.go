package store_test

import (
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/store/storetest"
)

func TestMemoryConforms(t *testing.T) {
	storetest.Run(t, func(l store.Limits) store.Store { return store.NewMemory(l) })
}

// TestMemoryObservedConforms runs the suite on a store with an observer,
// which must change nothing the store does.
func TestMemoryObservedConforms(t *testing.T) {
	storetest.Run(t, func(l store.Limits) store.Store {
		return store.NewMemoryObserved(l, func(id.ID, id.ID, *store.Value, netip.Addr) {})
	})
}

func TestNewMemoryFillsDefaultLimits(t *testing.T) {
	const KiB, MiB = 1 << 10, 1 << 20
	defaults := store.Limits{MaxValueSize: 64 * KiB, MaxPerKey: 64, MaxBytesPerKey: 256 * KiB,
		MaxValues: 100_000, MaxBytes: 256 * MiB, MaxPerPublisher: 1000,
		MaxPerSource: 1000, MaxBytesPerSource: 256 * MiB / 100, MaxPerKeyPerSource: 16, MaxBytesPerKeyPerSource: 64 * KiB,
		MaxPerSite: 4000, MaxBytesPerSite: 256 * MiB / 25, MaxPerKeyPerSite: 32, MaxBytesPerKeyPerSite: 128 * KiB}
	set := store.Limits{MaxValueSize: 10, MaxPerKey: 2, MaxBytesPerKey: 11, MaxValues: 5, MaxBytes: 7, MaxPerPublisher: 8,
		MaxPerSource: 3, MaxBytesPerSource: 9, MaxPerKeyPerSource: 6, MaxBytesPerKeyPerSource: 12,
		MaxPerSite: 1, MaxBytesPerSite: 2, MaxPerKeyPerSite: 4, MaxBytesPerKeyPerSite: 13}
	tests := []struct {
		name string
		in   store.Limits
		want store.Limits
	}{
		{"Zero", store.Limits{}, defaults},
		{"Negative", store.Limits{MaxValueSize: -1, MaxPerKey: -1, MaxBytesPerKey: -1, MaxValues: -1, MaxBytes: -1,
			MaxPerPublisher: -1, MaxPerSource: -1, MaxBytesPerSource: -1, MaxPerKeyPerSource: -1, MaxBytesPerKeyPerSource: -1,
			MaxPerSite: -1, MaxBytesPerSite: -1, MaxPerKeyPerSite: -1, MaxBytesPerKeyPerSite: -1}, defaults},
		{"Set", set, set},
		// The byte bounds follow the bounds of records when those imply
		// less, and the quotas follow the limits they are shares of.
		{"Partial", store.Limits{MaxPerKey: 3, MaxValueSize: 1000, MaxValues: 5000},
			store.Limits{MaxValueSize: 1000, MaxPerKey: 3, MaxBytesPerKey: 3000, MaxValues: 5000, MaxBytes: 5_000_000, MaxPerPublisher: 1000,
				MaxPerSource: 50, MaxBytesPerSource: 50_000, MaxPerKeyPerSource: 1, MaxBytesPerKeyPerSource: 1000,
				MaxPerSite: 200, MaxBytesPerSite: 200_000, MaxPerKeyPerSite: 1, MaxBytesPerKeyPerSite: 1500}},
		// A value of the largest size always fits an empty key.
		{"KeyHoldsTheLargestValue", store.Limits{MaxValueSize: 1 << 20},
			store.Limits{MaxValueSize: 1 << 20, MaxPerKey: 64, MaxBytesPerKey: 1 << 20, MaxValues: 100_000, MaxBytes: 256 * MiB, MaxPerPublisher: 1000,
				MaxPerSource: 1000, MaxBytesPerSource: 256 * MiB / 100, MaxPerKeyPerSource: 16, MaxBytesPerKeyPerSource: 1 << 20,
				MaxPerSite: 4000, MaxBytesPerSite: 256 * MiB / 25, MaxPerKeyPerSite: 32, MaxBytesPerKeyPerSite: 1 << 20}},
		// A site's default quotas are never below its sources' quotas.
		{"SiteAtLeastSource", store.Limits{MaxPerSource: 9000, MaxBytesPerSource: 50 * MiB, MaxPerKeyPerSource: 40, MaxBytesPerKeyPerSource: 200 * KiB},
			store.Limits{MaxValueSize: 64 * KiB, MaxPerKey: 64, MaxBytesPerKey: 256 * KiB, MaxValues: 100_000, MaxBytes: 256 * MiB, MaxPerPublisher: 1000,
				MaxPerSource: 9000, MaxBytesPerSource: 50 * MiB, MaxPerKeyPerSource: 40, MaxBytesPerKeyPerSource: 200 * KiB,
				MaxPerSite: 9000, MaxBytesPerSite: 50 * MiB, MaxPerKeyPerSite: 40, MaxBytesPerKeyPerSite: 200 * KiB}},
		{"SharesNeverZero", store.Limits{MaxValues: 7, MaxPerKey: 2, MaxValueSize: 10},
			store.Limits{MaxValueSize: 10, MaxPerKey: 2, MaxBytesPerKey: 20, MaxValues: 7, MaxBytes: 70, MaxPerPublisher: 1000,
				MaxPerSource: 1, MaxBytesPerSource: 10, MaxPerKeyPerSource: 1, MaxBytesPerKeyPerSource: 10,
				MaxPerSite: 1, MaxBytesPerSite: 10, MaxPerKeyPerSite: 1, MaxBytesPerKeyPerSite: 10}},
		{"ProductsSaturate", store.Limits{MaxValues: math.MaxInt / 2, MaxPerKey: math.MaxInt / 2, MaxValueSize: 1000},
			store.Limits{MaxValueSize: 1000, MaxPerKey: math.MaxInt / 2, MaxBytesPerKey: 256 * KiB, MaxValues: math.MaxInt / 2, MaxBytes: 256 * MiB,
				MaxPerPublisher: 1000, MaxPerSource: math.MaxInt / 2 / 100, MaxBytesPerSource: 256 * MiB / 100,
				MaxPerKeyPerSource: math.MaxInt / 2 / 4, MaxBytesPerKeyPerSource: 64 * KiB,
				MaxPerSite: math.MaxInt / 2 / 25, MaxBytesPerSite: 256 * MiB / 25, MaxPerKeyPerSite: math.MaxInt / 2 / 2, MaxBytesPerKeyPerSite: 128 * KiB}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.NewMemory(tt.in).Limits(); got != tt.want {
				t.Errorf("NewMemory(%+v).Limits() =\n%+v, want\n%+v", tt.in, got, tt.want)
			}
		})
	}
}

var t0 = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// self is the source of the node's own puts, exempt from the quotas.
var self netip.Addr

func pub(i int) id.ID { return id.Key(fmt.Sprint("publisher ", i)) }

// fill stores n values under k, of publishers of their own, expiring an
// hour after t0.
func fill(tb testing.TB, m *store.Memory, k id.ID, n int) {
	tb.Helper()
	for i := range n {
		v := store.Value{Publisher: fillPub(k, i), Version: uint64(i), Expires: t0.Add(time.Hour),
			Data: fmt.Appendf(nil, "203.0.113.%d:4000", i)}
		if err := m.Put(k, v, self, t0); err != nil {
			tb.Fatal(err)
		}
	}
}

// fillPub is the publisher of fill's i-th value under k.
func fillPub(k id.ID, i int) id.ID {
	k[0] ^= byte(i + 1)
	return k
}

func TestMemoryGetDoesNotAllocate(t *testing.T) {
	m := store.NewMemory(store.Limits{})
	k := id.Key("service")
	fill(t, m, k, 8)
	// A tombstone, which Get skips and Records returns.
	if err := m.Put(k, store.Value{Publisher: pub(100), Version: 1, Deleted: true, Expires: t0.Add(time.Hour)}, self, t0); err != nil {
		t.Fatal(err)
	}
	dst := make([]store.Value, 0, 16)
	for _, tc := range []struct {
		name string
		get  func(id.ID, time.Time, []store.Value) []store.Value
		key  id.ID
		want int
	}{
		{"Hit", m.Get, k, 8},
		{"Miss", m.Get, id.Key("absent"), 0},
		{"Records", m.Records, k, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got int
			allocs := testing.AllocsPerRun(100, func() {
				got = len(tc.get(tc.key, t0.Add(time.Minute), dst[:0]))
			})
			if got != tc.want {
				t.Fatalf("returned %d records, want %d", got, tc.want)
			}
			if allocs != 0 {
				t.Errorf("with room in dst it allocates %.1f times per call, want 0", allocs)
			}
		})
	}
	t.Run("Lookup", func(t *testing.T) {
		p := fillPub(k, 3)
		allocs := testing.AllocsPerRun(100, func() {
			if _, ok := m.Lookup(k, p, t0.Add(time.Minute)); !ok {
				t.Fatal("Lookup found nothing")
			}
		})
		if allocs != 0 {
			t.Errorf("Lookup allocates %.1f times per call, want 0", allocs)
		}
	})
}

func TestMemoryRefreshDoesNotAllocate(t *testing.T) {
	m := store.NewMemory(store.Limits{})
	k := id.Key("service")
	fill(t, m, k, 4)
	v := store.Value{Publisher: fillPub(k, 2), Version: 2, Data: []byte("203.0.113.2:4000")}
	src := netip.MustParseAddr("2001:db8::2")
	now := t0
	// Refreshing a record is what republishing does all day, from other
	// nodes; it must not cost an allocation once the expiry heap has reached
	// its steady size.
	for range 1000 {
		now = now.Add(time.Second)
		v.Expires = now.Add(time.Hour)
		if err := m.Put(k, v, src, now); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Second)
		v.Expires = now.Add(time.Hour)
		if err := m.Put(k, v, src, now); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("refreshing Put allocates %.2f times per call, want 0", allocs)
	}
}

// TestEmptyMemoryIsSmall guards the simulator's budget: 100,000 nodes, each
// with a store that is mostly empty.
func TestEmptyMemoryIsSmall(t *testing.T) {
	const n, budget = 1000, 256
	stores := make([]*store.Memory, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range stores {
		stores[i] = store.NewMemory(store.Limits{})
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / n; per > budget {
		t.Errorf("an empty Memory costs %d bytes, budget %d", per, budget)
	}
	runtime.KeepAlive(stores)
}

// TestMemoryEmptiedReleasesMemory checks that a store whose records all
// expired gives its maps back, so a simulated network that churns does not
// keep every node's peak.
func TestMemoryEmptiedReleasesMemory(t *testing.T) {
	const n = 200
	stores := make([]*store.Memory, n)
	for i := range stores {
		stores[i] = store.NewMemory(store.Limits{})
		for j := range 50 {
			v := store.Value{Publisher: pub(j), Version: 1, Expires: t0.Add(time.Minute), Data: []byte("v")}
			if err := stores[i].Put(id.Key(fmt.Sprint(j)), v, netip.AddrFrom4([4]byte{192, 0, 2, byte(j)}), t0); err != nil {
				t.Fatal(err)
			}
		}
	}
	var full, swept runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&full)
	for _, s := range stores {
		if got := s.Sweep(t0.Add(time.Minute)); got != 50 {
			t.Fatalf("Sweep = %d, want 50", got)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&swept)
	freed := int64(full.HeapAlloc) - int64(swept.HeapAlloc)
	// 50 records cost several KiB per store (maps, slices, data, heap);
	// expect most of it back.
	if per := freed / n; per < 4096 {
		t.Errorf("sweeping a 50-record store freed %d bytes, want at least 4096", per)
	}
	runtime.KeepAlive(stores)
}

func BenchmarkMemoryGet(b *testing.B) {
	for _, n := range []int{1, 8, 16} {
		b.Run(fmt.Sprintf("Hit%d", n), func(b *testing.B) {
			m := store.NewMemory(store.Limits{})
			for i := range 10_000 { // a realistic map, not a single key
				fill(b, m, id.Key(fmt.Sprint("other", i)), 1)
			}
			k := id.Key("service")
			fill(b, m, k, n)
			dst := make([]store.Value, 0, 16)
			now := t0.Add(time.Minute)
			b.ReportAllocs()
			for b.Loop() {
				dst = m.Get(k, now, dst[:0])
			}
			if len(dst) != n {
				b.Fatalf("Get returned %d values, want %d", len(dst), n)
			}
		})
	}
	b.Run("Miss", func(b *testing.B) {
		m := store.NewMemory(store.Limits{})
		for i := range 10_000 {
			fill(b, m, id.Key(fmt.Sprint("other", i)), 1)
		}
		k := id.Key("absent")
		var dst []store.Value
		b.ReportAllocs()
		for b.Loop() {
			dst = m.Get(k, t0, dst[:0])
		}
	})
	b.Run("Hit8Parallel", func(b *testing.B) {
		m := store.NewMemory(store.Limits{})
		k := id.Key("service")
		fill(b, m, k, 8)
		now := t0.Add(time.Minute)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			dst := make([]store.Value, 0, 16)
			for pb.Next() {
				dst = m.Get(k, now, dst[:0])
			}
		})
	})
}

func BenchmarkMemoryPut(b *testing.B) {
	b.Run("Refresh", func(b *testing.B) {
		m := store.NewMemory(store.Limits{})
		k := id.Key("service")
		fill(b, m, k, 8)
		v := store.Value{Publisher: fillPub(k, 3), Version: 3, Data: []byte("203.0.113.3:4000")}
		src := netip.MustParseAddr("203.0.113.3")
		now := t0
		b.ReportAllocs()
		for b.Loop() {
			now = now.Add(time.Millisecond)
			v.Expires = now.Add(time.Hour)
			if err := m.Put(k, v, src, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A publisher updating its record under a busy key: a new version with
	// new bytes each time, which copies them and moves the record to the
	// front.
	b.Run("NewVersion", func(b *testing.B) {
		m := store.NewMemory(store.Limits{})
		k := id.Key("service")
		fill(b, m, k, 8)
		v := store.Value{Publisher: pub(100), Data: []byte("203.0.113.3:4000")}
		src := netip.MustParseAddr("203.0.113.3")
		now := t0
		b.ReportAllocs()
		for b.Loop() {
			now = now.Add(time.Millisecond)
			v.Version++
			v.Data[0] = byte(v.Version)
			v.Expires = now.Add(time.Hour)
			if err := m.Put(k, v, src, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A steady state: 65,536 keys written round-robin, each record living
	// half a round, so every Put adds a record and deletes an expired one.
	// New stores as the node itself, which skips the source quotas;
	// NewFromSources spreads the same load over 4,096 sources in 16 sites,
	// 8 live records each, so that every Put is charged and every deletion
	// refunded.
	const ring = 1 << 16
	keys := make([]id.ID, ring)
	for i := range keys {
		keys[i] = id.Key(fmt.Sprint(i))
	}
	for _, tc := range []struct {
		name string
		src  func(i int) netip.Addr
	}{
		{"New", func(int) netip.Addr { return self }},
		{"NewFromSources", func(i int) netip.Addr {
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, byte(i >> 8 & 0x0f), 0, byte(i), 15: 1})
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := store.NewMemory(store.Limits{})
			v := store.Value{Publisher: pub(1), Version: 1, Data: make([]byte, 64)}
			now := t0
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Millisecond)
				v.Data[0], v.Data[1] = byte(i), byte(i>>8)
				v.Publisher[0], v.Publisher[1] = byte(i), byte(i>>8) // under MaxPerPublisher
				v.Expires = now.Add(ring / 2 * time.Millisecond)
				if err := m.Put(keys[i%ring], v, tc.src(i), now); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

func ExampleMemory() {
	s := store.NewMemory(store.Limits{}) // default limits
	defer s.Close()

	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	key := id.Key("alice@id.example.org:address")
	alice := id.Key("alice")                   // the publisher
	from := netip.MustParseAddr("203.0.113.7") // the sender of the stores
	_ = s.Put(key, store.Value{Publisher: alice, Version: 1, Expires: now.Add(time.Hour), Data: []byte("203.0.113.7:4000")}, from, now)
	// A new version replaces alice's record; an old one is refused.
	_ = s.Put(key, store.Value{Publisher: alice, Version: 2, Expires: now.Add(24 * time.Hour), Data: []byte("[2001:db8::7]:4000")}, from, now)
	err := s.Put(key, store.Value{Publisher: alice, Version: 1, Expires: now.Add(time.Hour), Data: []byte("203.0.113.7:4000")}, from, now)
	fmt.Println(err)

	for _, v := range s.Get(key, now.Add(2*time.Hour), nil) {
		fmt.Printf("%s version %d until %s\n", v.Data, v.Version, v.Expires.Format(time.Kitchen))
	}
	// A withdrawal hides the value, and stays until the value would have
	// expired.
	_ = s.Put(key, store.Value{Publisher: alice, Version: 3, Deleted: true, Expires: now.Add(time.Hour)}, from, now)
	fmt.Println(len(s.Get(key, now, nil)), "values,", len(s.Records(key, now, nil)), "record")

	err = s.Put(key, store.Value{Publisher: id.Key("bob"), Expires: now.Add(time.Hour), Data: make([]byte, 70_000)}, from, now)
	fmt.Println(err)
	// Output:
	// store: not newer than the held version: version 1, held 2
	// [2001:db8::7]:4000 version 2 until 12:00PM
	// 0 values, 1 record
	// store: value too large: the value has 70000 bytes, over MaxValueSize 65536
}

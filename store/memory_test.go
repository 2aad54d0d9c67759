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
	storetest.Run(t, func(t *testing.T) store.Store {
		return store.NewMemory(storetest.Limits())
	})
}

func TestNewMemoryFillsDefaultLimits(t *testing.T) {
	defaults := store.Limits{MaxValues: 100_000, MaxPerKey: 16, MaxValueSize: 1000, MaxBytes: 100_000_000,
		MaxPerSource: 1000, MaxBytesPerSource: 1_000_000, MaxPerKeyPerSource: 4,
		MaxPerSite: 4000, MaxBytesPerSite: 4_000_000, MaxPerKeyPerSite: 8}
	tests := []struct {
		name string
		in   store.Limits
		want store.Limits
	}{
		{"Zero", store.Limits{}, defaults},
		{"Negative", store.Limits{MaxValues: -1, MaxPerKey: -1, MaxValueSize: -1, MaxBytes: -1,
			MaxPerSource: -1, MaxBytesPerSource: -1, MaxPerKeyPerSource: -1,
			MaxPerSite: -1, MaxBytesPerSite: -1, MaxPerKeyPerSite: -1}, defaults},
		{"Set", store.Limits{MaxValues: 5, MaxPerKey: 2, MaxValueSize: 10, MaxBytes: 7,
			MaxPerSource: 3, MaxBytesPerSource: 9, MaxPerKeyPerSource: 6,
			MaxPerSite: 1, MaxBytesPerSite: 2, MaxPerKeyPerSite: 4},
			store.Limits{MaxValues: 5, MaxPerKey: 2, MaxValueSize: 10, MaxBytes: 7,
				MaxPerSource: 3, MaxBytesPerSource: 9, MaxPerKeyPerSource: 6,
				MaxPerSite: 1, MaxBytesPerSite: 2, MaxPerKeyPerSite: 4}},
		// The quotas follow the limits they are shares of.
		{"Partial", store.Limits{MaxPerKey: 3, MaxValues: 5000, MaxBytes: 20_000},
			store.Limits{MaxValues: 5000, MaxPerKey: 3, MaxValueSize: 1000, MaxBytes: 20_000,
				MaxPerSource: 50, MaxBytesPerSource: 1000, MaxPerKeyPerSource: 1,
				MaxPerSite: 200, MaxBytesPerSite: 1000, MaxPerKeyPerSite: 1}},
		// A site's default quotas are never below its sources' quotas.
		{"SiteAtLeastSource", store.Limits{MaxPerSource: 9000, MaxBytesPerSource: 5_000_000, MaxPerKeyPerSource: 12},
			store.Limits{MaxValues: 100_000, MaxPerKey: 16, MaxValueSize: 1000, MaxBytes: 100_000_000,
				MaxPerSource: 9000, MaxBytesPerSource: 5_000_000, MaxPerKeyPerSource: 12,
				MaxPerSite: 9000, MaxBytesPerSite: 5_000_000, MaxPerKeyPerSite: 12}},
		{"SharesNeverZero", store.Limits{MaxValues: 7, MaxPerKey: 2, MaxValueSize: 10},
			store.Limits{MaxValues: 7, MaxPerKey: 2, MaxValueSize: 10, MaxBytes: 70,
				MaxPerSource: 1, MaxBytesPerSource: 10, MaxPerKeyPerSource: 1,
				MaxPerSite: 1, MaxBytesPerSite: 10, MaxPerKeyPerSite: 1}},
		{"MaxBytesSaturates", store.Limits{MaxValues: math.MaxInt / 2, MaxValueSize: 1000},
			store.Limits{MaxValues: math.MaxInt / 2, MaxPerKey: 16, MaxValueSize: 1000, MaxBytes: math.MaxInt,
				MaxPerSource: math.MaxInt / 2 / 100, MaxBytesPerSource: math.MaxInt / 100, MaxPerKeyPerSource: 4,
				MaxPerSite: math.MaxInt / 2 / 25, MaxBytesPerSite: math.MaxInt / 25, MaxPerKeyPerSite: 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := store.NewMemory(tt.in).Limits(); got != tt.want {
				t.Errorf("NewMemory(%+v).Limits() = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

var t0 = time.Date(2031, time.March, 4, 5, 6, 7, 0, time.UTC)

// self is the source of the node's own puts, exempt from the quotas.
var self netip.Addr

// fill stores n values under k, expiring an hour after t0.
func fill(tb testing.TB, m *store.Memory, k id.ID, n int) {
	tb.Helper()
	for i := range n {
		if err := m.Put(k, fmt.Appendf(nil, "203.0.113.%d:4000", i), self, t0.Add(time.Hour), t0); err != nil {
			tb.Fatal(err)
		}
	}
}

func TestMemoryGetDoesNotAllocate(t *testing.T) {
	m := store.NewMemory(store.Limits{})
	k := id.Key("service")
	fill(t, m, k, 8)
	dst := make([]store.Value, 0, 16)
	for _, tc := range []struct {
		name string
		key  id.ID
		want int
	}{
		{"Hit", k, 8},
		{"Miss", id.Key("absent"), 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got int
			allocs := testing.AllocsPerRun(100, func() {
				got = len(m.Get(tc.key, t0.Add(time.Minute), dst[:0]))
			})
			if got != tc.want {
				t.Fatalf("Get returned %d values, want %d", got, tc.want)
			}
			if allocs != 0 {
				t.Errorf("Get with room in dst allocates %.1f times per call, want 0", allocs)
			}
		})
	}
}

func TestMemoryRefreshDoesNotAllocate(t *testing.T) {
	m := store.NewMemory(store.Limits{})
	k := id.Key("service")
	fill(t, m, k, 4)
	data := []byte("203.0.113.2:4000")
	src := netip.MustParseAddr("2001:db8::2")
	now := t0
	// Refreshing a value is what republishing does all day, from other
	// nodes; it must not cost an allocation once the expiry heap has reached
	// its steady size.
	for range 1000 {
		now = now.Add(time.Second)
		if err := m.Put(k, data, src, now.Add(time.Hour), now); err != nil {
			t.Fatal(err)
		}
	}
	allocs := testing.AllocsPerRun(1000, func() {
		now = now.Add(time.Second)
		if err := m.Put(k, data, src, now.Add(time.Hour), now); err != nil {
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

// TestMemoryEmptiedReleasesMemory checks that a store whose values all
// expired gives its map back, so a simulated network that churns does not
// keep every node's peak.
func TestMemoryEmptiedReleasesMemory(t *testing.T) {
	const n = 200
	stores := make([]*store.Memory, n)
	for i := range stores {
		stores[i] = store.NewMemory(store.Limits{})
		for j := range 50 {
			if err := stores[i].Put(id.Key(fmt.Sprint(j)), []byte("v"), netip.AddrFrom4([4]byte{192, 0, 2, byte(j)}), t0.Add(time.Minute), t0); err != nil {
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
	// 50 values cost several KiB per store (map, slices, data, heap); expect
	// most of it back.
	if per := freed / n; per < 2048 {
		t.Errorf("sweeping a 50-value store freed %d bytes, want at least 2048", per)
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
		data := []byte("203.0.113.3:4000")
		src := netip.MustParseAddr("203.0.113.3")
		now := t0
		b.ReportAllocs()
		for b.Loop() {
			now = now.Add(time.Millisecond)
			if err := m.Put(k, data, src, now.Add(time.Hour), now); err != nil {
				b.Fatal(err)
			}
		}
	})
	// A steady state: 65,536 keys written round-robin, each value living
	// half a round, so every Put adds a value and deletes an expired one.
	// New stores as the node itself, which skips the source quotas;
	// NewFromSources spreads the same load over 4,096 sources, 8 live values
	// each, so that every Put is charged and every deletion refunded.
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
			return netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, byte(i >> 8 & 0x0f), byte(i), 15: 1})
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			m := store.NewMemory(store.Limits{})
			data := make([]byte, 64)
			now := t0
			i := 0
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Millisecond)
				data[0], data[1] = byte(i), byte(i>>8)
				if err := m.Put(keys[i%ring], data, tc.src(i), now.Add(ring/2*time.Millisecond), now); err != nil {
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
	alice := netip.MustParseAddr("203.0.113.7") // the sender of the STOREs
	_ = s.Put(key, []byte("203.0.113.7:4000"), alice, now.Add(24*time.Hour), now)
	_ = s.Put(key, []byte("[2001:db8::7]:4000"), alice, now.Add(time.Hour), now)
	// A refresh only ever extends the expiry.
	_ = s.Put(key, []byte("203.0.113.7:4000"), netip.MustParseAddr("198.51.100.1"), now.Add(time.Second), now)

	for _, v := range s.Get(key, now.Add(2*time.Hour), nil) {
		fmt.Printf("%s until %s\n", v.Data, v.Expires.Format(time.Kitchen))
	}
	fmt.Println(s.Sweep(now.Add(2*time.Hour)), "expired value swept")

	err := s.Put(key, make([]byte, 2000), alice, now.Add(time.Hour), now)
	fmt.Println(err)
	// Output:
	// 203.0.113.7:4000 until 12:00PM
	// 1 expired value swept
	// store: value too large: 2000 bytes, limit 1000
}

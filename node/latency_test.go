package node

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/api"
)

// histOf counts samples (in seconds) into bounds, as the core does.
func histOf(bounds []float64, samples []float64) dht.Histogram {
	h := dht.Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds)+1)}
	for _, v := range samples {
		i := 0
		for i < len(bounds) && v > bounds[i] {
			i++
		}
		h.Counts[i]++
		h.Count++
		h.Sum += v
	}
	return h
}

var testBounds = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1}

// bucketOf is the range [lo, hi] of the bucket holding v.
func bucketOf(v float64) (lo, hi float64) {
	for i, b := range testBounds {
		if v <= b {
			if i > 0 {
				lo = testBounds[i-1]
			}
			return lo, b
		}
	}
	return testBounds[len(testBounds)-1], testBounds[len(testBounds)-1]
}

// Checked against the exact quantiles of random samples: each estimate
// of the round trips answered between two snapshots lies in the bucket
// that holds the true quantile of those round trips (the estimate cannot
// be finer than the buckets), and Max in the true maximum's.
func TestSampleLatencyIsInTheTrueQuantilesBucket(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		var before, during []float64
		for range r.IntN(50) {
			before = append(before, r.ExpFloat64()*0.01)
		}
		for range 1 + r.IntN(500) {
			during = append(during, r.ExpFloat64()*0.02*float64(1+trial%5))
		}
		// Two groups: the samples of the interval split between them.
		half := len(during) / 2
		prev := map[string]dht.Histogram{"lookup": histOf(testBounds, before), "store": histOf(testBounds, nil)}
		cur := map[string]dht.Histogram{"lookup": histOf(testBounds, append(slices.Clone(before), during[:half]...)), "store": histOf(testBounds, during[half:])}
		got := latency(prev, cur)
		sorted := slices.Clone(during)
		slices.Sort(sorted)
		for _, c := range []struct {
			name string
			q    float64
			est  time.Duration
		}{{"p50", 0.5, got.P50}, {"p90", 0.9, got.P90}, {"p99", 0.99, got.P99}, {"max", 1, got.Max}} {
			exact := sorted[min(len(sorted)-1, int(c.q*float64(len(sorted))))]
			if c.q < 1 {
				// The rank the estimate interpolates to: ceil(q*n)-th value.
				exact = sorted[max(0, int(c.q*float64(len(sorted))+0.999999)-1)]
			}
			lo, hi := bucketOf(exact)
			if e := c.est.Seconds(); e < lo-1e-9 || e > hi+1e-9 {
				t.Fatalf("trial %d, %d samples: %s estimated %v, the true one (%.6fs) is in (%g, %g]", trial, len(during), c.name, c.est, exact, lo, hi)
			}
		}
		if !(got.P50 <= got.P90 && got.P90 <= got.P99 && got.P99 <= got.Max) {
			t.Fatalf("trial %d: quantiles out of order: %+v", trial, got)
		}
	}
}

func TestSampleLatencyEdges(t *testing.T) {
	b := testBounds
	for _, c := range []struct {
		name      string
		prev, cur map[string]dht.Histogram
		want      api.Latency
	}{
		{"no snapshot", nil, nil, api.Latency{}},
		{"nothing answered in the interval", map[string]dht.Histogram{"lookup": histOf(b, []float64{0.003})}, map[string]dht.Histogram{"lookup": histOf(b, []float64{0.003})}, api.Latency{}},
		{"all in one bucket", nil, map[string]dht.Histogram{"other": histOf(b, []float64{0.2, 0.2, 0.2, 0.2})},
			api.Latency{P50: 175 * time.Millisecond, P90: 235 * time.Millisecond, P99: 248500 * time.Microsecond, Max: 250 * time.Millisecond}},
		{"past the last bound", nil, map[string]dht.Histogram{"lookup": histOf(b, []float64{5, 7})}, api.Latency{P50: time.Second, P90: time.Second, P99: time.Second, Max: time.Second}},
		{"a counter that fell counts nothing", map[string]dht.Histogram{"lookup": histOf(b, []float64{0.003, 0.003})}, map[string]dht.Histogram{"lookup": histOf(b, []float64{0.003})}, api.Latency{}},
		{"malformed histogram ignored", nil, map[string]dht.Histogram{"lookup": {Bounds: b, Counts: []uint64{1}}}, api.Latency{}},
	} {
		got := latency(c.prev, c.cur)
		const slack = time.Microsecond // float rounding
		for i, pair := range [][2]time.Duration{{got.P50, c.want.P50}, {got.P90, c.want.P90}, {got.P99, c.want.P99}, {got.Max, c.want.Max}} {
			if d := pair[0] - pair[1]; d > slack || d < -slack {
				t.Errorf("%s: figure %d is %v, want %v (%+v)", c.name, i, pair[0], pair[1], got)
			}
		}
	}
}

// The event stream's samples carry the latency of the requests the node
// sent in their interval: after a lookup over loopback, a sample has it.
func TestEventSamplesCarryLatencyAfterRequests(t *testing.T) {
	ns := udpNodes(t, 4)
	b := NewBackend(ns[1], BackendOptions{})
	b.every = 20 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	events, err := b.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns[1].FindNode(ctx, dht.Key("somewhere")); err != nil {
		t.Fatal(err)
	}
	for n := 0; ; n++ {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatal("the stream ended without a sample with latency")
			}
			if ev.Sample == nil {
				continue
			}
			l := ev.Sample.Latency
			if l.P50 > 0 {
				if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max) || l.Max > time.Second {
					t.Errorf("sample latency %+v: out of order, or a loopback round trip over a second", l)
				}
				return
			}
			if n > 50 {
				t.Fatalf("%d samples after a lookup, none with latency", n)
			}
		case <-ctx.Done():
			t.Fatal("no sample with latency before the deadline")
		}
	}
}

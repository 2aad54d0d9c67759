package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketOfAndBucketRangeDescribeTheSameBuckets(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(v uint64) {
		i := bucketOf(v)
		lo, w := bucketRange(i)
		if v < lo || v >= lo+w {
			t.Fatalf("value %d in bucket %d, which holds [%d, %d)", v, i, lo, lo+w)
		}
	}
	for v := range uint64(4096) {
		check(v)
	}
	for range 100_000 {
		check(r.Uint64N(1 << maxBits))
	}
	// Buckets tile the line: each starts where the previous ends.
	for i := 1; i < histBuckets; i++ {
		plo, pw := bucketRange(i - 1)
		lo, _ := bucketRange(i)
		if plo+pw != lo {
			t.Fatalf("bucket %d ends at %d but bucket %d starts at %d", i-1, plo+pw, i, lo)
		}
	}
}

// The histogram's quantiles against the exact ones from sorted samples: the
// relative error stays within half a bucket (1/64) whatever the distribution.
func TestHistogramQuantilesMatchSortedSamplesWithinBucketPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	dists := []struct {
		name string
		draw func() time.Duration
	}{
		{"constant", func() time.Duration { return 1234567 }},
		{"uniform 0-10ms", func() time.Duration { return time.Duration(r.Int64N(int64(10 * time.Millisecond))) }},
		{"log-uniform 100ns-10s", func() time.Duration { return time.Duration(math.Exp(r.Float64()*math.Log(1e8)) * 100) }},
		{"bimodal", func() time.Duration {
			if r.IntN(100) < 3 {
				return 8*time.Millisecond + time.Duration(r.Int64N(1e6))
			}
			return 100*time.Microsecond + time.Duration(r.Int64N(1e5))
		}},
		{"tiny", func() time.Duration { return time.Duration(r.Int64N(40)) }},
	}
	for _, d := range dists {
		t.Run(d.name, func(t *testing.T) {
			var h Histogram
			samples := make([]time.Duration, 5000)
			for i := range samples {
				samples[i] = d.draw()
				h.Record(samples[i])
			}
			slices.Sort(samples)
			for _, q := range []float64{0, 0.01, 0.5, 0.9, 0.99, 0.999, 1} {
				rank := int(math.Ceil(q * float64(len(samples))))
				exact := samples[max(rank, 1)-1]
				got := h.Quantile(q)
				if diff := math.Abs(float64(got - exact)); diff > float64(exact)/64+1 {
					t.Errorf("q %.3f: got %v, exact %v (error %.2f%%)", q, got, exact, 100*diff/float64(exact))
				}
			}
			if h.Count() != uint64(len(samples)) || h.Max() != samples[len(samples)-1] {
				t.Errorf("count %d max %v, want %d and %v", h.Count(), h.Max(), len(samples), samples[len(samples)-1])
			}
			var sum time.Duration
			for _, s := range samples {
				sum += s
			}
			if want := sum / time.Duration(len(samples)); h.Mean() != want {
				t.Errorf("mean %v, want %v", h.Mean(), want)
			}
		})
	}
}

func TestHistogramMergeEqualsRecordingEverythingInOne(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var a, b, all Histogram
	for i := range 3000 {
		d := time.Duration(r.Int64N(int64(time.Second)))
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		all.Record(d)
	}
	var merged Histogram
	merged.Merge(&a)
	merged.Merge(&b)
	merged.Merge(&Histogram{})
	if merged != all {
		t.Fatalf("merged summary %+v, want %+v", merged.Summary(), all.Summary())
	}
}

func TestEmptyHistogramReportsZeros(t *testing.T) {
	var h Histogram
	if s := h.Summary(); s != (Latency{}) {
		t.Fatalf("empty histogram summary %+v, want zeros", s)
	}
	h.Record(-time.Second) // clamped to zero rather than wrapping around
	if h.Max() != 0 || h.Quantile(1) != 0 {
		t.Fatalf("a negative sample recorded as %v", h.Max())
	}
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	var h Histogram
	d := time.Duration(1)
	if a := testing.AllocsPerRun(1000, func() { h.Record(d); d = d*3 + 7 }); a != 0 {
		t.Fatalf("Record allocates %.1f times per call", a)
	}
}

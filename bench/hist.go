package bench

import (
	"math/bits"
	"time"
)

// Histogram counts latencies in log-linear buckets: 32 buckets per power of
// two, so a quantile read from it is within about 1.6% of the exact one,
// whatever the spread of the samples. Its size is fixed (under 10 KiB), so a
// load generator can keep one per client and record without allocating or
// locking.
//
// The zero value is an empty histogram ready to use. A Histogram is not safe
// for concurrent use: keep one per goroutine and Merge them.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    uint64
	min    uint64
	max    uint64
}

const (
	subBits = 5
	subN    = 1 << subBits
	// maxBits bounds what is recorded: 2^40 ns is about 18 minutes, longer
	// samples land in the last bucket.
	maxBits     = 40
	histBuckets = (maxBits-subBits)*subN + subN
)

// bucketOf maps v to its bucket. Below subN every value has its own bucket;
// above, a bucket holds the values that share their top subBits+1 bits.
func bucketOf(v uint64) int {
	if v < subN {
		return int(v)
	}
	l := bits.Len64(v)
	if l > maxBits {
		return histBuckets - 1
	}
	shift := l - subBits - 1
	return (l-subBits)*subN + int(v>>shift) - subN
}

// bucketRange returns the smallest value of bucket i and the bucket's width.
func bucketRange(i int) (lo, width uint64) {
	if i < subN {
		return uint64(i), 1
	}
	g := i / subN
	m := uint64(i%subN + subN)
	shift := g - 1
	return m << shift, 1 << shift
}

// Record adds one sample. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += v
}

// Merge adds o's samples to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Reset empties h.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count returns the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Mean returns the mean sample, 0 when empty.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

// Max returns the largest sample, exactly.
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) }

// Quantile returns the sample of rank ceil(q×n) (q in [0, 1]), as the middle
// of its bucket clamped to the exact min and max; 0 when empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(q * float64(h.n))
	if float64(rank) < q*float64(h.n) || rank == 0 {
		rank++
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, w := bucketRange(i)
			v := lo + w/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// Latency summarizes a Histogram for reports: plain data, all zeros for no
// samples.
type Latency struct {
	Count uint64        `json:"count"`
	Mean  time.Duration `json:"mean_ns"`
	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
}

// Summary returns h's count, mean and usual quantiles.
func (h *Histogram) Summary() Latency {
	return Latency{
		Count: h.n,
		Mean:  h.Mean(),
		P50:   h.Quantile(0.50),
		P90:   h.Quantile(0.90),
		P99:   h.Quantile(0.99),
		Max:   h.Max(),
	}
}

package memnet

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"net/netip"
	"time"
)

// Latency decides the one-way delay of each datagram. Delay is called with the
// network's lock held and its seeded rand, so it must be quick, must not call
// back into the Network, and must draw randomness only from r (that keeps runs
// reproducible).
type Latency interface {
	Delay(from, to netip.AddrPort, r *rand.Rand) time.Duration
}

// Fixed delays every datagram by d.
func Fixed(d time.Duration) Latency { return fixed(d) }

type fixed time.Duration

func (f fixed) Delay(netip.AddrPort, netip.AddrPort, *rand.Rand) time.Duration {
	return time.Duration(f)
}

// Uniform delays each datagram by a duration drawn uniformly from [min, max].
// Independent draws reorder datagrams whose send times are closer than the
// spread.
func Uniform(min, max time.Duration) Latency {
	if max < min {
		min, max = max, min
	}
	return uniform{min: min, span: int64(max-min) + 1}
}

type uniform struct {
	min  time.Duration
	span int64
}

func (u uniform) Delay(_, _ netip.AddrPort, r *rand.Rand) time.Duration {
	return u.min + time.Duration(r.Int64N(u.span))
}

// LongTail models the Internet's spread of round-trip times: each unordered
// pair of endpoints gets a base one-way delay drawn once from a log-normal
// distribution with the given median and sigma (sigma 0.5 to 1 looks like
// measured Internet paths), and each datagram adds uniform jitter of up to
// JitterFraction of the base. The base is a hash of the pair and seed, so it
// is the same in both directions and every run, and costs no memory per pair.
func LongTail(median time.Duration, sigma float64, seed uint64) Latency {
	// The hash picks one of tailLevels equally likely quantiles of the
	// distribution, computed here once, so a datagram costs a table lookup
	// instead of a logarithm, a cosine and an exponential. Neighbouring
	// levels differ by well under 1% except far out in the tails, which end
	// about 3.5 sigma out.
	l := &longTail{seed: seed}
	mu := math.Log(float64(max(median, 1)))
	for i := range l.levels {
		p := (float64(i) + 0.5) / tailLevels
		z := math.Sqrt2 * math.Erfinv(2*p-1)
		l.levels[i] = time.Duration(min(math.Exp(mu+sigma*z), float64(maxBase)))
	}
	return l
}

// JitterFraction bounds LongTail's per-datagram jitter, as a fraction of the
// pair's base delay.
const JitterFraction = 0.05

// maxBase caps LongTail's base delay: a far tail draw must stay a slow path,
// not a datagram that never arrives.
const maxBase = time.Minute

const tailLevels = 4096

type longTail struct {
	seed   uint64
	levels [tailLevels]time.Duration
}

func (l *longTail) Delay(from, to netip.AddrPort, r *rand.Rand) time.Duration {
	base := l.base(from, to)
	return base + time.Duration(r.Int64N(int64(float64(base)*JitterFraction)+1))
}

// base is the pair's fixed delay.
func (l *longTail) base(a, b netip.AddrPort) time.Duration {
	if b.Compare(a) < 0 {
		a, b = b, a
	}
	return l.levels[mixAddr(mixAddr(l.seed, a), b)%tailLevels]
}

func mixAddr(h uint64, a netip.AddrPort) uint64 {
	b := a.Addr().As16()
	h = mix64(h ^ binary.LittleEndian.Uint64(b[:8]))
	h = mix64(h ^ binary.LittleEndian.Uint64(b[8:]))
	return mix64(h ^ uint64(a.Port()))
}

// mix64 is the splitmix64 finalizer: a cheap bijection whose output bits all
// depend on all input bits.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

package rpc

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

const (
	testLo = 100 * time.Millisecond
	testHi = time.Second
)

func TestRTTWithoutSampleWaitsTheMaximum(t *testing.T) {
	var e RTT
	if e.Known() {
		t.Fatal("the zero RTT claims a sample")
	}
	if got := e.Timeout(testLo, testHi); got != testHi {
		t.Fatalf("Timeout without a sample = %v, want the upper bound %v", got, testHi)
	}
}

// RFC 6298 section 2.2: the first sample R gives SRTT = R, RTTVAR = R/2 and
// RTO = R + 4 R/2 = 3R.
func TestRTTFirstSampleFollowsRFC6298(t *testing.T) {
	var e RTT
	e.Observe(200 * time.Millisecond)
	if e.SRTT() != 200*time.Millisecond || e.RTTVar() != 100*time.Millisecond {
		t.Fatalf("after one sample of 200ms: SRTT %v RTTVAR %v, want 200ms and 100ms", e.SRTT(), e.RTTVar())
	}
	if got := e.Timeout(0, 10*time.Second); got != 600*time.Millisecond {
		t.Fatalf("Timeout = %v, want 3R = 600ms", got)
	}
	if got := e.Expected(0, 10*time.Second); got != 400*time.Millisecond {
		t.Fatalf("Expected = %v, want 2R = 400ms", got)
	}
}

// refRTT is RFC 6298 in floating point, the reference the integer version
// must track.
type refRTT struct {
	srtt, rttvar float64 // microseconds
	known        bool
}

func (r *refRTT) observe(d time.Duration) {
	x := float64(min(max(d, time.Microsecond), MaxSample) / time.Microsecond)
	if !r.known {
		r.srtt, r.rttvar, r.known = x, x/2, true
		return
	}
	r.rttvar = 0.75*r.rttvar + 0.25*math.Abs(r.srtt-x)
	r.srtt = 0.875*r.srtt + 0.125*x
}

// Property: over random sample streams (steady, jittery, heavy-tailed, and
// hostile ones swinging between extremes), the estimate tracks the
// floating-point RFC 6298 reference to within a few microseconds of
// rounding per step, and Timeout always lies within its clamps.
func TestRTTTracksTheReferenceAndStaysClamped(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gens := map[string]func() time.Duration{
		"steady 20ms": func() time.Duration { return 20 * time.Millisecond },
		"jitter":      func() time.Duration { return time.Duration(10+r.IntN(100)) * time.Millisecond },
		"heavy tail": func() time.Duration {
			return time.Duration(math.Exp(r.NormFloat64()*1.5) * float64(50*time.Millisecond))
		},
		"hostile swings": func() time.Duration {
			if r.IntN(2) == 0 {
				return 0
			}
			return time.Duration(r.Int64N(int64(2 * MaxSample)))
		},
		"negative": func() time.Duration { return -time.Duration(r.Int64N(int64(time.Hour))) },
	}
	for name, gen := range gens {
		t.Run(name, func(t *testing.T) {
			for run := 0; run < 50; run++ {
				var e RTT
				var ref refRTT
				for i := 0; i < 200; i++ {
					d := gen()
					e.Observe(d)
					ref.observe(d)
					// Integer division drops under a microsecond per step;
					// the error decays geometrically, so it stays small.
					if diff := math.Abs(float64(e.srtt) - ref.srtt); diff > 8 {
						t.Fatalf("step %d: SRTT %dµs, reference %.1fµs", i, e.srtt, ref.srtt)
					}
					if diff := math.Abs(float64(e.rttvar) - ref.rttvar); diff > 8 {
						t.Fatalf("step %d: RTTVAR %dµs, reference %.1fµs", i, e.rttvar, ref.rttvar)
					}
					if !e.Known() || e.SRTT() > MaxSample || e.RTTVar() > MaxSample {
						t.Fatalf("step %d: estimate out of range: %+v", i, e)
					}
					if got := e.Timeout(testLo, testHi); got < testLo || got > testHi {
						t.Fatalf("step %d: Timeout %v outside [%v, %v]", i, got, testLo, testHi)
					}
					if x := e.Expected(testLo, testHi); x < testLo || x > e.Timeout(testLo, testHi) {
						t.Fatalf("step %d: Expected %v outside [%v, Timeout %v]", i, x, testLo, e.Timeout(testLo, testHi))
					}
				}
			}
		})
	}
}

// A peer that always answers in R ends up with a timeout just above R: a
// slow but steady peer is waited for, and a fast one is not waited for long.
func TestRTTSteadyPeerConvergesJustAboveItsRoundTrip(t *testing.T) {
	for _, rtt := range []time.Duration{20 * time.Millisecond, 400 * time.Millisecond} {
		var e RTT
		for range 100 {
			e.Observe(rtt)
		}
		got := e.Timeout(time.Millisecond, 10*time.Second)
		if got < rtt || got > rtt+5*time.Millisecond {
			t.Fatalf("steady %v: Timeout %v, want within 5ms above it", rtt, got)
		}
	}
}

// Adversarial: whatever a peer does with its answers (instant, as slow as it
// can, or swinging between the two), it moves only the estimate it feeds,
// and that estimate's timeout stays within the clamps: it can neither make
// the node give up on answers at once nor wait past the upper bound.
func TestRTTHostileSamplesStayWithinTheClamps(t *testing.T) {
	var fast, slow, swing RTT
	for i := range 1000 {
		fast.Observe(0)
		slow.Observe(time.Hour)
		if i%2 == 0 {
			swing.Observe(0)
		} else {
			swing.Observe(MaxSample)
		}
	}
	if got := fast.Timeout(testLo, testHi); got != testLo {
		t.Fatalf("instant answers: Timeout %v, want the floor %v", got, testLo)
	}
	if got := slow.Timeout(testLo, testHi); got != testHi {
		t.Fatalf("hour-long answers: Timeout %v, want the ceiling %v", got, testHi)
	}
	if got := swing.Timeout(testLo, testHi); got != testHi {
		t.Fatalf("swinging answers: Timeout %v, want the ceiling %v", got, testHi)
	}
	// One wild sample after a steady history moves SRTT by an eighth of
	// the way, and steady samples bring it back.
	var e RTT
	for range 50 {
		e.Observe(30 * time.Millisecond)
	}
	before := e.Timeout(time.Millisecond, time.Minute)
	e.Observe(MaxSample)
	if got, want := e.SRTT(), 30*time.Millisecond+(MaxSample-30*time.Millisecond)/8; got < want-time.Millisecond || got > want+time.Millisecond {
		t.Fatalf("one wild sample moved SRTT to %v, want about %v", got, want)
	}
	for range 100 {
		e.Observe(30 * time.Millisecond)
	}
	if got := e.Timeout(time.Millisecond, time.Minute); got > before+5*time.Millisecond {
		t.Fatalf("steady samples after a wild one left the timeout at %v, was %v", got, before)
	}
}

func TestRTTClampsWithInvertedBoundsUseTheUpper(t *testing.T) {
	var e RTT
	e.Observe(time.Millisecond)
	if got := e.Timeout(time.Second, 100*time.Millisecond); got != 100*time.Millisecond {
		t.Fatalf("Timeout(1s, 100ms) = %v, want 100ms", got)
	}
}

func TestRTTObserveDoesNotAllocate(t *testing.T) {
	var e RTT
	allocs := testing.AllocsPerRun(1000, func() {
		e.Observe(25 * time.Millisecond)
		_ = e.Timeout(testLo, testHi)
	})
	if allocs != 0 {
		t.Fatalf("Observe+Timeout allocate %.1f times", allocs)
	}
}

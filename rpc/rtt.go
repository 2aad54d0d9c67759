package rpc

import "time"

// RTT is a smoothed round-trip estimate of one peer (or of all of them), kept
// the way TCP keeps its own (RFC 6298): a smoothed round trip SRTT and its
// mean deviation RTTVAR, from which Timeout derives how long to wait for an
// answer before treating the request as lost.
//
// It is 8 bytes (microseconds in two uint32s) so that a routing table can
// carry one per contact. The zero value holds no estimate. Like the rest of
// the package it reads no clock: the caller measures each sample from its own
// send time and the time the answer arrived.
type RTT struct {
	srtt   uint32 // microseconds; 0 = no sample yet
	rttvar uint32 // microseconds
}

// MaxSample is the longest round trip Observe takes as it is; longer samples
// count as this long. No request waits this long, so only a caller's mistake
// reaches it, and it keeps the arithmetic far from overflow.
const MaxSample = time.Minute

// timerGranularity is RFC 6298's G: the least margin Timeout adds to SRTT,
// so that a peer whose answers never vary still gets some slack.
const timerGranularity = time.Millisecond

// Known reports whether the estimate holds at least one sample.
func (e RTT) Known() bool { return e.srtt != 0 }

// SRTT returns the smoothed round trip, 0 without a sample.
func (e RTT) SRTT() time.Duration { return time.Duration(e.srtt) * time.Microsecond }

// RTTVar returns the round trip's smoothed mean deviation, 0 without a
// sample.
func (e RTT) RTTVar() time.Duration { return time.Duration(e.rttvar) * time.Microsecond }

// Observe folds one measured round trip d into the estimate: the first
// sample sets SRTT = d and RTTVAR = d/2, later ones move RTTVAR by a quarter
// of its distance to |SRTT - d| and SRTT by an eighth of its distance to d
// (RFC 6298, section 2). d is clamped to [1µs, MaxSample], so that no
// sample, however forged or delayed, takes the estimate outside that range.
func (e *RTT) Observe(d time.Duration) {
	r := int64(min(max(d, time.Microsecond), MaxSample) / time.Microsecond)
	if e.srtt == 0 {
		e.srtt = uint32(r)
		e.rttvar = uint32(max(r/2, 1))
		return
	}
	s, v := int64(e.srtt), int64(e.rttvar)
	dev := s - r
	if dev < 0 {
		dev = -dev
	}
	v += (dev - v) / 4
	s += (r - s) / 8
	// Both stay within [1, MaxSample µs]: each moves toward a value in that
	// range. srtt never reaches 0, which would mean "no sample".
	e.srtt = uint32(max(s, 1))
	e.rttvar = uint32(max(v, 0))
}

// Expected returns how long an answer usually takes at most: SRTT + max(G,
// 2 RTTVAR), clamped to [lo, hi] like Timeout, and hi without a sample. It
// is the point where waiting on (a lookup's stall) stops being the best use
// of a request slot, short of Timeout's point where the answer is presumed
// lost: with RTTVAR the mean deviation, about one answer in twenty comes
// later.
func (e RTT) Expected(lo, hi time.Duration) time.Duration {
	if e.srtt == 0 {
		return hi
	}
	t := e.SRTT() + max(timerGranularity, 2*e.RTTVar())
	return max(min(t, hi), min(lo, hi))
}

// Timeout returns how long to wait for an answer: SRTT + max(G, 4 RTTVAR)
// with G one millisecond (RFC 6298's RTO), clamped to [lo, hi]. Without a
// sample it returns hi, the cautious choice for a peer nothing is known of.
// When lo > hi, hi wins.
func (e RTT) Timeout(lo, hi time.Duration) time.Duration {
	if e.srtt == 0 {
		return hi
	}
	t := e.SRTT() + max(timerGranularity, 4*e.RTTVar())
	return max(min(t, hi), min(lo, hi))
}

package core

import (
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/rpc"
)

// Adaptive request timeouts. Each request waits about as long as its
// contact's answers take, not one fixed second: under churn most unanswered
// requests go to nodes that left, and each used to cost a lookup a full
// timeout and a retry.
//
// The estimates are RFC 6298's (rpc.RTT): one per contact, in its routing
// entry (so they are as bounded as the table, and a peer cannot make them
// grow), and one for the whole node, fed by every answer, for the many
// contacts a lookup learns from others and has never asked. Samples are the
// time from a request's send to the `now` of its answer's arrival; the core
// reads no clock of its own.
//
// A request to a contact:
//   - in a lookup, stalls once it outlived the round trip expected of the
//     contact (SRTT + 2 RTTVAR, no sooner than minStall, at most
//     StallAfter): the lookup moves on, still taking a late answer, and the
//     request is not sent again; the lookup counts it as failed at three
//     times that, no sooner than MinRequestTimeout, and only once one of
//     its requests has been answered (the silence may be this node's);
//   - otherwise, is sent again at the estimated timeout (RFC 6298's RTO)
//     clamped to [MinRequestTimeout, RequestTimeout], each retry waiting
//     twice as long as the attempt before (at most RequestTimeout), as TCP
//     backs off; the last attempt to a contact with no estimate of its own
//     waits the full RequestTimeout;
//   - fails, which the routing table holds against the contact, no sooner
//     than RequestTimeout after its first send, as with fixed timeouts:
//     estimates make stalls and retries early, never verdicts, so that
//     neither a contact slower than the peers that set the node-wide
//     estimate nor a pause of this node's own (a collection, a busy
//     scheduler) gets a live contact declared dead.
//
// With no answer at all yet, the first attempt waits RequestTimeout and
// stalls at StallAfter, as with fixed timeouts. The clamps bound what a
// peer can do with the timing of its answers: at worst it makes requests
// to itself wait RequestTimeout (as before), or stall early.

// minStall is the earliest a lookup stalls on a request. Below it a busy
// host's scheduling delays, not the network, decide whether an answer is
// late: loopback and LAN round trips of microseconds would otherwise make a
// healthy lookup send extra requests whenever the process is preempted.
const minStall = 10 * time.Millisecond

// adaptive reports whether timeouts follow the estimates: not when
// MinRequestTimeout is RequestTimeout.
func (n *Node) adaptive() bool { return n.cfg.MinRequestTimeout < n.cfg.RequestTimeout }

// firstTimeouts returns, for a new request to c, how long its first attempt
// waits, when a lookup should stop waiting for it (at most the former), and
// whether c has an estimate of its own.
func (n *Node) firstTimeouts(c id.Contact) (attempt, stall time.Duration, own bool) {
	if !n.adaptive() {
		return n.cfg.RequestTimeout, n.cfg.StallAfter, false
	}
	est := n.rttAll
	var e rpc.RTT
	if c.ID.IsZero() {
		e, _, _ = n.table.RTTAt(c.Addr) // a PING by address: whoever the table holds there
	} else {
		e, _ = n.table.RTT(c)
	}
	if e.Known() {
		est, own = e, true
	}
	if !est.Known() {
		return n.cfg.RequestTimeout, n.cfg.StallAfter, false
	}
	attempt = est.Timeout(n.cfg.MinRequestTimeout, n.cfg.RequestTimeout)
	stall = min(max(est.Expected(0, n.cfg.RequestTimeout), minStall), n.cfg.StallAfter, attempt)
	return attempt, stall, own
}

// retryTimeout returns how long attempt p.tries (already counted) of p
// waits: twice the one before, at most RequestTimeout, and RequestTimeout
// for the last attempt to a contact with no estimate of its own.
func (n *Node) retryTimeout(p *pending) time.Duration {
	if !p.ownRTT && p.tries >= n.cfg.Attempts {
		return n.cfg.RequestTimeout
	}
	return min(2*p.wait, n.cfg.RequestTimeout)
}

// sampleRTT takes the round trip of p, answered at now from the contact c
// (c.ID as the answer names it). An answer to a request sent once is an
// exact sample, and feeds both the contact's estimate and the node's. After
// a retry, the answer may be to any attempt (they share a transaction ID):
// the time since the first send can only overestimate, so it still feeds the
// contact's own estimate (a slow contact that is always retried learns its
// pace, and a longer timeout is the safe error), but not the node's, which
// other contacts rely on (Karn's rule).
func (n *Node) sampleRTT(p *pending, c id.Contact, now time.Time) {
	if p.tries <= 1 {
		d := now.Sub(p.sent)
		n.rttAll.Observe(d)
		n.table.ObserveRTT(c, d)
		return
	}
	n.table.ObserveRTT(c, now.Sub(p.first))
}

package core

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Republishing by the publisher (paper, section 2.5): a put with
// PutRequest.KeepAlive is stored again before it expires, for as long as the
// program asks, so that a value outlives any TTL the nodes grant.
//
// A republish sends the same publisher, version and bytes with a fresh TTL.
// By the stores' ordering rule that is a refresh: a node that holds the
// value only extends its expiry, a node that lacks it (a new member of the
// K closest) stores it, and no subscription reports an event, since the
// version is one it has seen (listen.go). A new version would have looked
// like a replacement to every listener, every half TTL, and would beat a
// version the program put since through another node.
//
// The keep-alive republishes when half of the shortest TTL a node granted
// (MinTTL at least) has passed, which leaves the other half for retries: a republish that
// fails (no node accepted, or fewer than the request's quorum) is tried
// again after 1s, 2s, 4s... up to maxRepublishBackoff. A republish that
// every node refused as stale was superseded by a newer version of the
// publisher's value, from another program or node: the keep-alive ends
// (Config.KeepAliveEnded is told). Everything runs on one timer per node,
// armed only while keep-alives exist.

// Defaults of the settings of keeping values alive (Config).
const (
	DefaultMaxKeepAlives = 1024
	DefaultPathCache     = 4
	DefaultPutBeta       = 3
)

// validateKeeping fills and checks the settings of republishing, path
// caching and the put's termination rule.
func (c *Config) validateKeeping() error {
	if c.MaxKeepAlives == 0 {
		c.MaxKeepAlives = DefaultMaxKeepAlives
	}
	if c.MaxKeepAlives < 0 {
		return fmt.Errorf("core: MaxKeepAlives = %d: must be at least 0 (0 selects %d)", c.MaxKeepAlives, DefaultMaxKeepAlives)
	}
	if c.PathCache == 0 {
		c.PathCache = DefaultPathCache
	}
	if c.PathCache > wire.MaxRecords {
		return fmt.Errorf("core: PathCache = %d: must be at most %d (negative turns caching off)", c.PathCache, wire.MaxRecords)
	}
	if c.PutBeta == 0 {
		c.PutBeta = min(DefaultPutBeta, c.K)
	}
	if c.PutBeta > c.K {
		return fmt.Errorf("core: PutBeta = %d: must be at most K (%d); negative runs the full lookup", c.PutBeta, c.K)
	}
	return nil
}

// ErrKeepAliveLimit is the error of a put with KeepAlive when the node
// already keeps Config.MaxKeepAlives values alive.
var ErrKeepAliveLimit = errors.New("too many keep-alives")

// ErrSuperseded is what Config.KeepAliveEnded gets when a keep-alive ended
// because the nodes hold a newer version of its value.
var ErrSuperseded = errors.New("a newer version of the value is stored")

const (
	// maxRepublishBackoff bounds the wait between retries of a failed
	// republish.
	maxRepublishBackoff = 5 * time.Minute
	// maxRepublishing bounds the republishes in flight at once, so that a
	// node restoring a thousand keep-alives does not start a thousand puts
	// in one instant; the others wait for the next timer.
	maxRepublishing = 32
	// restoreSpread is the window over which restored keep-alives make
	// their first republish.
	restoreSpread = 30 * time.Second
)

// KeepAliveState is one value the node keeps alive.
type KeepAliveState struct {
	// Request is what is republished: key, publisher, version, value,
	// TTL and quorum (KeepAlive set).
	Request PutRequest
	// Next is when the next republish starts (zero while one runs).
	Next time.Time
	// Republished counts the republishes that succeeded, the first put
	// included.
	Republished int
	// Failures counts the republishes that failed since the last success;
	// LastError is the last one's error.
	Failures  int
	LastError string
}

// keepAliveCounts are the keep-alive counters of Stats.
type keepAliveCounts struct {
	republished, failed, superseded uint64
}

// KeepAliveCounts describes the node's keep-alives (Stats.KeepAlive).
type KeepAliveCounts struct {
	Active      int    // keep-alives now
	Republished uint64 // republishes that succeeded (first puts included)
	Failed      uint64 // republishes that failed and were retried
	Superseded  uint64 // keep-alives ended because a newer version was stored
}

type keepKey struct{ key, pub id.ID }

type keepAlive struct {
	req         PutRequest
	next        time.Time
	running     bool
	republished int
	failures    int
	lastErr     string
}

// keepAlives is the node's table of keep-alives (Node.keep).
type keepAlives struct {
	m       map[keepKey]*keepAlive
	running int
	timer   timerSlot
	counts  keepAliveCounts
	gen     uint64 // grows with every keep-alive added, replaced or ended
}

// register adds (or replaces) the keep-alive of req's key and publisher.
// The lock is held.
func (n *Node) registerKeepAlive(req PutRequest, next time.Time) (*keepAlive, error) {
	k := keepKey{req.Key, req.Publisher}
	if _, ok := n.keep.m[k]; !ok && len(n.keep.m) >= n.cfg.MaxKeepAlives {
		return nil, fmt.Errorf("%w: this node keeps %d values alive, Config.MaxKeepAlives is %d (stop one with StopKeepAlive or Delete)",
			ErrKeepAliveLimit, len(n.keep.m), n.cfg.MaxKeepAlives)
	}
	if n.keep.m == nil {
		n.keep.m = map[keepKey]*keepAlive{}
	}
	req.KeepAlive = true
	req.Value = bytes.Clone(req.Value)
	e := &keepAlive{req: req, next: next}
	n.keep.m[k] = e
	n.keep.gen++
	return e, nil
}

// endKeepAlive removes the keep-alive of key and publisher, if any, and
// reports whether there was one. A republish in flight finishes but is not
// followed by another. The lock is held.
func (n *Node) endKeepAlive(key, pub id.ID) bool {
	k := keepKey{key, pub}
	if _, ok := n.keep.m[k]; !ok {
		return false
	}
	delete(n.keep.m, k)
	n.keep.gen++
	return true
}

// StopKeepAlive ends the keep-alive of publisher's value under key and
// reports whether there was one. The value is not withdrawn: it lives out
// the TTL the nodes granted it (Delete withdraws it, and ends its
// keep-alive too).
func (n *Node) StopKeepAlive(key, publisher id.ID) bool {
	var ok bool
	n.run(func(now time.Time, w transport.Writer) {
		if publisher.IsZero() {
			publisher = n.self
		}
		ok = n.endKeepAlive(key, publisher)
		n.armKeepAlive(now)
	})
	return ok
}

// RestoreKeepAlive registers a keep-alive saved before a restart (a
// request from KeepAlives): its first republish comes within 30 seconds,
// spread at random so that many restored values are not all put at once.
func (n *Node) RestoreKeepAlive(req PutRequest) error {
	var err error
	n.run(func(now time.Time, w transport.Writer) {
		switch {
		case n.closed:
			err = ErrClosed
			return
		case req.Publisher.IsZero() || req.Version == 0:
			err = errors.New("a restored keep-alive needs its publisher and version")
			return
		}
		if err = n.checkPut(&req); err != nil {
			return
		}
		at := now.Add(time.Duration(n.rng.Int64N(int64(restoreSpread))))
		if _, err = n.registerKeepAlive(req, at); err == nil {
			n.armKeepAlive(now)
		}
	})
	return err
}

// KeepAlives lists the values the node keeps alive, by key and publisher.
func (n *Node) KeepAlives() []KeepAliveState {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]KeepAliveState, 0, len(n.keep.m))
	for _, e := range n.keep.m {
		r := e.req
		r.Value = bytes.Clone(r.Value)
		s := KeepAliveState{Request: r, Republished: e.republished, Failures: e.failures, LastError: e.lastErr}
		if !e.running {
			s.Next = e.next
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b KeepAliveState) int {
		if c := bytes.Compare(a.Request.Key[:], b.Request.Key[:]); c != 0 {
			return c
		}
		return bytes.Compare(a.Request.Publisher[:], b.Request.Publisher[:])
	})
	return out
}

// KeepAliveGeneration grows with every change to the set of keep-alives
// (one added, replaced or ended), and not with republishes: a program that
// saves KeepAlives saves again when it changed.
func (n *Node) KeepAliveGeneration() uint64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.keep.gen
}

// keepAliveStats fills Stats.KeepAlive. The lock is held.
func (n *Node) keepAliveStats() KeepAliveCounts {
	c := n.keep.counts
	return KeepAliveCounts{Active: len(n.keep.m), Republished: c.republished, Failed: c.failed, Superseded: c.superseded}
}

// putDone updates keep-alive e after one of its puts ended, and schedules
// the next one. The lock is held.
func (n *Node) putDone(e *keepAlive, r *PutResult, err error, now time.Time) {
	k := keepKey{e.req.Key, e.req.Publisher}
	e.running = false
	n.keep.running--
	defer n.armKeepAlive(now)
	if n.keep.m[k] != e {
		return // stopped or replaced meanwhile
	}
	if err == nil {
		e.republished++
		e.failures, e.lastErr = 0, ""
		n.keep.counts.republished++
		e.next = now.Add(republishAfter(r, n.grantTTL(ttlSeconds(e.req.TTL)), n.cfg.MinTTL))
		return
	}
	if superseded(r) {
		delete(n.keep.m, k)
		n.keep.gen++
		n.keep.counts.superseded++
		if f := n.cfg.KeepAliveEnded; f != nil {
			key, pub := e.req.Key, e.req.Publisher
			n.later(func() { f(key, pub, ErrSuperseded) })
		}
		return
	}
	e.failures++
	e.lastErr = err.Error()
	n.keep.counts.failed++
	e.next = now.Add(min(time.Second<<min(e.failures-1, 20), maxRepublishBackoff))
}

// republishAfter is half the shortest TTL a node that accepted the put
// granted (asked, when no receipt says), counting no grant as shorter than
// floor (this node's MinTTL): a grant is the answering node's word, and one
// node granting 1s, hostile or misconfigured, must not make every
// republish of the value come a second after the last.
func republishAfter(r *PutResult, asked, floor time.Duration) time.Duration {
	ttl := time.Duration(0)
	if r != nil {
		for _, x := range r.Receipts {
			if x.Outcome == Accepted && x.TTL > 0 && (ttl == 0 || x.TTL < ttl) {
				ttl = x.TTL
			}
		}
	}
	if ttl == 0 {
		ttl = asked
	}
	return max(max(ttl, floor)/2, time.Second)
}

// superseded reports whether a put failed because every node that
// answered holds a newer version of the publisher's value.
func superseded(r *PutResult) bool {
	if r == nil || r.Stored > 0 {
		return false
	}
	stale := 0
	for _, x := range r.Receipts {
		switch {
		case x.Outcome == Refused && x.Code == wire.CodeStale:
			stale++
		case x.Outcome == Refused:
			return false
		}
	}
	return stale > 0
}

// armKeepAlive arms the keep-alive timer for the earliest republish due,
// or stops it when none is. The lock is held.
func (n *Node) armKeepAlive(now time.Time) {
	if n.closed {
		return
	}
	var at time.Time
	for _, e := range n.keep.m {
		if !e.running && (at.IsZero() || e.next.Before(at)) {
			at = e.next
		}
	}
	if at.IsZero() || n.keep.running >= maxRepublishing {
		n.keep.timer.stop() // a republish's end arms it again
		return
	}
	if n.keep.timer.t != nil && n.keep.timer.at.Equal(at) {
		return
	}
	n.keep.timer.stop()
	n.keep.timer.at = at
	gen := n.keep.timer.gen
	n.keep.timer.t = n.clock.AfterFunc(max(at.Sub(now), 0), func() { n.onKeepAliveTimer(gen) })
}

func (n *Node) onKeepAliveTimer(gen uint64) {
	n.run(func(now time.Time, w transport.Writer) {
		if gen != n.keep.timer.gen || n.closed {
			return
		}
		n.keep.timer.t = nil
		var due []*keepAlive
		for _, e := range n.keep.m {
			if !e.running && !e.next.After(now) {
				due = append(due, e)
			}
		}
		// The longest overdue first, so that the bound on republishes in
		// flight delays the ones that can wait.
		slices.SortFunc(due, func(a, b *keepAlive) int { return a.next.Compare(b.next) })
		for _, e := range due {
			if n.keep.running >= maxRepublishing {
				break
			}
			n.republish(e, now, w)
		}
		n.armKeepAlive(now)
	})
}

// republish starts one put of keep-alive e. The lock is held.
func (n *Node) republish(e *keepAlive, now time.Time, w transport.Writer) {
	e.running = true
	n.keep.running++
	n.startPut(e.req, e, now, w, func(*PutResult, error) {})
}

package node

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/dhtkit/dht"
)

// SeedState is what the daemon knows of a seed.
type SeedState string

// The states of a seed.
const (
	// SeedPending: not asked yet.
	SeedPending SeedState = "pending"
	// SeedUp: answered the last join attempt's ping.
	SeedUp SeedState = "up"
	// SeedDown: did not answer the last ping.
	SeedDown SeedState = "down"
	// SeedUnresolved: its host name did not resolve at the last attempt.
	SeedUnresolved SeedState = "unresolved"
	// SeedSelf: the seed is this node (a seed node reading its own
	// network's file); it is not asked.
	SeedSelf SeedState = "self"
)

// SeedStatus is one seed's state as of the last join attempt.
type SeedStatus struct {
	// Seed is the seed as configured, "host:port".
	Seed string
	// Maintainer is who runs it, from the networks file.
	Maintainer string
	// State is what the last attempt found.
	State SeedState
	// Addrs are the addresses its name resolved to at the last attempt.
	Addrs []netip.AddrPort
	// ID is the seed's node ID, once it answered.
	ID dht.ID
	// LastError is why the last attempt did not reach it.
	LastError string
	// Checked is when it was last asked; LastSeen when it last answered.
	Checked  time.Time
	LastSeen time.Time
	// RTT is the round trip of its last answer.
	RTT time.Duration
}

// Event is a notable event of the daemon, for logs, dashboards and event
// streams: started, join failed, joined, seed lost, seed found, contacts lost, alone.
type Event struct {
	Time time.Time
	// Kind is one of the Event* constants.
	Kind string
	// Text says what happened, for people.
	Text string
}

// The kinds of Event.
const (
	EventStarted      = "started"
	EventJoinFailed   = "join_failed"
	EventJoined       = "joined"
	EventSeedLost     = "seed_lost"
	EventSeedFound    = "seed_found"
	EventContactsLost = "contacts_lost"
	EventAlone        = "alone"
)

// maxEvents bounds the events a Status keeps.
const maxEvents = 64

// StatusSnapshot is a copy of the daemon's status at one moment.
type StatusSnapshot struct {
	// ID and Addrs are the node's; Started is when the daemon started.
	ID      dht.ID
	Addrs   []netip.AddrPort
	Started time.Time
	// Network is the network's name and NetworkID its number.
	Network   string
	NetworkID uint32
	// Joined is set while the node is part of a network: a join succeeded
	// (or other nodes found it) and it has not lost every contact since.
	Joined bool
	// JoinedAt is when it last joined; JoinedVia how: "seeds", "saved
	// contacts" or "incoming" (nodes that joined through this one).
	JoinedAt  time.Time
	JoinedVia string
	// Attempts counts the join attempts since start; LastAttempt is when
	// the last began, LastError why it failed (empty when it worked), and
	// NextAttempt when the next is due (zero when none is).
	Attempts    int
	LastAttempt time.Time
	LastError   string
	NextAttempt time.Time
	// Seeds are the configured seeds' states.
	Seeds []SeedStatus
	// SavedContacts counts the contacts in contacts.json, and ContactsSaved
	// is when the daemon last wrote it.
	SavedContacts int
	ContactsSaved time.Time
	// Events are the latest notable events, oldest first (at most 64).
	Events []Event
}

// Status is the daemon's status, updated by its join loop and read by the
// HTTP API. Its methods are safe for concurrent use; the zero value is an
// empty status ready to use.
type Status struct {
	mu      sync.Mutex
	s       StatusSnapshot
	changed chan struct{} // closed and replaced on every change
}

// Snapshot returns a copy of the status.
func (st *Status) Snapshot() StatusSnapshot {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.copyLocked()
}

func (st *Status) copyLocked() StatusSnapshot {
	s := st.s
	s.Addrs = slices.Clone(s.Addrs)
	s.Seeds = slices.Clone(s.Seeds)
	for i := range s.Seeds {
		s.Seeds[i].Addrs = slices.Clone(s.Seeds[i].Addrs)
	}
	s.Events = slices.Clone(s.Events)
	return s
}

// Changed returns a channel closed at the next change of the status, so that
// a watcher (an event stream, a test) waits without polling.
func (st *Status) Changed() <-chan struct{} {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.changed == nil {
		st.changed = make(chan struct{})
	}
	return st.changed
}

// Wait blocks until cond holds for the status or ctx is done, and returns
// the last snapshot it saw.
func (st *Status) Wait(ctx context.Context, cond func(StatusSnapshot) bool) (StatusSnapshot, error) {
	for {
		ch := st.Changed()
		s := st.Snapshot()
		if cond(s) {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}

// update changes the status under its lock and wakes the watchers.
func (st *Status) update(f func(s *StatusSnapshot)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	f(&st.s)
	if st.changed != nil {
		close(st.changed)
		st.changed = nil
	}
}

// event records an event; the lock is held (call inside update).
func addEvent(s *StatusSnapshot, now time.Time, kind, text string) {
	if len(s.Events) == maxEvents {
		s.Events = append(s.Events[:0], s.Events[1:]...)
	}
	s.Events = append(s.Events, Event{Time: now, Kind: kind, Text: text})
}

// Package store keeps the key/value records a node is responsible for.
//
// A key (an id.ID) holds a small set of values, because several publishers may
// store different values under one key (several addresses of one service, for
// example). Each value carries its own expiry. Store is the interface the node
// uses; Memory is the in-memory implementation; package store/storetest holds
// the conformance suite every implementation must pass.
//
// Stores read no clock: every call that depends on time takes now, so that the
// simulator can run many nodes on virtual time.
package store

import (
	"errors"
	"time"

	"github.com/dhtkit/dht/id"
)

// Sentinel errors. Put wraps one of them with %w and adds the numbers that
// explain the refusal (the limit, the size), because the node passes the
// message on to the publisher as the reason a STORE was refused. Test with
// errors.Is.
var (
	ErrTooLarge = errors.New("store: value too large")
	ErrFull     = errors.New("store: full") // the capacity over all keys is reached
	ErrKeyFull  = errors.New("store: too many values for this key")
	ErrExpired  = errors.New("store: expiry is not in the future")
	ErrClosed   = errors.New("store: closed")
)

// Value is one value stored under a key, with the instant it expires. A value
// is visible while now is before Expires; from Expires on it is expired.
// Expiries are compared as wall-clock instants: stores drop the monotonic
// clock reading, so compare returned expiries with time.Time.Equal, not ==.
type Value struct {
	Data    []byte
	Expires time.Time
}

// Store holds the values of many keys, each with its own expiry. A key holds
// a set of values: distinct byte strings, at most Limits.MaxPerKey of them
// unexpired. Implementations are safe for concurrent use.
//
// Expired values are invisible to Get at once, but they stay stored (and
// counted by Len and NextExpiry) until something deletes them: Sweep, a Put
// to the same key, or a Put that finds the store full.
type Store interface {
	// Put stores data under key until expires. data is copied.
	//
	// Storing bytes the key already holds, unexpired, replaces that value's
	// expiry with the new one (later or earlier) and keeps its place in the
	// insertion order instead of adding a copy; such a refresh is never
	// refused for lack of room. Other bytes are appended as a new value.
	//
	// Put checks, in order: closed (ErrClosed), len(data) over MaxValueSize
	// (ErrTooLarge), expires not after now (ErrExpired). It then deletes the
	// key's values expired at now, refreshes a matching value if there is
	// one, and otherwise refuses with ErrKeyFull when the key already holds
	// MaxPerKey values, or, when Len has reached MaxValues, sweeps the whole
	// store at now and refuses with ErrFull if that freed nothing. A refused
	// Put changes nothing visible to Get.
	Put(key id.ID, data []byte, expires, now time.Time) error

	// Get appends key's values unexpired at now to dst, oldest first
	// (insertion order, stable across refreshes), and returns the extended
	// slice. It does not allocate when dst has room. The returned Data may
	// share memory with the store: callers must not modify it; it stays valid
	// and unchanged forever, because a store never writes into a byte slice
	// it has handed out. After Close, Get returns dst unchanged.
	Get(key id.ID, now time.Time, dst []Value) []Value

	// Sweep deletes every value expired at now and returns how many it
	// deleted.
	Sweep(now time.Time) int

	// NextExpiry returns the earliest expiry among stored values, expired or
	// not, and false when the store is empty: the instant to arm one sweep
	// timer for.
	NextExpiry() (time.Time, bool)

	// Len returns the number of stored values over all keys, expired values
	// that have not been deleted yet included.
	Len() int

	// Keys calls fn once for each key that holds stored values (perhaps only
	// expired ones), in no particular order, and stops early if fn returns
	// false. fn runs without the store's lock held, so it may call the
	// store's other methods; a key deleted meanwhile may still be reported.
	// After Close, Keys calls nothing.
	Keys(fn func(key id.ID) bool)

	// Close releases the store. Later Puts return ErrClosed. Close is
	// idempotent: calls after the first return nil.
	Close() error
}

// Default limits, used for zero fields of Limits.
const (
	DefaultMaxValues    = 100_000
	DefaultMaxPerKey    = 16
	DefaultMaxValueSize = 1000
)

// Limits bounds what a store accepts, so that no publisher can make it grow
// without bound. A zero or negative field takes its default; the zero value
// is therefore the default limits.
type Limits struct {
	MaxValues    int // values over all keys, expired-but-not-deleted included; default 100,000
	MaxPerKey    int // unexpired values per key; default 16
	MaxValueSize int // bytes per value; default 1000
}

// WithDefaults returns l with each zero or negative field replaced by its
// default.
func (l Limits) WithDefaults() Limits {
	if l.MaxValues <= 0 {
		l.MaxValues = DefaultMaxValues
	}
	if l.MaxPerKey <= 0 {
		l.MaxPerKey = DefaultMaxPerKey
	}
	if l.MaxValueSize <= 0 {
		l.MaxValueSize = DefaultMaxValueSize
	}
	return l
}

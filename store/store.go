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
	"math"
	"net/netip"
	"time"

	"github.com/dhtkit/dht/id"
)

// Sentinel errors. Put wraps one of them with %w and adds the numbers that
// explain the refusal (the limit, the size, the source), because the node
// passes the message on to the publisher as the reason a STORE was refused.
// Test with errors.Is.
var (
	ErrTooLarge = errors.New("store: value too large")
	ErrFull     = errors.New("store: full") // the capacity over all keys is reached
	ErrKeyFull  = errors.New("store: too many values for this key")
	ErrQuota    = errors.New("store: source quota") // the sender has had its share
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
// Every value is charged to one source, at first the one that stored it, so
// that no one source can take more than its share of a key or of the store
// (see Limits). A source is the IP address a STORE came from, grouped so that
// one host counts once: an IPv4 address is its own group (/32), an IPv6
// address counts as its /64, which is what one host or one customer line is
// usually given, and an IPv4-mapped IPv6 address counts as the IPv4 address.
// Because one site is routinely given a whole /56 or /48, and so thousands of
// /64s, an IPv6 value is charged to its /48 as well, the source's site, which
// has quotas of its own (larger ones, since an ISP may number many customers
// out of one /48). The zone of an address is ignored. The zero (invalid)
// netip.Addr stands for the node itself: its own puts are exempt from the
// source quotas, but not from the other limits.
//
// Expired values are invisible to Get at once, but they stay stored (and
// counted by Len, NextExpiry and the quotas) until something deletes them:
// Sweep, a Put to the same key, or a Put that finds a limit reached.
type Store interface {
	// Put stores data under key until expires, on behalf of src (the
	// sender's IP address, or the zero netip.Addr for the node itself).
	// data is copied.
	//
	// Storing bytes the key already holds, unexpired, is a refresh: it may
	// only extend the value's expiry, to the later of the old and the new
	// one, never shorten it, whoever sends it. A refresh keeps the value's
	// place in the insertion order instead of adding a copy. A refresh that
	// does not extend the expiry changes nothing and is accepted. One that
	// extends it makes src the value's charged source, because whoever keeps
	// a value alive is the one that should pay for it: otherwise anyone
	// could keep a publisher's quota spent by refreshing values the
	// publisher has let go. When src is already charged for the value (the
	// same source, or both the node itself) it is always accepted; when
	// another source is, the charge moves to src only if src has room for
	// the value under its quotas (per key and over the store, for its source
	// and its site, a site it shares with the charged source aside), after
	// one sweep at now if it is over a quota over the store; if it has not,
	// the refresh is refused with ErrQuota and nothing changes. A refresh
	// adds no value, so it is never refused for lack of room in the key or
	// the store. (Interim rule, until values are owned by their publishers.)
	// Other bytes are appended as a new value, charged to src.
	//
	// Put checks, in order: closed (ErrClosed), len(data) over MaxValueSize
	// (ErrTooLarge), expires not after now (ErrExpired). It then deletes the
	// key's values expired at now and refreshes a matching value if there
	// is one. Otherwise it refuses with ErrKeyFull when the key already
	// holds MaxPerKey values, and with ErrQuota when src already holds
	// MaxPerKeyPerSource of them or its site MaxPerKeyPerSite. Then, if src
	// holds MaxPerSource values, or its bytes plus len(data) would pass
	// MaxBytesPerSource, or the same for its site with MaxPerSite and
	// MaxBytesPerSite, or Len has reached MaxValues, or the stored bytes
	// plus len(data) would pass MaxBytes, it sweeps the whole store at now,
	// once, and checks again: it refuses with ErrQuota if src or its site is
	// still over a quota, and with ErrFull if the store is still full.
	// Nothing unexpired is ever evicted to make room. A refused Put changes
	// nothing visible to Get.
	Put(key id.ID, data []byte, src netip.Addr, expires, now time.Time) error

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

// Default limits, used for zero fields of Limits. The quotas' defaults are
// derived from the other limits; see Limits.
const (
	DefaultMaxValues    = 100_000
	DefaultMaxPerKey    = 16
	DefaultMaxValueSize = 1000

	// DefaultSourceShare divides MaxValues and MaxBytes into the default
	// quotas of one source: 1/100 of the store, so that filling a node
	// takes at least 100 hosts, while an honest publisher has room to spare. A node
	// holds about K/N of the values of an N-node network (K = 20
	// replicas), so one publisher reaches 1,000 values on one node of a
	// 10,000-node network only after publishing some 500,000 keys. The cost
	// falls on sources that many publishers share: a carrier-grade NAT, or
	// many nodes on one host, as in tests on 127.0.0.1.
	DefaultSourceShare = 100

	// DefaultKeySourceShare divides MaxPerKey into the default quota of one
	// source under one key: 1/4, so that at least four sources are needed
	// to fill a key, while one publisher can still store a few values under
	// it (the IPv4 and IPv6 addresses of one service, say).
	DefaultKeySourceShare = 4

	// DefaultSiteShare divides MaxValues and MaxBytes into the default
	// quotas of one IPv6 site (a /48): 1/25 of the store, four times a
	// source's share, so that a site with a few hosts, or an ISP that numbers
	// many customers' /56s out of one /48, has room, while filling a node
	// still takes 25 sites rather than one /48's 65,536 /64s.
	DefaultSiteShare = 25

	// DefaultKeySiteShare divides MaxPerKey into the default quota of one
	// IPv6 site under one key: 1/2, twice a source's share, so that a few
	// hosts of one site can publish under one key but one site alone can
	// never fill it.
	DefaultKeySiteShare = 2
)

// Limits bounds what a store accepts, so that no publisher can make it grow
// without bound, and no one source can take a key or the store from the
// others. A zero or negative field takes its default; the zero value is
// therefore the default limits. Bytes are counted as len(data), the store's
// own overhead per value aside, which MaxValues bounds.
type Limits struct {
	MaxValues    int // values over all keys, expired-but-not-deleted included; default 100,000
	MaxPerKey    int // unexpired values per key; default 16
	MaxValueSize int // bytes per value; default 1000
	MaxBytes     int // bytes over all values, expired-but-not-deleted included; default MaxValues*MaxValueSize

	// The source quotas. A source is an IPv4 address or an IPv6 /64 (see
	// Store); the node's own puts are exempt. The counts include expired
	// values not yet deleted, as MaxValues does, but a Put that finds its
	// source over a quota sweeps first, so in effect they count unexpired
	// values.
	MaxPerSource       int // values one source holds over all keys; default MaxValues/100, at least 1
	MaxBytesPerSource  int // bytes one source holds over all keys; default MaxBytes/100, at least MaxValueSize
	MaxPerKeyPerSource int // unexpired values one source holds under one key; default MaxPerKey/4, at least 1

	// The site quotas, which bound what the /64s of one IPv6 /48 hold
	// together, on top of each /64's source quotas; they are counted like
	// the source quotas. IPv4 addresses have no site.
	MaxPerSite       int // values one site holds over all keys; default MaxValues/25, at least MaxPerSource
	MaxBytesPerSite  int // bytes one site holds over all keys; default MaxBytes/25, at least MaxBytesPerSource
	MaxPerKeyPerSite int // unexpired values one site holds under one key; default MaxPerKey/2, at least MaxPerKeyPerSource
}

// WithDefaults returns l with each zero or negative field replaced by its
// default. The derived defaults are computed from the filled-in fields.
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
	if l.MaxBytes <= 0 {
		// The bound MaxValues and MaxValueSize already imply, so that the
		// default changes nothing; saturate rather than overflow.
		if l.MaxValues > math.MaxInt/l.MaxValueSize {
			l.MaxBytes = math.MaxInt
		} else {
			l.MaxBytes = l.MaxValues * l.MaxValueSize
		}
	}
	if l.MaxPerSource <= 0 {
		l.MaxPerSource = max(1, l.MaxValues/DefaultSourceShare)
	}
	if l.MaxBytesPerSource <= 0 {
		l.MaxBytesPerSource = max(l.MaxValueSize, l.MaxBytes/DefaultSourceShare)
	}
	if l.MaxPerKeyPerSource <= 0 {
		l.MaxPerKeyPerSource = max(1, l.MaxPerKey/DefaultKeySourceShare)
	}
	if l.MaxPerSite <= 0 {
		l.MaxPerSite = max(l.MaxPerSource, l.MaxValues/DefaultSiteShare)
	}
	if l.MaxBytesPerSite <= 0 {
		l.MaxBytesPerSite = max(l.MaxBytesPerSource, l.MaxBytes/DefaultSiteShare)
	}
	if l.MaxPerKeyPerSite <= 0 {
		l.MaxPerKeyPerSite = max(l.MaxPerKeyPerSource, l.MaxPerKey/DefaultKeySiteShare)
	}
	return l
}

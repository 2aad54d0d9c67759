// Package store keeps the records a node is responsible for.
//
// A key (an id.ID) holds one record per publisher: the node or program that
// put it, named by a 160-bit ID (SHA-1 of the bytes for an anonymous put). A
// record is a value, or a tombstone that says its publisher withdrew it. Each
// record carries its publisher's version and its own expiry. Storing again
// under the same key and publisher replaces the record by the ordering rule
// (see Store.Put), so a key holds the latest record of each publisher instead
// of a pile of copies, and a stale replica can never roll a record back.
//
// Store is the interface the node uses; Memory is the in-memory
// implementation, which persistent stores build on (NewMemoryObserved,
// Restore); package store/storetest holds the conformance suite every
// implementation must pass.
//
// Stores read no clock: every call that depends on time takes now, so that
// the simulator can run many nodes on virtual time.
package store

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/dhtkit/dht/id"
)

// Sentinel errors. Put returns them wrapped (a refusal for a bound is a
// *LimitError) with the numbers that explain the refusal, because the node
// passes the message on to the publisher as the reason a store was refused.
// Test with errors.Is.
var (
	ErrTooLarge = errors.New("store: value too large")
	ErrFull     = errors.New("store: full")                         // a bound over the whole store is reached
	ErrKeyFull  = errors.New("store: too many values for this key") // a bound of the key is reached
	ErrQuota    = errors.New("store: over quota")                   // a source, site or publisher has had its share
	ErrStale    = errors.New("store: not newer than the held version")
	ErrExpired  = errors.New("store: expiry is not in the future")
	ErrClosed   = errors.New("store: closed")
	// ErrSigned refuses a plain write (a value or a tombstone) to a
	// publisher whose held record is enveloped. It matches ErrStale too
	// (errors.Is), since by the ordering rule the write is not newer.
	ErrSigned error = signedError{}
	// ErrBusy says a persistent store cannot take a write now because its
	// queue to the disk is full; the write changed nothing. Try again later.
	ErrBusy = errors.New("store: busy")
)

// signedError is ErrSigned: its own sentinel, and ErrStale to callers
// that only know the older one.
type signedError struct{}

func (signedError) Error() string {
	return "store: not newer than the held version: the held record is enveloped, and a plain write never replaces it"
}

func (signedError) Is(target error) bool { return target == ErrStale }

// LimitError is a refusal because a bound of Limits would be passed. It
// names the bound and the numbers, and it matches (errors.Is) the sentinel
// of its kind of bound: ErrTooLarge for MaxValueSize; ErrKeyFull for
// MaxPerKey and MaxBytesPerKey; ErrFull for MaxValues and MaxBytes; ErrQuota
// for MaxPerPublisher and the source and site quotas.
type LimitError struct {
	Bound string // the name of the Limits field, such as "MaxPerKey"
	Limit int    // its value
	// Have is what already counts against the bound (records, or bytes for
	// a bound of bytes), the record the put would replace left out; Want is
	// what the put would add. Have+Want > Limit. For MaxValueSize, Have is 0
	// and Want is the size of the value.
	Have, Want int
	// Group names who the bound is for: a source ("203.0.113.7",
	// "2001:db8::/64"), a site ("2001:db8::/48") or a publisher ("publisher"
	// and its ID in hex); empty for the bounds of a key or of the store.
	Group string
	err   error
}

// Error says which bound refused the put and with which numbers, in at most
// 255 bytes.
func (e *LimitError) Error() string {
	sentinel := e.err
	if sentinel == nil {
		sentinel = errors.New("store: limit") // a LimitError made outside the package
	}
	unit := "records"
	if e.Bound == "MaxValueSize" || strings.Contains(e.Bound, "Bytes") {
		unit = "bytes"
	}
	if e.Bound == "MaxValueSize" {
		return fmt.Sprintf("%v: the value has %d bytes, over MaxValueSize %d", sentinel, e.Want, e.Limit)
	}
	who, where := e.Group, ""
	switch {
	case e.Group == "" && isKeyBound(e.Bound):
		who = "the key"
	case e.Group == "":
		who = "the store"
	case isKeyBound(e.Bound):
		where = " under this key"
	}
	return fmt.Sprintf("%v: %s holds %d %s%s and this put adds %d, over %s %d",
		sentinel, who, e.Have, unit, where, e.Want, e.Bound, e.Limit)
}

// Unwrap returns the sentinel the refusal matches.
func (e *LimitError) Unwrap() error { return e.err }

// isKeyBound reports whether bound counts within one key.
func isKeyBound(bound string) bool {
	switch bound {
	case "MaxPerKey", "MaxBytesPerKey", "MaxPerKeyPerSource", "MaxBytesPerKeyPerSource",
		"MaxPerKeyPerSite", "MaxBytesPerKeyPerSite":
		return true
	}
	return false
}

// Value is one record under a key: a value, or a tombstone (Deleted) that
// says its publisher withdrew it. A record is live while now is before
// Expires; from Expires on it is expired. Expiries are compared as
// wall-clock instants: stores drop the monotonic clock reading, so compare
// returned expiries with time.Time.Equal, not ==.
type Value struct {
	Publisher id.ID     // who owns the record; a key holds one record per publisher
	Version   uint64    // publisher-assigned, monotonic: higher replaces lower
	Expires   time.Time // wall-clock instant; compare with Equal
	Deleted   bool      // a tombstone; Data is empty
	// Envelope marks Data as a record envelope (package record): signed,
	// typed or content-addressed, checked by the node before it is stored.
	// A tombstone is never enveloped (Put clears the flag on one).
	Envelope bool
	Data     []byte
}

// Store holds the records of many keys, each with its own expiry.
// Implementations are safe for concurrent use.
//
// Records are ordered by version, highest first, then by publisher, the
// lower ID (as bytes) first: a total, stable order, which Get and Records
// return and which the node uses as the cursor order on the wire.
//
// Every record is charged to one source: the one whose write made it what
// it is (the newest writer pays; a refresh that extends a record moves the
// charge too), so that no one source can take more than its share of a key
// or of the store (see Limits). A source is the IP address a store came
// from, grouped so that one host counts once: an IPv4 address is its own
// group (/32), an IPv6 address counts as its /64, which is what one host or
// one customer line is usually given, and an IPv4-mapped IPv6 address counts
// as the IPv4 address. Because one site is routinely given a whole /56 or
// /48, and so thousands of /64s, an IPv6 record is charged to its /48 as
// well, the source's site, which has quotas of its own (larger ones, since
// an ISP may number many customers out of one /48). The zone of an address
// is ignored. The zero (invalid) netip.Addr stands for the node itself: its
// own puts are exempt from the source quotas, but not from the other limits.
//
// Expired records are invisible at once, but they stay stored (and counted
// by Len, Bytes, NextExpiry and the limits) until something deletes them:
// Sweep, a Put to the same key, or a Put that finds a limit reached.
type Store interface {
	// Put applies v, a value or a tombstone, under key by the ordering
	// rule, charged to src (the sender's IP address, or the zero
	// netip.Addr for the node itself). v.Data is copied; a tombstone's Data
	// is ignored.
	//
	// The ordering rule, against the live record of v.Publisher under key:
	//   - none held (or only an expired one): v is stored;
	//   - one enveloped and the other plain: the enveloped one wins,
	//     whatever the versions: v enveloped replaces a plain record, and
	//     v plain (value or tombstone) is refused with ErrSigned (which is
	//     ErrStale too), because an unsigned write naming the publisher of a
	//     signed record must never override or withdraw it; between two
	//     records both enveloped or both plain, the steps below apply:
	//   - v.Version higher than the held one: v replaces it, whatever it is;
	//   - equal versions, v a tombstone and the held one a value: the
	//     tombstone replaces it (a withdrawal beats the value it withdraws);
	//   - equal versions and both tombstones, or both values with the same
	//     bytes: a refresh, which only extends: the expiry becomes the later
	//     of the two, never earlier; one that extends nothing changes
	//     nothing and is accepted;
	//   - otherwise (a lower version; a value at the version of a held
	//     tombstone; other bytes at the held version): refused with
	//     ErrStale, and the held record stays.
	// A tombstone that replaces a record keeps at least that record's
	// expiry, so that a replica that missed the withdrawal cannot bring the
	// value back while it lives. Tombstones count as one record and no bytes
	// against the limits.
	//
	// Put checks, in order: closed (ErrClosed), len(v.Data) over
	// MaxValueSize, v.Expires not after now (ErrExpired). It then deletes
	// the key's records expired at now and applies the ordering rule
	// (ErrStale). A write that changes the record is then checked against
	// the bounds of the key (MaxPerKey, MaxBytesPerKey, then the per-key
	// quotas of src's source and site), and against those over the store
	// (MaxPerPublisher, the quotas of src's source and of its site, MaxValues,
	// MaxBytes); if one of the latter is passed, Put deletes every record
	// expired at now, once, and checks again. A bound refuses a write only
	// if the write adds to what counts against it (a replacement is counted
	// in place of the record it replaces), so that a publisher can always
	// shrink or withdraw its record. Each refusal is a *LimitError. Nothing
	// unexpired is ever evicted to make room, and a refused Put changes
	// nothing.
	Put(key id.ID, v Value, src netip.Addr, now time.Time) error

	// Get appends key's values live at now, tombstones left out, to dst,
	// newest first (see the order above), and returns the extended slice.
	// It does not allocate when dst has room. The returned Data may share
	// memory with the store: callers must not modify it; it stays valid and
	// unchanged forever, because a store never writes into a byte slice it
	// has handed out. After Close, Get returns dst unchanged.
	Get(key id.ID, now time.Time, dst []Value) []Value

	// Records is Get with the tombstones: what a node serves, so that
	// readers can see withdrawals.
	Records(key id.ID, now time.Time, dst []Value) []Value

	// Lookup returns the record (value or tombstone) of publisher under key
	// live at now, and false if there is none.
	Lookup(key, publisher id.ID, now time.Time) (Value, bool)

	// Sweep deletes every record expired at now and returns how many it
	// deleted. It costs in proportion to what it deletes, not to what the
	// store holds.
	Sweep(now time.Time) int

	// NextExpiry returns the earliest expiry among stored records, expired
	// or not, and false when the store is empty: the instant to arm one
	// sweep timer for.
	NextExpiry() (time.Time, bool)

	// Len returns the number of stored records over all keys, tombstones
	// and expired records that have not been deleted yet included.
	Len() int

	// Bytes returns the bytes of data stored over all records (len(Data)
	// summed), expired records not yet deleted included.
	Bytes() int

	// Keys calls fn once for each key that holds stored records (perhaps
	// only expired ones or tombstones), in no particular order, and stops
	// early if fn returns false. fn runs without the store's lock held, so
	// it may call the store's other methods; a key deleted meanwhile may
	// still be reported. After Close, Keys calls nothing.
	Keys(fn func(key id.ID) bool)

	// Ascend is Keys in ascending order of key (as bytes, which is the
	// order of the keyspace), from the first key not below from: the walk
	// replication makes, so that keys sharing their closest nodes come
	// together. Like Keys, fn runs without the lock held and may use the
	// store; a key deleted meanwhile may still be reported, and one added
	// meanwhile may be missed. Each key held throughout is reported once.
	// After Close, Ascend calls nothing.
	Ascend(from id.ID, fn func(key id.ID) bool)

	// Close releases the store. Later Puts return ErrClosed. Close is
	// idempotent: calls after the first return nil.
	Close() error
}

// Syncer is implemented by stores that write to disk behind Put. Sync calls
// fn (on another goroutine, exactly once) when every change made before the
// call is durable, or with the error that stopped it. The node acknowledges a
// store only after its Sync callback reports nil.
type Syncer interface {
	Sync(fn func(error))
}

// Default limits, used for zero fields of Limits. The quotas' defaults are
// derived from the other limits; see Limits.
const (
	DefaultMaxValueSize    = 64 << 10  // 64 KiB: an identity document with room to spare
	DefaultMaxPerKey       = 64        // records: the incoming-callers list of one user needs many
	DefaultMaxBytesPerKey  = 256 << 10 // 256 KiB: four values of the largest size
	DefaultMaxValues       = 100_000
	DefaultMaxBytes        = 256 << 20 // 256 MiB
	DefaultMaxPerPublisher = 1000

	// DefaultSourceShare divides MaxValues and MaxBytes into the default
	// quotas of one source: 1/100 of the store, so that filling a node
	// takes at least 100 hosts, while an honest publisher has room to
	// spare. A node holds about K/N of the records of an N-node network (K
	// = 20 replicas), so one publisher reaches 1,000 records on one node of
	// a 10,000-node network only after publishing some 500,000 keys; and
	// its share of bytes (2.56 MiB by default, forty values of the largest
	// size) only after some 20,000 values of 64 KiB. The cost falls on
	// sources that many publishers share: a carrier-grade NAT, or many
	// nodes on one host, as in tests on 127.0.0.1.
	DefaultSourceShare = 100

	// DefaultKeySourceShare divides MaxPerKey and MaxBytesPerKey into the
	// default quotas of one source under one key: 1/4, so that at least
	// four sources are needed to fill a key, in records or in bytes, while
	// one source can still store several records under it (16 by default:
	// a few programs behind one address) or one value of the largest size
	// (64 KiB of the key's 256 KiB).
	DefaultKeySourceShare = 4

	// DefaultSiteShare divides MaxValues and MaxBytes into the default
	// quotas of one IPv6 site (a /48): 1/25 of the store, four times a
	// source's share, so that a site with a few hosts, or an ISP that
	// numbers many customers' /56s out of one /48, has room, while filling
	// a node still takes 25 sites rather than one /48's 65,536 /64s.
	DefaultSiteShare = 25

	// DefaultKeySiteShare divides MaxPerKey and MaxBytesPerKey into the
	// default quotas of one IPv6 site under one key: 1/2, twice a source's
	// share, so that a few hosts of one site can publish under one key but
	// one site alone can never fill it.
	DefaultKeySiteShare = 2
)

// Limits bounds what a store accepts, so that no publisher can make it grow
// without bound, and no one source can take a key or the store from the
// others. A zero or negative field takes its default; the zero value is
// therefore the default limits. Bytes are counted as len(Data), the store's
// own overhead per record aside, which the bounds of records bound. A
// tombstone counts as one record and no bytes. The counts include expired
// records not yet deleted, but a Put that finds a bound over the store
// reached deletes them first, so in effect they count live records.
type Limits struct {
	MaxValueSize int // bytes of one value; default 64 KiB

	// The bounds of one key.
	MaxPerKey      int // records per key; default 64
	MaxBytesPerKey int // bytes per key; default min(256 KiB, MaxPerKey*MaxValueSize), at least MaxValueSize

	// The bounds over the store.
	MaxValues       int // records; default 100,000
	MaxBytes        int // bytes; default min(256 MiB, MaxValues*MaxValueSize)
	MaxPerPublisher int // records of one publisher; default 1,000

	// The source quotas. A source is an IPv4 address or an IPv6 /64 (see
	// Store); the node's own puts are exempt.
	MaxPerSource            int // records one source holds; default MaxValues/100, at least 1
	MaxBytesPerSource       int // bytes one source holds; default MaxBytes/100, at least MaxValueSize
	MaxPerKeyPerSource      int // records one source holds under one key; default MaxPerKey/4, at least 1
	MaxBytesPerKeyPerSource int // bytes one source holds under one key; default MaxBytesPerKey/4, at least MaxValueSize

	// The site quotas, which bound what the /64s of one IPv6 /48 hold
	// together, on top of each /64's source quotas. IPv4 addresses have no
	// site.
	MaxPerSite            int // records one site holds; default MaxValues/25, at least MaxPerSource
	MaxBytesPerSite       int // bytes one site holds; default MaxBytes/25, at least MaxBytesPerSource
	MaxPerKeyPerSite      int // records one site holds under one key; default MaxPerKey/2, at least MaxPerKeyPerSource
	MaxBytesPerKeyPerSite int // bytes one site holds under one key; default MaxBytesPerKey/2, at least MaxBytesPerKeyPerSource
}

// WithDefaults returns l with each zero or negative field replaced by its
// default. The derived defaults are computed from the filled-in fields.
//
// The byte bounds of a key and of the store default to the smaller of their
// constant and what the bounds of records already imply, so that a store
// configured for few or small records gets byte quotas in proportion rather
// than ones that can never bind; a key's bytes never default below one value
// of the largest size, so that such a value always fits an empty key.
func (l Limits) WithDefaults() Limits {
	if l.MaxValueSize <= 0 {
		l.MaxValueSize = DefaultMaxValueSize
	}
	if l.MaxPerKey <= 0 {
		l.MaxPerKey = DefaultMaxPerKey
	}
	if l.MaxBytesPerKey <= 0 {
		l.MaxBytesPerKey = max(l.MaxValueSize, min(DefaultMaxBytesPerKey, mulSat(l.MaxPerKey, l.MaxValueSize)))
	}
	if l.MaxValues <= 0 {
		l.MaxValues = DefaultMaxValues
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = min(DefaultMaxBytes, mulSat(l.MaxValues, l.MaxValueSize))
	}
	if l.MaxPerPublisher <= 0 {
		l.MaxPerPublisher = DefaultMaxPerPublisher
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
	if l.MaxBytesPerKeyPerSource <= 0 {
		l.MaxBytesPerKeyPerSource = max(l.MaxValueSize, l.MaxBytesPerKey/DefaultKeySourceShare)
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
	if l.MaxBytesPerKeyPerSite <= 0 {
		l.MaxBytesPerKeyPerSite = max(l.MaxBytesPerKeyPerSource, l.MaxBytesPerKey/DefaultKeySiteShare)
	}
	return l
}

// mulSat returns a*b for positive a and b, saturated at math.MaxInt.
func mulSat(a, b int) int {
	if a > math.MaxInt/b {
		return math.MaxInt
	}
	return a * b
}

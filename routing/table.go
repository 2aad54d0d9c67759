package routing

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/dhtkit/dht/id"
)

// MaxK is the largest bucket size a Table accepts. Closest sorts a bucket
// through a stack array of this many one-byte indexes.
const MaxK = 256

// MaxBuckets caps how many buckets a table splits into: one per bit of the
// keyspace.
const MaxBuckets = id.Bits

// MaxFailuresLimit is the largest MaxFailures a Table accepts (failure counts
// are stored in one byte).
const MaxFailuresLimit = 255

// Defaults for the zero fields of Config.
const (
	DefaultK           = 20
	DefaultMaxFailures = 3
	DefaultPingTimeout = time.Minute
	DefaultFresh       = 5 * time.Minute
)

// Config sizes a table. Zero fields take defaults; the zero value is a
// usable configuration (K = 20, a replacement cache of K, 3 failures).
type Config struct {
	// K is the bucket size; default 20, at most MaxK.
	K int
	// ReplacementCache is how many replacement contacts are kept per
	// bucket; default K.
	ReplacementCache int
	// MaxFailures is how many consecutive failures remove a contact even
	// when no replacement is waiting; default 3, at most MaxFailuresLimit.
	MaxFailures int
	// PingTimeout is how long a liveness ping that Seen asked for counts as
	// outstanding if its outcome is never reported (by Seen or Failed for the
	// pinged contact). It only guards against a bucket that would otherwise
	// never ping again; set it well above the request timeout with its
	// retries. Default 1 minute.
	PingTimeout time.Duration
	// Fresh is how long a contact counts as known to be alive after it was
	// last heard from. A full bucket whose least-recently-seen contact is
	// fresh keeps it without pinging it (the newcomer waits in the
	// replacement cache): a ping would only confirm what the table already
	// knows, and a busy network would send one per newcomer. Default 5
	// minutes: with 1 minute, lookups in a busy 10,000-node simulation sent
	// more pings than lookup requests; with 15 (BEP 5's "good" node), a
	// node cut off from 70% of the network for 10 minutes kept its tables
	// full of unreachable contacts and found 68% of keys against 77%. A
	// contact that died within the window is found out when a request to it
	// fails. Negative means never fresh (ping every time, as the paper
	// describes).
	Fresh time.Duration
}

func (c Config) withDefaults() Config {
	if c.K == 0 {
		c.K = DefaultK
	}
	if c.ReplacementCache == 0 {
		c.ReplacementCache = c.K
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = DefaultMaxFailures
	}
	if c.PingTimeout == 0 {
		c.PingTimeout = DefaultPingTimeout
	}
	if c.Fresh == 0 {
		c.Fresh = DefaultFresh
	}
	return c
}

// Validate reports whether c, with defaults filled in for its zero fields, is
// a configuration New accepts, naming the offending field if not.
func (c Config) Validate() error {
	c = c.withDefaults()
	switch {
	case c.K < 1 || c.K > MaxK:
		return fmt.Errorf("routing: K is %d, want 1 to %d (0 for the default %d)", c.K, MaxK, DefaultK)
	case c.ReplacementCache < 0:
		return fmt.Errorf("routing: ReplacementCache is %d, want >= 0 (0 for the default, K)", c.ReplacementCache)
	case c.MaxFailures < 1 || c.MaxFailures > MaxFailuresLimit:
		return fmt.Errorf("routing: MaxFailures is %d, want 1 to %d (0 for the default %d)", c.MaxFailures, MaxFailuresLimit, DefaultMaxFailures)
	case c.PingTimeout < 0:
		return fmt.Errorf("routing: PingTimeout is %v, want > 0 (0 for the default %v)", c.PingTimeout, DefaultPingTimeout)
	}
	return nil
}

// Result says what Seen did with a contact.
type Result int

const (
	// Updated: the contact was already in its bucket and is now its most
	// recently seen entry.
	Updated Result = iota + 1
	// Added: the contact took a free slot in its bucket.
	Added
	// Full: the bucket is full; the contact waits in the replacement cache.
	Full
	// Ignored: the contact is the table's own ID or has an unusable address.
	Ignored
)

// String returns the result's name.
func (r Result) String() string {
	switch r {
	case Updated:
		return "Updated"
	case Added:
		return "Added"
	case Full:
		return "Full"
	case Ignored:
		return "Ignored"
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// Entry is a contact and what the table knows of it. The zero value is an
// empty entry with a zero time.
type Entry struct {
	Contact  id.Contact
	LastSeen time.Time // when it was last heard from; from Unix nanoseconds, without monotonic reading
	Failures int       // consecutive requests to it that got no answer
}

// bucket is one k-bucket. entries run least-recently-seen first; repl (the
// replacement cache) runs oldest first. A bucket with a non-empty replacement
// cache is full.
type bucket struct {
	entries []entry
	repl    []entry
	touched int64 // last Touch, or the bucket's creation
	pingAt  int64 // when the outstanding ping was asked for
	pinged  key   // the contact it was asked for
	pinging bool
}

// endPing forgets the outstanding liveness ping if it was for k (k has
// answered, been replaced or been removed), and reports whether it was.
func (b *bucket) endPing(k key) bool {
	if b.pinging && b.pinged == k {
		b.pinging = false
		return true
	}
	return false
}

// Table is a Kademlia routing table. Create one with New; the zero value is
// not usable. A Table is not safe for concurrent use: it holds no lock, and
// its owner must serialize every call (the node guards it with its own
// mutex).
type Table struct {
	self        key
	selfID      id.ID
	k, r        int
	maxFailures int
	pingTimeout int64
	fresh       int64 // Config.Fresh in nanoseconds
	n           int   // contacts in buckets
	started     bool  // the first now has been seen: bucket 0's creation time
	buckets     []bucket
	zones       []string
}

// New returns an empty table for the node self. It panics if cfg does not
// pass Validate: a bad size is a programming error, which the node's own
// config validation reports to users first.
func New(self id.ID, cfg Config) *Table {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	t := &Table{
		self:        load(self),
		selfID:      self,
		k:           cfg.K,
		r:           cfg.ReplacementCache,
		maxFailures: cfg.MaxFailures,
		pingTimeout: int64(cfg.PingTimeout),
		fresh:       int64(max(cfg.Fresh, 0)),
		buckets:     make([]bucket, 1, 4),
	}
	return t
}

// Self returns the table's own ID.
func (t *Table) Self() id.ID { return t.selfID }

// K returns the bucket size.
func (t *Table) K() int { return t.k }

// Len returns how many contacts the buckets hold, not counting the
// replacement caches.
func (t *Table) Len() int { return t.n }

// Buckets returns the number of buckets right now (at least 1).
func (t *Table) Buckets() int { return len(t.buckets) }

// BucketOf returns the index of the bucket that holds, or would hold, x.
func (t *Table) BucketOf(x id.ID) int { return t.bucketOf(load(x)) }

func (t *Table) bucketOf(k key) int {
	return min(cpl(t.self, k), len(t.buckets)-1)
}

// start records the table's creation time the first time a method sees now:
// New takes no time, and a bucket's age counts from its creation.
func (t *Table) start(ns int64) {
	if !t.started {
		t.started = true
		t.buckets[0].touched = ns
	}
}

// reorderAfter is how long a contact must go unheard before hearing from it
// again moves it to the most-recently-seen end of its bucket.
const reorderAfter = int64(time.Second)

// Seen records that c was heard from at now: it sent a request or answered
// one.
//
//   - c already in its bucket: it becomes the most recently seen entry and
//     its failure count resets (Updated). A different address replaces the
//     stored one only if the stored entry has failures, so that a spoofed
//     packet cannot hijack a healthy entry. If c was the bucket's pinged
//     contact, the ping is resolved.
//   - room in the bucket: c is appended as most recently seen (Added).
//   - the bucket is full and is the last one: it splits, and Seen retries.
//   - otherwise: c goes to the bucket's replacement cache as its most recent
//     entry (the oldest is dropped when the cache is full; an ID already there
//     is refreshed, taking the new address). Seen returns Full, and if
//     no liveness ping is outstanding for the bucket it also returns the
//     bucket's least-recently-seen contact with needPing true, and counts a
//     ping as outstanding until that contact's Seen, Failed or CancelPing
//     (or until Config.PingTimeout passes). The caller sends that ping.
//
// c is Ignored when it is the table's own ID, or its address is invalid, has
// port 0, or is unspecified (0.0.0.0, ::) or multicast.
func (t *Table) Seen(c id.Contact, now time.Time) (res Result, ping id.Contact, needPing bool) {
	if c.ID == t.selfID {
		return Ignored, id.Contact{}, false
	}
	ns := now.UnixNano()
	ne, ok := t.makeEntry(c, ns)
	if !ok {
		return Ignored, id.Contact{}, false
	}
	t.start(ns)
	k := ne.key()
	for {
		bi := t.bucketOf(k)
		b := &t.buckets[bi]
		if j := find(b.entries, k); j >= 0 {
			if e := &b.entries[j]; e.failures == 0 && ns-e.lastSeen < reorderAfter && ns >= e.lastSeen {
				// Seen within the last second: it already sits among the
				// bucket's most recent, so a busy peer costs a timestamp
				// update, not a shuffle of the bucket, per datagram.
				e.lastSeen = ns
				b.endPing(k)
				return Updated, id.Contact{}, false
			}
			e := b.entries[j]
			if e.failures > 0 {
				e.setAddr(&ne)
			}
			e.failures = 0
			e.lastSeen = ns
			copy(b.entries[j:], b.entries[j+1:])
			b.entries[len(b.entries)-1] = e
			b.endPing(k)
			return Updated, id.Contact{}, false
		}
		if len(b.entries) < t.k {
			b.entries = append(grow(b.entries, t.k), ne)
			t.n++
			return Added, id.Contact{}, false
		}
		if bi == len(t.buckets)-1 && len(t.buckets) < MaxBuckets {
			t.split(ns)
			continue
		}
		// A contact whose last request failed is known to be bad: the
		// newcomer takes its place at once, as BEP 5 has it, without a ping.
		// (With replacements waiting, Failed has already done this.)
		if j := mostFailing(b.entries); j >= 0 {
			b.endPing(b.entries[j].key())
			b.entries = append(remove(b.entries, j), ne)
			return Added, id.Contact{}, false
		}
		t.cache(b, ne)
		if b.pinging && ns-b.pingAt < t.pingTimeout {
			return Full, id.Contact{}, false
		}
		lrs := &b.entries[0]
		if ns-lrs.lastSeen < t.fresh {
			return Full, id.Contact{}, false
		}
		b.pinging, b.pingAt, b.pinged = true, ns, lrs.key()
		return Full, lrs.contact(t.zones), true
	}
}

// cache puts ne into b's replacement cache as the most recent entry.
func (t *Table) cache(b *bucket, ne entry) {
	if j := find(b.repl, ne.key()); j >= 0 {
		// Refresh in place, address included: no replacement has been
		// verified yet, so the latest address is as good as any.
		copy(b.repl[j:], b.repl[j+1:])
		b.repl[len(b.repl)-1] = ne
		return
	}
	if len(b.repl) == t.r {
		copy(b.repl, b.repl[1:])
		b.repl[len(b.repl)-1] = ne
		return
	}
	b.repl = append(grow(b.repl, t.r), ne)
}

// split turns the last bucket L into "cpl == L" and appends a new last bucket
// for cpl >= L+1, created (touched) at ns.
//
// Only entries move. The last bucket never has a replacement cache or an
// outstanding ping to hand over: a full last bucket splits instead of
// caching, except at MaxBuckets, where it no longer splits.
func (t *Table) split(ns int64) {
	t.buckets = append(t.buckets, bucket{touched: ns})
	last := len(t.buckets) - 1
	old, nb := &t.buckets[last-1], &t.buckets[last]
	stay := old.entries[:0]
	for i := range old.entries {
		if cpl(t.self, old.entries[i].key()) >= last {
			nb.entries = append(grow(nb.entries, t.k), old.entries[i])
		} else {
			stay = append(stay, old.entries[i])
		}
	}
	clear(old.entries[len(stay):])
	old.entries = stay
}

// promote moves the most recent replacements into b while it has room.
func (t *Table) promote(b *bucket) {
	for len(b.entries) < t.k && len(b.repl) > 0 {
		e := b.repl[len(b.repl)-1]
		b.repl = b.repl[:len(b.repl)-1]
		b.entries = append(grow(b.entries, t.k), e)
		t.n++
	}
}

// grow makes room for one more entry, growing capacity geometrically but
// never past limit, so that a bucket of K never holds more than K slots.
func grow(s []entry, limit int) []entry {
	if len(s) < cap(s) {
		return s
	}
	n := min(max(2*cap(s), 4), limit)
	if n <= len(s) {
		n = len(s) + 1
	}
	ns := make([]entry, len(s), n)
	copy(ns, s)
	return ns
}

func find(s []entry, k key) int {
	for i := range s {
		if s[i].is(k) {
			return i
		}
	}
	return -1
}

// Failed records that a request to the contact x got no answer, and returns
// whether x was removed.
//
// A contact in a bucket has its consecutive failure count incremented. It is
// removed when its bucket's replacement cache is non-empty (the most recently
// seen replacement takes its place as the most recently seen entry) or when
// its failures reach MaxFailures. If x was the bucket's pinged contact, the
// ping is resolved. A contact that is only in a replacement cache is dropped
// from it (it would be a poor replacement), which also returns true. Unknown
// IDs are a no-op returning false.
func (t *Table) Failed(x id.ID, now time.Time) (removed bool) {
	t.start(now.UnixNano())
	k := load(x)
	b := &t.buckets[t.bucketOf(k)]
	j := find(b.entries, k)
	if j < 0 {
		if j = find(b.repl, k); j >= 0 {
			b.repl = remove(b.repl, j)
			return true
		}
		return false
	}
	b.endPing(k)
	e := &b.entries[j]
	if int(e.failures) < t.maxFailures {
		e.failures++
	}
	if len(b.repl) == 0 && int(e.failures) < t.maxFailures {
		return false
	}
	b.entries = remove(b.entries, j)
	t.n--
	t.promote(b)
	return true
}

// mostFailing returns the index of the entry with the most failures in a
// row, the least recently seen among equals, or -1 when none has failed.
func mostFailing(es []entry) int {
	j := -1
	for i := range es {
		if es[i].failures > 0 && (j < 0 || es[i].failures > es[j].failures) {
			j = i
		}
	}
	return j
}

// CancelPing withdraws the liveness ping Seen asked for, when it was for x
// and the caller could not send it (for instance, its request queue was
// full): the bucket may ask again with its next newcomer, and x's record is
// left as it was. It reports whether an outstanding ping was withdrawn.
func (t *Table) CancelPing(x id.ID) bool {
	k := load(x)
	return t.buckets[t.bucketOf(k)].endPing(k)
}

// Remove deletes x from its bucket (the most recent replacement, if any,
// takes its place) or from its replacement cache, and reports whether x was
// there.
func (t *Table) Remove(x id.ID) bool {
	k := load(x)
	b := &t.buckets[t.bucketOf(k)]
	if j := find(b.entries, k); j >= 0 {
		b.endPing(k)
		b.entries = remove(b.entries, j)
		t.n--
		t.promote(b)
		return true
	}
	if j := find(b.repl, k); j >= 0 {
		b.repl = remove(b.repl, j)
		return true
	}
	return false
}

func remove(s []entry, j int) []entry {
	copy(s[j:], s[j+1:])
	s[len(s)-1] = entry{}
	return s[:len(s)-1]
}

// Get returns the bucket entry for x. Contacts that are only in a
// replacement cache are not returned (see Replacements).
func (t *Table) Get(x id.ID) (Entry, bool) {
	k := load(x)
	b := &t.buckets[t.bucketOf(k)]
	if j := find(b.entries, k); j >= 0 {
		return b.entries[j].export(t.zones), true
	}
	return Entry{}, false
}

// Touch records that a lookup for target ran at now, so target's bucket is
// fresh.
func (t *Table) Touch(target id.ID, now time.Time) {
	ns := now.UnixNano()
	t.start(ns)
	b := &t.buckets[t.BucketOf(target)]
	b.touched = max(b.touched, ns)
}

// Stale appends to dst the indexes, in increasing order, of the buckets last
// touched (by Touch, or by their creation: the first call that passed a time
// to the table, or the split that made them) before now-age, and returns the
// extended slice.
func (t *Table) Stale(now time.Time, age time.Duration, dst []int) []int {
	ns := now.UnixNano()
	t.start(ns)
	cutoff := ns - int64(age)
	for i := range t.buckets {
		if t.buckets[i].touched < cutoff {
			dst = append(dst, i)
		}
	}
	return dst
}

// RefreshTarget returns a random ID, drawn from r, that falls in bucket i:
// for the last bucket, any ID sharing its first i bits with the table's own
// (but not the own ID itself). It panics if i is not a bucket index.
func (t *Table) RefreshTarget(i int, r *rand.Rand) id.ID {
	if i < 0 || i >= len(t.buckets) {
		panic(fmt.Sprintf("routing: RefreshTarget(%d) with %d buckets", i, len(t.buckets)))
	}
	if i < len(t.buckets)-1 {
		return id.RandomInBucket(r, t.selfID, i)
	}
	// The last bucket spans every cpl >= i: pick uniformly in that range.
	for {
		x := id.Random(r)
		full := i / 8
		copy(x[:full], t.selfID[:full])
		if rem := i % 8; rem != 0 {
			m := byte(0xff) << (8 - rem) // the first rem bits of the byte
			x[full] = t.selfID[full]&m | x[full]&^m
		}
		if x != t.selfID {
			return x
		}
	}
}

// ForEach calls fn for every bucket entry, bucket by bucket in index order,
// least recently seen first within a bucket. fn must not modify the table.
func (t *Table) ForEach(fn func(bucket int, e Entry)) {
	for i := range t.buckets {
		for j := range t.buckets[i].entries {
			fn(i, t.buckets[i].entries[j].export(t.zones))
		}
	}
}

// Replacements returns a copy of bucket i's replacement cache, least recently
// seen first, or nil for an index that is not a bucket.
func (t *Table) Replacements(i int) []Entry {
	if i < 0 || i >= len(t.buckets) || len(t.buckets[i].repl) == 0 {
		return nil
	}
	out := make([]Entry, len(t.buckets[i].repl))
	for j := range t.buckets[i].repl {
		out[j] = t.buckets[i].repl[j].export(t.zones)
	}
	return out
}

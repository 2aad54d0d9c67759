package routing

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/rpc"
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
	// PingTimeout is how long a liveness ping that Seen or Verified asked
	// for counts as outstanding if its outcome is never reported (by
	// Verified or FailedAt for the pinged contact). It only guards against
	// a bucket that would otherwise never ping again; set it well above the
	// request timeout with its retries. Default 1 minute.
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
	// Diversity caps the contacts of one /24 or /48 per bucket and per
	// table (diversity.go); the zero value takes its defaults.
	Diversity Diversity
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
	return c.Diversity.Validate()
}

// Result says what Seen or Verified did with a contact.
type Result int

const (
	// Updated: the contact was already in its bucket and is now its most
	// recently seen entry.
	Updated Result = iota + 1
	// Added: the contact took a free slot in its bucket.
	Added
	// Full: the bucket is full; the contact waits in the replacement cache,
	// unless it is unverified and the cache is full of verified
	// replacements, which it does not displace (see Seen).
	Full
	// Ignored: the contact is the table's own ID or has an unusable address.
	Ignored
	// Conflict: the contact's ID is in its bucket at another address, or
	// its address is held by another ID (or, in a replacement cache, its ID
	// at a verified address), and the sighting was not proof enough to
	// change that. The table keeps what it had; it may ask for a ping whose
	// outcome will settle the question.
	Conflict
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
	case Conflict:
		return "Conflict"
	case Crowded:
		return "Crowded"
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// Entry is a contact and what the table knows of it. The zero value is an
// empty entry with a zero time.
type Entry struct {
	Contact  id.Contact
	LastSeen time.Time // when it was last heard from; from Unix nanoseconds, without monotonic reading
	Failures int       // consecutive requests to it that got no answer
	// Verified reports that Contact.Addr has answered one of our requests
	// (Verified was called for this ID at this address) since the entry
	// took that address. Failures do not clear it: it records that the
	// address once proved to be this ID's, not that it still answers.
	Verified bool
	// RTT is the round-trip estimate of our requests to Contact.Addr (see
	// ObserveRTT); the zero RTT when none has been answered yet.
	RTT rpc.RTT
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
//
// The table holds at most one entry per address (IP, port and IPv6 zone)
// across its buckets and replacement caches, so that one host cannot fill it
// with IDs; see Seen and Verified for how an address or an ID changes hands.
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is the IPv4 address it maps,
// in every method: the table stores it unmapped, and returns contacts with
// the unmapped address.
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
	idx         addrIndex // every address in buckets and caches
	div         diversity // contacts per prefix (diversity.go)
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
		idx:         newAddrIndex(),
		div:         newDiversity(cfg.Diversity),
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

// Seen records an unverified sighting of c at now: a datagram claiming c.ID
// (a request) arrived from c.Addr. Its source address may be spoofed, so
// Seen never lets it take an address or an entry from anyone:
//
//   - c.ID in its bucket at c.Addr: it becomes the most recently seen entry
//     and its failure count resets (Updated). If it was the bucket's pinged
//     contact, the ping is resolved.
//   - c.ID in its bucket at another address: the entry stays as it was
//     (Conflict). Only a ping settles it: if the stored address has failed
//     its last request, Seen asks for a ping of c at c.Addr (a verified
//     answer from there moves the entry, see Verified); otherwise it asks
//     for a ping of the stored address, unless that was heard from within
//     Config.Fresh.
//   - c.Addr held by another ID: c is not added (Conflict). When the holder
//     is in a bucket, Seen asks for a ping of it, unless it was heard from
//     within Config.Fresh and has not failed since. This is how a restart
//     is noticed: the answer carries the new ID, and its Verified replaces
//     the old one.
//   - room in the bucket: c is appended as most recently seen, unverified
//     (Added).
//   - the bucket is full and is the last one: it splits, and Seen retries.
//   - otherwise: c goes to the bucket's replacement cache as its most recent
//     entry (Full). When the cache is full the oldest unverified
//     replacement is dropped; if every one is verified, c is dropped
//     instead (still Full), so forged sightings cannot flush replacements
//     whose addresses have answered us. An ID
//     already cached is refreshed and takes c.Addr, unless its cached
//     address is verified and c.Addr differs (Conflict: the cache keeps the
//     proven address). No newcomer takes the place of a bucket entry here,
//     not even of a failing one: if no liveness ping is outstanding for the
//     bucket, Seen returns with needPing true the entry with the most
//     failures in a row if one is failing, else the least-recently-seen
//     entry if it was not heard from within Config.Fresh. The failing entry
//     is pinged rather than the newcomer because it has a record and the
//     newcomer has none: if it answers it stays, and if it fails again
//     FailedAt removes it under its rule and a replacement takes the slot.
//
// Every ping Seen asks for counts as the outstanding ping of the bucket that
// holds the contact to ping, and a bucket asks for one ping at a time. The
// ping is resolved by a Seen or Verified of its ID at the stored address, a
// Verified that moves the entry, a FailedAt (at any address), Failed or
// CancelPing of its ID, or the entry's removal; failing those, it lapses
// after Config.PingTimeout. The caller sends the ping to the returned
// contact's address, which is not always the stored one.
//
// c is Ignored when it is the table's own ID, or its address is invalid, has
// port 0, or is unspecified (0.0.0.0, ::) or multicast.
func (t *Table) Seen(c id.Contact, now time.Time) (res Result, ping id.Contact, needPing bool) {
	res, needPing = t.sight(c, now, false, &ping)
	return res, ping, needPing
}

// Verified records a verified sighting of c at now: c.Addr answered a
// request we sent to it, with c.ID. The node matches a response on its
// transaction ID and its source address, so only a host that receives at
// c.Addr can have sent it. Verified does what Seen does (including the
// pings it asks for), with these differences:
//
//   - the entry it updates or adds, in a bucket or a replacement cache, is
//     marked verified at c.Addr (Entry.Verified, Proven);
//   - a newcomer to a full cache of verified replacements drops the oldest
//     of them rather than being dropped;
//   - c.Addr held by another ID: that ID is no longer at c.Addr (the
//     address answered as c.ID), so its entry is removed, from its bucket or
//     cache, and c proceeds as if the address were free;
//   - c.ID in its bucket at another address that has failed its last
//     request: the entry moves to c.Addr, its failures reset, and it becomes
//     the most recently seen entry (Updated). If the stored address has not
//     failed, the entry stays (Conflict) and the stored address is pinged
//     unless heard from within Config.Fresh: an entry moves only once its
//     old address has failed and its new one has answered;
//   - c.ID cached at another address: the cached entry takes c.Addr.
func (t *Table) Verified(c id.Contact, now time.Time) (res Result, ping id.Contact, needPing bool) {
	res, needPing = t.sight(c, now, true, &ping)
	return res, ping, needPing
}

// sight is Seen and Verified. It writes the contact to ping, if any, to
// *ping: returning it by value would copy it out of every call, and most
// calls ask for no ping.
func (t *Table) sight(c id.Contact, now time.Time, verified bool, ping *id.Contact) (Result, bool) {
	if c.ID == t.selfID {
		return Ignored, false
	}
	ns := now.UnixNano()
	ne, ok := t.makeEntry(c, ns)
	if !ok {
		return Ignored, false
	}
	if verified {
		ne.flags |= verifiedBit
	}
	t.start(ns)
	k := ne.key()
	bi := t.bucketOf(k)
	b := &t.buckets[bi]
	j := find(b.entries, k)
	if j >= 0 && b.entries[j].sameAddr(&ne) {
		e := &b.entries[j]
		e.flags |= ne.flags & verifiedBit
		b.endPing(k)
		if e.failures == 0 && ns-e.lastSeen < reorderAfter && ns >= e.lastSeen {
			// Seen within the last second: it already sits among the
			// bucket's most recent, so a busy peer costs a timestamp
			// update, not a shuffle of the bucket, per datagram.
			e.lastSeen = ns
			return Updated, false
		}
		moved := *e
		if verified {
			// Only an answer clears failures: a request's source can be
			// forged, and forged PINGs under a departed contact's
			// address must not keep it alive in the table.
			moved.failures = 0
		}
		moved.lastSeen = ns
		copy(b.entries[j:], b.entries[j+1:])
		b.entries[len(b.entries)-1] = moved
		return Updated, false
	}
	return t.sightElsewhere(&ne, bi, j, verified, ns, ping)
}

// sightElsewhere is sight past its fast path (kept apart so that a known
// contact's sighting runs in a small frame).
func (t *Table) sightElsewhere(ne *entry, bi, j int, verified bool, ns int64, ping *id.Contact) (Result, bool) {
	res, p, freed := t.settle(ne, bi, j, verified, ns)
	if p != nil {
		p.fill(ping, t.zones) // before promote moves entries
	}
	if freed >= 0 {
		// Only now, so that c could take the slot its holder left.
		t.promote(&t.buckets[freed])
	}
	return res, p != nil
}

// settle handles a sighting ne of an ID that is not in bucket bi at ne's
// address (j is its index in bi at another address, or -1). It returns the
// entry to ping, if any, and the index of a bucket whose entry it evicted
// (the caller promotes a replacement there), or -1. Internal steps return
// the entry to ping rather than an id.Contact: that is built once, by
// sight.
func (t *Table) settle(ne *entry, bi, j int, verified bool, ns int64) (res Result, ping *entry, freed int) {
	// The sighting brings an address the ID does not have in a bucket: find
	// out who holds that address.
	freed = -1
	k := ne.key()
	tag := t.idx.tag(ne)
	if hb, inRepl, hj := t.holder(ne, tag); hb >= 0 {
		h := &t.buckets[hb].entries
		if inRepl {
			h = &t.buckets[hb].repl
		}
		if !(*h)[hj].is(k) {
			switch {
			case !verified && j >= 0:
				res, ping = t.elsewhere(bi, j, ne, tag, ns)
				return res, ping, -1
			case !verified && inRepl:
				return Conflict, nil, -1
			case !verified:
				res, ping = t.pingHolder(hb, hj, ns)
				return res, ping, -1
			}
			// c.Addr answered as c.ID: the holder is not there any more.
			t.evict(hb, inRepl, hj)
			if !inRepl {
				freed = hb
			}
			if j >= 0 && hb == bi {
				j = find(t.buckets[bi].entries, k)
			}
		}
	}
	if j >= 0 {
		res, ping = t.elsewhere(bi, j, ne, tag, ns)
	} else {
		res, ping = t.place(ne, tag, ns)
	}
	return res, ping, freed
}

// elsewhere handles a sighting ne (its address's tag: tag) of the contact
// at b.entries[j] from an address no one else holds, the entry being at
// another address.
func (t *Table) elsewhere(bi, j int, ne *entry, tag uint32, ns int64) (Result, *entry) {
	b := &t.buckets[bi]
	e := &b.entries[j]
	switch {
	case e.failures > 0 && ne.verified():
		// The old address failed and the new one answered: move, unless
		// the new address's prefix has its share already.
		if t.crowded(ne, b, e) {
			t.idx.hint = 0 // holder's probe hint was for ne's insertion
			return Crowded, nil
		}
		t.div.held(e, -1)
		t.div.held(ne, 1)
		t.idx.insert(tag, bi) // first, while the lookup's hint holds
		t.idx.remove(t.idx.tag(e), bi)
		moved := *e
		moved.setAddr(ne)
		moved.failures = 0
		moved.lastSeen = ns
		copy(b.entries[j:], b.entries[j+1:])
		b.entries[len(b.entries)-1] = moved
		b.endPing(moved.key())
		return Updated, nil
	case !t.pingFree(b, ns):
	case e.failures > 0:
		// Only an answer from the new address can move the entry.
		return t.askPing(b, ne, ns)
	case ns-e.lastSeen >= t.fresh:
		// It moves only after its stored address fails.
		return t.askPing(b, e, ns)
	}
	return Conflict, nil
}

// pingHolder answers an unverified sighting whose address the bucket entry
// hb/hj holds: Conflict, with a ping of the holder unless it is known alive.
func (t *Table) pingHolder(hb, hj int, ns int64) (Result, *entry) {
	b := &t.buckets[hb]
	e := &b.entries[hj]
	if t.pingFree(b, ns) && (e.failures > 0 || ns-e.lastSeen >= t.fresh) {
		return t.askPing(b, e, ns)
	}
	return Conflict, nil
}

func (t *Table) pingFree(b *bucket, ns int64) bool {
	return !b.pinging || ns-b.pingAt >= t.pingTimeout
}

// askPing marks a ping of p's ID as b's outstanding ping and returns
// Conflict and p.
func (t *Table) askPing(b *bucket, p *entry, ns int64) (Result, *entry) {
	b.pinging, b.pingAt, b.pinged = true, ns, p.key()
	return Conflict, p
}

// place puts ne, whose ID is in no bucket and whose address (its tag: tag)
// no other ID holds, into its bucket or replacement cache.
func (t *Table) place(ne *entry, tag uint32, ns int64) (Result, *entry) {
	k := ne.key()
	for {
		bi := t.bucketOf(k)
		b := &t.buckets[bi]
		if j := find(b.repl, k); j >= 0 {
			r := &b.repl[j]
			if r.sameAddr(ne) {
				ne.flags |= r.flags & verifiedBit
				ne.rtt = r.rtt
			} else {
				if r.verified() && !ne.verified() {
					return Conflict, nil
				}
				if t.crowded(ne, b, r) {
					t.idx.hint = 0
					return Crowded, nil
				}
				t.div.held(r, -1)
				t.div.held(ne, 1)
				t.idx.insert(tag, bi)
				t.idx.remove(t.idx.tag(r), bi)
			}
			copy(b.repl[j:], b.repl[j+1:])
			b.repl[len(b.repl)-1] = *ne
			if len(b.entries) < t.k {
				// Verified removed the address's holder from this very
				// bucket: ne, now its most recent replacement, verified,
				// is the first to be promoted.
				t.promote(b)
				if find(b.entries, k) >= 0 {
					return Added, nil
				}
			}
			return t.fullPing(b, ns)
		}
		if !t.idx.room() {
			return Ignored, nil
		}
		if len(b.entries) < t.k {
			if t.crowded(ne, b, nil) {
				t.idx.hint = 0
				return Crowded, nil
			}
			b.entries = append(grow(b.entries, t.k), *ne)
			t.n++
			t.idx.insert(tag, bi)
			t.div.held(ne, 1)
			return Added, nil
		}
		if bi == len(t.buckets)-1 && len(t.buckets) < MaxBuckets {
			t.split(ns)
			continue
		}
		if t.crowded(ne, b, nil) {
			t.idx.hint = 0
			return Crowded, nil
		}
		t.cache(b, bi, ne, tag)
		return t.fullPing(b, ns)
	}
}

// fullPing returns Full, with the ping a full bucket b asks for when a
// contact joins or refreshes its cache (see Seen).
func (t *Table) fullPing(b *bucket, ns int64) (Result, *entry) {
	if !t.pingFree(b, ns) || len(b.entries) == 0 {
		return Full, nil
	}
	j := mostFailing(b.entries)
	if j < 0 {
		if ns-b.entries[0].lastSeen < t.fresh {
			return Full, nil
		}
		j = 0
	}
	_, p := t.askPing(b, &b.entries[j], ns)
	return Full, p
}

// holder returns where ne's address (whose tag is tag) is stored: a bucket index, whether in
// its replacement cache, and the position there; or -1 when no entry has it.
func (t *Table) holder(ne *entry, tag uint32) (bi int, inRepl bool, j int) {
	x := &t.idx
	if x.n == 0 {
		return -1, false, -1
	}
	m := uint32(len(x.slots) - 1)
	i := tag & m
	for ; x.slots[i] != 0; i = (i + 1) & m {
		if x.slots[i]>>8 != tag {
			continue
		}
		bi := int(x.slots[i] & 0xff)
		b := &t.buckets[bi]
		if j := findAddr(b.entries, ne); j >= 0 {
			return bi, false, j
		}
		if j := findAddr(b.repl, ne); j >= 0 {
			return bi, true, j
		}
	}
	x.hint, x.hintTag = int(i)+1, tag
	return -1, false, -1
}

func findAddr(s []entry, ne *entry) int {
	for i := range s {
		if s[i].sameAddr(ne) {
			return i
		}
	}
	return -1
}

// evict takes the entry bi/j (of the cache if inRepl) out of the table,
// without promoting a replacement.
func (t *Table) evict(bi int, inRepl bool, j int) {
	b := &t.buckets[bi]
	if inRepl {
		t.idx.remove(t.idx.tag(&b.repl[j]), bi)
		t.div.held(&b.repl[j], -1)
		b.repl = remove(b.repl, j)
		return
	}
	e := &b.entries[j]
	t.idx.remove(t.idx.tag(e), bi)
	t.div.held(e, -1)
	b.endPing(e.key())
	b.entries = remove(b.entries, j)
	t.n--
}

// cache puts ne, a new ID whose address has the given tag, into b's
// replacement cache as the most recent entry. When the cache is full it
// drops the oldest unverified replacement, else (every one verified) the
// oldest, or, if ne itself is unverified, drops ne instead: a sighting
// with a forged source costs nothing, so unverified newcomers must not
// push out replacements whose addresses have answered us. Verified ones
// still leave by age to verified newcomers, by promotion and by FailedAt.
func (t *Table) cache(b *bucket, bi int, ne *entry, tag uint32) {
	if len(b.repl) < t.r {
		t.idx.insert(tag, bi)
		t.div.held(ne, 1)
		b.repl = append(grow(b.repl, t.r), *ne)
		return
	}
	j := 0
	for j < len(b.repl) && b.repl[j].verified() {
		j++
	}
	if j == len(b.repl) {
		if !ne.verified() {
			t.idx.hint = 0 // holder's probe hint was for ne's insertion
			return
		}
		j = 0
	}
	t.idx.insert(tag, bi) // first, while the lookup's hint holds
	t.idx.remove(t.idx.tag(&b.repl[j]), bi)
	t.div.held(&b.repl[j], -1)
	t.div.held(ne, 1)
	copy(b.repl[j:], b.repl[j+1:])
	b.repl[len(b.repl)-1] = *ne
}

// split turns the last bucket L into "cpl == L" and appends a new last bucket
// for cpl >= L+1, created (touched) at ns.
//
// Only entries, and the outstanding ping of one that moves, go to the new
// bucket. The last bucket never has a replacement cache to hand over: a
// full last bucket splits instead of caching, except at MaxBuckets, where it
// no longer splits. (It can have a ping out, asked for by a sighting that
// claimed the address or the ID of one of its entries.)
func (t *Table) split(ns int64) {
	t.buckets = append(t.buckets, bucket{touched: ns})
	last := len(t.buckets) - 1
	old, nb := &t.buckets[last-1], &t.buckets[last]
	stay := old.entries[:0]
	for i := range old.entries {
		if k := old.entries[i].key(); cpl(t.self, k) >= last {
			nb.entries = append(grow(nb.entries, t.k), old.entries[i])
			t.idx.move(t.idx.tag(&old.entries[i]), last-1, last)
			if old.endPing(k) {
				nb.pinging, nb.pingAt, nb.pinged = true, old.pingAt, k
			}
		} else {
			stay = append(stay, old.entries[i])
		}
	}
	clear(old.entries[len(stay):])
	old.entries = stay
}

// promote moves replacements into b while it has room: the most recent
// verified one first, else the most recent. A replacement whose address
// answered us has shown that it is reachable there; the others have only
// claimed it.
func (t *Table) promote(b *bucket) {
	for len(b.entries) < t.k && len(b.repl) > 0 {
		j := len(b.repl) - 1
		for i := j; i >= 0; i-- {
			if b.repl[i].verified() {
				j = i
				break
			}
		}
		e := b.repl[j]
		b.repl = remove(b.repl, j)
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

// FailedAt records that a request sent to c.ID at c.Addr got no answer, and
// returns whether c was removed.
//
// When c.ID is in its bucket at c.Addr, its consecutive failure count is
// incremented, and it is removed:
//
//   - when its failures reach MaxFailures; or
//   - at any failure while a replacement waits in the bucket's cache, if the
//     entry's address has never answered one of our requests (it is not
//     verified), or if a waiting replacement's address has.
//
// A verified entry thus survives MaxFailures-1 failures in a row while only
// unverified replacements wait: the Kademlia paper prefers contacts with a
// record of answering, and a newcomer whose address nothing has proved (a
// forged sighting can plant one) is no reason to trade it. Against a
// replacement that has answered us it has no such edge, and under churn a
// contact that stopped answering (each failure is a request and its retries
// gone unanswered) has most likely left, so the replacement takes its place
// at once instead of the bucket lending a dead slot for MaxFailures rounds
// of pings. On removal a replacement takes the place (the most recent
// verified one, else the most recent) as the most recently seen entry.
//
// When c.ID is in its bucket at another address, the failure says nothing
// about the stored address (the request was a ping of a candidate address,
// or went where another node said c was) and the entry is left as it was.
// A contact only in a replacement cache, at c.Addr, is dropped from it (it
// would be a poor replacement), which also returns true. In every case where
// c.ID is in a bucket, the bucket's outstanding ping for it, if any, is
// resolved. Unknown contacts are a no-op returning false.
func (t *Table) FailedAt(c id.Contact, now time.Time) (removed bool) {
	t.start(now.UnixNano())
	k := load(c.ID)
	bi := t.bucketOf(k)
	b := &t.buckets[bi]
	if j := find(b.entries, k); j >= 0 {
		if !b.entries[j].hasAddr(c.Addr, t.zones) {
			b.endPing(k)
			return false
		}
		return t.fail(bi, j)
	}
	if j := find(b.repl, k); j >= 0 && b.repl[j].hasAddr(c.Addr, t.zones) {
		t.evict(bi, true, j)
		return true
	}
	return false
}

// Failed is FailedAt for x at whatever address the table holds for it. It is
// right only when the request went to that address: a node should call
// FailedAt with the address it sent to, since a timeout at an address the
// table does not hold must not count against the entry.
func (t *Table) Failed(x id.ID, now time.Time) (removed bool) {
	t.start(now.UnixNano())
	k := load(x)
	bi := t.bucketOf(k)
	b := &t.buckets[bi]
	if j := find(b.entries, k); j >= 0 {
		return t.fail(bi, j)
	}
	if j := find(b.repl, k); j >= 0 {
		t.evict(bi, true, j)
		return true
	}
	return false
}

// fail counts a failure of the bucket entry bi/j under FailedAt's rule.
func (t *Table) fail(bi, j int) bool {
	b := &t.buckets[bi]
	e := &b.entries[j]
	b.endPing(e.key())
	if int(e.failures) < t.maxFailures {
		e.failures++
	}
	if int(e.failures) < t.maxFailures && !t.replaceable(b, e) {
		return false
	}
	t.evict(bi, false, j)
	t.promote(b)
	return true
}

// replaceable reports whether the failing entry e should give its place to
// a replacement at once: when one waits and either e's address never
// answered us, or a waiting replacement's has. A replacement only claimed by
// a sighting (which a forged source can plant) does not displace a contact
// that answered; one that answered does, since under churn a contact that
// stops answering has most likely left.
func (t *Table) replaceable(b *bucket, e *entry) bool {
	if len(b.repl) == 0 {
		return false
	}
	if !e.verified() {
		return true
	}
	for i := range b.repl {
		if b.repl[i].verified() {
			return true
		}
	}
	return false
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

// CancelPing withdraws the liveness ping Seen or Verified asked for, when it
// was for x and the caller could not send it (for instance, its request
// queue was full): the bucket may ask again with its next sighting, and x's
// record is left as it was. It reports whether an outstanding ping was
// withdrawn.
func (t *Table) CancelPing(x id.ID) bool {
	k := load(x)
	return t.buckets[t.bucketOf(k)].endPing(k)
}

// Remove deletes x from its bucket (a replacement, if any, takes its place,
// chosen as FailedAt does) or from its replacement cache, and reports
// whether x was there.
func (t *Table) Remove(x id.ID) bool {
	k := load(x)
	bi := t.bucketOf(k)
	b := &t.buckets[bi]
	if j := find(b.entries, k); j >= 0 {
		t.evict(bi, false, j)
		t.promote(b)
		return true
	}
	if j := find(b.repl, k); j >= 0 {
		t.evict(bi, true, j)
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

// Proven reports whether c.ID is in its bucket at exactly c.Addr and that
// address has answered one of our requests (Entry.Verified): a datagram from
// c.Addr claiming c.ID then most likely comes from the host that answered,
// not from a spoofer aiming our replies at a victim. Replacement-cache
// entries are never proven. A failing entry stays proven until it leaves the
// table or its address; check Get's Failures to be stricter.
func (t *Table) Proven(c id.Contact) bool {
	k := load(c.ID)
	b := &t.buckets[t.bucketOf(k)]
	j := find(b.entries, k)
	return j >= 0 && b.entries[j].verified() && b.entries[j].hasAddr(c.Addr, t.zones)
}

// RTT returns the round-trip estimate of c.ID at exactly c.Addr, from its
// bucket or its replacement cache, and whether the table holds c there at
// all. A contact it holds with no answered request yet has the zero RTT.
func (t *Table) RTT(c id.Contact) (rpc.RTT, bool) {
	if e := t.at(c); e != nil {
		return e.rtt, true
	}
	return rpc.RTT{}, false
}

// ObserveRTT folds a round trip d of a request to c.Addr, answered as c.ID,
// into the estimate of c's entry (in a bucket or a replacement cache), and
// reports whether the table holds c at that address. Unknown contacts are
// ignored: the estimates live in the entries, so they are as bounded as the
// table and no peer can make them grow.
func (t *Table) ObserveRTT(c id.Contact, d time.Duration) bool {
	if e := t.at(c); e != nil {
		e.rtt.Observe(d)
		return true
	}
	return false
}

// RTTAt returns the round-trip estimate of the contact the table holds at
// addr (in a bucket or a replacement cache), its ID, and whether it holds
// one: for requests sent to an address whose ID the sender does not know
// yet, such as a seed's PING.
func (t *Table) RTTAt(addr netip.AddrPort) (rpc.RTT, id.ID, bool) {
	var ne entry
	if !packAddr(&ne, addr, t.zones) {
		return rpc.RTT{}, id.ID{}, false
	}
	bi, inRepl, j := t.holder(&ne, t.idx.tag(&ne))
	t.idx.hint = 0 // holder leaves a hint for an insertion that will not come
	if bi < 0 {
		return rpc.RTT{}, id.ID{}, false
	}
	e := &t.buckets[bi].entries[j]
	if inRepl {
		e = &t.buckets[bi].repl[j]
	}
	return e.rtt, e.key().id(), true
}

// at returns the entry of c.ID at c.Addr, in its bucket or its replacement
// cache, or nil.
func (t *Table) at(c id.Contact) *entry {
	k := load(c.ID)
	b := &t.buckets[t.bucketOf(k)]
	if j := find(b.entries, k); j >= 0 {
		if e := &b.entries[j]; e.hasAddr(c.Addr, t.zones) {
			return e
		}
		return nil
	}
	if j := find(b.repl, k); j >= 0 {
		if e := &b.repl[j]; e.hasAddr(c.Addr, t.zones) {
			return e
		}
	}
	return nil
}

// Touch records that a lookup for target ran at now, so target's bucket is
// fresh.
func (t *Table) Touch(target id.ID, now time.Time) {
	ns := now.UnixNano()
	t.start(ns)
	b := &t.buckets[t.BucketOf(target)]
	b.touched = max(b.touched, ns)
}

// Touched returns when bucket i was last looked up in (see Touch), or
// created; the zero time before the table has seen a time.
func (t *Table) Touched(i int) time.Time {
	if i < 0 || i >= len(t.buckets) || !t.started {
		return time.Time{}
	}
	return time.Unix(0, t.buckets[i].touched)
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

// Package lookup runs the iterative node lookup of the Kademlia paper
// (section 2.3) as a pure state machine: the caller asks which contacts to
// query next, sends the requests itself, and feeds the answers and failures
// back. The package does no I/O, starts no goroutines and reads no clock, so
// a lookup behaves identically on real sockets and in the simulator.
//
// A lookup keeps a shortlist of candidates sorted by XOR distance to the
// target. It queries the closest candidates it has not asked yet, at most
// Alpha at a time, and only among the K closest candidates that have not
// failed or stalled: a farther candidate cannot change the result while
// closer ones are still unresolved. It has converged when those K closest
// have all answered.
//
// A stalled request (OnStall: it outlived the round trip its contact
// usually takes) gives up its Alpha slot and its place among the K closest
// at once: the lookup asks the next candidate instead, and does not wait
// for the stalled one once K others closer than anything still unasked have
// answered. Its answer is still taken if it comes while the lookup runs.
// Under churn most stalled contacts have left, and each would otherwise hold
// the lookup open for a full timeout; the price is that a live contact
// slower than its estimate may miss the result, which then holds the next
// closest that answered. With fewer than K other candidates the lookup
// waits for its stalled requests, as it does for any awaited one.
//
// The shortlist is a fixed-size array allocated by New: however many contacts
// peers return, a lookup never holds more than MaxCandidates of them, and
// feeding it responses does not allocate. When it overflows, the farthest
// candidate that is neither awaited nor among the K closest that neither
// failed nor stalled is evicted, and from then on nothing at or beyond the closest evicted
// distance is admitted: an evicted contact cannot return, so no contact is
// ever queried twice, and a lookup flooded with fresh contacts still ends.
// When every such candidate is awaited, the farthest stalled request outside
// the K closest is abandoned instead (its late answer is no longer taken):
// there is always one, since at most Alpha requests are in flight, so no
// sequence of answers can leave the shortlist without room. Eviction can
// still cost the result, when the K closest fail afterwards (say, fake
// contacts that pushed out the real ones): Stats.Limited then includes
// LimitCandidates.
//
// Every lookup is bounded whatever peers answer. Next hands out at most
// MaxQueries contacts over the lookup's life (default 4*(K+Alpha)), and only
// contacts at most MaxRounds hops from the seeds (default 32): peers that keep
// returning ever-closer contacts cannot keep a lookup asking. Once the query
// bound is reached, the lookup is Done as soon as the requests that could
// still enter the result have answered or failed, and Stats.Limited says
// which bound cut it short, so that the caller can report that the result
// may be incomplete.
package lookup

import (
	"encoding/binary"
	"net/netip"
	"strings"

	"github.com/dhtkit/dht/id"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultK     = 20 // bucket size and result size, as in the paper
	DefaultAlpha = 3  // parallelism, as in the paper

	// DefaultMaxRounds is log2 of a network of 2^32 nodes: even at one bit
	// of progress per hop, the paper's worst case, a lookup in such a
	// network needs no more rounds. Over k-bucket networks, healthy or with
	// half the nodes dead, the deepest lookups measured took 6 rounds at
	// 20,000 nodes (TestDefaultBoundsDoNotCutHonestLookups) and 8 at
	// 200,000, growing by about one round per tenfold.
	DefaultMaxRounds = 32

	// DefaultQueriesPerSlot sets the default MaxQueries to this many times
	// K+Alpha. A lookup in a healthy network asks about K+Alpha contacts;
	// with half the nodes dead (a fifth of the contacts returned dead), the
	// most measured was 2.6*(K+Alpha) for K=20 at 20,000 nodes
	// (TestDefaultBoundsDoNotCutHonestLookups) and 2.9*(K+Alpha) at
	// 200,000; 3.5*(K+Alpha) for K=8. Four times leaves a margin over that,
	// while an adversary whose contacts never answer holds a lookup for at
	// most about MaxQueries/Alpha stall periods plus one request timeout.
	DefaultQueriesPerSlot = 4
)

// Config sizes a lookup. The zero value selects the defaults.
type Config struct {
	// K is the result size: the lookup converges on the K closest nodes
	// that answer. Zero or negative selects DefaultK.
	K int
	// Alpha is the most requests in flight at once. Zero or negative
	// selects DefaultAlpha.
	Alpha int
	// MaxCandidates bounds the shortlist (closest first), so a lookup's
	// memory never grows with what peers send. Zero or negative selects
	// 3*K; values below K+Alpha+1 are raised to K+Alpha+1, the least that
	// always leaves room to evict a candidate that can no longer matter.
	MaxCandidates int
	// MaxQueries bounds the contacts Next hands out over the lookup's life
	// (a contact given back by Requeue does not count): once reached, Next
	// hands out nothing more. Zero or negative selects
	// DefaultQueriesPerSlot*(K+Alpha).
	MaxQueries int
	// MaxRounds bounds the lookup's depth. Seeds are queried in round 1
	// and a contact returned by a round-r node in round r+1; contacts that
	// would be queried after round MaxRounds are not admitted, so the
	// contacts a round-MaxRounds node returns are dropped and Stats.Rounds
	// never exceeds MaxRounds. Zero or negative selects DefaultMaxRounds.
	MaxRounds int
}

// withDefaults fills zero fields and clamps MaxCandidates (see Config).
func (c Config) withDefaults() Config {
	if c.K <= 0 {
		c.K = DefaultK
	}
	if c.Alpha <= 0 {
		c.Alpha = DefaultAlpha
	}
	if c.MaxCandidates <= 0 {
		c.MaxCandidates = 3 * c.K
	}
	if least := c.K + c.Alpha + 1; c.MaxCandidates < least {
		c.MaxCandidates = least
	}
	if c.MaxQueries <= 0 {
		c.MaxQueries = DefaultQueriesPerSlot * (c.K + c.Alpha)
	}
	if c.MaxRounds <= 0 {
		c.MaxRounds = DefaultMaxRounds
	}
	return c
}

// state is where a candidate stands. Transitions go forward, waiting ->
// inFlight (-> stalled) -> responded or failed, except that Requeue takes an
// inFlight candidate back to waiting (it was never sent).
type state uint8

const (
	waiting state = iota
	inFlight
	responded
	failed
	stalled // asked long ago and not answered yet: still awaited, but holds neither a slot nor a place among the K closest
)

// counts reports whether a candidate in state s takes a place among the K
// closest that Next and Done consider: failed and stalled ones do not.
func (s state) counts() bool { return s != failed && s != stalled }

// distance is an XOR distance to the target as machine words, computed once
// per contact so that the searches of the shortlist compare integers.
type distance struct {
	hi, mid uint64
	lo      uint32
}

// wordsOf splits x into big-endian machine words.
func wordsOf(x id.ID) distance {
	return distance{binary.BigEndian.Uint64(x[0:8]), binary.BigEndian.Uint64(x[8:16]), binary.BigEndian.Uint32(x[16:20])}
}

// xor returns the distance between the points whose words are d and e.
func (d distance) xor(e distance) distance {
	return distance{d.hi ^ e.hi, d.mid ^ e.mid, d.lo ^ e.lo}
}

func (d distance) less(e distance) bool {
	if d.hi != e.hi {
		return d.hi < e.hi
	}
	if d.mid != e.mid {
		return d.mid < e.mid
	}
	return d.lo < e.lo
}

type candidate struct {
	dist    distance // to the target
	contact id.Contact
	depth   int32 // hops from the seeds: 0 for a seed
	st      state
}

// Limit is a set of the bounds that cut a lookup short (see Config).
type Limit uint8

const (
	// LimitQueries: Next had handed out MaxQueries contacts while a
	// candidate among the K closest was still to be asked.
	LimitQueries Limit = 1 << iota
	// LimitRounds: a contact that would have been among the K closest
	// candidates was dropped because it lay deeper than MaxRounds.
	LimitRounds
	// LimitCandidates: the shortlist overflowed MaxCandidates and fewer
	// than K candidates that have not failed remain closer than the
	// closest one it evicted, so an evicted candidate (or a contact
	// refused after it) may have belonged in the result.
	LimitCandidates
)

// String names the bounds in l, "none" for the empty set.
func (l Limit) String() string {
	if l == 0 {
		return "none"
	}
	var parts []string
	if l&LimitQueries != 0 {
		parts = append(parts, "queries")
	}
	if l&LimitRounds != 0 {
		parts = append(parts, "rounds")
	}
	if l&LimitCandidates != 0 {
		parts = append(parts, "candidates")
	}
	if rest := l &^ (LimitQueries | LimitRounds | LimitCandidates); rest != 0 {
		parts = append(parts, "unknown")
	}
	return strings.Join(parts, "+")
}

// Stats counts what a lookup did. The zero value is a lookup that has done
// nothing.
type Stats struct {
	Queried   int // contacts handed out by Next, less those given back by Requeue
	Responded int // of those, how many answered
	Failed    int // of those, how many failed
	Stalled   int // of those, how many were slow enough to stop holding a slot
	// Abandoned counts stalled requests dropped from a full shortlist
	// before they answered (see the package comment); their answers are
	// no longer taken, and InFlight no longer lists them.
	Abandoned int
	// Requeued counts the contacts given back by Requeue.
	Requeued int
	// Rounds is the largest depth among contacts that responded: 1 when only
	// seeds answered, 2 when a contact learned from a seed answered, ...
	Rounds int
	// Limited holds the bounds that cut the lookup short: when it is not
	// zero, Closest may miss nodes closer than those it returns.
	Limited Limit
}

// Lookup is one iterative lookup for a target. Create it with New; the zero
// value is not usable (it has no shortlist). Contacts passed in are copied,
// never retained. A Lookup is not safe for concurrent use: the caller
// (the node, under its mutex) serializes every call.
type Lookup struct {
	self, target id.ID
	targetWords  distance // target as words, for distanceTo
	cfg          Config

	// cands is sorted by distance to target, closest first, IDs unique. Its
	// capacity is MaxCandidates+1 so that an insertion into a full list
	// can shift before the eviction, without allocating.
	cands []candidate

	// horizon is the distance of the closest candidate ever evicted (or
	// refused for lack of room). Candidates at or beyond it are refused from
	// then on, so an evicted contact never comes back and is never queried
	// twice.
	horizon    distance
	hasHorizon bool

	inFlight int
	stats    Stats

	// enough, when set, ends the lookup early (see StopWhen); stopped
	// records that it did.
	enough  func(*Lookup) bool
	stopped bool

	// admit, when set, must accept a contact before it enters the
	// shortlist (see Admit).
	admit func(id.Contact) bool
}

// New starts a lookup for target on behalf of self (self is never queried or
// returned). It allocates the whole shortlist up front.
func New(self, target id.ID, cfg Config) *Lookup {
	cfg = cfg.withDefaults()
	return &Lookup{
		self:        self,
		target:      target,
		targetWords: wordsOf(target),
		cfg:         cfg,
		cands:       make([]candidate, 0, cfg.MaxCandidates+1),
	}
}

// Reset makes l a new lookup for target, as New would, reusing l's memory:
// a node that pools its Lookups allocates nothing per lookup.
func (l *Lookup) Reset(self, target id.ID, cfg Config) {
	cfg = cfg.withDefaults()
	cands := l.cands[:0]
	if cap(cands) < cfg.MaxCandidates+1 {
		cands = make([]candidate, 0, cfg.MaxCandidates+1)
	}
	*l = Lookup{self: self, target: target, targetWords: wordsOf(target), cfg: cfg, cands: cands}
}

// Target returns the ID the lookup converges on.
func (l *Lookup) Target() id.ID { return l.target }

// Config returns the configuration in effect, defaults filled in.
func (l *Lookup) Config() Config { return l.cfg }

// Stats returns the counters so far.
func (l *Lookup) Stats() Stats {
	s := l.stats
	// Next records the query bound when it stops at it; this catches a
	// candidate that arrived since without Next being called again.
	if l.exhausted() && l.waitingInWindow() {
		s.Limited |= LimitQueries
	}
	if l.evictionMayMatter() {
		s.Limited |= LimitCandidates
	}
	return s
}

// evictionMayMatter reports whether an evicted candidate may have belonged
// in the result: fewer than K candidates that have not failed lie closer
// than the horizon. Every candidate ever evicted or refused lies at or
// beyond it, so while K such candidates remain, the lookup meets the
// paper's convergence test (the K closest it knows have answered) on
// candidates that are all closer than anything it let go, as it would have
// with an unbounded shortlist. Checked as the shortlist stands, so that
// failures after an eviction count; final once Done reports true.
func (l *Lookup) evictionMayMatter() bool {
	if !l.hasHorizon {
		return false
	}
	n := 0
	for i := range l.cands {
		if !l.cands[i].dist.less(l.horizon) {
			break
		}
		if l.cands[i].st != failed {
			if n++; n >= l.cfg.K {
				return false
			}
		}
	}
	return true
}

// exhausted reports whether Next has handed out all the queries allowed.
func (l *Lookup) exhausted() bool { return l.stats.Queried >= l.cfg.MaxQueries }

// waitingInWindow reports whether a candidate among the K closest that have
// neither failed nor stalled is still to be asked.
func (l *Lookup) waitingInWindow() bool {
	window := 0
	for i := range l.cands {
		if window >= l.cfg.K {
			break
		}
		switch st := l.cands[i].st; {
		case !st.counts():
			continue
		case st == waiting:
			return true
		}
		window++
	}
	return false
}

// AddSeeds adds initial candidates (from the local routing table) at depth 0.
// They are filtered like the contacts of a response: self, duplicates and
// invalid addresses are ignored.
func (l *Lookup) AddSeeds(cs []id.Contact) {
	for _, c := range cs {
		l.insert(c, 0)
	}
}

// Next appends to dst the contacts to query now and marks them in flight:
// the closest candidates not yet queried among the K closest that have not
// failed or stalled, while fewer than Alpha requests are in flight. It
// returns dst.
// It returns no contacts once Done reports true, nor once it has handed out
// MaxQueries contacts.
func (l *Lookup) Next(dst []id.Contact) []id.Contact {
	window := 0 // candidates seen so far that count (see state.counts)
	for i := range l.cands {
		if l.inFlight >= l.cfg.Alpha || window >= l.cfg.K {
			break
		}
		c := &l.cands[i]
		switch c.st {
		case failed, stalled:
			continue
		case waiting:
			if l.enoughNow() {
				return dst // the caller's rule ended the lookup (StopWhen)
			}
			if l.exhausted() {
				l.stats.Limited |= LimitQueries
				return dst
			}
			c.st = inFlight
			l.inFlight++
			l.stats.Queried++
			dst = append(dst, c.contact)
		}
		window++
	}
	return dst
}

// OnResponse records that from answered, with the closer contacts it
// returned. They become candidates one hop deeper than from; duplicates, self,
// contacts with invalid addresses (see ValidAddr), contacts that can no
// longer fit and, when from answered in round MaxRounds, all of them are
// ignored, and a candidate already known keeps its first address. It returns the depth (round) of from: 1 for a seed, 2 for a contact
// learned from a seed's answer, and so on. A response from an ID that is not
// in flight (never queried, already answered, failed, or unknown) is ignored
// and returns 0.
func (l *Lookup) OnResponse(from id.ID, contacts []id.Contact) (depth int) {
	i, ok := l.awaitedIndex(from)
	if !ok {
		return 0
	}
	l.setState(i, responded)
	c := &l.cands[i]
	l.stats.Responded++
	depth = int(c.depth) + 1
	l.stats.Rounds = max(l.stats.Rounds, depth)
	// c is not used past this point: insertions shift the array.
	for _, n := range contacts {
		l.insert(n, int32(depth))
	}
	return depth
}

// OnFailure records that the request to from timed out or failed for good.
// The candidate no longer counts toward the K closest, and a later response
// from it is ignored. Calls for IDs not in flight are ignored.
func (l *Lookup) OnFailure(from id.ID) {
	i, ok := l.awaitedIndex(from)
	if !ok {
		return
	}
	l.setState(i, failed)
	l.stats.Failed++
}

// awaited reports whether a candidate was asked and has not answered or
// failed yet.
func (s state) awaited() bool { return s == inFlight || s == stalled }

// awaitedIndex returns the index of candidate from if it is awaited.
func (l *Lookup) awaitedIndex(from id.ID) (int, bool) {
	i, ok := l.search(l.distanceTo(from))
	return i, ok && l.cands[i].st.awaited()
}

// setState moves candidate i to st, giving back the Alpha slot it held if it
// was in flight: the one place that keeps l.inFlight in step.
func (l *Lookup) setState(i int, st state) {
	if l.cands[i].st == inFlight {
		l.inFlight--
	}
	l.cands[i].st = st
}

// OnStall records that the request to `from` has gone unanswered for longer
// than an answer usually takes. It stops holding one of the Alpha slots and
// its place among the K closest, so that the lookup moves on to other
// candidates instead of waiting out the full timeout of a node that may be
// gone; its answer is still taken if it comes before the lookup is done, and
// OnFailure ends the wait. Only requests in flight can stall. A stalled
// request may be abandoned to make room (see the package comment).
func (l *Lookup) OnStall(from id.ID) {
	i, ok := l.search(l.distanceTo(from))
	if !ok || l.cands[i].st != inFlight {
		return
	}
	l.setState(i, stalled)
	l.stats.Stalled++
}

// Requeue gives back the contact from, which Next handed out but the caller
// could not send the request to (say, its table of requests in flight was
// full): the candidate is waiting again, its Alpha slot is free, and it no
// longer counts in Stats.Queried or toward MaxQueries, so that running out
// of request slots delays the lookup instead of failing good contacts.
// The next call to Next hands it out again (when it is still among the
// closest), so a caller should not call Next again until it can send.
// Calls for IDs that are not in flight (stalled, answered, failed, waiting
// or unknown) are ignored.
func (l *Lookup) Requeue(from id.ID) {
	i, ok := l.search(l.distanceTo(from))
	if !ok || l.cands[i].st != inFlight {
		return
	}
	l.setState(i, waiting)
	l.stats.Queried--
	l.stats.Requeued++
}

// Done reports whether the lookup has finished, in one of two ways:
//
//   - Converged: the K closest candidates that have neither failed nor
//     stalled have all responded (there is nothing closer left to ask),
//     which includes the case of no candidates at all. When fewer than K
//     such candidates exist, stalled requests must have ended too: with
//     nothing else to go on, the lookup waits for them.
//   - Exhausted: Next has handed out MaxQueries contacts, and the K closest
//     candidates that have responded or are still awaited have all
//     responded. Candidates never asked are passed over, since Next will
//     not hand them out any more; when one of them is among the K closest
//     that have not failed, Stats.Limited includes LimitQueries.
//
// Either way, requests still awaited (those InFlight lists) do not keep the
// lookup open: none of them is among the K closest that count. A caller that
// has finished should forget them and stop feeding the lookup. Before the
// query bound is reached a late answer from one of them may still add closer
// candidates and make Done false again; once it is reached Done stays true,
// since a late answer can neither enter Closest nor lead to a query (unless
// Requeue gives a query back).
func (l *Lookup) Done() bool {
	if l.enoughNow() {
		return true
	}
	exhausted := l.exhausted()
	window := 0
	stalledSeen := false
	for i := range l.cands {
		if window >= l.cfg.K {
			break
		}
		switch l.cands[i].st {
		case failed:
			continue
		case stalled:
			stalledSeen = true
			continue
		case waiting:
			if exhausted {
				continue
			}
			return false
		case inFlight:
			return false
		}
		window++
	}
	// Short of K, the loop saw every candidate: a stalled one may still
	// answer with the contacts the lookup lacks.
	return window >= l.cfg.K || !stalledSeen
}

// Closest appends to dst the up-to-K closest contacts that responded, closest
// first, and returns dst. Once Done reports true these are the K closest
// candidates that have not failed.
func (l *Lookup) Closest(dst []id.Contact) []id.Contact {
	n := 0
	for i := range l.cands {
		if n >= l.cfg.K {
			break
		}
		if l.cands[i].st == responded {
			dst = append(dst, l.cands[i].contact)
			n++
		}
	}
	return dst
}

// InFlight appends to dst the contacts queried but not yet answered or
// failed, closest first, and returns dst. A node abandoning the lookup (say,
// FIND_VALUE found the value) uses it to forget their requests.
func (l *Lookup) InFlight(dst []id.Contact) []id.Contact {
	for i := range l.cands {
		if l.cands[i].st.awaited() {
			dst = append(dst, l.cands[i].contact)
		}
	}
	return dst
}

// ValidAddr reports whether a lookup accepts addr for a candidate: a valid IP
// address that is neither unspecified, multicast nor the IPv4 limited
// broadcast address, with a non-zero port. Anything else could never answer
// a unicast request.
func ValidAddr(addr netip.AddrPort) bool {
	a := addr.Addr()
	return addr.IsValid() && addr.Port() != 0 && !a.IsUnspecified() && !a.IsMulticast() && a.Unmap() != broadcast4
}

var broadcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// distanceTo returns the distance from x to the target.
func (l *Lookup) distanceTo(x id.ID) distance { return wordsOf(x).xor(l.targetWords) }

// search finds the candidate at distance d from the target by binary search:
// its index (true), or where it would be inserted (false). XOR with the
// target is a bijection, so equal distances mean equal IDs.
func (l *Lookup) search(d distance) (int, bool) {
	lo, hi := 0, len(l.cands)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if l.cands[m].dist.less(d) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(l.cands) && l.cands[lo].dist == d
}

// insert adds c as a waiting candidate at depth, unless it is self, has an
// invalid address, is already known, lies at or beyond the horizon, or would
// be queried after round MaxRounds (depth+1 > MaxRounds). When the shortlist
// overflows it evicts a candidate that can no longer matter (see evict).
func (l *Lookup) insert(c id.Contact, depth int32) {
	if c.ID == l.self || !ValidAddr(c.Addr) {
		return
	}
	d := l.distanceTo(c.ID)
	if l.hasHorizon && !d.less(l.horizon) {
		return
	}
	i, found := l.search(d)
	if found {
		return
	}
	if int(depth) >= l.cfg.MaxRounds {
		// Only a contact that would have been among the K closest could
		// have changed the result.
		if i < l.windowEnd() {
			l.stats.Limited |= LimitRounds
		}
		return
	}
	if l.admit != nil && !l.admit(c) {
		return
	}
	n := len(l.cands)
	l.cands = l.cands[:n+1] // within capacity: n <= MaxCandidates
	copy(l.cands[i+1:], l.cands[i:n])
	l.cands[i] = candidate{dist: d, contact: c, depth: depth}
	if len(l.cands) > l.cfg.MaxCandidates && !l.evict() {
		l.remove(i) // refuse the newcomer; unreachable, see evict
	}
}

// windowEnd returns the index just past the K-th candidate that counts
// (neither failed nor stalled), or len(l.cands) when there are fewer: the
// span Next and Done consider.
func (l *Lookup) windowEnd() int {
	window := 0
	for i := range l.cands {
		if l.cands[i].st.counts() {
			window++
			if window == l.cfg.K {
				return i + 1
			}
		}
	}
	return len(l.cands)
}

// evict removes one candidate from an overfull shortlist and reports whether
// it did. It takes the farthest one that is neither awaited nor among the K
// closest that count (see state.counts; those may be queried or returned),
// so that failed candidates inside the window's span go before a useful one. When
// all of those are awaited, it abandons the farthest stalled request outside
// the window instead: such a request holds no slot, its node is probably
// gone (an adversary's fake contacts are exactly these), and K closer
// candidates that have not failed make the result without it, so only what
// its late answer might have taught is lost. Refusing newcomers instead
// would let unanswered fake contacts shut out the real nodes behind them;
// capping the stalled requests would make the lookup wait out whole
// timeouts again. One candidate is always evictable: the list then holds at
// least K+Alpha+2 candidates, of which at most K are in the window and at
// most Alpha are in flight outside it.
func (l *Lookup) evict() bool {
	windowEnd := l.windowEnd()
	abandon := -1 // the farthest stalled candidate outside the window
	victim := -1
	for i := len(l.cands) - 1; i >= 0; i-- {
		st := l.cands[i].st
		if i < windowEnd && st.counts() {
			continue // in the window
		}
		if st == stalled && abandon < 0 {
			abandon = i
		}
		if !st.awaited() {
			victim = i
			break
		}
	}
	if victim < 0 {
		victim = abandon
	}
	if victim < 0 {
		return false
	}
	if l.cands[victim].st == stalled {
		l.stats.Abandoned++
	}
	if d := l.cands[victim].dist; !l.hasHorizon || d.less(l.horizon) {
		l.horizon, l.hasHorizon = d, true
	}
	l.remove(victim)
	return true
}

// remove deletes candidate i from the shortlist.
func (l *Lookup) remove(i int) {
	copy(l.cands[i:], l.cands[i+1:])
	l.cands[len(l.cands)-1] = candidate{}
	l.cands = l.cands[:len(l.cands)-1]
}

// StopWhen gives the lookup a termination rule of the caller's besides
// convergence: once f reports true (it is asked by Done, and by Next before
// it hands out a contact; it must call neither), Next hands out nothing more and Done reports true for the
// rest of the lookup. A bucket refresh stops once it has heard from a
// bucket's worth of contacts in the bucket's range; a put stops once the
// few closest candidates have answered. Reset clears it.
func (l *Lookup) StopWhen(f func(*Lookup) bool) { l.enough = f }

// Admit gives the lookup a rule that every new contact must pass before it
// becomes a candidate, seeds included: f sees each contact once, after the
// lookup's own filters (self, invalid address, already known, beyond the
// horizon or MaxRounds), and a contact it refuses is dropped as if it had
// never been offered. Disjoint uses it to keep its paths' node sets apart.
// f must call nothing of the lookup's. Reset clears it; nil removes it.
func (l *Lookup) Admit(f func(c id.Contact) bool) { l.admit = f }

// Stopped reports whether the StopWhen rule ended the lookup.
func (l *Lookup) Stopped() bool { return l.stopped }

func (l *Lookup) enoughNow() bool {
	if !l.stopped && l.enough != nil && l.enough(l) {
		l.stopped = true
	}
	return l.stopped
}

// Starved reports whether the lookup has run out of candidates worth
// asking: fewer than K have neither failed nor stalled, and every one of
// those has answered, so all it can do is wait for stalled requests or end
// short of K. Its caller may then add seeds from farther out (AddSeeds)
// rather than end on contacts that have left.
func (l *Lookup) Starved() bool {
	n := 0
	for i := range l.cands {
		switch l.cands[i].st {
		case waiting, inFlight:
			return false
		case responded:
			n++
		}
	}
	return n < l.cfg.K
}

// Candidates appends to dst the up-to-max closest candidates that have
// neither failed nor stalled (not yet asked, in flight, or answered),
// closest first, and returns dst: the lookup's best guess at the K closest
// when it stops before it has asked them all, and the spares beyond them.
func (l *Lookup) Candidates(dst []id.Contact, max int) []id.Contact {
	n := 0
	for i := range l.cands {
		if n >= max {
			break
		}
		if st := l.cands[i].st; st != failed && st != stalled {
			dst = append(dst, l.cands[i].contact)
			n++
		}
	}
	return dst
}

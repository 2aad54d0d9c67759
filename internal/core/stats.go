package core

import (
	"bytes"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/routing"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/udp"
	"github.com/dhtkit/dht/wire"
)

// stats are the node's counters. Every update happens under the node's lock
// (which every path that counts already holds), so they are plain integers:
// atomics would add a locked instruction per counter per datagram for
// nothing. They are fixed arrays, so that counting never allocates; their
// size (about 2 KiB) is what a simulated node pays for them.
type stats struct {
	packetsIn, packetsOut         uint64
	malformed, wrongNetwork       uint64
	unmatched, responses          uint64
	requests, retries, timeouts   uint64
	stalls                        uint64
	rpcFull, rpcQueued            uint64
	storesAccepted, storesRefused uint64
	expired, refreshes            uint64
	refreshesSkipped              uint64
	rejoins                       uint64
	readOnlyDropped               uint64
	forged                        uint64     // enveloped records a reader dropped: they failed record.Policy.Verify
	served                        [16]uint64 // by request type; index 0 counts unknown types

	sent          [reqSlots]reqStats // this node's requests, by type (reqSlot)
	requestErrors [codeSlots]uint64  // ERROR answers to this node's requests, by code (codeSlot)
	errorsSent    [codeSlots]uint64  // ERROR answers this node sent, by code
	storeRefusals [numReasons]uint64 // STORE, PUT and DELETE refused, by reason
	rtt           [numGroups]hist    // round trips of answered requests, by group
	lookups       [numLookupKinds]lookupStats

	// What the last store-refusal summary reported, and when (trace.go).
	refusalsLogged [numReasons]uint64
	summaryAt      time.Time
	// The debug log's rate limit (trace.go).
	trace traceLimit

	listen listenStats // listeners and subscriptions (listen.go)

	tokensGiven, tokenRefused, tokenRetries uint64 // write tokens (token.go)
}

// listenStats counts what the listen paths dropped (see ListenCounts).
type listenStats struct {
	notifiesDropped, listenersDropped uint64
	notifiesShort, fetchesDropped     uint64
	eventsCoalesced, eventsLost       uint64
	listensRefused                    uint64
}

// reqStats counts the requests of one type this node sent.
type reqStats struct {
	sent                                   uint64 // datagrams, retries included
	answered, refused, timeouts, abandoned uint64
}

// lookupStats counts one kind of lookup.
type lookupStats struct {
	started, complete, incomplete, noAnswer, abandoned uint64
	messages                                           uint64
	rounds, queried, duration                          hist
}

// hist counts observations into fixed buckets: counts[i] holds those no
// larger than bounds[i] and larger than bounds[i-1]; the slot after the last
// bound holds those above every bound. Values and bounds share a unit
// (nanoseconds for durations).
type hist struct {
	counts [maxBuckets]uint64
	sum    uint64
}

const maxBuckets = 16 // slots of a hist: at most 15 bounds and the overflow

func (h *hist) observe(v uint64, bounds []uint64) {
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
}

// Bucket bounds. Durations are in nanoseconds: from a loopback round trip
// (well under 1ms) to a lookup's default time limit (30s).
var (
	durationBounds = [...]uint64{
		uint64(time.Millisecond), uint64(2500 * time.Microsecond), uint64(5 * time.Millisecond),
		uint64(10 * time.Millisecond), uint64(25 * time.Millisecond), uint64(50 * time.Millisecond),
		uint64(100 * time.Millisecond), uint64(250 * time.Millisecond), uint64(500 * time.Millisecond),
		uint64(time.Second), uint64(2500 * time.Millisecond), uint64(5 * time.Second),
		uint64(10 * time.Second), uint64(30 * time.Second),
	}
	roundBounds   = [...]uint64{1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30}
	queriedBounds = [...]uint64{1, 3, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300}
)

// Request types are counted in slots: slot t for each known request type t,
// slot 0 for any other.
const reqSlots = int(wire.Notify) + 1

func reqSlot(t wire.Type) int {
	if t > wire.Notify {
		return 0
	}
	return int(t)
}

// Error codes are counted in slots: slot c for codes below codeSlots, slot
// 0 (no code has it) for any other.
const codeSlots = 16

func codeSlot(c wire.ErrorCode) int {
	if c >= codeSlots {
		return 0
	}
	return int(c)
}

// CodeName is the name Stats gives an ERROR code: "full", "stale"...;
// "other" for a code this version does not define.
func CodeName(c wire.ErrorCode) string {
	switch c {
	case wire.CodeGeneric:
		return "generic"
	case wire.CodeMalformed:
		return "malformed"
	case wire.CodeUnknownType:
		return "unknown_type"
	case wire.CodeTooLarge:
		return "too_large"
	case wire.CodeFull:
		return "full"
	case wire.CodeBadTTL:
		return "bad_ttl"
	case wire.CodeBusy:
		return "busy"
	case wire.CodeNotFound:
		return "not_found"
	case wire.CodeStale:
		return "stale"
	case wire.CodeTooMany:
		return "too_many"
	case wire.CodeInvalid:
		return "invalid"
	case wire.CodeConflict:
		return "conflict"
	case wire.CodeToken:
		return "token"
	}
	return "other"
}

// Round-trip groups.
const (
	groupLookup = iota // FIND_NODE, FIND_VALUE, GET
	groupStore         // STORE, PUT, DELETE
	groupOther         // PING, FETCH, LISTEN, NOTIFY
	numGroups
)

// LatencyGroups names the groups of Stats.Latency, in order.
var LatencyGroups = [numGroups]string{"lookup", "store", "other"}

func groupOf(t wire.Type) int {
	switch t {
	case wire.FindNode, wire.FindValue, wire.Get:
		return groupLookup
	case wire.Store, wire.Put, wire.Delete:
		return groupStore
	}
	return groupOther
}

// Lookup kinds.
const (
	lookupNode  = iota // FIND_NODE
	lookupValue        // GET (and FIND_VALUE)
	numLookupKinds
)

// LookupKinds names the kinds of Stats.Lookups, in order.
var LookupKinds = [numLookupKinds]string{"node", "value"}

func lookupKind(t wire.Type) int {
	if t == wire.FindNode {
		return lookupNode
	}
	return lookupValue
}

// Store refusal reasons.
const (
	reasonTooLarge  = iota // over the value size limit
	reasonStoreFull        // a bound over the whole store (MaxValues, MaxBytes)
	reasonKeyFull          // a bound of the key (MaxPerKey, MaxBytesPerKey)
	reasonQuota            // a source's, site's or publisher's share
	reasonBadTTL           // a zero TTL
	reasonStale            // not newer than the held version
	reasonBusy             // the disk queue is full, or writing failed
	reasonTooMany          // too many values arriving in parts
	reasonInvalid          // a record that breaks its kind's rules (or a plain one where refused)
	reasonConflict         // a compare-and-swap whose expected sequence is not held
	reasonOther            // anything else (an empty value...)
	numReasons
)

// RefusalReasons names the reasons of Stats.StoreRefusals, in order.
var RefusalReasons = [numReasons]string{
	"too_large", "store_full", "key_full", "quota", "bad_ttl", "stale", "busy", "too_many", "invalid", "conflict", "other",
}

// The texts a store's refusals start with (store.LimitError prints its
// sentinel first): the one wire code for a full store, CodeFull, covers
// three kinds of bound that an operator tells apart.
var (
	keyFullText = []byte(store.ErrKeyFull.Error())
	quotaText   = []byte(store.ErrQuota.Error())
)

func refusalReason(code wire.ErrorCode, text []byte) int {
	switch code {
	case wire.CodeTooLarge:
		return reasonTooLarge
	case wire.CodeFull:
		switch {
		case bytes.HasPrefix(text, keyFullText):
			return reasonKeyFull
		case bytes.HasPrefix(text, quotaText):
			return reasonQuota
		}
		return reasonStoreFull
	case wire.CodeBadTTL:
		return reasonBadTTL
	case wire.CodeStale:
		return reasonStale
	case wire.CodeBusy:
		return reasonBusy
	case wire.CodeTooMany:
		return reasonTooMany
	case wire.CodeInvalid:
		return reasonInvalid
	case wire.CodeConflict:
		return reasonConflict
	}
	return reasonOther
}

// Stats is a snapshot of a node's counters since it started. Counters only
// grow; the fields marked "now" are gauges. The maps always hold every name
// they are documented to hold, zero or not.
type Stats struct {
	PacketsIn      uint64 // datagrams received
	PacketsOut     uint64 // datagrams sent
	Malformed      uint64 // datagrams dropped because they did not decode
	WrongNetwork   uint64 // datagrams dropped because they came from another network
	Unmatched      uint64 // responses that matched no request in flight (late, duplicate or forged)
	Responses      uint64 // responses matched to a request
	Requests       uint64 // requests sent, retries included
	Retries        uint64 // requests sent again after a timeout
	Timeouts       uint64 // requests that got no answer after every retry
	Stalls         uint64 // lookup requests slow enough that the lookup moved on without them
	RPCFull        uint64 // requests not sent because too many were in flight and the queue was full
	RPCQueued      uint64 // requests that waited for a free slot before going out
	Tokens         TokenCounts
	StoresAccepted uint64 // STORE, PUT and DELETE requests accepted
	StoresRefused  uint64 // STORE, PUT and DELETE requests refused (StoreRefusals says why)
	Expired        uint64 // values removed by expiry sweeps
	Refreshes      uint64 // bucket refreshes due (RefreshesSkipped of them needed no lookup)
	// RefreshesSkipped counts bucket refreshes that sent nothing: the
	// bucket held K contacts heard from within the table's freshness
	// window.
	RefreshesSkipped uint64
	// KeepAlive describes the values this node republishes for its
	// program; PathCache the copies its gets cached on their paths.
	KeepAlive KeepAliveCounts
	PathCache PathCacheCounts
	Rejoins   uint64 // bootstraps through Config.Seeds started because the routing table was empty
	// ReadOnlyDropped counts requests a read-only node dropped unanswered
	// (it serves only its subscriptions' NOTIFYs and the PINGs that check
	// them).
	ReadOnlyDropped uint64
	// Identity counts proof requests and proofs, sent and checked
	// (Config.RequireIdentity, ident.go); Identity.Failed counts answers
	// that failed for want of a valid proof.
	Identity IdentityCounts
	// RateLimited counts requests dropped unanswered because their source
	// host (an IPv4 address, an IPv6 /64) was over Config.RateLimit;
	// Crowded counts contacts the routing table refused because their /24
	// or /48 held its share already (Config.Diversity).
	RateLimited, Crowded uint64
	// Send drops seen by the transport, when it is a single UDP transport
	// (a transport.Group hides its endpoints' counters): SendDropped
	// counts answers dropped because the socket's send buffer was full,
	// SendErrors datagrams the kernel refused. NoRoute counts datagrams a
	// transport.Group had no endpoint of the destination's family for.
	SendDropped, SendErrors, NoRoute uint64
	// SealedDropped counts, on a private network, the datagrams the
	// sealing transport dropped before they were parsed, by reason
	// ("malformed", "plain", "wrong_network", "bad_tag", "stale",
	// "replay", and "too_large" for outgoing ones); nil on an open one.
	SealedDropped map[string]uint64
	// Served counts requests served, by request type as docs/protocol.md
	// names it ("PING", "FIND_NODE"... "NOTIFY").
	Served map[string]uint64
	// Sent holds the requests this node sent, by request type (the names
	// of Served), and how they ended.
	Sent map[string]RequestCounts
	// RequestErrors counts the ERROR answers to this node's requests, by
	// code (CodeName: "generic", "malformed", "unknown_type", "too_large",
	// "full", "bad_ttl", "busy", "not_found", "stale", "too_many",
	// "invalid", "conflict", "other").
	RequestErrors map[string]uint64
	// ErrorsSent counts the ERROR answers this node sent, by code (the
	// names of RequestErrors).
	ErrorsSent map[string]uint64
	// StoreRefusals counts the STORE, PUT and DELETE requests this node
	// refused, by reason (RefusalReasons): "too_large" (over the value
	// size limit), "store_full" (MaxValues or MaxBytes), "key_full"
	// (MaxPerKey or MaxBytesPerKey), "quota" (a source's, site's or
	// publisher's share), "bad_ttl", "stale" (not newer than the held
	// version), "busy" (the disk cannot take the write), "too_many" (too
	// many values arriving in parts), "invalid" (a record that breaks its
	// kind's rules, ERROR code 11), "conflict" (a compare-and-swap on
	// another sequence, code 12), "other".
	StoreRefusals map[string]uint64
	// Latency holds the round-trip times of this node's requests that
	// were answered (an ERROR included), measured from the attempt last
	// sent, by group (LatencyGroups): "lookup" (FIND_NODE, FIND_VALUE,
	// GET), "store" (STORE, PUT, DELETE), "other" (PING, FETCH, LISTEN,
	// NOTIFY). Bounds are in seconds.
	Latency map[string]Histogram
	// Lookups holds the lookups this node ran, by kind (LookupKinds):
	// "node" (FIND_NODE: joins, refreshes, and the searches of puts,
	// deletes and listens) and "value" (GET).
	Lookups map[string]LookupCounts

	InFlight     int   // requests in flight now
	TableSize    int   // contacts in the routing table now
	Buckets      int   // buckets of the routing table now
	BucketSizes  []int // contacts in each bucket now; bucket i holds the contacts whose IDs share i leading bits with the node's (the last bucket: at least i)
	StoredValues int   // records in the store now (tombstones and expired records not yet swept included)
	StoredBytes  int   // bytes of data in the store now
	// Listeners counts other nodes' subscriptions held here now;
	// Subscriptions this node's own listens in progress now.
	Listeners, Subscriptions int
	// DebugSuppressed counts debug lines the log's rate limit dropped.
	DebugSuppressed uint64
	// Listen counts what the listen paths dropped to stay bounded.
	Listen ListenCounts
	// ForgedRecords counts enveloped records this node dropped as a
	// reader (GET answers, NOTIFYs, fetched parts) because they failed
	// record.Policy.Verify: a bad signature, or a key, publisher or
	// version not bound to the envelope. Some node served a forgery.
	ForgedRecords uint64
}

// ListenCounts says what a node's listen paths dropped to keep their
// bounds (docs/security.md lists them).
type ListenCounts struct {
	// NotifiesDropped counts NOTIFYs not sent: the NOTIFYs in flight held
	// their share of the request table, or 4 were in flight to that
	// listener already.
	NotifiesDropped uint64
	// ListenersDropped counts listeners dropped for leaving two NOTIFYs
	// in a row unanswered.
	ListenersDropped uint64
	// NotifiesShort counts NOTIFYs of a record to fetch that were too
	// short to pay for the fetch, and were ignored.
	NotifiesShort uint64
	// FetchesDropped counts notified records not fetched because the
	// subscription's fetches and backlog were full (answered ERROR busy).
	FetchesDropped uint64
	// EventsCoalesced counts events a subscription's callback did not see
	// because a newer event of the same publisher replaced them while it
	// fell behind; EventsLost counts those dropped past that.
	EventsCoalesced, EventsLost uint64
	// ListensRefused counts LISTENs refused busy because the PINGs that
	// check new listeners' addresses held their share of the request
	// table.
	ListensRefused uint64
}

// RequestCounts is how the requests of one type that a node sent ended.
// Each request ends once: Answered + Refused + Timeouts + Abandoned, plus
// those in flight, is the number of requests; Sent counts datagrams, so
// retries too.
type RequestCounts struct {
	Sent      uint64 // datagrams sent, retries included
	Answered  uint64 // answered with anything but an ERROR
	Refused   uint64 // answered with an ERROR (Stats.RequestErrors has the codes)
	Timeouts  uint64 // no answer after every attempt
	Abandoned uint64 // forgotten unanswered because their operation ended or moved on
}

// LookupCounts describes the lookups of one kind. Started is Complete +
// Incomplete + NoAnswer + Abandoned, plus those running.
type LookupCounts struct {
	Started    uint64
	Complete   uint64 // ended with an answer they call complete
	Incomplete uint64 // ended at one of their bounds, or with a holder that had more values than it sent
	NoAnswer   uint64 // ended with no node answering
	Abandoned  uint64 // canceled before they ended (their operation ended first)
	Messages   uint64 // requests the ended ones sent, retries included
	// Rounds, Queried and Duration describe the lookups that ended: their
	// hop counts (LookupResult.Rounds), the distinct contacts each asked,
	// and how long each took (in seconds).
	Rounds, Queried, Duration Histogram
}

// Histogram is a distribution over fixed buckets: Counts[i] counts the
// observations no larger than Bounds[i] and larger than Bounds[i-1];
// Counts[len(Bounds)] counts those above every bound. Count is the number
// of observations (the sum of Counts), Sum their total.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// export makes a Histogram of h, whose values are in units of scale (1e-9
// for nanoseconds reported in seconds).
func (h *hist) export(bounds []uint64, scale float64) Histogram {
	out := Histogram{Bounds: make([]float64, len(bounds)), Counts: make([]uint64, len(bounds)+1), Sum: float64(h.sum) * scale}
	for i, b := range bounds {
		out.Bounds[i] = float64(b) * scale
	}
	copy(out.Counts, h.counts[:len(bounds)+1])
	for _, c := range out.Counts {
		out.Count += c
	}
	return out
}

// Stats returns a snapshot of the node's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	s := &n.stats
	st := Stats{
		PacketsIn: s.packetsIn, PacketsOut: s.packetsOut,
		Malformed: s.malformed, WrongNetwork: s.wrongNetwork,
		Unmatched: s.unmatched, Responses: s.responses,
		Requests: s.requests, Retries: s.retries, Timeouts: s.timeouts, Stalls: s.stalls,
		RPCFull: s.rpcFull, RPCQueued: s.rpcQueued,
		Tokens:         TokenCounts{Given: s.tokensGiven, Refused: s.tokenRefused, Retries: s.tokenRetries},
		StoresAccepted: s.storesAccepted, StoresRefused: s.storesRefused, ForgedRecords: s.forged,
		Expired: s.expired, Refreshes: s.refreshes, Rejoins: s.rejoins,
		RefreshesSkipped: s.refreshesSkipped, KeepAlive: n.keepAliveStats(), PathCache: n.pathCacheStats(),
		ReadOnlyDropped: s.readOnlyDropped,
		Identity:        n.identityStats(),
		RateLimited:     n.limits.dropped,
		Crowded:         n.table.Crowded(),
		Served:          make(map[string]uint64, reqSlots-1),
		Sent:            make(map[string]RequestCounts, reqSlots-1),
		RequestErrors:   make(map[string]uint64, 11),
		ErrorsSent:      make(map[string]uint64, 11),
		StoreRefusals:   make(map[string]uint64, numReasons),
		Latency:         make(map[string]Histogram, numGroups),
		Lookups:         make(map[string]LookupCounts, numLookupKinds),
		InFlight:        n.rpc.Len(),
		TableSize:       n.table.Len(),
		Buckets:         n.table.Buckets(),
		BucketSizes:     make([]int, n.table.Buckets()),
		Listeners:       len(n.listeners),
		DebugSuppressed: s.trace.suppressedTotal,
		Listen: ListenCounts{
			NotifiesDropped: s.listen.notifiesDropped, ListenersDropped: s.listen.listenersDropped,
			NotifiesShort: s.listen.notifiesShort, FetchesDropped: s.listen.fetchesDropped,
			EventsCoalesced: s.listen.eventsCoalesced, EventsLost: s.listen.eventsLost,
			ListensRefused: s.listen.listensRefused,
		},
	}
	for t := wire.Ping; t <= wire.Notify; t++ {
		st.Served[t.String()] = s.served[t]
		r := &s.sent[reqSlot(t)]
		st.Sent[t.String()] = RequestCounts{Sent: r.sent, Answered: r.answered, Refused: r.refused, Timeouts: r.timeouts, Abandoned: r.abandoned}
	}
	for c := range codeSlots {
		name := CodeName(wire.ErrorCode(c))
		if c == 0 || name != "other" {
			st.RequestErrors[name] += s.requestErrors[c]
			st.ErrorsSent[name] += s.errorsSent[c]
		}
	}
	for i, r := range RefusalReasons {
		st.StoreRefusals[r] = s.storeRefusals[i]
	}
	for g, name := range LatencyGroups {
		st.Latency[name] = s.rtt[g].export(durationBounds[:], 1e-9)
	}
	for k, name := range LookupKinds {
		l := &s.lookups[k]
		st.Lookups[name] = LookupCounts{
			Started: l.started, Complete: l.complete, Incomplete: l.incomplete, NoAnswer: l.noAnswer, Abandoned: l.abandoned,
			Messages: l.messages,
			Rounds:   l.rounds.export(roundBounds[:], 1),
			Queried:  l.queried.export(queriedBounds[:], 1),
			Duration: l.duration.export(durationBounds[:], 1e-9),
		}
	}
	n.table.ForEach(func(b int, _ routing.Entry) { st.BucketSizes[b]++ })
	for _, subs := range n.subs {
		st.Subscriptions += len(subs)
	}
	n.mu.Unlock()
	st.StoredValues = n.store.Len()
	st.StoredBytes = n.store.Bytes()
	tr := n.tr
	if s, ok := tr.(interface{ DropCounts() map[string]uint64 }); ok {
		st.SealedDropped = s.DropCounts()
	}
	if w, ok := tr.(interface{ Unwrap() transport.Transport }); ok {
		tr = w.Unwrap() // a private network's sealing: count its sockets
	}
	switch t := tr.(type) {
	case *udp.Transport:
		u := t.Stats()
		st.SendDropped, st.SendErrors = u.SendDropped, u.SendErrors
	case *transport.Group:
		st.NoRoute = t.Dropped()
	}
	return st
}

// The counting hooks below are called from the serving and request paths
// (node.go, ops.go), under the lock. They do not allocate.

// noteSent counts a request datagram going out.
func (n *Node) noteSent(p *pending) { n.stats.sent[reqSlot(p.typ)].sent++ }

// noteAnswer counts the answer m to request p, which arrived at now.
func (n *Node) noteAnswer(p *pending, m *wire.Message, now time.Time) {
	r := &n.stats.sent[reqSlot(p.typ)]
	if m.Type == wire.Error {
		r.refused++
		n.stats.requestErrors[codeSlot(m.Code)]++
	} else {
		r.answered++
	}
	rtt := max(now.Sub(p.sent), 0)
	n.stats.rtt[groupOf(p.typ)].observe(uint64(rtt), durationBounds[:])
	if n.debugging() {
		n.traceAnswer(p, m, rtt, now)
	}
}

// noteTimeout counts request p, unanswered after its last attempt.
func (n *Node) noteTimeout(p *pending, now time.Time) {
	n.stats.sent[reqSlot(p.typ)].timeouts++
	if n.debugging() {
		n.traceTimeout(p, now)
	}
}

// noteAbandoned counts request p forgotten unanswered, when ok says the
// request table still held it.
func (n *Node) noteAbandoned(p pending, ok bool) {
	if ok {
		n.stats.sent[reqSlot(p.typ)].abandoned++
	}
}

// noteError counts the ERROR o this node answers request type req with,
// and why it refused a store.
func (n *Node) noteError(req wire.Type, o *wire.Message) {
	n.stats.errorsSent[codeSlot(o.Code)]++
	switch req {
	case wire.Store, wire.Put, wire.Delete:
		n.stats.storeRefusals[refusalReason(o.Code, o.Text)]++
	}
}

// noteLookupStart counts a lookup of type typ starting.
func (n *Node) noteLookupStart(typ wire.Type) { n.stats.lookups[lookupKind(typ)].started++ }

// noteLookupAbandoned counts lookup o canceled before it ended.
func (n *Node) noteLookupAbandoned(o *lookupOp) { n.stats.lookups[lookupKind(o.typ)].abandoned++ }

// noteLookupEnd counts lookup o ending with r.
func (n *Node) noteLookupEnd(o *lookupOp, r *LookupResult) {
	l := &n.stats.lookups[lookupKind(o.typ)]
	switch {
	case r.Responded == 0 && r.Holders == 0: // a get its own store answered did not go unanswered
		l.noAnswer++
	case r.Incomplete != "":
		l.incomplete++
	default:
		l.complete++
	}
	l.messages += uint64(r.Messages)
	l.rounds.observe(uint64(r.Rounds), roundBounds[:])
	l.queried.observe(uint64(r.Queried), queriedBounds[:])
	l.duration.observe(uint64(max(r.Duration, 0)), durationBounds[:])
}

// Contacts returns the routing table's entries, bucket by bucket.
func (n *Node) Contacts() []routing.Entry {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []routing.Entry
	n.table.ForEach(func(_ int, e routing.Entry) { out = append(out, e) })
	return out
}

// BucketInfo is one k-bucket as the routing table holds it.
type BucketInfo struct {
	// Index is the bucket's number: its contacts share Index leading bits
	// with the node's ID (the last bucket: at least Index), so their XOR
	// distance from it lies in [2^(159-Index), 2^(160-Index)).
	Index int
	// Contacts are the bucket's entries, least recently seen first.
	Contacts []routing.Entry
	// Replacements counts the contacts waiting for a place.
	Replacements int
	// Touched is when the node last looked up an ID in the bucket's range.
	Touched time.Time
}

// Table returns the routing table bucket by bucket, and K.
func (n *Node) Table() ([]BucketInfo, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]BucketInfo, n.table.Buckets())
	for i := range out {
		out[i] = BucketInfo{Index: i, Replacements: len(n.table.Replacements(i)), Touched: n.table.Touched(i)}
	}
	n.table.ForEach(func(b int, e routing.Entry) { out[b].Contacts = append(out[b].Contacts, e) })
	return out, n.cfg.K
}

// Closest returns up to k contacts from the routing table closest to target,
// without asking the network.
func (n *Node) Closest(target id.ID, k int) []id.Contact {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.table.Closest(target, k, nil)
}

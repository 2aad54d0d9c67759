package api

import (
	"context"
	"net/netip"
	"time"

	"github.com/dhtkit/dht/id"
)

// Backend is what the HTTP API needs from a node. The handlers call it and
// nothing else, so that they are tested against a fake and the node adapts
// whatever its library API is to it. Every method is called concurrently
// from many requests; ctx ends when the request does (or at Options.Timeout).
//
// Errors: a method reports why it failed with an error that errors.Is one of
// this package's sentinels (ErrNotFound, ErrNoPeers, ErrQuorum, ErrTimeout,
// ErrUnavailable, ErrBadRequest, ErrTooLarge), or with an *Error naming its
// code; context errors mean a timeout; anything else is an internal error,
// its text sent to the client. Put, Delete and Lookup may return a filled-in
// result with their error (the receipts of a put below its quorum, the trace
// of a lookup that found nothing): the API sends it along with the error.
type Backend interface {
	// Info describes the node.
	Info(ctx context.Context) (Info, error)
	// Stats returns the node's counters and gauges.
	Stats(ctx context.Context) (Stats, error)
	// Table returns the routing table, one bucket per distance range.
	Table(ctx context.Context) (Table, error)
	// Keys returns up to q.Limit (1 to MaxLimit) of the keys this node
	// stores, in ascending ID order, after q.After when it is set.
	Keys(ctx context.Context, q KeysQuery) (KeysPage, error)
	// Put stores value under key on the key's closest nodes. Below
	// opts.Quorum acceptances the error is ErrQuorum and the result holds
	// the receipts.
	Put(ctx context.Context, key id.ID, value []byte, opts PutOptions) (PutResult, error)
	// Get returns key's values, newest first; ErrNotFound when no node
	// holds one, ErrNoPeers when there was no node to ask.
	Get(ctx context.Context, key id.ID) (GetResult, error)
	// Delete withdraws opts.Publisher's value of key (opts.TTL, when set,
	// is how long the withdrawal is kept); ErrNotFound, with the receipts,
	// when no node held a value of that publisher.
	Delete(ctx context.Context, key id.ID, opts PutOptions) (DeleteResult, error)
	// Listen reports every change of key's values until ctx ends; the
	// channel is closed then, or when the node stops.
	Listen(ctx context.Context, key id.ID) (<-chan ValueEvent, error)
	// Ping asks the node at addr ("host:port") whether it is alive.
	Ping(ctx context.Context, addr string) (PingResult, error)
	// FindNode returns up to K nodes closest to target that answered,
	// closest first.
	FindNode(ctx context.Context, target id.ID) ([]Contact, error)
	// Lookup runs a lookup of target (for its closest nodes or for its
	// values) and returns what it did, round by round.
	Lookup(ctx context.Context, target id.ID, kind LookupKind) (LookupResult, error)
	// Events reports the node's own events (a "stats" sample every second,
	// notable events as they happen) until ctx ends; the channel is closed
	// then, or when the node stops.
	Events(ctx context.Context) (<-chan NodeEvent, error)
}

// Limits of the API, the same on the server and in the documentation.
const (
	MaxBody     = 1 << 20 // bytes of a request body (a value to put)
	MaxKey      = 1024    // bytes of a string key
	MaxQuery    = 4096    // bytes of a URL's query string
	MaxLimit    = 1000    // keys in one page
	DefaultPage = 100     // keys in a page when the request gives no limit
)

// Contact is a node: its ID and UDP address.
type Contact struct {
	ID   id.ID
	Addr netip.AddrPort
}

// Info describes a node.
type Info struct {
	ID        id.ID
	Publisher id.ID // the publisher ID of the node's own puts and deletes
	Version   string
	Addrs     []netip.AddrPort // where the node receives datagrams
	Network   Network
	Uptime    time.Duration
	Joined    bool // some seed answered (or the node started a new network)
	ReadOnly  bool // a client node: others do not add it to their tables
	Seeds     []Seed
	Contacts  int   // contacts in the routing table
	Records   int   // records stored, tombstones included
	Bytes     int64 // bytes of values stored
}

// Network names the network a node is part of.
type Network struct {
	Name string // from the networks file; empty when none was used
	ID   uint32 // the ID every datagram carries
}

// Seed is one of the nodes a node joins through, as it last found it.
type Seed struct {
	Addr      string // host:port as configured
	State     string // "up" (answered), "down" (did not), "unresolved" (its name did not resolve), "unknown" (not tried yet)
	LastError string // why it was last found down or unresolved
}

// Stats are a node's counters and gauges by name (snake_case, such as
// "packets_in" or "served_find_node"); the node decides which it has.
type Stats map[string]uint64

// Table is a node's routing table.
type Table struct {
	Self    id.ID
	K       int      // the bucket size
	Buckets []Bucket // ascending Index; ranges holding nothing may be left out
}

// Bucket holds the contacts at XOR distance 2^Index to 2^(Index+1) from
// the node (Index is 159 minus the length of the prefix they share with it).
type Bucket struct {
	Index        int
	K            int // how many contacts the range holds at most
	Contacts     []TableContact
	Replacements int // contacts waiting for a place in the range
	// LookedUp is set when the node looked up a target in this range since
	// it started; LookupAge is how long ago it last did.
	LookedUp  bool
	LookupAge time.Duration
}

// TableContact is a contact in the routing table.
type TableContact struct {
	Contact
	LastSeen time.Duration // how long ago it was last heard from
	Verified bool          // its address has answered one of the node's requests
	Failures int           // consecutive requests to it that went unanswered
}

// KeysQuery selects a page of stored keys.
type KeysQuery struct {
	After *id.ID // list keys after this one; nil: from the first
	Limit int    // 1 to MaxLimit
}

// KeysPage is a page of stored keys.
type KeysPage struct {
	Keys []KeyInfo
	More bool // keys follow the last one: ask again with it as After
}

// KeyInfo is what a node stores under one key.
type KeyInfo struct {
	Key            id.ID
	Records        int // records, tombstones included
	Bytes          int // bytes of values
	Publishers     int
	EarliestExpiry time.Duration // time left until the first record expires
	LatestExpiry   time.Duration // time left until the last record expires
}

// PutOptions are the options of Put and Delete; zero values mean the
// node's defaults.
type PutOptions struct {
	TTL       time.Duration // how long nodes should keep the value (or the withdrawal)
	Quorum    int           // acceptances below which Put fails with ErrQuorum
	Publisher id.ID         // zero: the node's own publisher ID
	Version   uint64        // zero: the node picks one (the time at Put)
	Keep      bool          // PUT: the node republishes the value until a DELETE of it (keep=1)
	// Envelope (PUT, envelope=1): the body is a record envelope (package
	// record: a signed, typed or immutable record) that its publisher built
	// and signed, and Version the sequence it was signed for. The node
	// stores the bytes as they are, the publisher being the envelope's
	// (Publisher and Keep do not apply), after checking them as the storing
	// nodes will: a record they would refuse fails with ErrInvalid, its
	// reason naming the field, and nothing is sent.
	Envelope bool
}

// Outcome is what one node did with a put or a delete.
type Outcome string

// Outcomes of a receipt.
const (
	Accepted Outcome = "accepted"
	Refused  Outcome = "refused"
	NoAnswer Outcome = "no_answer"
)

// Receipt is one node's answer to a put or a delete.
type Receipt struct {
	Node    Contact
	Outcome Outcome
	TTL     time.Duration // granted (accepted) or kept (a delete's withdrawal)
	Reason  string        // why it refused
	Found   bool          // delete: the node held a live value of the publisher
}

// PutResult says what a put achieved.
type PutResult struct {
	Key       id.ID
	Publisher id.ID
	Version   uint64
	Asked     time.Duration // the TTL asked for
	Receipts  []Receipt
	Stored    int  // acceptances, this node's own copy included
	Local     bool // this node keeps a copy
	Quorum    int  // the quorum asked for (0: none)
}

// DeleteResult says what a delete achieved.
type DeleteResult struct {
	Key       id.ID
	Publisher id.ID
	Version   uint64
	Receipts  []Receipt
	Found     int // nodes that held a live value of the publisher
}

// Value is one stored value with its metadata.
type Value struct {
	Data      []byte
	Publisher id.ID
	Version   uint64
	TTL       time.Duration // time left before it expires
	// Envelope says Data is a record envelope (package record), verified
	// by the node (its signature, its binding to key, publisher and
	// version); Kind is its kind: "immutable", "signed" or "typed". A
	// signed or typed record's sequence is Version.
	Envelope bool
	Kind     string
}

// GetResult is what a get found.
type GetResult struct {
	Key        id.ID
	Values     []Value // newest first
	Holders    int     // nodes whose answers were merged
	Incomplete string  // empty, or why values may be missing
}

// EventKind is the kind of a change to a key's values.
type EventKind string

// Kinds of ValueEvent.
const (
	EventPut     EventKind = "put"     // a publisher's first value under the key
	EventReplace EventKind = "replace" // a newer version of a publisher's value
	EventDelete  EventKind = "delete"  // a publisher withdrew its value
)

// ValueEvent is a change to a key's values, as Listen reports it.
type ValueEvent struct {
	Kind  EventKind
	Key   id.ID
	Value Value // a delete's value has no Data
}

// PingResult is a node's answer to a ping.
type PingResult struct {
	Contact Contact
	RTT     time.Duration
}

// LookupKind says what a lookup looks for.
type LookupKind string

// Kinds of lookup.
const (
	LookupNode  LookupKind = "node"  // the target's closest nodes
	LookupValue LookupKind = "value" // the values stored under the target
)

// Answer is what one node answered in a lookup.
type Answer string

// Answers in a lookup trace.
const (
	AnswerContacts Answer = "contacts" // closer contacts
	AnswerValues   Answer = "values"   // values of the key
	AnswerTimeout  Answer = "timeout"  // nothing in time
	AnswerError    Answer = "error"    // an error message
)

// LookupResult is a finished lookup and how it went.
type LookupResult struct {
	Target   id.ID
	Kind     LookupKind
	Duration time.Duration
	Closest  []Contact // the closest nodes that answered, closest first
	Values   []Value   // a value lookup's values, newest first
	Rounds   []Round
}

// Round is one round of a lookup: the nodes asked together.
type Round struct {
	Queries []Query
}

// Query is one request of a lookup and its answer.
type Query struct {
	Node     Contact
	Start    time.Duration // when it was sent, from the start of the lookup
	Duration time.Duration // until it was answered or given up
	Answer   Answer
	Contacts []Contact // the contacts it answered with
	Values   int       // how many values it answered with
	Error    string
}

// NodeEvent is an event of the node's own stream: what the dashboard's
// live charts draw.
type NodeEvent struct {
	Kind    string // "stats" for a periodic sample; others name a notable event ("joined", "seed_down"...)
	Time    time.Time
	Message string  // what happened, for people
	Sample  *Sample // set for "stats"
}

// Sample is a periodic measurement of a node's traffic.
type Sample struct {
	Interval time.Duration      // the time it covers
	Rates    map[string]float64 // per second, by name ("requests_in", "find_node_out"...)
	Latency  Latency            // of the node's requests answered in the interval
	Drops    map[string]uint64  // datagrams dropped in the interval, by reason
}

// Latency is a latency distribution.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

// Package core is the Kademlia node itself: it serves requests, tracks its own
// requests, runs lookups, puts and gets, and keeps its routing table fresh.
//
// It owns no goroutine and reads no clock of its own: datagrams arrive through
// HandlePacket (called by the transport), time comes from the injected Clock,
// and every timer it arms goes through that Clock. The same code therefore
// runs a real UDP node and each of the 100,000 nodes of a simulation on a
// virtual clock. Operations are asynchronous and report through callbacks;
// package dht wraps them in blocking calls with contexts.
package core

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/record"

	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/routing"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Config configures a Node. Zero fields take the defaults listed with each;
// Transport is required.
type Config struct {
	ID               id.ID         // zero: derived from Key (see Key, GenerateKey), else drawn from Rand
	K                int           // bucket size and replication factor; default 20, at most wire.MaxContacts
	Alpha            int           // lookup parallelism; default 3
	Network          uint32        // network ID; datagrams from other networks are dropped
	ReadOnly         bool          // a short-lived client: serves nothing, stays out of routing tables, never rejoins
	RequestTimeout   time.Duration // default 1s
	StallAfter       time.Duration // a lookup stops waiting for a request this old (still taking a late answer); default RequestTimeout/2; RequestTimeout turns stalling off
	Attempts         int           // sends of a request in all before it fails: 1 never retries; default 2
	MaxInFlight      int           // requests in flight; default 4096
	MaxTTL           time.Duration // longest TTL this node grants a stored value; default 24h
	MinTTL           time.Duration // shortest TTL this node grants (a shorter one is raised to it); default 1 minute, at most MaxTTL
	MaxValueSize     int           // largest value this node stores, puts and fetches; default StoreLimits.MaxValueSize or store.DefaultMaxValueSize, at most wire.MaxRecordSize
	RefreshInterval  time.Duration // a bucket with no lookup for this long is refreshed; default 1h
	LookupTimeout    time.Duration // every lookup stops here with what it has and says so; the bound that matters for lookups no caller's context bounds (refreshes, joins); default 30s
	GetQuorum        int           // a get stops once this many nodes answered with values, and merges them; default 3
	DisjointPaths    int           // Get runs this many value lookups over disjoint node sets (S/Kademlia; see GetPaths); 0 or 1: one lookup, the default; at most lookup.MaxPaths
	AnyScope         bool          // use contacts whatever their address scope (tests on mixed addresses); by default a peer's contacts may be no narrower than its own address: loopback only from loopback, private only from private or loopback
	ReplacementCache int           // replacement contacts per bucket; default K
	MaxFailures      int           // failures in a row that remove a contact; default 3, at most routing.MaxFailuresLimit
	// Seeds are where the node rejoins whenever its routing table is empty
	// (at start, or after an outage cost it every contact): it bootstraps
	// through them with backoff from 1s to 5min for as long as it runs.
	// A Bootstrap's seeds replace them: a node rejoins through the seeds
	// it joined through last.
	Seeds       []netip.AddrPort
	Clock       clock.Clock // default clock.Real{}
	Transport   transport.Transport
	Store       store.Store  // default store.NewMemory(StoreLimits)
	StoreLimits store.Limits // limits of the default store; must be zero when Store is set
	// Keeping values alive (republish.go, cache.go, refresh.go, put.go).
	MaxKeepAlives int  // values this node republishes for its program at once (KeepAlive); default 1024
	PathCache     int  // records a get caches at the closest node on its path that lacked them; default 4; negative turns caching off
	PutBeta       int  // a put's lookup stops once its PutBeta closest candidates answered and stores on the K closest it knows; default 3; negative runs the full lookup and stores on the K closest that answered
	FullRefresh   bool // a bucket refresh runs a full lookup instead of stopping at a bucket's worth of contacts that answered
	// KeepAliveEnded, when set, is called (outside the node's lock) when
	// the node ends a keep-alive on its own: ErrSuperseded, when the nodes
	// hold a newer version of the value.
	KeepAliveEnded func(key, publisher id.ID, reason error)
	// Rand seeds the node's random source, a ChaCha8 stream that IDs, jitter
	// and transaction IDs are drawn from. Validate replaces it with that
	// stream, seeded from 32 bytes of Rand (the same seed, the same run) or,
	// when nil, from crypto/rand. Peers see many transaction IDs; ChaCha8
	// keeps them from predicting the next, but a Rand they can guess makes
	// every ID guessable: pass one only for simulations and tests.
	Rand   *mrand.Rand
	Logger *slog.Logger
	// MinRequestTimeout is the floor of adaptive request timeouts (see
	// rtt.go): each attempt waits its contact's estimated round trip
	// (RFC 6298's RTO, from the contact's own answers, else from all the
	// node's answers), clamped to [MinRequestTimeout, RequestTimeout], and
	// retries wait twice as long each time; a request fails no sooner than
	// RequestTimeout after its first send, as with fixed timeouts. Lookups
	// stall at the round trip expected of the contact (SRTT + 2 RTTVAR, at
	// most StallAfter), below this floor, and give up on a request at three
	// times that, no sooner than this floor. Default 100ms, at most
	// RequestTimeout; RequestTimeout turns adaptive timeouts off (every
	// attempt waits RequestTimeout and lookups stall at StallAfter).
	MinRequestTimeout time.Duration
	// ReplicateInterval is how often a node copies the records it holds to
	// their keys' current K closest nodes (by digest first, see
	// replicate.go), skipping records it received within the interval;
	// default 1h. Negative turns replication off: no periodic pass, no
	// re-replication when a neighbour leaves, no hand-over to newcomers.
	ReplicateInterval time.Duration
	// ReplicateDebounce is how long a node waits after a neighbour leaves
	// or a newcomer arrives before it re-replicates or hands over, so that
	// one pass serves all the changes of a burst; default 5s, at most
	// ReplicateInterval.
	ReplicateDebounce time.Duration
	// RequireTokens makes the node refuse, with ERROR code 14 and having
	// changed nothing, every STORE, PUT, DELETE and LISTEN that does not
	// carry a write token it handed the sender's address within the last
	// 10 to 20 minutes (token.go, docs/protocol.md "Write tokens"), so
	// that a write proves its sender receives at its address; its own
	// lookups and OFFERs then ask for the tokens its writes need. Off, the
	// node hands tokens to requesters that ask and sends every datagram as
	// before tokens.
	RequireTokens bool
	// RecordPolicy is how this node judges record kinds (package record):
	// every complete enveloped record it is asked to store (PUT, by a
	// publisher, a replica or a cache) must pass RecordPolicy.Check, and
	// every enveloped record it reads (GET, NOTIFY) RecordPolicy.Verify.
	// The zero value accepts plain records too and knows the built-in
	// types; RefusePlain makes the node refuse every plain write (PUT,
	// STORE, DELETE) with ERROR code 11.
	RecordPolicy record.Policy
	// RateLimit is how many requests per second one source host (an IPv4
	// address, an IPv6 /64) may have served; the rest are dropped
	// unanswered and counted (ratelimit.go). Default DefaultRateLimit;
	// negative turns the limit off.
	RateLimit float64
	// RateBurst is how many requests one source may send at once above
	// RateLimit's pace; default 2*RateLimit, at least 1.
	RateBurst int
	// RateSources is how many source hosts the node keeps a rate limit
	// for; past it, the least recently heard from gives its place (and a
	// fresh burst when it returns). Default DefaultRateSources.
	RateSources int
	// RateLimitLoopback limits loopback sources too. By default they are
	// exempt: they are this machine's own programs (benchmarks, the
	// simulator's in-memory network), not remote peers.
	RateLimitLoopback bool
	// Diversity caps the routing table's contacts per network prefix
	// (routing.Diversity); the zero value takes its defaults.
	Diversity routing.Diversity
	// Node identity (ident.go, docs/protocol.md "Node identity").
	//
	// Key is the node's ed25519 identity key: its ID is derived from it
	// (ID must be zero or that ID) and it answers proof requests. Nil: the
	// node has no key (its ID is Config.ID, or random) and cannot prove
	// its ID, unless RequireIdentity generates one.
	Key ed25519.PrivateKey
	// Difficulty is the network's proof of work, in bits: an ID is valid
	// only when SHA-1 of it starts with this many zero bits. Default 0;
	// at most ident.MaxDifficulty.
	Difficulty int
	// RequireIdentity lets into the routing table, and counts as answers,
	// only contacts that proved their ID is their key's (with Difficulty)
	// at their address; made-up contacts never count. A node without Key
	// and ID gets a generated key; an explicit ID without Key is an error.
	// Network-wide: every node of the network must have a key. Default
	// off (tests and simulations give nodes free IDs).
	RequireIdentity bool
	// VerifiedCache is how many proven (ID, address) pairs the node
	// remembers; default DefaultVerifiedCache.
	VerifiedCache int
	// GenerateKey gives a node without Key and ID a generated key, as
	// RequireIdentity does (package dht sets it: its nodes own their IDs).
	// Off, such a node draws a free ID from Rand, as simulations want.
	GenerateKey bool
}

// Defaults used where a Config field is zero.
const (
	DefaultK               = 20
	DefaultAlpha           = 3
	DefaultRequestTimeout  = time.Second
	DefaultAttempts        = 2
	DefaultMaxInFlight     = 4096
	DefaultMaxTTL          = 24 * time.Hour
	DefaultMinTTL          = time.Minute
	DefaultRefreshInterval = time.Hour
	DefaultMaxFailures     = 3
	DefaultLookupTimeout   = 30 * time.Second
	DefaultGetQuorum       = 3
	// DefaultMinRequestTimeout is Config.MinRequestTimeout's default: about
	// three round trips across a continent, well above any LAN's.
	DefaultMinRequestTimeout = 100 * time.Millisecond

	DefaultReplicateInterval = time.Hour
	DefaultReplicateDebounce = 5 * time.Second
)

// Validate fills zero fields with defaults and rejects values that cannot
// work, naming the field and what is allowed.
func (c *Config) Validate() error {
	if c.Transport == nil {
		return errors.New("core: Config.Transport is required")
	}
	fill := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&c.K, DefaultK)
	fill(&c.Alpha, DefaultAlpha)
	fill(&c.MaxInFlight, DefaultMaxInFlight)
	fill(&c.MaxFailures, DefaultMaxFailures)
	fill(&c.Attempts, DefaultAttempts)
	fill(&c.ReplacementCache, c.K)
	if c.Attempts < 1 {
		return fmt.Errorf("core: Attempts = %d: must be at least 1 (1 sends each request once)", c.Attempts)
	}
	if c.MaxFailures < 1 || c.MaxFailures > routing.MaxFailuresLimit {
		return fmt.Errorf("core: MaxFailures = %d: must be between 1 and %d", c.MaxFailures, routing.MaxFailuresLimit)
	}
	if c.ReplacementCache < 0 {
		return fmt.Errorf("core: ReplacementCache = %d: must be at least 0", c.ReplacementCache)
	}
	if c.K < 1 || c.K > wire.MaxContacts {
		return fmt.Errorf("core: K = %d: must be between 1 and %d", c.K, wire.MaxContacts)
	}
	if c.Alpha < 1 || c.Alpha > c.K {
		return fmt.Errorf("core: Alpha = %d: must be between 1 and K (%d)", c.Alpha, c.K)
	}
	if c.MaxInFlight < 1 {
		return fmt.Errorf("core: MaxInFlight = %d: must be at least 1", c.MaxInFlight)
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.RequestTimeout < 0 {
		return fmt.Errorf("core: RequestTimeout = %v: must be positive", c.RequestTimeout)
	}
	if c.StallAfter == 0 {
		c.StallAfter = c.RequestTimeout / 2
	}
	if c.StallAfter < 0 || c.StallAfter > c.RequestTimeout {
		return fmt.Errorf("core: StallAfter = %v: must be between 0 and RequestTimeout (%v)", c.StallAfter, c.RequestTimeout)
	}
	if c.MinRequestTimeout == 0 {
		c.MinRequestTimeout = min(DefaultMinRequestTimeout, c.RequestTimeout)
	}
	if c.MinRequestTimeout < 0 || c.MinRequestTimeout > c.RequestTimeout {
		return fmt.Errorf("core: MinRequestTimeout = %v: must be positive and at most RequestTimeout (%v)", c.MinRequestTimeout, c.RequestTimeout)
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = DefaultMaxTTL
	}
	if c.MaxTTL < time.Second {
		return fmt.Errorf("core: MaxTTL = %v: must be at least 1s", c.MaxTTL)
	}
	if c.MinTTL == 0 {
		c.MinTTL = min(DefaultMinTTL, c.MaxTTL)
	}
	if c.MinTTL < time.Second || c.MinTTL > c.MaxTTL {
		return fmt.Errorf("core: MinTTL = %v: must be between 1s and MaxTTL (%v)", c.MinTTL, c.MaxTTL)
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = c.StoreLimits.MaxValueSize
		if c.MaxValueSize <= 0 {
			c.MaxValueSize = store.DefaultMaxValueSize
		}
	}
	if c.MaxValueSize < 1 || c.MaxValueSize > wire.MaxRecordSize {
		return fmt.Errorf("core: MaxValueSize = %d: must be between 1 and %d", c.MaxValueSize, wire.MaxRecordSize)
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = DefaultRefreshInterval
	}
	if c.RefreshInterval < time.Second {
		return fmt.Errorf("core: RefreshInterval = %v: must be at least 1s", c.RefreshInterval)
	}
	if err := c.validateKeeping(); err != nil {
		return err
	}
	if c.LookupTimeout == 0 {
		c.LookupTimeout = DefaultLookupTimeout
	}
	if c.LookupTimeout < c.RequestTimeout {
		return fmt.Errorf("core: LookupTimeout = %v: must be at least RequestTimeout (%v)", c.LookupTimeout, c.RequestTimeout)
	}
	fill(&c.GetQuorum, min(DefaultGetQuorum, c.K)) // a tiny K asks fewer
	if c.GetQuorum < 1 || c.GetQuorum > c.K {
		return fmt.Errorf("core: GetQuorum = %d: must be between 1 and K (%d)", c.GetQuorum, c.K)
	}
	if c.DisjointPaths < 0 || c.DisjointPaths > lookup.MaxPaths {
		return fmt.Errorf("core: DisjointPaths = %d: must be from 0 (one lookup) to %d", c.DisjointPaths, lookup.MaxPaths)
	}
	if err := c.validateReplication(); err != nil {
		return err
	}
	if err := c.validateRateLimit(); err != nil {
		return err
	}
	if err := c.Diversity.Validate(); err != nil {
		return fmt.Errorf("core: Diversity: %w", err)
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	callerRand := c.Rand != nil
	r, err := chacha(c.Rand)
	if err != nil {
		return err
	}
	c.Rand = r
	if err := c.validateIdentity(callerRand); err != nil {
		return err
	}
	if c.ID.IsZero() {
		c.ID = id.Random(c.Rand)
	}
	seeds := make([]netip.AddrPort, 0, len(c.Seeds))
	for i, a := range c.Seeds {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if !usableAddr(a) {
			return fmt.Errorf("core: Seeds[%d] = %v: not an address a node can be reached at", i, a)
		}
		seeds = append(seeds, a)
	}
	c.Seeds = seeds // a copy: the caller's slice may change after New
	if c.Store == nil {
		c.Store = store.NewMemory(c.StoreLimits)
	} else if c.StoreLimits != (store.Limits{}) {
		return errors.New("core: StoreLimits applies to the default store only; set the limits of Store itself")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// seedSource is where a node without Config.Rand gets its seed; tests
// replace it to check what is built from the seed.
var seedSource io.Reader = rand.Reader

// chacha returns the node's random source: a ChaCha8 stream seeded from r,
// or from seedSource when r is nil. ChaCha8 is a cryptographic generator, so
// the transaction IDs peers see tell them nothing about the next one, and IDs
// and jitter can share the stream without weakening them (a second stream
// would buy nothing and cost 320 bytes per node).
func chacha(r *mrand.Rand) (*mrand.Rand, error) {
	var seed [32]byte
	if r == nil {
		if _, err := io.ReadFull(seedSource, seed[:]); err != nil {
			return nil, fmt.Errorf("core: seeding the random source: %w", err)
		}
	} else {
		for i := 0; i < len(seed); i += 8 {
			binary.LittleEndian.PutUint64(seed[i:], r.Uint64())
		}
	}
	return mrand.New(mrand.NewChaCha8(seed)), nil
}

// validateReplication fills and checks the replication settings.
func (c *Config) validateReplication() error {
	if c.ReplicateInterval == 0 {
		c.ReplicateInterval = DefaultReplicateInterval
	}
	if c.ReplicateInterval > 0 && c.ReplicateInterval < time.Second {
		return fmt.Errorf("core: ReplicateInterval = %v: must be at least 1s (or negative: no replication)", c.ReplicateInterval)
	}
	if c.ReplicateDebounce == 0 {
		c.ReplicateDebounce = min(DefaultReplicateDebounce, max(c.ReplicateInterval, time.Second))
	}
	if c.ReplicateDebounce < 0 || (c.ReplicateInterval > 0 && c.ReplicateDebounce > c.ReplicateInterval) {
		return fmt.Errorf("core: ReplicateDebounce = %v: must be positive and at most ReplicateInterval (%v)", c.ReplicateDebounce, c.ReplicateInterval)
	}
	return nil
}

// validateRateLimit fills and checks the rate limit's settings.
func (c *Config) validateRateLimit() error {
	if c.RateLimit < 0 {
		return nil
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultRateLimit
	}
	if c.RateBurst == 0 {
		c.RateBurst = max(int(2*c.RateLimit), 1)
	}
	if c.RateSources == 0 {
		c.RateSources = DefaultRateSources
	}
	switch {
	case c.RateLimit != c.RateLimit || c.RateLimit > 1e9: // NaN, or no limit at all
		return fmt.Errorf("core: RateLimit = %v: must be a number of requests per second up to 1e9 (negative: no limit)", c.RateLimit)
	case c.RateBurst < 1:
		return fmt.Errorf("core: RateBurst = %d: must be at least 1", c.RateBurst)
	case c.RateSources < 1 || c.RateSources > 1<<24:
		return fmt.Errorf("core: RateSources = %d: must be between 1 and %d", c.RateSources, 1<<24)
	}
	return nil
}

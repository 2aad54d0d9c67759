package dht

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/record"
	"github.com/dhtkit/dht/routing"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/sealed"
	"github.com/dhtkit/dht/wire"
)

// Config configures a Node. Start from DefaultConfig and change what you need;
// zero fields take the defaults that DefaultConfig shows. New validates it and
// names the field at fault in its error.
type Config struct {
	// ID is the node's ID. Zero (the default) derives it from the node's
	// identity key (see Key), which the node generates, or with DataDir
	// keeps in identity.key; an explicit ID gives the node no key, so it
	// cannot prove its ID, and is refused with RequireIdentity.
	ID ID
	// Key is the node's ed25519 identity key; its ID is SHA-1 of the
	// public key (docs/protocol.md, "Node identity"). Nil: generated (or
	// read from DataDir), unless ID is set or the node is ReadOnly.
	Key ed25519.PrivateKey
	// Difficulty is the network's proof of work on IDs, in bits (0 to 32,
	// default 0): a generated key is drawn until SHA-1 of its ID starts
	// with that many zero bits, about 2^Difficulty key generations, and a
	// node that requires identity refuses IDs with less. Network-wide.
	Difficulty int
	// RequireIdentity admits to the routing table, and counts as answers,
	// only nodes that proved their ID is their key's (with Difficulty) at
	// their address, so that made-up contacts never count in a lookup.
	// Network-wide: every node needs a key. Default off.
	RequireIdentity bool
	// Listen lists the UDP addresses to receive on, as "host:port". Give one
	// IPv4 and one IPv6 address for a dual-stack node. Ignored when Transport
	// is set.
	Listen []string
	// Sockets is the number of sockets bound to each listen address (with
	// SO_REUSEPORT on Linux), so that the kernel spreads load across cores.
	Sockets int
	// Transport replaces the UDP sockets, e.g. with an in-memory network in
	// tests. The node closes it on Close.
	Transport transport.Transport
	// NetworkID separates networks: nodes drop datagrams from other networks.
	NetworkID uint32
	// Secret, when set, makes the network private: every datagram is
	// authenticated and encrypted under a key derived from Secret and
	// NetworkID (XChaCha20-Poly1305, see docs/protocol.md, "Private
	// networks"), and datagrams without a valid tag, replayed or older
	// than 30 seconds by the node's Clock are dropped and counted
	// (Stats.SealedDropped) before they are parsed. Every member needs the
	// same Secret and NetworkID. At least 16 bytes; 32 random bytes are
	// best. Empty (the default) is an open network.
	Secret []byte
	// K is the bucket size and the number of nodes each value is stored on.
	K int
	// Alpha is the number of requests a lookup keeps in flight.
	Alpha int
	// RequestTimeout is the longest one attempt of a request waits for its
	// answer, and the least a request waits before it fails (see
	// MinRequestTimeout).
	RequestTimeout time.Duration
	// Attempts is how many times a request is sent in all before it counts
	// as failed: 1 sends it once and never retries. 0 selects the default,
	// 2; at most 10.
	Attempts int
	// StallAfter is how long a lookup waits for one request before it moves
	// on without it (an answer arriving later, within RequestTimeout, is
	// still used), so that a node that left costs a lookup this, not the
	// whole timeout. 0 selects half of RequestTimeout; RequestTimeout turns
	// stalling off.
	StallAfter time.Duration
	// MinRequestTimeout is the floor of adaptive timeouts: each attempt
	// waits about its contact's estimated round trip (smoothed as TCP does,
	// from the contact's own answers or, for a contact never asked, from
	// every answer), clamped to [MinRequestTimeout, RequestTimeout] and
	// doubled on each retry; a request fails no sooner than RequestTimeout
	// after its first send. A lookup stalls once a request outlived the
	// round trip expected of its contact (at most StallAfter) and moves on.
	// 0 selects the default, 100ms (RequestTimeout if lower); RequestTimeout
	// turns adaptive timeouts off.
	MinRequestTimeout time.Duration
	// MaxFailures is how many requests in a row a contact may leave
	// unanswered (after every attempt) before the routing table drops it,
	// even with no replacement waiting. 0 selects the default, 3; at most
	// 255.
	MaxFailures int
	// LookupTimeout bounds every lookup: one still running then stops with
	// what it has and says its answer may be incomplete. It matters most for
	// the lookups no caller's context bounds (joins, refreshes). 0 selects
	// the default, 30s; at least RequestTimeout.
	LookupTimeout time.Duration
	// GetQuorum is how many nodes holding values a Get hears from before it
	// stops, merging their values, so that one stale or lying node does not
	// decide the answer. 0 selects the default, 3; at most K.
	GetQuorum int
	// DisjointPaths makes Get run this many value lookups over disjoint
	// sets of nodes (S/Kademlia), no node asked by two of them, and choose
	// among their answers by the record kinds' rule, so that a group of
	// lying or eclipsing nodes must sit on every path to decide a value. It
	// costs about that many times a plain Get's requests. 0 or 1: one
	// lookup, the default; at most lookup.MaxPaths (16). Use it on networks
	// where some nodes may be malicious.
	DisjointPaths int
	// MaxKeepAlives bounds the values this node republishes for its
	// program at once (the KeepAlive option of Put). 0 selects the
	// default, 1024.
	MaxKeepAlives int
	// KeepAliveStore, when set, keeps the node's keep-alives across
	// restarts: New loads them and resumes republishing (within 30
	// seconds), and every change to them is saved before the call that
	// made it returns. Nil keeps them for the node's lifetime only.
	KeepAliveStore KeepAliveStore
	// PutBeta is a put's lookup termination rule: the lookup stops once
	// the PutBeta closest nodes it knows have answered, and the value is
	// stored on the K closest it knows, spares taking the place of those
	// that do not answer. 0 selects the default, 3 (about two thirds of
	// the requests of the full lookup, and 99.6% of replicas on the key's
	// true K closest: docs/BENCHMARKS.md); -1 runs the full lookup and
	// stores on the K closest that answered it.
	PutBeta int
	// PathCache is how many records a Get caches at the closest node on
	// its lookup's path that did not return them, with a TTL halved for
	// each node closer to the key (the paper's caching). 0 selects the
	// default, 4; -1 turns caching off.
	PathCache int
	// AnyScope lets the node use contacts whatever their address scope. By
	// default a peer may point it only at addresses as wide as its own:
	// loopback contacts only from loopback peers, private-range ones only
	// from private or loopback peers, so that a public peer cannot steer
	// requests to the node's own services or network.
	AnyScope bool
	// RequireTokens makes the node refuse every STORE, PUT, DELETE and
	// LISTEN that does not carry a write token it handed the sender's
	// address within the last 10 to 20 minutes (docs/protocol.md "Write
	// tokens"), so that nobody writes or subscribes in the name of an
	// address it does not receive at; its own lookups then ask for the
	// tokens its writes need. Off, the node hands tokens to requesters that
	// ask, and sends every datagram as before tokens (a write refused for
	// its token is sent again with the refusal's). Part of a network's
	// constants: a node
	// that requires tokens refuses the writes of nodes that predate them.
	// The zero value, off, is the default.
	RequireTokens bool
	// MaxInFlight bounds the requests in flight at once; requests beyond it
	// wait for a free slot.
	MaxInFlight int
	// MaxTTL is the longest time this node keeps a value for others; a
	// longer TTL is cut to it. Part of a network's constants.
	MaxTTL time.Duration
	// MinTTL is the shortest time this node keeps a value for others; a
	// shorter TTL is raised to it, and the node's answer says so. 0 selects
	// the default, 1 minute (at most MaxTTL).
	MinTTL time.Duration
	// DataDir, when set, is where the node keeps what must survive a
	// restart: its ID, the values it holds (a bbolt file, values.db) and
	// its routing table (contacts.json), so that a restarted node serves
	// its values at once and rejoins through the contacts it knew. Empty
	// keeps everything in memory.
	DataDir string
	// RefreshInterval is how long a bucket may go without a lookup before the
	// node refreshes it.
	RefreshInterval time.Duration
	// ReadOnly makes a short-lived client: it asks but never answers, and
	// other nodes keep it out of their routing tables.
	ReadOnly bool
	// Store keeps the values this node holds for the network; default an
	// in-memory store bounded by StoreLimits.
	Store store.Store
	// StoreLimits bounds the default in-memory store: zero fields take the
	// store's defaults (see store.Limits). It must be zero when Store is set,
	// since a Store brings its own limits.
	StoreLimits store.Limits
	// Seeds are where the node goes back whenever its routing table is
	// empty: after New, until it has a contact, and after an outage that cost
	// it every contact. It bootstraps through them again and again, waiting
	// 1s, then twice as long each time up to 5 minutes, for as long as it
	// runs; a node with contacts never does. Give the addresses you pass to
	// Bootstrap (host names must be resolved first). A ReadOnly node ignores
	// them.
	Seeds []netip.AddrPort
	// Clock is the time source; tests pass a virtual clock.
	Clock clock.Clock
	// Rand seeds the node's random source, a ChaCha8 stream that its ID,
	// timer jitter and transaction IDs are drawn from; default crypto/rand.
	// The node reads 32 bytes from Rand in New and never touches it again.
	// Pass a seeded one for reproducible runs only: peers who can guess Rand
	// can guess transaction IDs and spoof answers.
	Rand *rand.Rand
	// Logger receives the node's logs; default none.
	Logger *slog.Logger
	// ReplicateInterval is how often the node copies the values it holds
	// to their keys' current K closest nodes (digests first, values only
	// where lacking), skipping values it received within the interval;
	// default 1h. Negative turns replication off, hand-over to new nodes
	// and re-replication after departures included.
	ReplicateInterval time.Duration
	// ReplicateDebounce is how long the node waits after a neighbour left
	// or a new one arrived before it re-replicates or hands values over;
	// default 5s (or ReplicateInterval, when that is shorter), at most
	// ReplicateInterval.
	ReplicateDebounce time.Duration
	// RecordPolicy is how the node judges record kinds (package record;
	// see PutSigned, PutImmutable, PutTyped): every enveloped record it is
	// asked to store must pass the policy's Check (bad signatures, stale
	// sequences, broken type rules and compare-and-swap conflicts are
	// refused, with the reason), and every enveloped record it reads its
	// Verify (forgeries are dropped and counted in Stats.ForgedRecords).
	// The zero value, DefaultConfig's, also stores plain records (Put) and
	// knows the built-in types; RefusePlain makes a network of signed
	// records only.
	RecordPolicy record.Policy
	// RateLimit is how many requests per second one source host (an IPv4
	// address, an IPv6 /64) may have served; the others are dropped
	// unanswered, before they are decoded, and counted
	// (Stats.RateLimited). Answers to this node's own requests are never
	// limited. 0 selects the default, 200, which no ordinary node sends
	// to one peer (docs/security.md); negative turns the limit off.
	// Loopback sources are exempt unless RateLimitLoopback is set.
	RateLimit float64
	// RateBurst is how many requests one source may send at once beyond
	// RateLimit's pace; 0 selects twice RateLimit.
	RateBurst int
	// RateLimitSources bounds the source hosts the node keeps a rate
	// limit for; past it, the least recently heard from loses its own
	// (and gets a fresh burst when it returns). 0 selects the default,
	// 16,384.
	RateLimitSources int
	// RateLimitLoopback limits loopback sources too (benchmarks and tests
	// of the limit on 127.0.0.0/8); by default they are this machine's
	// own programs and exempt.
	RateLimitLoopback bool
	// Diversity caps the routing table's contacts per /24 (IPv4) or /48
	// (IPv6): by default 2 per bucket and 10 in all, for global unicast
	// addresses only, so that one cheap block of addresses cannot fill the
	// table with IDs of its choosing. See routing.Diversity.
	Diversity routing.Diversity
}

// DefaultConfig returns the configuration of an ordinary node listening on
// every IPv4 interface at a port the system picks.
func DefaultConfig() Config {
	return Config{
		Listen:          []string{"0.0.0.0:0"},
		Sockets:         1,
		K:               core.DefaultK,
		Alpha:           core.DefaultAlpha,
		RequestTimeout:  core.DefaultRequestTimeout,
		Attempts:        core.DefaultAttempts,
		MaxFailures:     core.DefaultMaxFailures,
		LookupTimeout:   core.DefaultLookupTimeout,
		GetQuorum:       core.DefaultGetQuorum,
		MaxInFlight:     core.DefaultMaxInFlight,
		MaxTTL:          core.DefaultMaxTTL,
		MinTTL:          core.DefaultMinTTL,
		RefreshInterval: core.DefaultRefreshInterval,

		ReplicateInterval: core.DefaultReplicateInterval,
		ReplicateDebounce: core.DefaultReplicateDebounce,
		RateLimit:         core.DefaultRateLimit,
		RateLimitSources:  core.DefaultRateSources,
		Diversity:         routing.Diversity{PerBucket: routing.DefaultPerBucket, PerTable: routing.DefaultPerTable},
	}
}

// validate fills zero fields with defaults and rejects values that cannot
// work, with an error that names the field and what it allows.
func (c *Config) validate() error {
	d := DefaultConfig()
	if c.Transport == nil && len(c.Listen) == 0 {
		c.Listen = d.Listen
	}
	if c.Sockets == 0 {
		c.Sockets = d.Sockets
	}
	if c.K == 0 {
		c.K = d.K
	}
	if c.Alpha == 0 {
		c.Alpha = d.Alpha
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.Attempts == 0 {
		c.Attempts = d.Attempts
	}
	if c.StallAfter == 0 {
		c.StallAfter = c.RequestTimeout / 2
	}
	if c.LookupTimeout == 0 {
		c.LookupTimeout = d.LookupTimeout
	}
	if c.MinRequestTimeout == 0 {
		c.MinRequestTimeout = min(core.DefaultMinRequestTimeout, c.RequestTimeout)
	}
	if c.GetQuorum == 0 {
		c.GetQuorum = min(d.GetQuorum, c.K)
	}
	if c.MaxFailures == 0 {
		c.MaxFailures = d.MaxFailures
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = d.MaxInFlight
	}
	if c.MaxTTL == 0 {
		c.MaxTTL = d.MaxTTL
	}
	if c.RefreshInterval == 0 {
		c.RefreshInterval = d.RefreshInterval
	}
	if c.MinTTL == 0 {
		c.MinTTL = min(d.MinTTL, c.MaxTTL)
	}
	switch {
	case c.K < 1 || c.K > wire.MaxContacts:
		return fmt.Errorf("dht: Config.K is %d: must be between 1 and %d", c.K, wire.MaxContacts)
	case c.Alpha < 1 || c.Alpha > c.K:
		return fmt.Errorf("dht: Config.Alpha is %d: must be between 1 and K (%d)", c.Alpha, c.K)
	case c.Sockets < 1 || c.Sockets > 64:
		return fmt.Errorf("dht: Config.Sockets is %d: must be between 1 and 64", c.Sockets)
	case c.RequestTimeout < time.Millisecond:
		return fmt.Errorf("dht: Config.RequestTimeout is %v: must be at least 1ms", c.RequestTimeout)
	case c.Attempts < 1 || c.Attempts > 10:
		return fmt.Errorf("dht: Config.Attempts is %d: must be between 1 (no retry) and 10", c.Attempts)
	case c.StallAfter < 0 || c.StallAfter > c.RequestTimeout:
		return fmt.Errorf("dht: Config.StallAfter is %v: must be between 0 and RequestTimeout (%v)", c.StallAfter, c.RequestTimeout)
	case c.MinRequestTimeout < 0 || c.MinRequestTimeout > c.RequestTimeout:
		return fmt.Errorf("dht: Config.MinRequestTimeout is %v: must be positive and at most RequestTimeout (%v)", c.MinRequestTimeout, c.RequestTimeout)
	case c.MaxFailures < 1 || c.MaxFailures > routing.MaxFailuresLimit:
		return fmt.Errorf("dht: Config.MaxFailures is %d: must be between 1 and %d", c.MaxFailures, routing.MaxFailuresLimit)
	case c.LookupTimeout < c.RequestTimeout:
		return fmt.Errorf("dht: Config.LookupTimeout is %v: must be at least RequestTimeout (%v)", c.LookupTimeout, c.RequestTimeout)
	case c.GetQuorum < 1 || c.GetQuorum > c.K:
		return fmt.Errorf("dht: Config.GetQuorum is %d: must be between 1 and K (%d)", c.GetQuorum, c.K)
	case c.DisjointPaths < 0 || c.DisjointPaths > lookup.MaxPaths:
		return fmt.Errorf("dht: Config.DisjointPaths is %d: must be between 0 (one lookup) and %d", c.DisjointPaths, lookup.MaxPaths)
	case c.MaxKeepAlives < 0:
		return fmt.Errorf("dht: Config.MaxKeepAlives is %d: must be at least 0 (0 for the default %d)", c.MaxKeepAlives, core.DefaultMaxKeepAlives)
	case c.PutBeta < -1 || c.PutBeta > c.K:
		return fmt.Errorf("dht: Config.PutBeta is %d: must be between 1 and K (%d), 0 for the default %d, or -1 for the full lookup", c.PutBeta, c.K, core.DefaultPutBeta)
	case c.PathCache < -1 || c.PathCache > wire.MaxRecords:
		return fmt.Errorf("dht: Config.PathCache is %d: must be between 1 and %d, 0 for the default %d, or -1 for no caching", c.PathCache, wire.MaxRecords, core.DefaultPathCache)
	case c.MaxInFlight < 1:
		return fmt.Errorf("dht: Config.MaxInFlight is %d: must be at least 1", c.MaxInFlight)
	case c.MaxTTL < time.Second:
		return fmt.Errorf("dht: Config.MaxTTL is %v: must be at least 1s", c.MaxTTL)
	case c.MinTTL < time.Second || c.MinTTL > c.MaxTTL:
		return fmt.Errorf("dht: Config.MinTTL is %v: must be between 1s and MaxTTL (%v)", c.MinTTL, c.MaxTTL)
	case c.RefreshInterval < time.Second:
		return fmt.Errorf("dht: Config.RefreshInterval is %v: must be at least 1s", c.RefreshInterval)
	}
	if c.ReplicateInterval == 0 {
		c.ReplicateInterval = d.ReplicateInterval
	}
	if c.ReplicateDebounce == 0 || (c.ReplicateDebounce == d.ReplicateDebounce && c.ReplicateInterval > 0) {
		// The default shrinks to an interval shorter than itself.
		c.ReplicateDebounce = min(d.ReplicateDebounce, max(c.ReplicateInterval, time.Second))
	}
	switch {
	case c.ReplicateInterval > 0 && c.ReplicateInterval < time.Second:
		return fmt.Errorf("dht: Config.ReplicateInterval is %v: must be at least 1s (or negative: no replication)", c.ReplicateInterval)
	case c.ReplicateDebounce < 0 || (c.ReplicateInterval > 0 && c.ReplicateDebounce > c.ReplicateInterval):
		return fmt.Errorf("dht: Config.ReplicateDebounce is %v: must be positive and at most ReplicateInterval (%v)", c.ReplicateDebounce, c.ReplicateInterval)
	}
	switch {
	case c.RateLimit != c.RateLimit || c.RateLimit > 1e9:
		return fmt.Errorf("dht: Config.RateLimit is %v: must be a number of requests per second up to 1e9 (0 for the default %d, negative: no limit)", c.RateLimit, core.DefaultRateLimit)
	case c.RateBurst < 0:
		return fmt.Errorf("dht: Config.RateBurst is %d: must be at least 0 (0 for twice RateLimit)", c.RateBurst)
	case c.RateLimitSources < 0 || c.RateLimitSources > 1<<24:
		return fmt.Errorf("dht: Config.RateLimitSources is %d: must be between 0 (the default %d) and %d", c.RateLimitSources, core.DefaultRateSources, 1<<24)
	}
	if err := c.Diversity.Validate(); err != nil {
		return fmt.Errorf("dht: Config.Diversity: %w", err)
	}
	if err := checkStoreLimits(c.StoreLimits, c.Store != nil); err != nil {
		return err
	}
	for i, a := range c.Seeds {
		ip := a.Addr()
		if !a.IsValid() || a.Port() == 0 || ip.IsUnspecified() || ip.IsMulticast() {
			return fmt.Errorf("dht: Config.Seeds[%d] is %v: must be a node's address, with a port", i, a)
		}
	}
	if len(c.Secret) > 0 && len(c.Secret) < sealed.MinSecret {
		return fmt.Errorf("dht: Config.Secret has %d bytes: a private network's secret must have at least %d (32 random bytes are best); leave it empty for an open network", len(c.Secret), sealed.MinSecret)
	}
	if c.Transport == nil {
		for _, a := range c.Listen {
			if err := checkHostPort(a); err != nil {
				return fmt.Errorf("dht: Config.Listen %q: %w", a, err)
			}
		}
	}
	return nil
}

// checkStoreLimits rejects limits that say something other than the user
// probably means: a negative bound (the store would quietly take its
// default), a value size no STORE request can carry, or limits for a Store
// that brings its own.
func checkStoreLimits(l store.Limits, haveStore bool) error {
	switch {
	case haveStore && l != (store.Limits{}):
		return fmt.Errorf("dht: Config.StoreLimits is set along with Config.Store: it applies to the default store only; give Store its own limits")
	case l.MaxValues < 0:
		return fmt.Errorf("dht: Config.StoreLimits.MaxValues is %d: must be at least 0 (0 for the default %d)", l.MaxValues, store.DefaultMaxValues)
	case l.MaxPerKey < 0:
		return fmt.Errorf("dht: Config.StoreLimits.MaxPerKey is %d: must be at least 0 (0 for the default %d)", l.MaxPerKey, store.DefaultMaxPerKey)
	case l.MaxBytes < 0 || l.MaxPerSource < 0 || l.MaxBytesPerSource < 0 || l.MaxPerKeyPerSource < 0 ||
		l.MaxPerSite < 0 || l.MaxBytesPerSite < 0 || l.MaxPerKeyPerSite < 0 || l.MaxBytesPerKey < 0 ||
		l.MaxPerPublisher < 0 || l.MaxBytesPerKeyPerSource < 0 || l.MaxBytesPerKeyPerSite < 0:
		return fmt.Errorf("dht: Config.StoreLimits %+v: a bound is negative; each must be at least 0 (0 for its default)", l)
	case l.MaxValueSize < 0 || l.MaxValueSize > wire.MaxRecordSize:
		return fmt.Errorf("dht: Config.StoreLimits.MaxValueSize is %d: must be between 0 (the default %d) and %d, the most a record carries", l.MaxValueSize, store.DefaultMaxValueSize, wire.MaxRecordSize)
	}
	return nil
}

// checkHostPort accepts "host:port" where host is an IP literal or a name and
// port is a number from 0 to 65535.
func checkHostPort(s string) error {
	if _, err := netip.ParseAddrPort(s); err == nil {
		return nil
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return fmt.Errorf("want host:port")
	}
	host, port := s[:i], s[i+1:]
	if strings.HasPrefix(host, "[") != strings.HasSuffix(host, "]") {
		return fmt.Errorf("unbalanced brackets")
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p < 0 || p > 65535 || fmt.Sprint(p) != port {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	return nil
}

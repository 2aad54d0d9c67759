package dht

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/sealed"
	"github.com/dhtkit/dht/transport/udp"
)

// ID is a point in the 160-bit keyspace: a node's ID or a key.
type ID = id.ID

// Contact is a node's ID and UDP address.
type Contact = id.Contact

// Key hashes a string key into the keyspace with SHA-1, as other Go DHTs do,
// so that the same string names the same key everywhere.
func Key(s string) ID { return id.Key(s) }

// ParseID parses the 40-hex-digit form of an ID.
func ParseID(s string) (ID, error) { return id.Parse(s) }

// Errors returned by Node's methods, possibly wrapped: test with errors.Is.
var (
	// ErrNotFound: the lookup converged and no node had a value for the key.
	ErrNotFound = core.ErrNotFound
	// ErrNoPeers: the node knows no other node to ask (bootstrap first).
	ErrNoPeers = core.ErrNoPeers
	// ErrTimeout: the nodes asked did not answer.
	ErrTimeout = core.ErrTimeout
	// ErrRejected: every node that answered refused the value; the error text
	// carries the first reason.
	ErrRejected = core.ErrRejected
	// ErrClosed: the node was closed.
	ErrClosed = core.ErrClosed
)

// Node is a running DHT node. Its methods are safe for concurrent use. Make
// one with New; the zero value is not usable.
type Node struct {
	c    *core.Node
	done chan struct{} // closed by Close
	once sync.Once
	data *dataDir // nil without Config.DataDir
	keep *keepState
}

// New starts a node: it validates cfg, opens its sockets and starts answering
// requests. Call Bootstrap to join a network; a node that never bootstraps is
// the first node of a new one.
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	var data *dataDir
	if cfg.DataDir != "" {
		var err error
		if data, err = openDataDir(&cfg); err != nil {
			return nil, err
		}
	}
	fail := func(err error) (*Node, error) {
		if data != nil {
			data.abort()
		}
		return nil, err
	}
	tr := cfg.Transport
	if tr == nil {
		var ts []transport.Transport
		for _, a := range cfg.Listen {
			t, err := udp.Listen(udp.Config{Addr: a, Sockets: cfg.Sockets})
			if err != nil {
				for _, t := range ts {
					t.Close()
				}
				return fail(fmt.Errorf("dht: listening on %s: %w", a, err))
			}
			ts = append(ts, t)
		}
		tr = ts[0]
		if len(ts) > 1 {
			tr = transport.Multi(ts...)
		}
	}
	if len(cfg.Secret) > 0 {
		s, err := sealed.New(tr, sealed.Config{Secret: cfg.Secret, Network: cfg.NetworkID, Clock: cfg.Clock})
		if err != nil {
			tr.Close()
			return fail(fmt.Errorf("dht: Config.Secret: %w", err))
		}
		tr = s
	}
	keep := &keepState{}
	c, err := core.New(core.Config{
		ID:              cfg.ID,
		Key:             cfg.Key,
		GenerateKey:     true, // a node without ID and Key owns a generated one
		Difficulty:      cfg.Difficulty,
		RequireIdentity: cfg.RequireIdentity,
		K:               cfg.K,
		Alpha:           cfg.Alpha,
		Network:         cfg.NetworkID,
		ReadOnly:        cfg.ReadOnly,
		RequestTimeout:  cfg.RequestTimeout,
		StallAfter:      cfg.StallAfter,
		Attempts:        cfg.Attempts,
		MaxInFlight:     cfg.MaxInFlight,
		MaxTTL:          cfg.MaxTTL,
		MinTTL:          cfg.MinTTL,
		RefreshInterval: cfg.RefreshInterval,
		MaxFailures:     cfg.MaxFailures,
		LookupTimeout:   cfg.LookupTimeout,
		GetQuorum:       cfg.GetQuorum,
		DisjointPaths:   cfg.DisjointPaths,
		MaxKeepAlives:   cfg.MaxKeepAlives,
		PutBeta:         cfg.PutBeta,
		PathCache:       cfg.PathCache,
		KeepAliveEnded:  func(id.ID, id.ID, error) { keep.saveLater() }, // superseded
		AnyScope:        cfg.AnyScope,
		RequireTokens:   cfg.RequireTokens,
		Seeds:           cfg.Seeds,
		Clock:           cfg.Clock,
		Transport:       tr,
		Store:           cfg.Store,
		StoreLimits:     cfg.StoreLimits,
		Rand:            cfg.Rand,
		Logger:          cfg.Logger,

		MinRequestTimeout: cfg.MinRequestTimeout,
		ReplicateInterval: cfg.ReplicateInterval,
		ReplicateDebounce: cfg.ReplicateDebounce,
		RecordPolicy:      cfg.RecordPolicy,
		RateLimit:         cfg.RateLimit,
		RateBurst:         cfg.RateBurst,
		RateSources:       cfg.RateLimitSources,
		RateLimitLoopback: cfg.RateLimitLoopback,
		Diversity:         cfg.Diversity,
	})
	if err != nil {
		tr.Close()
		return fail(fmt.Errorf("dht: %w", err))
	}
	n := &Node{c: c, done: make(chan struct{}), data: data}
	keep.n, keep.store = n, cfg.KeepAliveStore
	n.keep = keep
	if err := keep.restore(); err != nil {
		c.Close()
		return fail(err)
	}
	if data != nil {
		data.start(n)
	}
	return n, nil
}

// ID returns the node's ID.
func (n *Node) ID() ID { return n.c.ID() }

// PublicKey returns the node's identity key, whose SHA-1 is its ID, or nil
// for a node without one (an explicit Config.ID, or ReadOnly).
func (n *Node) PublicKey() ed25519.PublicKey { return n.c.PublicKey() }

// Addr returns the address the node receives on (the first, for a node
// listening on several).
func (n *Node) Addr() netip.AddrPort { return n.c.Addr() }

// Addrs returns every address the node receives on.
func (n *Node) Addrs() []netip.AddrPort { return n.c.Addrs() }

// Close stops the node and releases its sockets. Calls in progress return
// ErrClosed. Close is idempotent.
func (n *Node) Close() error {
	err := n.c.Close()
	n.once.Do(func() {
		close(n.done)
		n.keep.close()
		if n.data != nil {
			err = errors.Join(err, n.data.close(n.c))
		}
	})
	return err
}

// wait runs an asynchronous core operation and blocks until it reports or ctx
// is done, in which case the operation is canceled.
func wait[T any](ctx context.Context, start func(cb func(T, error)) (cancel func())) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1) // the operation reports exactly once
	cancel := start(func(v T, err error) { ch <- result{v, err} })
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		cancel()
		var zero T
		return zero, ctx.Err()
	}
}

// Bootstrap joins the network through the given seed addresses ("host:port"):
// it pings them, looks up its own ID and refreshes its routing table. It
// succeeds when at least one seed answers. With no seeds it returns at once:
// the node starts a new network.
func (n *Node) Bootstrap(ctx context.Context, seeds ...string) error {
	addrs, err := resolve(ctx, seeds)
	if err != nil && (n.data == nil || len(n.data.saved) == 0) {
		return err
	}
	if n.data != nil {
		// The contacts it knew before a restart: they let the node rejoin
		// when every seed is down (or unknown to DNS).
		addrs = append(addrs, n.data.saved...)
	}
	_, err = wait(ctx, func(cb func(*core.BootstrapResult, error)) func() { return n.c.Bootstrap(addrs, cb) })
	if err != nil {
		return fmt.Errorf("dht: bootstrap: %w", err)
	}
	return nil
}

// resolve turns "host:port" strings into addresses, looking names up.
func resolve(ctx context.Context, hostports []string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, s := range hostports {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
			continue
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("dht: seed %q: want host:port", s)
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("dht: seed %q: port is not a number from 0 to 65535", s)
		}
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("dht: seed %q: %w", s, err)
		}
		for _, ip := range ips {
			out = append(out, netip.AddrPortFrom(ip.Unmap(), uint16(p)))
		}
	}
	return out, nil
}

// Outcome is what one node did with a put's value or a delete.
type Outcome = core.Outcome

// Outcomes of a put or a delete at one node.
const (
	NoAnswer = core.NoAnswer // the node never answered, after every retry
	Accepted = core.Accepted // the node stored the value (or the withdrawal)
	Refused  = core.Refused  // the node refused; Receipt.Reason says why
)

// Receipt is one node's answer to a put or a delete.
type Receipt = core.Receipt

// PutOption is an option of Put (and, for the publisher and version, of
// Delete).
type PutOption func(*putOptions)

type putOptions struct {
	ttl       time.Duration
	quorum    int
	publisher ID
	anonymous bool
	version   uint64
	keepAlive bool
	cas       uint64 // WithCAS (records.go)
	hasCAS    bool
}

// DefaultTTL is the lifetime Put asks for without WithTTL.
const DefaultTTL = time.Hour

// WithTTL sets how long the value should live (default DefaultTTL). Each
// node clamps it to its own bounds and says what it granted in its
// receipt.
func WithTTL(d time.Duration) PutOption { return func(o *putOptions) { o.ttl = d } }

// WithQuorum makes Put fail, with a *QuorumError carrying the receipts,
// unless at least k nodes (this one included) accepted the value.
func WithQuorum(k int) PutOption { return func(o *putOptions) { o.quorum = k } }

// WithPublisher sets who owns the value within its key (default the node's
// ID): a later put by the same publisher with a higher version replaces it,
// and only that publisher's Delete withdraws it.
func WithPublisher(p ID) PutOption { return func(o *putOptions) { o.publisher = p } }

// Anonymous makes the publisher the SHA-1 of the value, so that equal values
// put by anyone are one record (and anyone can withdraw it).
func Anonymous() PutOption { return func(o *putOptions) { o.anonymous = true } }

// WithVersion sets the value's version (default the clock in microseconds).
// A node keeps the highest version of each publisher's value it has seen,
// whatever order versions arrive in.
func WithVersion(v uint64) PutOption { return func(o *putOptions) { o.version = v } }

func options(opts []PutOption) putOptions {
	o := putOptions{ttl: DefaultTTL}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// PutResult says what a Put achieved.
type PutResult struct {
	Key       ID
	Publisher ID
	Version   uint64
	// TTL is the lifetime asked for; each receipt says what its node
	// granted.
	TTL time.Duration
	// Receipts holds one receipt per node asked to store the value, this
	// one first when it is among the K closest to the key.
	Receipts []Receipt
	// Stored counts the nodes that accepted the value, this one included.
	Stored int
	// Local is set when this node keeps a copy itself.
	Local bool
}

// Count returns how many receipts have outcome o.
func (r PutResult) Count(o Outcome) int {
	c := 0
	for _, x := range r.Receipts {
		if x.Outcome == o {
			c++
		}
	}
	return c
}

// ErrQuorum is matched (errors.Is) by the *QuorumError of a Put that fewer
// nodes accepted than WithQuorum asked for.
var ErrQuorum = core.ErrQuorum

// QuorumError is the error of a Put below its quorum; Result has the
// receipts.
type QuorumError struct {
	Want, Got int
	Result    PutResult
}

func (e *QuorumError) Error() string {
	return fmt.Sprintf("dht: put %s: %v: stored on %d of %d asked, %d wanted (%d refused, %d no answer)",
		e.Result.Key.Short(), ErrQuorum, e.Got, len(e.Result.Receipts), e.Want, e.Result.Count(Refused), e.Result.Count(NoAnswer))
}

// Unwrap makes errors.Is(err, ErrQuorum) hold.
func (e *QuorumError) Unwrap() error { return ErrQuorum }

func putResult(r *core.PutResult) PutResult {
	if r == nil {
		return PutResult{}
	}
	return PutResult{Key: r.Key, Publisher: r.Publisher, Version: r.Version, TTL: r.TTL, Receipts: r.Receipts, Stored: r.Stored, Local: r.Local}
}

// Put stores value under key on the K nodes closest to the key, owned by a
// publisher (default this node's ID) at a version (default now): storing
// again as the same publisher replaces the value. It succeeds when at
// least one other node accepted the value, and returns a receipt per node
// asked: accepted with the TTL granted, refused with the reason, or no
// answer. It fails with ErrNoPeers when no node answered, ErrRejected when
// every node asked refused it, ErrTimeout when none answered, and a
// *QuorumError (ErrQuorum) below WithQuorum; the result is filled in as far
// as the put got.
func (n *Node) Put(ctx context.Context, key ID, value []byte, opts ...PutOption) (PutResult, error) {
	o := options(opts)
	if o.hasCAS {
		return PutResult{}, errors.New("dht: WithCAS applies to signed and typed records only (PutSigned, PutTyped)")
	}
	return n.putRequest(ctx, core.PutRequest{Key: key, Value: value, TTL: o.ttl, Publisher: o.publisher, Anonymous: o.anonymous, Version: o.version, Quorum: o.quorum, KeepAlive: o.keepAlive})
}

// putRequest runs a put and shapes its result and error as Put documents.
func (n *Node) putRequest(ctx context.Context, req core.PutRequest) (PutResult, error) {
	key := req.Key
	r, err := wait(ctx, func(cb func(*core.PutResult, error)) func() { return n.c.PutRecord(req, cb) })
	if serr := n.keep.save(); serr != nil {
		err = errors.Join(err, serr)
	}
	out := putResult(r)
	var qe *core.QuorumError
	if errors.As(err, &qe) {
		return out, &QuorumError{Want: qe.Want, Got: qe.Got, Result: out}
	}
	if err != nil {
		return out, fmt.Errorf("dht: put %s: %w", key.Short(), err)
	}
	return out, nil
}

// Value is one publisher's value under a key.
type Value struct {
	Data      []byte
	Publisher ID
	Version   uint64
	// TTL is the longest time a node holding this version said it keeps it.
	TTL time.Duration
	// Envelope marks Data as a record envelope (package record): a signed,
	// typed or content-addressed record, verified before Get returned it.
	// GetMutable, GetTyped and GetImmutable read its value.
	Envelope bool
}

// GetResult is what Get found.
type GetResult struct {
	// Values holds, for each publisher, the newest version that the nodes
	// asked hold, newest first; withdrawn values are left out.
	Values []Value
	// Holders counts the nodes whose records were merged (this one
	// included when it holds the key).
	Holders int
	// Incomplete is empty when the answer is complete as far as the lookup
	// can tell, and otherwise says why values may be missing: the lookup
	// stopped at a bound, or a value's parts could not be fetched.
	Incomplete string
}

// Get returns the values stored under key. It asks the nodes closest to the
// key until several of them (Config.GetQuorum) have answered or every one of
// the closest has, and merges what they hold: for each publisher the newest
// version wins, and a withdrawal beats the value it withdrew, so that a
// stale or hostile node does not decide the answer. Values too large for
// one datagram are fetched in parts. It fails with ErrNotFound when no node
// has a value, and with ErrNoPeers (with ErrNotFound) when no node answered
// at all.
func (n *Node) Get(ctx context.Context, key ID) (GetResult, error) {
	r, err := wait(ctx, func(cb func(*core.LookupResult, error)) func() { return n.c.Get(key, cb) })
	if err != nil {
		return GetResult{}, fmt.Errorf("dht: get %s: %w", key.Short(), err)
	}
	out := GetResult{Holders: r.Holders, Incomplete: r.Incomplete}
	for _, rec := range r.Records {
		out.Values = append(out.Values, Value{Data: rec.Data, Publisher: rec.Publisher, Version: rec.Version, TTL: rec.TTL, Envelope: rec.Envelope})
	}
	return out, nil
}

// DeleteResult says what a Delete achieved.
type DeleteResult struct {
	Key       ID
	Publisher ID
	Version   uint64
	// Receipts holds one receipt per node asked; Receipt.Found says which
	// held a live value of the publisher.
	Receipts []Receipt
	// Found counts the nodes that held a live value of the publisher.
	Found int
}

// Delete withdraws the publisher's value (WithPublisher, default this
// node's ID) under key from the K nodes closest to it. Each keeps a
// tombstone at least as long as the value would have lived, so that a node
// that missed the withdrawal cannot bring the value back. It fails with
// ErrNotFound when no node held a value of that publisher (a value of
// another publisher is not touched). It ends the value's keep-alive, if it
// had one (see KeepAlive).
func (n *Node) Delete(ctx context.Context, key ID, opts ...PutOption) (DeleteResult, error) {
	o := options(opts)
	req := core.DeleteRequest{Key: key, Publisher: o.publisher, Version: o.version}
	r, err := wait(ctx, func(cb func(*core.DeleteResult, error)) func() { return n.c.Delete(req, cb) })
	if serr := n.keep.save(); serr != nil {
		err = errors.Join(err, serr)
	}
	var out DeleteResult
	if r != nil {
		out = DeleteResult{Key: r.Key, Publisher: r.Publisher, Version: r.Version, Receipts: r.Receipts, Found: r.Found}
	}
	if err != nil {
		return out, fmt.Errorf("dht: delete %s: %w", key.Short(), err)
	}
	return out, nil
}

// EventKind says what changed under a key.
type EventKind = core.EventKind

// Event kinds.
const (
	EventPut     = core.EventPut     // a publisher's value appeared (or was there when Listen started)
	EventReplace = core.EventReplace // a publisher replaced its value with a newer version
	EventDelete  = core.EventDelete  // a publisher withdrew its value
)

// Event is one change under a listened-to key. For EventDelete, Value has
// the publisher and version of the withdrawal and no data.
type Event struct {
	Kind  EventKind
	Key   ID
	Value Value
}

// listenBuffer is how many events a Listen channel holds for a slow reader;
// beyond it the oldest wait is not possible (the node does not block), so
// events are dropped and Listen's reader sees a gap it can close with Get.
const listenBuffer = 256

// Listen subscribes to key at the nodes closest to it and returns a channel
// of every new, replaced or withdrawn value under it, starting with the
// values held now, until ctx ends or the node closes (then the channel is
// closed). The subscription follows the key's closest nodes as they change.
// Events arrive in the order the node saw them, so a replacement never
// comes before the value it replaces. A reader that falls more than 256
// events behind loses the newest ones (the node never blocks on it); the
// node's own queue behind the channel keeps, when events come faster than
// even that, only the newest event of each publisher (Stats counts what it
// coalesced or lost). Values too large for a notification are fetched from
// the node that notified them, at most two at a time with eight waiting;
// beyond that a change is missed until its publisher's next one.
func (n *Node) Listen(ctx context.Context, key ID) (<-chan Event, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch := make(chan Event, listenBuffer)
	var mu sync.Mutex
	closed := false
	cancel := n.c.Listen(key, func(e core.Event) {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return
		}
		ev := Event{Kind: e.Kind, Key: e.Key, Value: Value{Data: e.Record.Data, Publisher: e.Record.Publisher, Version: e.Record.Version, TTL: e.Record.TTL}}
		select {
		case ch <- ev:
		default: // a reader this far behind: drop rather than block the node
		}
	})
	go func() {
		select {
		case <-ctx.Done():
		case <-n.done:
		}
		cancel()
		mu.Lock()
		closed = true
		close(ch)
		mu.Unlock()
	}()
	return ch, nil
}

// FindNode returns up to K nodes closest to target that answered, closest
// first.
func (n *Node) FindNode(ctx context.Context, target ID) ([]Contact, error) {
	r, err := wait(ctx, func(cb func(*core.LookupResult, error)) func() { return n.c.FindNode(target, cb) })
	if err != nil {
		return nil, fmt.Errorf("dht: find node %s: %w", target.Short(), err)
	}
	return r.Closest, nil
}

// Ping asks the node at addr ("host:port") whether it is alive and returns
// its contact.
func (n *Node) Ping(ctx context.Context, addr string) (Contact, error) {
	addrs, err := resolve(ctx, []string{addr})
	if err != nil {
		return Contact{}, err
	}
	if len(addrs) == 0 {
		return Contact{}, fmt.Errorf("dht: ping %s: no address", addr)
	}
	c, err := wait(ctx, func(cb func(id.Contact, error)) func() { return n.c.Ping(addrs[0], cb) })
	if err != nil {
		return Contact{}, fmt.Errorf("dht: ping %s: %w", addr, err)
	}
	return c, nil
}

// Stats is a snapshot of a node's counters.
type Stats = core.Stats

// Stats returns the node's counters.
func (n *Node) Stats() Stats { return n.c.Stats() }

// StoredBytes returns the bytes of the values this node holds for the
// network.
func (n *Node) StoredBytes() int { return n.c.Store().Bytes() }

// Contacts returns the contacts in the node's routing table.
func (n *Node) Contacts() []Contact {
	es := n.c.Contacts()
	out := make([]Contact, len(es))
	for i, e := range es {
		out[i] = e.Contact
	}
	return out
}

// TraceQuery is one request of a traced lookup.
type TraceQuery = core.TraceQuery

// LookupTrace is what a traced lookup found and how.
type LookupTrace struct {
	Target ID
	// Closest holds up to K nodes closest to Target that answered.
	Closest []Contact
	// Values holds, for a value lookup, what the holders asked returned
	// inline (values too large for an answer are not fetched).
	Values []Value
	// Queries lists every request the lookup sent, in order.
	Queries  []TraceQuery
	Rounds   int
	Duration time.Duration
	// Incomplete says why the lookup may have stopped short, if it did.
	Incomplete string
}

// Lookup runs one lookup of target, of its K closest nodes or (values) of
// the records stored under it, and reports each request it made: whom it
// asked in which round, how long each answer took and what it carried.
func (n *Node) Lookup(ctx context.Context, target ID, values bool) (LookupTrace, error) {
	r, err := wait(ctx, func(cb func(*core.LookupResult, error)) func() { return n.c.TraceLookup(target, values, cb) })
	if err != nil {
		return LookupTrace{}, fmt.Errorf("dht: lookup %s: %w", target.Short(), err)
	}
	out := LookupTrace{Target: target, Closest: r.Closest, Queries: r.Trace, Rounds: r.Rounds, Duration: r.Duration, Incomplete: r.Incomplete}
	for _, rec := range r.Records {
		out.Values = append(out.Values, Value{Data: rec.Data, Publisher: rec.Publisher, Version: rec.Version, TTL: rec.TTL})
	}
	return out, nil
}

// TableContact is one routing-table entry.
type TableContact struct {
	Contact
	LastSeen time.Time
	Verified bool // its address answered one of this node's requests
	Failures int  // requests in a row it left unanswered
}

// Bucket is one k-bucket of the routing table.
type Bucket struct {
	// Index is the number of leading bits its contacts share with the
	// node's ID; their XOR distance from it is in [2^(159-Index),
	// 2^(160-Index)) (the last bucket: below 2^(160-Index)).
	Index        int
	Contacts     []TableContact
	Replacements int
	// LookedUp is when the node last looked up an ID in the bucket's range.
	LookedUp time.Time
}

// Table returns the node's routing table, bucket by bucket, and K (each
// bucket's capacity).
func (n *Node) Table() ([]Bucket, int) {
	bs, k := n.c.Table()
	out := make([]Bucket, len(bs))
	for i, b := range bs {
		out[i] = Bucket{Index: b.Index, Replacements: b.Replacements, LookedUp: b.Touched}
		for _, e := range b.Contacts {
			out[i].Contacts = append(out[i].Contacts, TableContact{Contact: e.Contact, LastSeen: e.LastSeen, Verified: e.Verified, Failures: e.Failures})
		}
	}
	return out, k
}

// StoredRecord is one record this node holds for the network.
type StoredRecord struct {
	Publisher ID
	Version   uint64
	Size      int
	Expires   time.Time
	Deleted   bool // a withdrawal, kept until Expires
}

// StoredKey is one key this node holds records under.
type StoredKey struct {
	Key     ID
	Records []StoredRecord
	Bytes   int
}

// StoredKeys returns up to limit of the keys this node holds, in
// increasing order, starting after the key after (the zero ID: from the
// first), and whether more follow.
func (n *Node) StoredKeys(after ID, limit int) ([]StoredKey, bool) {
	st := n.c.Store()
	var keys []ID
	st.Keys(func(k ID) bool {
		if after.IsZero() || bytes.Compare(k[:], after[:]) > 0 {
			keys = append(keys, k)
		}
		return true
	})
	slices.SortFunc(keys, func(a, b ID) int { return bytes.Compare(a[:], b[:]) })
	more := false
	if limit >= 0 && len(keys) > limit {
		keys, more = keys[:limit], true
	}
	now := n.c.Config().Clock.Now()
	out := make([]StoredKey, 0, len(keys))
	for _, k := range keys {
		sk := StoredKey{Key: k}
		for _, v := range st.Records(k, now, nil) {
			sk.Records = append(sk.Records, StoredRecord{Publisher: v.Publisher, Version: v.Version, Size: len(v.Data), Expires: v.Expires, Deleted: v.Deleted})
			sk.Bytes += len(v.Data)
		}
		if len(sk.Records) > 0 {
			out = append(out, sk)
		}
	}
	return out, more
}

// Histogram is a distribution over fixed buckets, as Stats reports
// latencies and the shapes of lookups.
type Histogram = core.Histogram

package dht

import (
	"context"

	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/transport"
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
	c *core.Node
}

// New starts a node: it validates cfg, opens its sockets and starts answering
// requests. Call Bootstrap to join a network; a node that never bootstraps is
// the first node of a new one.
func New(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
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
				return nil, fmt.Errorf("dht: listening on %s: %w", a, err)
			}
			ts = append(ts, t)
		}
		tr = ts[0]
		if len(ts) > 1 {
			tr = transport.Multi(ts...)
		}
	}
	c, err := core.New(core.Config{
		ID:              cfg.ID,
		K:               cfg.K,
		Alpha:           cfg.Alpha,
		Network:         cfg.NetworkID,
		ReadOnly:        cfg.ReadOnly,
		RequestTimeout:  cfg.RequestTimeout,
		StallAfter:      cfg.StallAfter,
		Attempts:        cfg.Attempts,
		MaxInFlight:     cfg.MaxInFlight,
		MaxTTL:          cfg.MaxTTL,
		RefreshInterval: cfg.RefreshInterval,
		MaxFailures:     cfg.MaxFailures,
		LookupTimeout:   cfg.LookupTimeout,
		GetQuorum:       cfg.GetQuorum,
		AnyScope:        cfg.AnyScope,
		Seeds:           cfg.Seeds,
		Clock:           cfg.Clock,
		Transport:       tr,
		Store:           cfg.Store,
		StoreLimits:     cfg.StoreLimits,
		Rand:            cfg.Rand,
		Logger:          cfg.Logger,
	})
	if err != nil {
		tr.Close()
		return nil, fmt.Errorf("dht: %w", err)
	}
	return &Node{c: c}, nil
}

// ID returns the node's ID.
func (n *Node) ID() ID { return n.c.ID() }

// Addr returns the address the node receives on (the first, for a node
// listening on several).
func (n *Node) Addr() netip.AddrPort { return n.c.Addr() }

// Addrs returns every address the node receives on.
func (n *Node) Addrs() []netip.AddrPort { return n.c.Addrs() }

// Close stops the node and releases its sockets. Calls in progress return
// ErrClosed. Close is idempotent.
func (n *Node) Close() error { return n.c.Close() }

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
	if err != nil {
		return err
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

// Refusal is one node's refusal to store a value, with its reason.
type Refusal = core.Refusal

// PutResult says what a Put achieved.
type PutResult struct {
	// Stored counts the nodes that accepted the value, this one included.
	Stored int
	// Local is set when this node keeps a copy itself, being among the K
	// closest to the key.
	Local bool
	// Refused lists the nodes that refused the value, with their reasons.
	Refused []Refusal
	// Failed counts the nodes asked to store that did not answer.
	Failed int
}

// Put stores value under key on the K nodes closest to the key, for ttl (each
// node may keep it less, up to its own maximum). It succeeds when at least
// one other node accepted the value, and says how many did, which refused and
// why, and how many did not answer. It fails with ErrNoPeers when no node
// answered (a copy on this node alone is not in the network), ErrRejected
// when every node asked refused it, and ErrTimeout when none answered; the
// result is filled in as far as the put got.
func (n *Node) Put(ctx context.Context, key ID, value []byte, ttl time.Duration) (PutResult, error) {
	r, err := wait(ctx, func(cb func(*core.PutResult, error)) func() { return n.c.Put(key, value, ttl, cb) })
	var out PutResult
	if r != nil {
		out = PutResult{Stored: r.Stored, Local: r.Local, Refused: r.Refused, Failed: r.Failed}
	}
	if err != nil {
		return out, fmt.Errorf("dht: put %s: %w", key.Short(), err)
	}
	return out, nil
}

// GetResult is what Get found.
type GetResult struct {
	// Values are the distinct values the nodes asked hold under the key,
	// merged from every node that answered with values.
	Values [][]byte
	// TTLs holds, for each value, the longest time a holder said it will
	// still keep it.
	TTLs []time.Duration
	// Holders counts the nodes whose values were merged (this one included
	// when it holds the key).
	Holders int
	// Incomplete is empty when the answer is complete as far as the lookup
	// can tell, and otherwise says why values may be missing: a holder had
	// more than one answer carries, or the lookup stopped at a bound.
	Incomplete string
}

// Get returns the values stored under key. It asks the nodes closest to the
// key until several of them (Config.GetQuorum) have answered with values or
// every one of the closest has answered, and merges what they hold, so that
// one stale or hostile node does not decide the answer. It fails with
// ErrNotFound when no node has a value, and with ErrNoPeers (with
// ErrNotFound) when no node answered at all.
func (n *Node) Get(ctx context.Context, key ID) (GetResult, error) {
	r, err := wait(ctx, func(cb func(*core.LookupResult, error)) func() { return n.c.Get(key, cb) })
	if err != nil {
		return GetResult{}, fmt.Errorf("dht: get %s: %w", key.Short(), err)
	}
	return GetResult{Values: r.Values, TTLs: r.TTLs, Holders: r.Holders, Incomplete: r.Incomplete}, nil
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

// Contacts returns the contacts in the node's routing table.
func (n *Node) Contacts() []Contact {
	es := n.c.Contacts()
	out := make([]Contact, len(es))
	for i, e := range es {
		out[i] = e.Contact
	}
	return out
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/transport/udp"
)

// A fleet is many real UDP nodes in this process, on loopback, as the
// cluster and idle benchmarks run them.

// fleetConfig says how to make a fleet's nodes.
type fleetConfig struct {
	n         int
	batch     int           // udp.Config.Batch of each node's socket; 0 for the default
	k, alpha  int           // 0 for the node's defaults
	refresh   time.Duration // dht.Config.RefreshInterval; 0 for the default
	replicate time.Duration // dht.Config.ReplicateInterval; 0 for the default
	seed      uint64
	label     string
	progress  io.Writer
	dataDir   string // each node's data directory is under it; empty: in memory
}

// fdReserve is the file descriptors kept for everything but the nodes'
// sockets: standard streams, the poller, the load generator, profiles.
const fdReserve = 64

// checkFDs fails with a clear message when n nodes (one socket each) cannot
// fit under the open-file limit.
func checkFDs(n int, limit uint64) error {
	need := uint64(n) + fdReserve
	if need > limit {
		return fmt.Errorf("bench: %d nodes need about %d file descriptors (one socket each, plus %d), but the limit is %d: use at most %d nodes or raise the limit (ulimit -n)",
			n, need, fdReserve, limit, max(int64(limit)-fdReserve, 0))
	}
	return nil
}

// startFleet creates cfg.n nodes, each with one socket on its own loopback
// address (127.2.0.1, 127.2.0.2, ...: all of 127.0.0.0/8 is loopback on
// Linux). Distinct addresses matter: a node grants each source address only
// a share of its store and one routing-table entry, and a fleet on one
// address would be one source. On
// error, or when ctx ends, it closes those it made.
func startFleet(ctx context.Context, cfg fleetConfig) ([]*dht.Node, error) {
	limit, err := fdLimit(uint64(cfg.n) + fdReserve)
	if err != nil {
		return nil, fmt.Errorf("bench: reading the open-file limit: %w", err)
	}
	if err := checkFDs(cfg.n, limit); err != nil {
		return nil, err
	}
	nodes := make([]*dht.Node, 0, cfg.n)
	p := newProgress(cfg.progress, "created", cfg.n)
	for i := range cfg.n {
		if err := ctx.Err(); err != nil {
			closeFleet(nodes)
			return nil, err
		}
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 2, byte(i / 250), byte(i%250 + 1)}), 0)
		tr, err := udp.Listen(udp.Config{Addr: addr.String(), Batch: cfg.batch})
		if err != nil {
			closeFleet(nodes)
			return nil, fmt.Errorf("bench: opening the socket of node %d: %w", i+1, err)
		}
		c := dht.DefaultConfig()
		c.Transport = tr
		c.K, c.Alpha, c.RefreshInterval = cfg.k, cfg.alpha, cfg.refresh
		c.ReplicateInterval = cfg.replicate
		c.Rand = rand.New(rand.NewPCG(cfg.seed, uint64(i)))
		if cfg.dataDir != "" {
			c.DataDir = filepath.Join(cfg.dataDir, fmt.Sprintf("node-%d", i+1))
		}
		var n *dht.Node
		withLabel(cfg.label, func() { n, err = dht.New(c) })
		if err != nil {
			tr.Close()
			closeFleet(nodes)
			return nil, fmt.Errorf("bench: starting node %d: %w", i+1, err)
		}
		nodes = append(nodes, n)
		p.add(1)
	}
	return nodes, nil
}

// closeFleet closes the nodes, a few at a time.
func closeFleet(nodes []*dht.Node) {
	var wg sync.WaitGroup
	work := make(chan *dht.Node)
	for range min(8, len(nodes)) {
		wg.Go(func() {
			for n := range work {
				n.Close()
			}
		})
	}
	for _, n := range nodes {
		work <- n
	}
	close(work)
	wg.Wait()
}

// joinTimeout bounds one node's bootstrap.
const joinTimeout = 30 * time.Second

// joinFleet joins the nodes into one network: nodes[0] starts it, the next
// ones (up to seeds) join through it one by one, and every other node joins
// through those seeds, at most concurrency at a time. It returns how many
// joins failed and the first failure.
func joinFleet(ctx context.Context, nodes []*dht.Node, seeds, concurrency int, progress io.Writer) (int, error) {
	if len(nodes) < 2 {
		return 0, nil
	}
	seeds = min(max(seeds, 1), len(nodes))
	var (
		failed   atomic.Int64
		mu       sync.Mutex
		firstErr error
	)
	p := newProgress(progress, "joined", len(nodes))
	p.add(1) // the first node is the network
	join := func(n *dht.Node, through []string) {
		jctx, cancel := context.WithTimeout(ctx, joinTimeout)
		defer cancel()
		if err := n.Bootstrap(jctx, through...); err != nil && ctx.Err() == nil {
			failed.Add(1)
			mu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}
		p.add(1)
	}
	var seedAddrs []string
	seedAddrs = append(seedAddrs, nodes[0].Addr().String())
	for _, n := range nodes[1:seeds] {
		join(n, seedAddrs[:1])
		seedAddrs = append(seedAddrs, n.Addr().String())
	}
	var next atomic.Int64
	next.Store(int64(seeds))
	var wg sync.WaitGroup
	for range min(max(concurrency, 1), len(nodes)-seeds) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(len(nodes)) {
					return
				}
				join(nodes[i], seedAddrs)
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return int(failed.Load()), err
	}
	if firstErr != nil {
		firstErr = fmt.Errorf("bench: %d of %d nodes failed to join; the first: %w", failed.Load(), len(nodes)-1, firstErr)
	}
	return int(failed.Load()), firstErr
}

// progress prints "verb 1000/10000" lines at every tenth of the way.
type progress struct {
	w           io.Writer
	verb        string
	total, step int64
	done        atomic.Int64
	start       time.Time
	mu          sync.Mutex
}

func newProgress(w io.Writer, verb string, total int) *progress {
	return &progress{w: w, verb: verb, total: int64(total), step: max(int64(total)/10, 1), start: time.Now()}
}

func (p *progress) add(n int64) {
	if p.w == nil {
		return
	}
	d := p.done.Add(n)
	if d%p.step == 0 || d == p.total {
		p.mu.Lock()
		fmt.Fprintf(p.w, "%s %d/%d (%v)\n", p.verb, d, p.total, time.Since(p.start).Round(time.Millisecond))
		p.mu.Unlock()
	}
}

// errorKinds name the ways a put or get fails, for the reports' failure
// tables; anything else is "other".
var errorKinds = []struct {
	name string
	err  error
}{
	{"not found", dht.ErrNotFound},
	{"timeout", dht.ErrTimeout},
	{"rejected", dht.ErrRejected},
	{"no peers", dht.ErrNoPeers},
	{"closed", dht.ErrClosed},
	{"deadline", context.DeadlineExceeded},
}

// errorKind names err's kind.
func errorKind(err error) string {
	for _, k := range errorKinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "other"
}

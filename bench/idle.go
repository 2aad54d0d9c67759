package bench

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/transport/udp"
	"github.com/dhtkit/dht/wire"
)

// IdleConfig configures RunIdle. Start from DefaultIdleConfig; zero fields
// take its values, so the zero value is the default run. It is a plain value,
// copied by RunIdle.
type IdleConfig struct {
	// Nodes is the number of nodes, each with one UDP socket.
	Nodes int `json:"nodes"`
	// Idle is how long CPU use is measured once the network has settled.
	Idle time.Duration `json:"idle_ns"`
	// Settle is the wait between the last join and the measurements, long
	// enough for the joins' unanswered requests to time out; negative means
	// none.
	Settle time.Duration `json:"settle_ns"`
	// Batch is each socket's batch size (udp.Config.Batch): its receive
	// buffers take Batch×2 KiB, so a small batch saves memory on nodes that
	// see little traffic.
	Batch int `json:"batch"`
	// K and Alpha set the nodes' bucket size and lookup parallelism; zero
	// keeps the node's defaults.
	K     int `json:"k"`
	Alpha int `json:"alpha"`
	// RefreshInterval is the nodes' dht.Config.RefreshInterval; zero keeps
	// the default (1h). Each node wakes about four times per interval and
	// refreshes the buckets no lookup touched for a whole interval, so a
	// short interval brings that maintenance into a short idle window.
	RefreshInterval time.Duration `json:"refresh_interval_ns"`
	// Values is how many values each node puts after joining (each is
	// stored on K nodes), so that the idle nodes hold values; 0 for none.
	Values int `json:"values"`
	// ReplicateInterval is the nodes' dht.Config.ReplicateInterval; zero
	// keeps the default (1h). A short one brings replication passes into
	// the idle window.
	ReplicateInterval time.Duration `json:"replicate_interval_ns"`
	// Seeds is how many nodes the others join through.
	Seeds int `json:"seeds"`
	// JoinConcurrency bounds the joins in progress at once.
	JoinConcurrency int `json:"join_concurrency"`
	// Seed makes the nodes' IDs reproducible.
	Seed uint64 `json:"seed"`
	// Progress, when set, receives progress lines.
	Progress io.Writer `json:"-"`
}

// DefaultIdleConfig returns the configuration `dht bench idle` runs with
// when given no flags.
func DefaultIdleConfig() IdleConfig {
	return IdleConfig{
		Nodes:           10_000,
		Idle:            30 * time.Second,
		Settle:          3 * time.Second,
		Batch:           1,
		Seeds:           3,
		JoinConcurrency: 64,
		Seed:            1,
	}
}

// MaxIdleNodes bounds IdleConfig.Nodes; the open-file limit usually bounds
// it lower.
const MaxIdleNodes = 100_000

// MaxIdleValues bounds IdleConfig.Values.
const MaxIdleValues = 10_000

func (c *IdleConfig) validate() error {
	d := DefaultIdleConfig()
	fill(&c.Nodes, d.Nodes)
	fill(&c.Idle, d.Idle)
	fill(&c.Settle, d.Settle)
	fill(&c.Batch, d.Batch)
	if c.Seeds == 0 {
		c.Seeds = min(d.Seeds, max(c.Nodes, 1)) // a small network has fewer seeds
	}
	fill(&c.JoinConcurrency, d.JoinConcurrency)
	fill(&c.Seed, d.Seed)
	switch {
	case c.Nodes < 1 || c.Nodes > MaxIdleNodes:
		return fmt.Errorf("bench: IdleConfig.Nodes is %d: must be from 1 to %d", c.Nodes, MaxIdleNodes)
	case c.Idle < 0 || c.Idle > MaxIdleWindow:
		return fmt.Errorf("bench: IdleConfig.Idle is %v: must be positive and at most %v", c.Idle, MaxIdleWindow)
	case c.Settle > MaxDuration:
		return fmt.Errorf("bench: IdleConfig.Settle is %v: must be at most %v", c.Settle, MaxDuration)
	case c.Batch < 1 || c.Batch > udp.MaxBatch:
		return fmt.Errorf("bench: IdleConfig.Batch is %d: must be from 1 to %d", c.Batch, udp.MaxBatch)
	case c.K < 0 || c.K > wire.MaxContacts:
		return fmt.Errorf("bench: IdleConfig.K is %d: must be from 1 to %d (0 for the default)", c.K, wire.MaxContacts)
	case c.Alpha < 0 || (c.K > 0 && c.Alpha > c.K):
		return fmt.Errorf("bench: IdleConfig.Alpha is %d: must be from 1 to K (0 for the default)", c.Alpha)
	case c.RefreshInterval != 0 && (c.RefreshInterval < time.Second || c.RefreshInterval > 24*time.Hour):
		return fmt.Errorf("bench: IdleConfig.RefreshInterval is %v: must be from 1s to 24h (0 for the default)", c.RefreshInterval)
	case c.Values < 0 || c.Values > MaxIdleValues:
		return fmt.Errorf("bench: IdleConfig.Values is %d: must be from 0 to %d", c.Values, MaxIdleValues)
	case c.ReplicateInterval != 0 && (c.ReplicateInterval < time.Second || c.ReplicateInterval > 24*time.Hour):
		return fmt.Errorf("bench: IdleConfig.ReplicateInterval is %v: must be from 1s to 24h (0 for the default)", c.ReplicateInterval)
	case c.Seeds < 1 || c.Seeds > c.Nodes:
		return fmt.Errorf("bench: IdleConfig.Seeds is %d: must be from 1 to Nodes (%d)", c.Seeds, c.Nodes)
	case c.JoinConcurrency < 1 || c.JoinConcurrency > 4096:
		return fmt.Errorf("bench: IdleConfig.JoinConcurrency is %d: must be from 1 to 4096", c.JoinConcurrency)
	}
	return nil
}

// IdleReport is what RunIdle measured. Memory figures are bytes; per-node
// figures are the growth over the process before the nodes, divided by
// Nodes. Once returned it is plain data, safe to read from any goroutine.
type IdleReport struct {
	Config  IdleConfig `json:"config"`
	Machine Machine    `json:"machine"`
	// FDLimit is the open-file limit the run had.
	FDLimit uint64 `json:"fd_limit"`
	// Create is the time to open every node, Join the time for all of them
	// to bootstrap, Startup their sum.
	Create  time.Duration `json:"create_ns"`
	Join    time.Duration `json:"join_ns"`
	Startup time.Duration `json:"startup_ns"`
	// JoinFailures counts nodes whose bootstrap failed.
	JoinFailures int `json:"join_failures"`
	// TableMean is the mean routing table size after joining.
	TableMean float64 `json:"table_mean"`
	// JoinTotals sums the nodes' counters after joining: the traffic the
	// joins cost.
	JoinTotals NodeTotals `json:"join_totals"`
	// Puts is the time the nodes took to put their Values, PutFailures
	// the puts that failed, and StoredValues the values the nodes hold
	// when the idle window starts (each put is held by up to K nodes).
	Puts         time.Duration `json:"puts_ns"`
	PutFailures  int           `json:"put_failures"`
	StoredValues int           `json:"stored_values"`
	// IdleWall is the measured idle time, IdleCPU the process's CPU time
	// (user and system) in it, and IdleCPUPercent their ratio as a
	// percentage of one core.
	IdleWall       time.Duration `json:"idle_wall_ns"`
	IdleCPU        time.Duration `json:"idle_cpu_ns"`
	IdleCPUPercent float64       `json:"idle_cpu_percent"`
	// IdlePackets counts datagrams the nodes received while idle, and
	// IdleRefreshes the bucket refreshes they started.
	IdlePackets   uint64 `json:"idle_packets"`
	IdleRefreshes uint64 `json:"idle_refreshes"`
	// Resident memory (VmRSS): before creating nodes, after joining (as
	// the run left it), and after a garbage collection that returns free
	// memory to the system.
	RSSBefore    uint64 `json:"rss_before"`
	RSSAfterJoin uint64 `json:"rss_after_join"`
	RSSAfterGC   uint64 `json:"rss_after_gc"`
	// RSSPerNode is (RSSAfterGC - RSSBefore) / Nodes; RSSPerNodeNoGC the
	// same with RSSAfterJoin.
	RSSPerNode     float64 `json:"rss_per_node"`
	RSSPerNodeNoGC float64 `json:"rss_per_node_no_gc"`
	// HeapPerNode and StackPerNode are the growth of the Go heap in use and
	// of goroutine stacks, per node, after the collection.
	HeapPerNode  float64 `json:"heap_per_node"`
	StackPerNode float64 `json:"stack_per_node"`
	// Interrupted is set when ctx ended the run early.
	Interrupted bool `json:"interrupted"`
}

// RunIdle starts cfg.Nodes real UDP nodes in this process, joins them, and
// measures start-up time, CPU use while idle and memory per node. When ctx
// ends it stops and returns what it measured, with Interrupted set.
func RunIdle(ctx context.Context, cfg IdleConfig) (*IdleReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rep := &IdleReport{Config: cfg, Machine: thisMachine()}
	limit, err := fdLimit(uint64(cfg.Nodes) + fdReserve)
	if err != nil {
		return nil, fmt.Errorf("bench: reading the open-file limit: %w", err)
	}
	rep.FDLimit = limit
	if err := checkFDs(cfg.Nodes, limit); err != nil {
		return nil, err
	}
	heap0, stack0 := memAfterGC()
	rep.RSSBefore = residentBytes()

	t0 := time.Now()
	nodes, err := startFleet(ctx, fleetConfig{n: cfg.Nodes, batch: cfg.Batch, k: cfg.K, alpha: cfg.Alpha, refresh: cfg.RefreshInterval, replicate: cfg.ReplicateInterval, seed: cfg.Seed, label: "node", progress: cfg.Progress})
	if err != nil {
		if ctx.Err() != nil {
			rep.Interrupted = true
			return rep, nil
		}
		return nil, err
	}
	defer closeFleet(nodes)
	rep.Create = time.Since(t0)
	t0 = time.Now()
	rep.JoinFailures, err = joinFleet(ctx, nodes, cfg.Seeds, cfg.JoinConcurrency, cfg.Progress)
	rep.Join = time.Since(t0)
	rep.Startup = rep.Create + rep.Join
	if err != nil && ctx.Err() == nil && cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "%v\n", err)
	}
	t0 = time.Now()
	rep.PutFailures = putFleet(ctx, nodes, cfg.Values, cfg.JoinConcurrency)
	rep.Puts = time.Since(t0)
	if ctx.Err() != nil || (cfg.Settle > 0 && !sleepCtx(ctx, cfg.Settle)) {
		rep.Interrupted = true
		return rep, nil
	}
	for _, n := range nodes {
		rep.StoredValues += n.Stats().StoredValues
	}
	tot := totals(nodes)
	rep.JoinTotals = tot
	rep.TableMean = float64(tot.TableSize) / float64(len(nodes))

	rep.RSSAfterJoin = residentBytes()
	heap1, stack1 := memAfterGC()
	rep.RSSAfterGC = residentBytes()
	n := float64(cfg.Nodes)
	rep.RSSPerNode = (float64(rep.RSSAfterGC) - float64(rep.RSSBefore)) / n
	rep.RSSPerNodeNoGC = (float64(rep.RSSAfterJoin) - float64(rep.RSSBefore)) / n
	rep.HeapPerNode = (float64(heap1) - float64(heap0)) / n
	rep.StackPerNode = (float64(stack1) - float64(stack0)) / n
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "settled; measuring idle CPU for %v\n", cfg.Idle)
	}

	packets0, refreshes0 := tot.PacketsIn, tot.Refreshes
	cpu0, err := cpuTime()
	if err != nil {
		return nil, err
	}
	w0 := time.Now()
	sleepCtx(ctx, cfg.Idle)
	cpu1, err := cpuTime()
	rep.IdleWall = time.Since(w0)
	if err != nil {
		return nil, err
	}
	after := totals(nodes)
	rep.IdlePackets = after.PacketsIn - packets0
	rep.IdleRefreshes = after.Refreshes - refreshes0
	rep.IdleCPU = cpu1 - cpu0
	if rep.IdleWall > 0 {
		rep.IdleCPUPercent = 100 * rep.IdleCPU.Seconds() / rep.IdleWall.Seconds()
	}
	rep.Interrupted = ctx.Err() != nil
	return rep, nil
}

// putFleet has every node put values values under keys of its own, a
// bounded number at a time, and returns how many puts failed.
func putFleet(ctx context.Context, nodes []*dht.Node, values, concurrency int) int {
	if values == 0 || len(nodes) < 2 {
		return 0
	}
	var next, failed atomic.Int64
	total := int64(len(nodes) * values)
	var wg sync.WaitGroup
	for range min(max(concurrency, 1), len(nodes)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= total {
					return
				}
				n := nodes[i%int64(len(nodes))]
				key := dht.Key(fmt.Sprintf("idle value %d", i))
				pctx, cancel := context.WithTimeout(ctx, joinTimeout)
				if _, err := n.Put(pctx, key, []byte(fmt.Sprintf("value %d", i))); err != nil && ctx.Err() == nil {
					failed.Add(1)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

// memAfterGC collects garbage, returns free memory to the system, and
// returns the bytes of Go heap and goroutine stacks in use.
func memAfterGC() (heap, stack uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse
}

package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/wire"
)

// ClusterConfig configures RunCluster. Start from DefaultClusterConfig; zero
// fields take its values, so the zero value is the default run. It is a plain
// value, copied by RunCluster.
type ClusterConfig struct {
	// Nodes is the size of the network, at least 2.
	Nodes int `json:"nodes"`
	// Ops is how many distinct keys are put, and then got.
	Ops int `json:"ops"`
	// Concurrency is the number of puts (then gets) in flight.
	Concurrency int `json:"concurrency"`
	// ValueSize is the size of each value in bytes.
	ValueSize int `json:"value_size"`
	// K and Alpha set the nodes' bucket size and lookup parallelism; zero
	// keeps the node's defaults.
	K     int `json:"k"`
	Alpha int `json:"alpha"`
	// Seeds is how many nodes the others join through.
	Seeds int `json:"seeds"`
	// JoinConcurrency bounds the joins in progress at once.
	JoinConcurrency int `json:"join_concurrency"`
	// OpTimeout bounds each put and get.
	OpTimeout time.Duration `json:"op_timeout_ns"`
	// Seed makes IDs, keys, values and the choice of nodes reproducible.
	Seed uint64 `json:"seed"`
	// Progress, when set, receives progress lines.
	Progress io.Writer `json:"-"`
	// DataDir, when set, gives each node a data directory under it
	// (node-1, node-2, ...), so that it keeps its values in bbolt; empty
	// keeps them in memory.
	DataDir string `json:"data_dir,omitempty"`
}

// DefaultClusterConfig returns the configuration `dht bench cluster` runs
// with when given no flags: the target scenario.
func DefaultClusterConfig() ClusterConfig {
	return ClusterConfig{
		Nodes:           200,
		Ops:             20_000,
		Concurrency:     64,
		ValueSize:       100,
		Seeds:           3,
		JoinConcurrency: 16,
		OpTimeout:       10 * time.Second,
		Seed:            1,
	}
}

// Bounds on ClusterConfig.
const (
	MaxClusterNodes = 20_000
	MaxClusterOps   = 1_000_000 // values are kept in memory to check the gets: at most 1 GB
)

func (c *ClusterConfig) validate() error {
	d := DefaultClusterConfig()
	fill(&c.Nodes, d.Nodes)
	fill(&c.Ops, d.Ops)
	fill(&c.Concurrency, d.Concurrency)
	fill(&c.ValueSize, d.ValueSize)
	if c.Seeds == 0 {
		c.Seeds = min(d.Seeds, max(c.Nodes, 1)) // a small network has fewer seeds
	}
	fill(&c.JoinConcurrency, d.JoinConcurrency)
	fill(&c.OpTimeout, d.OpTimeout)
	fill(&c.Seed, d.Seed)
	switch {
	case c.Nodes < 2 || c.Nodes > MaxClusterNodes:
		return fmt.Errorf("bench: ClusterConfig.Nodes is %d: must be from 2 to %d", c.Nodes, MaxClusterNodes)
	case c.Ops < 1 || c.Ops > MaxClusterOps:
		return fmt.Errorf("bench: ClusterConfig.Ops is %d: must be from 1 to %d", c.Ops, MaxClusterOps)
	case c.Concurrency < 1 || c.Concurrency > MaxConcurrency:
		return fmt.Errorf("bench: ClusterConfig.Concurrency is %d: must be from 1 to %d", c.Concurrency, MaxConcurrency)
	case c.ValueSize < 1 || c.ValueSize > store.DefaultMaxValueSize:
		return fmt.Errorf("bench: ClusterConfig.ValueSize is %d: must be from 1 to %d bytes", c.ValueSize, store.DefaultMaxValueSize)
	case c.K < 0 || c.K > wire.MaxContacts:
		return fmt.Errorf("bench: ClusterConfig.K is %d: must be from 1 to %d (0 for the default)", c.K, wire.MaxContacts)
	case c.Alpha < 0 || (c.Alpha > max(c.K, 0) && c.K > 0):
		return fmt.Errorf("bench: ClusterConfig.Alpha is %d: must be from 1 to K (0 for the default)", c.Alpha)
	case c.Seeds < 1 || c.Seeds > c.Nodes:
		return fmt.Errorf("bench: ClusterConfig.Seeds is %d: must be from 1 to Nodes (%d)", c.Seeds, c.Nodes)
	case c.JoinConcurrency < 1 || c.JoinConcurrency > 4096:
		return fmt.Errorf("bench: ClusterConfig.JoinConcurrency is %d: must be from 1 to 4096", c.JoinConcurrency)
	case c.OpTimeout < time.Millisecond || c.OpTimeout > MaxDuration:
		return fmt.Errorf("bench: ClusterConfig.OpTimeout is %v: must be from 1ms to %v", c.OpTimeout, MaxDuration)
	}
	return nil
}

// Phase is the outcome of the put or the get phase of RunCluster (plain
// data).
type Phase struct {
	// Done counts the operations that finished, successfully or not; OK
	// those that returned no error.
	Done int `json:"done"`
	OK   int `json:"ok"`
	// Elapsed is the phase's wall time, and Rate OK per second of it.
	Elapsed time.Duration `json:"elapsed_ns"`
	Rate    float64       `json:"ops_per_s"`
	// Latency is the duration of the successful operations.
	Latency Latency `json:"latency"`
	// Failures counts failed operations by kind ("timeout", "not found",
	// ...), and Examples holds one error message per kind.
	Failures map[string]int    `json:"failures"`
	Examples map[string]string `json:"examples,omitempty"`
	// Requests counts the requests all nodes sent during the phase (the
	// cost of its operations), and RequestsPerOp divides it by Done.
	Requests      uint64  `json:"requests"`
	RequestsPerOp float64 `json:"requests_per_op"`
}

// charge sets the phase's request counts from the nodes' totals before and
// after it.
func (ph *Phase) charge(before, after NodeTotals) {
	ph.Requests = after.Requests - before.Requests
	if ph.Done > 0 {
		ph.RequestsPerOp = float64(ph.Requests) / float64(ph.Done)
	}
}

// ClusterReport is what RunCluster measured. Once returned it is plain
// data, safe to read from any goroutine.
type ClusterReport struct {
	Config  ClusterConfig `json:"config"`
	Machine Machine       `json:"machine"`
	// Create is the time to open every node; Join the time for all of them
	// to bootstrap; JoinFailures the nodes whose bootstrap failed.
	Create       time.Duration `json:"create_ns"`
	Join         time.Duration `json:"join_ns"`
	JoinFailures int           `json:"join_failures"`
	// TableMean is the mean routing table size after joining.
	TableMean float64 `json:"table_mean"`
	Put       Phase   `json:"put"`
	// StoredMean is the mean number of nodes that accepted a put's value.
	StoredMean float64 `json:"stored_mean"`
	Get        Phase   `json:"get"`
	// Correct counts gets that returned exactly the value put (one value,
	// same bytes); Wrong those that returned something else. CorrectShare is
	// Correct over the gets done.
	Correct      int     `json:"correct"`
	Wrong        int     `json:"wrong"`
	CorrectShare float64 `json:"correct_share"`
	// Totals sums the nodes' counters over the whole run.
	Totals NodeTotals `json:"node_totals"`
	// Interrupted is set when ctx ended the run early.
	Interrupted bool `json:"interrupted"`
}

// NodeTotals sums counters of many nodes (plain data; the zero value is no
// traffic).
type NodeTotals struct {
	PacketsIn  uint64 `json:"packets_in"`
	PacketsOut uint64 `json:"packets_out"`
	Requests   uint64 `json:"requests"`
	Retries    uint64 `json:"retries"`
	Timeouts   uint64 `json:"timeouts"`
	Stalls     uint64 `json:"stalls"` // lookup requests the lookup moved on without (slow, not lost)
	RPCFull    uint64 `json:"rpc_full"`
	Unmatched  uint64 `json:"unmatched"`
	Malformed  uint64 `json:"malformed"`
	Refreshes  uint64 `json:"refreshes"`
	TableSize  int    `json:"table_size"`
}

func totals(nodes []*dht.Node) NodeTotals {
	var t NodeTotals
	for _, n := range nodes {
		s := n.Stats()
		t.PacketsIn += s.PacketsIn
		t.PacketsOut += s.PacketsOut
		t.Requests += s.Requests
		t.Retries += s.Retries
		t.Timeouts += s.Timeouts
		t.Stalls += s.Stalls
		t.RPCFull += s.RPCFull
		t.Unmatched += s.Unmatched
		t.Malformed += s.Malformed
		t.Refreshes += s.Refreshes
		t.TableSize += s.TableSize
	}
	return t
}

// RunCluster starts cfg.Nodes nodes in this process, joins them, puts
// cfg.Ops distinct keys through random nodes and then gets each through
// another random node, and reports rates, latencies and correctness. When ctx
// ends it stops and returns what it measured, with Interrupted set.
func RunCluster(ctx context.Context, cfg ClusterConfig) (*ClusterReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	rep := &ClusterReport{Config: cfg, Machine: thisMachine()}
	t0 := time.Now()
	nodes, err := startFleet(ctx, fleetConfig{n: cfg.Nodes, k: cfg.K, alpha: cfg.Alpha, seed: cfg.Seed, label: "node", progress: cfg.Progress, dataDir: cfg.DataDir})
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
	if ctx.Err() != nil {
		rep.Interrupted = true
		rep.Totals = totals(nodes)
		return rep, nil
	}
	if err != nil && cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, "%v\n", err)
	}
	rep.Totals = totals(nodes)
	rep.TableMean = float64(rep.Totals.TableSize) / float64(len(nodes))

	keys, values := makeKeys("cluster", cfg.Seed, cfg.Ops, cfg.ValueSize)
	putAt := make([]int32, cfg.Ops) // the node each key was put through
	before := rep.Totals
	var stored atomic.Int64
	rep.Put = runPhase(ctx, cfg, 0x707574, func(octx context.Context, r *rand.Rand, i int) error {
		ni := r.IntN(len(nodes))
		putAt[i] = int32(ni)
		pr, err := nodes[ni].Put(octx, keys[i], values[i], dht.WithTTL(time.Hour))
		stored.Add(int64(pr.Stored))
		return err
	})
	afterPut := totals(nodes)
	rep.Put.charge(before, afterPut)
	if rep.Put.OK > 0 {
		rep.StoredMean = float64(stored.Load()) / float64(rep.Put.OK)
	}
	if ctx.Err() == nil {
		var correct, wrong atomic.Int64
		rep.Get = runPhase(ctx, cfg, 0x676574, func(octx context.Context, r *rand.Rand, i int) error {
			// Another node than the one that put the key.
			ni := r.IntN(len(nodes) - 1)
			if ni >= int(putAt[i]) {
				ni++
			}
			gr, err := nodes[ni].Get(octx, keys[i])
			if err != nil || ctx.Err() != nil {
				return err // an interrupted get is not counted at all
			}
			if exactly(gr.Values, values[i]) {
				correct.Add(1)
			} else {
				wrong.Add(1)
			}
			return nil
		})
		rep.Get.charge(afterPut, totals(nodes))
		rep.Correct, rep.Wrong = int(correct.Load()), int(wrong.Load())
		if rep.Get.Done > 0 {
			rep.CorrectShare = float64(rep.Correct) / float64(rep.Get.Done)
		}
	}
	rep.Interrupted = ctx.Err() != nil
	rep.Totals = totals(nodes)
	return rep, nil
}

// exactly reports whether a get returned the value put and nothing else.
func exactly(got []dht.Value, want []byte) bool {
	return len(got) == 1 && bytes.Equal(got[0].Data, want)
}

// runPhase runs op for keys 0..cfg.Ops-1 with cfg.Concurrency in flight,
// each under cfg.OpTimeout. r is the calling worker's own random source;
// salt tells the phases' sources apart.
func runPhase(ctx context.Context, cfg ClusterConfig, salt uint64, op func(ctx context.Context, r *rand.Rand, i int) error) Phase {
	ph := Phase{Failures: map[string]int{}, Examples: map[string]string{}}
	var (
		next atomic.Int64
		mu   sync.Mutex
		hist Histogram
		wg   sync.WaitGroup
	)
	t0 := time.Now()
	for w := range min(cfg.Concurrency, cfg.Ops) {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(cfg.Seed^salt, uint64(w)))
			var h Histogram
			var done int
			fails := map[string]int{}
			examples := map[string]string{}
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(cfg.Ops) {
					break
				}
				octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
				start := time.Now()
				err := op(octx, r, int(i))
				d := time.Since(start)
				cancel()
				if ctx.Err() != nil {
					break // interrupted: neither done nor failed
				}
				done++
				if err != nil {
					k := errorKind(err)
					if fails[k] == 0 {
						examples[k] = err.Error()
					}
					fails[k]++
					continue
				}
				h.Record(d)
			}
			mu.Lock()
			defer mu.Unlock()
			hist.Merge(&h)
			ph.Done += done
			for k, n := range fails {
				ph.Failures[k] += n
				if _, seen := ph.Examples[k]; !seen {
					ph.Examples[k] = examples[k]
				}
			}
		})
	}
	wg.Wait()
	ph.Elapsed = time.Since(t0)
	ph.Latency = hist.Summary()
	ph.OK = int(hist.Count())
	if ph.Elapsed > 0 {
		ph.Rate = float64(ph.OK) / ph.Elapsed.Seconds()
	}
	return ph
}

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/dhtkit/dht/bench"
	"github.com/dhtkit/dht/store"
)

// benchCommand is a subcommand of dht bench.
type benchCommand struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
}

// benchCommands is filled by init: the commands' flag usage refers back to it.
var benchCommands []benchCommand

func init() {
	benchCommands = []benchCommand{
		{"serve", "one node answering FIND_VALUE as fast as it can, against a UDP echo server under the same load", runBenchServe},
		{"cluster", "a network of nodes in this process: join, then puts and gets through random nodes", runBenchCluster},
		{"idle", "many joined nodes in this process: start-up time, idle CPU and memory per node", runBenchIdle},
		{"flood", "whether one source flooding a node at 100x its rate limit takes service from its other clients", runBenchFlood},
	}
}

func runBench(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		w := stdout
		if len(args) == 0 {
			w = stderr
		}
		benchUsage(w)
		if len(args) == 0 {
			return exitFailure
		}
		return exitOK
	}
	for _, c := range benchCommands {
		if c.name == args[0] {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "dht bench: unknown benchmark %q\n\n", args[0])
	benchUsage(stderr)
	return exitFailure
}

func benchUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: dht bench BENCHMARK [flags]\n\nBenchmarks over real UDP on 127.0.0.1:")
	for _, c := range benchCommands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun dht bench BENCHMARK --help for its flags.")
}

// benchFlags are the flags every benchmark has.
type benchFlags struct {
	fs         *flag.FlagSet
	json       bool
	cpuprofile string
	seed       uint64
}

func newBenchFlags(name string, stderr io.Writer) *benchFlags {
	f := &benchFlags{fs: flag.NewFlagSet("dht bench "+name, flag.ContinueOnError)}
	f.fs.SetOutput(stderr)
	f.fs.Usage = func() {
		for _, c := range benchCommands {
			if c.name == name {
				fmt.Fprintf(f.fs.Output(), "Usage: dht bench %s [flags]\n\nMeasures %s.\n\nFlags:\n", name, c.summary)
			}
		}
		f.fs.PrintDefaults()
	}
	f.fs.BoolVar(&f.json, "json", false, "print the report as JSON instead of text")
	f.fs.StringVar(&f.cpuprofile, "cpuprofile", "", "write a CPU profile of the run to `FILE` (goroutines are labeled role=node, echo, naive-echo or loadgen: use go tool pprof -tagfocus)")
	f.fs.Uint64Var(&f.seed, "seed", 1, "seed for IDs, keys, values and random choices")
	return f
}

// parse parses args and rejects positional arguments.
func (f *benchFlags) parse(args []string) (int, bool) {
	code, ok := parse(f.fs, args)
	if !ok {
		return code, false
	}
	if !noArgs(f.fs, f.fs.Output()) {
		return exitFailure, false
	}
	return 0, true
}

// report is what every benchmark's report can do.
type report interface {
	WriteText(io.Writer) error
}

// execute runs a benchmark with Ctrl-C (and SIGTERM) stopping it early, a
// CPU profile if asked for, and prints its report. An interrupted run still
// prints what it measured, and exits with failure.
func (f *benchFlags) execute(stdout, stderr io.Writer, run func(ctx context.Context) (report, bool, error)) int {
	if f.cpuprofile != "" {
		file, err := os.Create(f.cpuprofile)
		if err != nil {
			fmt.Fprintf(stderr, "%s: flag -cpuprofile: %v\n", f.fs.Name(), err)
			return exitFailure
		}
		defer file.Close()
		if err := pprof.StartCPUProfile(file); err != nil {
			fmt.Fprintf(stderr, "%s: starting the CPU profile: %v\n", f.fs.Name(), err)
			return exitFailure
		}
		defer pprof.StopCPUProfile()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, interrupted, err := run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", f.fs.Name(), err)
		return exitFailure
	}
	if f.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		err = rep.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: writing the report: %v\n", f.fs.Name(), err)
		return exitFailure
	}
	if interrupted {
		fmt.Fprintf(stderr, "%s: interrupted; the report covers what ran until then\n", f.fs.Name())
		return exitFailure
	}
	return exitOK
}

func runBenchServe(args []string, stdout, stderr io.Writer) int {
	f := newBenchFlags("serve", stderr)
	fs := f.fs
	d := bench.DefaultServeConfig()
	keys := intRange{v: d.Keys, min: 1, max: bench.MaxServeKeys}
	valueSize := intRange{v: d.ValueSize, min: 1, max: 1000}
	sockets := intRange{v: d.Sockets, min: 1, max: 64}
	clients := intRange{v: d.Clients, min: 1, max: bench.MaxClients}
	senders := intRange{v: d.Senders, min: 0, max: bench.MaxSenders}
	concurrency := intRange{v: d.Concurrency, min: 1, max: bench.MaxConcurrency}
	duration := durationRange{v: d.Duration, min: time.Millisecond, max: bench.MaxDuration}
	warmup := durationRange{v: d.Warmup, min: 0, max: bench.MaxDuration}
	rounds := intRange{v: d.Rounds, min: 1, max: bench.MaxRounds}
	timeout := durationRange{v: d.Timeout, min: time.Millisecond, max: time.Minute}
	fs.Var(&keys, "keys", fmt.Sprintf("keys the node holds, one value each, 1 to %d", bench.MaxServeKeys))
	fs.Var(&valueSize, "value-size", fmt.Sprintf("bytes per value, 1 to %d", store.DefaultMaxValueSize))
	fs.Var(&sockets, "sockets", "sockets of the node and of the echo server (SO_REUSEPORT), 1 to 64")
	fs.Var(&clients, "clients", fmt.Sprintf("load generator clients, each with its share of the requests in flight and one socket (or its share of -senders), 1 to %d", bench.MaxClients))
	fs.Var(&senders, "senders", fmt.Sprintf("distinct senders, each a socket with its own ID and 127.x.y.z address, that the requests take turns over, from -clients to %d; "+
		"0 is the best case: one sender per client on 127.0.0.1, each heard from so often that the node's routing table only updates a timestamp", bench.MaxSenders))
	fs.Var(&concurrency, "concurrency", fmt.Sprintf("requests in flight over all clients, from -clients to %d", bench.MaxConcurrency))
	fs.Var(&duration, "duration", "length of each measurement")
	fs.Var(&warmup, "warmup", "unmeasured load before each measurement (0 for none)")
	fs.Var(&rounds, "rounds", fmt.Sprintf("node and echo measurements, alternated; medians are reported (1 to %d)", bench.MaxRounds))
	fs.Var(&timeout, "request-timeout", "the load generator gives up on an unanswered request after this long, counts it lost and sends another")
	naive := fs.Bool("naive", true, "also measure a single-socket net.UDPConn echo server, for reference")
	readOnly := fs.Bool("read-only", false, "mark requests READ_ONLY, as short-lived clients do, so the node leaves its routing table alone")
	records := fs.String("records", bench.RecordsLegacy, "what the node serves: legacy (plain values asked for with FIND_VALUE, as the figures before record kinds), plain (plain records asked for with GET) or signed (signed records, ed25519 envelopes of -value-size bytes, asked for with GET); compare plain with signed")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if *records != bench.RecordsLegacy && *records != bench.RecordsPlain && *records != bench.RecordsSigned {
		fmt.Fprintf(stderr, "%s: invalid value %q for flag -records: must be legacy, plain or signed\n", fs.Name(), trimArg(*records))
		return exitFailure
	}
	if concurrency.v < clients.v {
		fmt.Fprintf(stderr, "%s: invalid value %d for flag -concurrency: must be at least -clients (%d), one request in flight per client\n", fs.Name(), concurrency.v, clients.v)
		return exitFailure
	}
	if senders.v != 0 && senders.v < clients.v {
		fmt.Fprintf(stderr, "%s: invalid value %d for flag -senders: must be 0 (one per client, the best case) or at least -clients (%d)\n", fs.Name(), senders.v, clients.v)
		return exitFailure
	}
	cfg := bench.ServeConfig{
		Keys: keys.v, ValueSize: valueSize.v, Sockets: sockets.v, Clients: clients.v, Senders: senders.v, Concurrency: concurrency.v,
		Duration: duration.v, Warmup: warmup.v, Rounds: rounds.v, Timeout: timeout.v, SkipNaive: !*naive, ReadOnly: *readOnly, Records: *records,
		Seed: f.seed, Progress: stderr,
	}
	return f.execute(stdout, stderr, func(ctx context.Context) (report, bool, error) {
		r, err := bench.RunServe(ctx, cfg)
		if err != nil {
			return nil, false, err
		}
		return r, r.Interrupted, nil
	})
}

// nodeFlags are the node settings of the benchmarks that start many nodes.
type nodeFlags struct {
	k, alpha, seeds, joinConcurrency intRange
}

func (n *nodeFlags) register(fs *flag.FlagSet, joinConcurrency int) {
	n.k = intRange{v: 20, min: 1, max: 32}
	n.alpha = intRange{v: 3, min: 1, max: 32}
	n.seeds = intRange{v: 3, min: 1, max: 64}
	n.joinConcurrency = intRange{v: joinConcurrency, min: 1, max: 4096}
	fs.Var(&n.k, "k", "bucket size and replication factor, 1 to 32")
	fs.Var(&n.alpha, "alpha", "lookup parallelism, 1 to K")
	fs.Var(&n.seeds, "seed-count", "how many nodes the others join through, 1 to 64")
	fs.Var(&n.joinConcurrency, "join-concurrency", "joins in progress at once, 1 to 4096")
}

func (n *nodeFlags) check(fs *flag.FlagSet, nodes int) bool {
	switch {
	case n.alpha.v > n.k.v:
		fmt.Fprintf(fs.Output(), "%s: invalid value %d for flag -alpha: must be at most -k (%d)\n", fs.Name(), n.alpha.v, n.k.v)
		return false
	case n.seeds.v > nodes:
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == "seed-count" })
		if set {
			fmt.Fprintf(fs.Output(), "%s: invalid value %d for flag -seed-count: must be at most -nodes (%d)\n", fs.Name(), n.seeds.v, nodes)
			return false
		}
		n.seeds.v = nodes // the default, in a network smaller than it
	}
	return true
}

func runBenchCluster(args []string, stdout, stderr io.Writer) int {
	f := newBenchFlags("cluster", stderr)
	fs := f.fs
	d := bench.DefaultClusterConfig()
	nodes := intRange{v: d.Nodes, min: 2, max: bench.MaxClusterNodes}
	ops := intRange{v: d.Ops, min: 1, max: bench.MaxClusterOps}
	concurrency := intRange{v: d.Concurrency, min: 1, max: bench.MaxConcurrency}
	valueSize := intRange{v: d.ValueSize, min: 1, max: store.DefaultMaxValueSize}
	opTimeout := durationRange{v: d.OpTimeout, min: time.Millisecond, max: bench.MaxDuration}
	data := fs.String("data", "", "`DIR` under which each node keeps its values in bbolt (a persistent store); empty keeps them in memory")
	var nf nodeFlags
	nf.register(fs, d.JoinConcurrency)
	fs.Var(&nodes, "nodes", fmt.Sprintf("nodes in the network, 2 to %d (one socket each)", bench.MaxClusterNodes))
	fs.Var(&ops, "ops", fmt.Sprintf("distinct keys put, then got, 1 to %d", bench.MaxClusterOps))
	fs.Var(&concurrency, "concurrency", fmt.Sprintf("operations in flight, 1 to %d", bench.MaxConcurrency))
	fs.Var(&valueSize, "value-size", "bytes per value, 1 to 1000")
	fs.Var(&opTimeout, "op-timeout", "give up on one put or get after this long")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if !nf.check(fs, nodes.v) {
		return exitFailure
	}
	cfg := bench.ClusterConfig{
		Nodes: nodes.v, Ops: ops.v, Concurrency: concurrency.v, ValueSize: valueSize.v,
		K: nf.k.v, Alpha: nf.alpha.v, Seeds: nf.seeds.v, JoinConcurrency: nf.joinConcurrency.v,
		OpTimeout: opTimeout.v, Seed: f.seed, Progress: stderr, DataDir: *data,
	}
	return f.execute(stdout, stderr, func(ctx context.Context) (report, bool, error) {
		r, err := bench.RunCluster(ctx, cfg)
		if err != nil {
			return nil, false, err
		}
		return r, r.Interrupted, nil
	})
}

func runBenchIdle(args []string, stdout, stderr io.Writer) int {
	f := newBenchFlags("idle", stderr)
	fs := f.fs
	d := bench.DefaultIdleConfig()
	nodes := intRange{v: d.Nodes, min: 1, max: bench.MaxIdleNodes}
	idle := durationRange{v: d.Idle, min: time.Millisecond, max: bench.MaxIdleWindow}
	settle := durationRange{v: d.Settle, min: 0, max: bench.MaxDuration}
	batch := intRange{v: d.Batch, min: 1, max: 1024}
	refresh := durationRange{v: 0, min: 0, max: 24 * time.Hour}
	replicate := durationRange{v: 0, min: 0, max: 24 * time.Hour}
	values := intRange{v: 0, min: 0, max: bench.MaxIdleValues}
	var nf nodeFlags
	nf.register(fs, d.JoinConcurrency)
	fs.Var(&nodes, "nodes", fmt.Sprintf("nodes to start, one socket each, 1 to %d (and within the open-file limit)", bench.MaxIdleNodes))
	fs.Var(&idle, "idle", "how long to measure CPU use once the network has settled, up to 6h (a whole default refresh interval, jitter included, takes 1h30m)")
	fs.Var(&settle, "settle", "wait between the last join and the measurements (0 for none)")
	fs.Var(&refresh, "refresh-interval", "the nodes' bucket refresh interval, up to 24h; 0 keeps the default (1h). A short one brings maintenance into the idle window")
	fs.Var(&values, "values", fmt.Sprintf("values each node puts after joining, 0 to %d, so that the idle nodes hold values (each on K nodes)", bench.MaxIdleValues))
	fs.Var(&replicate, "replicate-interval", "the nodes' replication interval, up to 24h; 0 keeps the default (1h). A short one brings replication passes into the idle window")
	fs.Var(&batch, "batch", "datagrams per system call on each node's socket, 1 to 1024 (each costs about 2 KiB of receive buffer)")
	if code, ok := f.parse(args); !ok {
		return code
	}
	if !nf.check(fs, nodes.v) {
		return exitFailure
	}
	cfg := bench.IdleConfig{
		Nodes: nodes.v, Idle: idle.v, Settle: settle.v, Batch: batch.v, RefreshInterval: refresh.v,
		Values: values.v, ReplicateInterval: replicate.v,
		K: nf.k.v, Alpha: nf.alpha.v, Seeds: nf.seeds.v, JoinConcurrency: nf.joinConcurrency.v,
		Seed: f.seed, Progress: stderr,
	}
	if cfg.Settle == 0 {
		cfg.Settle = -1 // IdleConfig: zero takes the default, negative means none
	}
	return f.execute(stdout, stderr, func(ctx context.Context) (report, bool, error) {
		r, err := bench.RunIdle(ctx, cfg)
		if err != nil {
			return nil, false, err
		}
		return r, r.Interrupted, nil
	})
}

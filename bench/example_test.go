package bench_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/dhtkit/dht/bench"
)

// Measure a node against the echo server for one short round and print the
// ratio. (Timing examples have no fixed output, so this one is compiled but
// not run by go test.)
func ExampleRunServe() {
	cfg := bench.DefaultServeConfig()
	cfg.Duration, cfg.Warmup, cfg.Rounds = time.Second, 200*time.Millisecond, 1
	rep, err := bench.RunServe(context.Background(), cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("node %.0f req/s, echo %.0f req/s, ratio %.2f\n", rep.NodeRate, rep.EchoRate, rep.Ratio)
}

// Put and get 1,000 keys in a 50-node network and print the text report.
func ExampleRunCluster() {
	rep, err := bench.RunCluster(context.Background(), bench.ClusterConfig{Nodes: 50, Ops: 1000})
	if err != nil {
		fmt.Println(err)
		return
	}
	rep.WriteText(os.Stdout)
}

// Start 1,000 nodes, let them idle for 5 seconds, and print memory and CPU
// per node.
func ExampleRunIdle() {
	rep, err := bench.RunIdle(context.Background(), bench.IdleConfig{Nodes: 1000, Idle: 5 * time.Second})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%.1f KiB per node, %.3f%% of one core\n", rep.RSSPerNode/1024, rep.IdleCPUPercent)
}

package dht

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkNodePuts measures the puts one node takes from others, with
// its values in memory and in bbolt (Config.DataDir), in the same run: the
// cost of durability. 32 client nodes, each on its own address, put through the measured node,
// the only other node of the network, so each put is one FIND_NODE and one
// PUT to it, 256 in flight. The persistent node answers a PUT only once the
// value is on disk (batched commits). Best case: loopback, one small value
// per put, no other load.
func BenchmarkNodePuts(b *testing.B) {
	for _, kind := range []string{"memory", "bolt"} {
		b.Run(kind, func(b *testing.B) {
			cfg := DefaultConfig()
			cfg.Listen = []string{"127.0.0.1:0"}
			if kind == "bolt" {
				cfg.DataDir = filepath.Join(b.TempDir(), "node")
			}
			srv, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			// Each client on its own loopback address: a node grants one
			// source address 1% of its store.
			clients := make([]*Node, 32)
			for i := range clients {
				clients[i] = loopbackNode(b, func(c *Config) {
					c.ReadOnly = true
					c.Listen = []string{fmt.Sprintf("127.3.0.%d:0", i+1)}
				})
				if err := clients[i].Bootstrap(ctx, srv.Addr().String()); err != nil {
					b.Fatal(err)
				}
			}
			if b.N > 32*1000 {
				b.Fatalf("b.N = %d: more than the clients' store quotas allow; use -benchtime of at most 32000x", b.N)
			}
			value := make([]byte, 100)
			var next, failed atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			start := time.Now()
			for w := range 256 {
				wg.Go(func() {
					c := clients[w%len(clients)]
					for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
						if _, err := c.Put(ctx, Key(fmt.Sprint(kind, i)), value); err != nil {
							failed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "puts/s")
			// A put can fail when a burst overflows a loopback socket
			// buffer and both attempts of a request are lost: counted, and
			// the run is void past 5%.
			b.ReportMetric(float64(failed.Load()), "failed")
			if f := failed.Load(); f*20 > int64(b.N) {
				b.Fatalf("%d of %d puts failed", f, b.N)
			}
		})
	}
}

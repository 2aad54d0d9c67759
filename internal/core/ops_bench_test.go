package core

import (
	"fmt"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport/memnet"
)

// opsNet is a joined network of 200 nodes on memnet with 1ms latency.
func opsNet(b *testing.B) *testNet {
	tn := newTestNet(b, 99, memnet.Config{Latency: memnet.Fixed(time.Millisecond)})
	for range 200 {
		tn.add(nil)
	}
	tn.bootstrapAll(10 * time.Millisecond)
	return tn
}

// BenchmarkGet measures the CPU of one get of a stored key through a random
// node of a 200-node network, every node's work included, on memnet: what the
// protocol costs before any socket does. Run with -benchtime=Nx.
func BenchmarkGet(b *testing.B) {
	tn := opsNet(b)
	const keys = 1000
	pending := keys
	for k := range keys {
		tn.nodes[k%200].Put(id.Key(fmt.Sprint(k)), make([]byte, 100), time.Hour, func(*PutResult, error) { pending-- })
	}
	tn.await(&pending, time.Minute)
	msgs := 0
	b.ResetTimer()
	i := 0
	for b.Loop() {
		pending = 1
		tn.nodes[(i*7)%200].Get(id.Key(fmt.Sprint(i%keys)), func(r *LookupResult, err error) {
			if err != nil {
				b.Fatal(err)
			}
			msgs += r.Messages
			pending--
		})
		tn.clk.RunWhile(func() bool { return pending > 0 }, tn.clk.Now().Add(time.Minute))
		i++
	}
	b.ReportMetric(float64(msgs)/float64(b.N), "requests/op")
}

// BenchmarkPut is BenchmarkGet for puts: a lookup of the key's K closest,
// then a STORE to each.
func BenchmarkPut(b *testing.B) {
	tn := opsNet(b)
	msgs, stored := 0, 0
	i := 0
	for b.Loop() {
		pending := 1
		tn.nodes[(i*7)%200].Put(id.Key(fmt.Sprint("p", i)), make([]byte, 100), time.Hour, func(r *PutResult, err error) {
			if err != nil {
				b.Fatal(err)
			}
			msgs += r.Lookup.Messages + r.Stored
			stored += r.Stored
			pending--
		})
		tn.clk.RunWhile(func() bool { return pending > 0 }, tn.clk.Now().Add(time.Minute))
		i++
	}
	b.ReportMetric(float64(msgs)/float64(b.N), "requests/op")
	b.ReportMetric(float64(stored)/float64(b.N), "replicas/op")
}

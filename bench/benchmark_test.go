package bench

import (
	"context"
	"testing"
	"time"

	"github.com/dhtkit/dht/wire"
)

// The Go benchmarks drive one server with the load generator for b.N
// requests (16 in flight over 2 client sockets) and report the rate and
// latency quantiles. BenchmarkServeFindValue against BenchmarkEcho is the
// quick version of `dht bench serve` (the ManySenders variants that of
// `dht bench serve --senders 1024`):
//
//	go test -run '^$' -bench 'ServeFindValue|Echo' -benchtime 200000x -count 5 ./bench

const (
	benchKeys        = 1000
	benchValueSize   = 100
	benchClients     = 2
	benchConcurrency = 16
	benchManySenders = 1024
)

// BenchmarkServeFindValue is the best case: one sender per client socket.
func BenchmarkServeFindValue(b *testing.B) { benchServeFindValue(b, 0) }

// BenchmarkServeFindValueManySenders sends from 1024 distinct senders.
func BenchmarkServeFindValueManySenders(b *testing.B) { benchServeFindValue(b, benchManySenders) }

// BenchmarkServeGetPlain and BenchmarkServeGetSigned ask with GET for plain
// and for signed records (`dht bench serve --records plain|signed`): a
// node checks a signed record when it stores it, never when it serves it,
// so the two should differ by the larger answer only.
func BenchmarkServeGetPlain(b *testing.B) { benchServeGet(b, false) }

func BenchmarkServeGetSigned(b *testing.B) { benchServeGet(b, true) }

func benchServeGet(b *testing.B, signed bool) {
	keys, values := makeKeys("gobench", 1, benchKeys, benchValueSize)
	recs := plainRecords(values)
	if signed {
		keys, recs = signedRecords(1, values)
	}
	node, err := startServeNode(keys, recs, 2, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	driveBenchmark(b, loadConfig{server: node.Addr(), serverID: node.ID(), mode: checkValues, keys: keys, values: values, request: wire.Get, records: recs})
}

func BenchmarkEcho(b *testing.B) { benchEcho(b, 0) }

func BenchmarkEchoManySenders(b *testing.B) { benchEcho(b, benchManySenders) }

func benchServeFindValue(b *testing.B, senders int) {
	keys, values := makeKeys("gobench", 1, benchKeys, benchValueSize)
	node, err := startServeNode(keys, plainRecords(values), 2, 1)
	if err != nil {
		b.Fatal(err)
	}
	defer node.Close()
	driveBenchmark(b, loadConfig{server: node.Addr(), serverID: node.ID(), mode: checkValues, keys: keys, values: values, senders: senders})
}

func benchEcho(b *testing.B, senders int) {
	keys, _ := makeKeys("gobench", 1, benchKeys, benchValueSize)
	size := valuesLen(benchValueSize)
	echo, err := startEcho(2, size)
	if err != nil {
		b.Fatal(err)
	}
	defer echo.Close()
	driveBenchmark(b, loadConfig{server: echo.LocalAddr(), mode: checkEcho, keys: keys, respLen: size, senders: senders})
}

func driveBenchmark(b *testing.B, cfg loadConfig) {
	cfg.clients, cfg.concurrency, cfg.timeout, cfg.seed, cfg.label = benchClients, benchConcurrency, time.Second, 1, "loadgen"
	lg, err := newLoadGen(cfg)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	b.ReportAllocs()
	b.ResetTimer()
	res, err := lg.runCount(ctx, b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	if res.Bad() != 0 || res.OK != uint64(b.N) {
		b.Fatalf("counts %+v for %d requests", res.Counts, b.N)
	}
	b.ReportMetric(float64(res.OK)/res.elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(res.hist.Quantile(0.5).Microseconds()), "p50-µs")
	b.ReportMetric(float64(res.hist.Quantile(0.99).Microseconds()), "p99-µs")
}

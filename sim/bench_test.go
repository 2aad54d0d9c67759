package sim

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// joined caches joined networks across the calls a benchmark gets with
// growing b.N: joining 10,000 nodes takes far longer than the lookups
// measured.
var joined = map[int]*engine{}

func joinedNetwork(b *testing.B, nodes int) *engine {
	if e, ok := joined[nodes]; ok {
		return e
	}
	sc := Scenario{Nodes: nodes, Keys: 1000, Seed: 1}
	if err := sc.Validate(); err != nil {
		b.Fatal(err)
	}
	e := newEngine(context.Background(), sc, nil)
	if err := e.join(); err != nil {
		b.Fatal(err)
	}
	if err := e.put(); err != nil {
		b.Fatal(err)
	}
	joined[nodes] = e
	return e
}

// BenchmarkLookups measures the lookups phase alone, on networks joined
// beforehand: the target is 10,000 lookups per wall second on
// 10,000 nodes. Run it with
//
//	go test -run - -bench Lookups -benchtime 20000x ./sim
func BenchmarkLookups(b *testing.B) {
	for _, nodes := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("nodes=%d", nodes), func(b *testing.B) {
			e := joinedNetwork(b, nodes)
			e.sc.Lookups = b.N
			e.r.Lookups = LookupReport{}
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			if err := e.lookups(); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			l := e.r.Lookups
			if l.Found != l.Lookups {
				b.Fatalf("found %d of %d", l.Found, l.Lookups)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "lookups/s")
			b.ReportMetric(l.Rounds.Mean, "rounds")
			b.ReportMetric(l.Messages.Mean, "msgs")
		})
	}
}

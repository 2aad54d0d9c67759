package bench

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport/memnet"
)

// On the virtual clock, one source sending 100 times its rate limit for
// 2 seconds gets its burst and its rate answered, no more: every other
// request of its is dropped and counted, while each of 10 clients at 50
// requests/s has every request answered, in time. The counts are exact:
// the run is the same every time.
func TestFloodIsDroppedAndCountedWhileClientsAreServed(t *testing.T) {
	const (
		clients, clientRate = 10, 50
		limit, factor       = 200, 100
		duration            = 2 * time.Second
	)
	clk := clock.NewVirtual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	net := memnet.New(memnet.Config{Clock: clk, Seed: 1, Latency: memnet.Fixed(time.Millisecond), MaxInFlight: 1 << 16})
	keys, _ := makeKeys("flood", 1, 20, 1)
	node, err := floodNode(net.NewEndpoint(), clk, keys, limit, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	ids := rand.New(rand.NewPCG(1, 2))
	peer := func(a netip.Addr, n int) *floodPeer {
		ep, err := net.Listen(netip.AddrPortFrom(a, 4000))
		if err != nil {
			t.Fatal(err)
		}
		p, err := newFloodPeer(ep, clk, node.Addr(), id.Random(ids), keys, n, 500*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		return p
	}
	schedule := func(p *floodPeer, rate, n int, offset time.Duration) {
		for i := range n {
			clk.AfterFunc(offset+time.Duration(i)*time.Second/time.Duration(rate), func() {
				if err := p.send(i); err != nil {
					t.Error(err)
				}
			})
		}
	}
	perClient := clientRate * int(duration/time.Second)
	var cs []*floodPeer
	for i := range clients {
		c := peer(floodAddr(i), perClient)
		schedule(c, clientRate, perClient, time.Duration(i)*time.Millisecond)
		cs = append(cs, c)
	}
	floodN := limit * factor * int(duration/time.Second)
	flooder := peer(floodAddr(-1), floodN)
	schedule(flooder, limit*factor, floodN, 0)
	clk.RunFor(duration + time.Second)

	for i, c := range cs {
		sent, answered, late, refused := c.counts()
		if sent != uint64(perClient) || answered != sent || late != 0 || refused != 0 {
			t.Errorf("client %d: %d sent, %d answered in time, %d late, %d refused; want all %d answered in time", i, sent, answered, late, refused, perClient)
		}
	}
	sent, answered, late, _ := flooder.counts()
	// The burst (2 x limit) at once, then limit per second over the
	// flood's 2 seconds, less one interval: 400 + 400, give or take the
	// request that lands on the last token.
	want := uint64(2*limit) + uint64(limit*duration/time.Second)
	if sent != uint64(floodN) || answered+late < want-1 || answered+late > want+1 {
		t.Errorf("flooder: %d sent, %d answered; want %d sent, %d±1 answered", sent, answered+late, floodN, want)
	}
	st := node.Stats()
	if st.RateLimited != sent-answered-late {
		t.Errorf("RateLimited = %d, want the flooder's %d unanswered requests", st.RateLimited, sent-answered-late)
	}
	if ns := net.Stats(); ns.Overflow != 0 || ns.Lost != 0 {
		t.Errorf("memnet dropped datagrams (%+v): the counts above are not the node's doing", ns)
	}
}

// BenchmarkFlood runs one round of `dht bench flood` per iteration over
// real UDP on loopback and reports the clients' served rate without and
// with the flood, and their ratio (the goal: at least 0.95):
//
//	go test -run '^$' -bench Flood -benchtime 1x -count 5 ./bench
func BenchmarkFlood(b *testing.B) {
	cfg := DefaultFloodConfig()
	cfg.Rounds = 1
	var base, flooded, unlimited, fa float64
	for b.Loop() {
		rep, err := RunFlood(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		base += rep.BaselineRate
		flooded += rep.FloodedRate
		unlimited += rep.UnlimitedRate
		fa += rep.FlooderAnswered
	}
	n := float64(b.N)
	b.ReportMetric(base/n, "baseline_req/s")
	b.ReportMetric(flooded/n, "flooded_req/s")
	b.ReportMetric(flooded/base, "ratio")
	b.ReportMetric(unlimited/base, "ratio_nolimit")
	b.ReportMetric(fa/n, "flooder_answered")
	b.ReportMetric(0, "ns/op")
}

package dht

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/udp"
)

// udpGet runs one get through n and returns its result.
func udpGet(t *testing.T, ctx context.Context, n *Node, key ID) (*core.LookupResult, time.Duration, error) {
	t.Helper()
	done := make(chan struct{})
	var res *core.LookupResult
	var err error
	start := time.Now()
	cancel := n.c.Get(key, func(r *core.LookupResult, e error) {
		res, err = r, e
		close(done)
	})
	select {
	case <-done:
	case <-ctx.Done():
		cancel()
		<-done
	}
	return res, time.Since(start), err
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// delayed is a UDP transport that holds every datagram it sends, replies
// included, for a fixed time: loopback with the round trips of a wide-area
// network.
type delayed struct {
	transport.Transport
	d time.Duration
}

func (l *delayed) Send(pkts []transport.Packet) error {
	for _, p := range pkts {
		l.later(p.Data, p.Addr)
	}
	return nil
}

func (l *delayed) later(b []byte, to netip.AddrPort) {
	data := slices.Clone(b)
	time.AfterFunc(l.d, func() { _ = l.Transport.Send([]transport.Packet{{Data: data, Addr: to}}) })
}

func (l *delayed) Start(h transport.Handler) error {
	return l.Transport.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, _ transport.Writer) {
		h.HandlePacket(data, from, delayedWriter{l})
	}))
}

type delayedWriter struct{ l *delayed }

func (w delayedWriter) WriteTo(b []byte, to netip.AddrPort) { w.l.later(b, to) }

// Over real UDP on 127.0.0.1-20: 20 nodes hold 10 keys (each on all of them:
// K = 20), then 10 nodes are killed without a word, and gets through the
// survivors follow at once. Every get finds its value, within a bounded
// number of requests. How long they took, against the network's median get
// before the kill, is logged (the goal: under 3x); once on bare
// loopback, whose round trips of tens of microseconds make any wait for a
// departed contact (at least a millisecond, the estimator's granularity)
// look large, and once with 5 ms added to every datagram.
func TestGetThroughASurvivorRightAfterHalfTheNetworkDies(t *testing.T) {
	if testing.Short() {
		t.Skip("a 20-node UDP network: skipped with -short")
	}
	for _, delay := range []time.Duration{0, 5 * time.Millisecond} {
		t.Run(fmt.Sprintf("delay=%v", delay), func(t *testing.T) { getAfterKill(t, delay) })
	}
}

func getAfterKill(t *testing.T, delay time.Duration) {
	const nodes, keys = 20, 10
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := make([]*Node, nodes)
	for i := range ns {
		// One loopback address per node, as one host per node would have:
		// a get's quorum counts hosts, so on one address it could never
		// stop early and would always wait for every contact.
		addr := fmt.Sprintf("127.0.0.%d:0", i+1)
		ns[i] = loopbackNode(t, func(c *Config) {
			c.Listen = []string{addr}
			if delay > 0 {
				tr, err := udp.Listen(udp.Config{Addr: addr})
				if err != nil {
					t.Fatal(err)
				}
				c.Transport = &delayed{Transport: tr, d: delay}
			}
		})
	}
	for i := 1; i < nodes; i++ {
		if err := ns[i].Bootstrap(ctx, ns[0].Addr().String()); err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	for k := range keys {
		if _, err := ns[k].Put(ctx, Key(fmt.Sprint("churn-", k)), []byte(fmt.Sprint("v", k)), WithTTL(time.Hour)); err != nil {
			t.Fatalf("put %d: %v", k, err)
		}
	}
	// The normal latency: every node gets every key, twice (the first
	// pass also gives every node round-trip estimates of its contacts).
	var normal []time.Duration
	for pass := range 2 {
		for i, n := range ns {
			for k := range keys {
				r, d, err := udpGet(t, ctx, n, Key(fmt.Sprint("churn-", k)))
				if err != nil || len(r.Values) != 1 {
					t.Fatalf("get %d through node %d before the kill: %v", k, i, err)
				}
				if pass == 1 {
					normal = append(normal, d)
				}
			}
		}
	}
	for _, n := range ns[nodes/2:] {
		n.Close()
	}
	survivors := ns[:nodes/2]
	var after []time.Duration
	var stalled, msgs int
	for i, n := range survivors {
		k := i % keys
		r, d, err := udpGet(t, ctx, n, Key(fmt.Sprint("churn-", k)))
		if err != nil || len(r.Values) != 1 || string(r.Values[0]) != fmt.Sprint("v", k) {
			t.Fatalf("get %d through survivor %d right after the kill: %v", k, i, err)
		}
		// Bounded whatever the dead: a lookup's query bound, 4 x (K + Alpha).
		if r.Queried > 4*(20+3) {
			t.Fatalf("get %d asked %d nodes", k, r.Queried)
		}
		after = append(after, d)
		stalled += r.Stalled
		msgs += r.Messages
	}
	med := median(normal)
	t.Logf("normal median get %v; right after 10 of 20 nodes died, 10 gets: first %v (%.1fx), median %v (%.1fx), worst %v (%.1fx); %d requests, %d stalled",
		med, after[0], float64(after[0])/float64(med), median(after), float64(median(after))/float64(med),
		slices.Max(after), float64(slices.Max(after))/float64(med), msgs, stalled)
}

// deadAddrs returns n loopback UDP addresses where nothing listens: each
// was bound, then closed.
func deadAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c.LocalAddr().String())
		c.Close()
	}
	return out
}

// Over real UDP: a short-lived read-only client given a list of seeds of
// which all but one are dead joins on the live seed's answer. It sends one
// PING per seed and nothing more (no retry of a dead seed), and its join
// time against a join through the live seed alone is logged.
func TestClientWithAllSeedsButOneDeadOverUDP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	live := loopbackNode(t, nil)
	join := func(seeds []string) (time.Duration, Stats) {
		c := loopbackNode(t, func(c *Config) { c.ReadOnly = true })
		start := time.Now()
		if err := c.Bootstrap(ctx, seeds...); err != nil {
			t.Fatalf("bootstrap through %v: %v", seeds, err)
		}
		d := time.Since(start)
		st := c.Stats()
		if _, err := c.Ping(ctx, live.Addr().String()); err != nil {
			t.Fatalf("the client cannot reach the live seed: %v", err)
		}
		return d, st
	}
	var alone, withDead []time.Duration
	for range 5 {
		d, _ := join([]string{live.Addr().String()})
		alone = append(alone, d)
		seeds := append(deadAddrs(t, 4), live.Addr().String())
		d, st := join(seeds)
		withDead = append(withDead, d)
		if st.Requests != 5 || st.Retries != 0 {
			t.Fatalf("a join through 4 dead seeds and a live one sent %d requests (%d retries), want the 5 PINGs", st.Requests, st.Retries)
		}
	}
	t.Logf("read-only join, median of 5: through the live seed alone %v, with 4 dead seeds listed first %v", median(alone), median(withDead))
}

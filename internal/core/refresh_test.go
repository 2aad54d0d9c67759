package core

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// refreshCost runs the network through one refresh of every bucket and
// returns the refreshes and the FIND_NODE datagrams per refresh (an idle
// network sends FIND_NODEs for refreshes only).
func refreshCost(tn *testNet, window time.Duration) (refreshes uint64, perRefresh float64) {
	r0, f0 := refreshCounts(tn)
	tn.clk.RunFor(window)
	r1, f1 := refreshCounts(tn)
	return r1 - r0, float64(f1-f0) / float64(r1-r0)
}

// refreshCounts sums the network's refreshes and FIND_NODE datagrams.
func refreshCounts(tn *testNet) (refreshes, findNodes uint64) {
	for _, n := range tn.nodes {
		n.mu.Lock()
		refreshes += n.stats.refreshes
		findNodes += n.stats.sent[reqSlot(wire.FindNode)].sent
		n.mu.Unlock()
	}
	return refreshes, findNodes
}

// A bucket refresh (paper, section 2.3) needs live contacts in the bucket's
// range, not the K closest to a random ID: it stops once it has K of them.
// Measured on two idle networks of the same seed through one round of
// refreshes of every bucket, one with the full lookup (Config.FullRefresh)
// and one with the early stop; afterwards puts on the second still land on
// the true K closest. go test -run TestRefreshStopsAtABucketOfLiveContacts
// -v prints the figures; REFRESH_SIZE sets the network's size (default
// 500).
func TestRefreshStopsAtABucketOfLiveContacts(t *testing.T) {
	size := 500
	if env := os.Getenv("REFRESH_SIZE"); env != "" {
		var err error
		if size, err = strconv.Atoi(env); err != nil || size < 50 {
			t.Fatalf("REFRESH_SIZE=%q: want a network size of at least 50", env)
		}
	}
	window := 15 * time.Minute // every bucket goes stale once in it
	run := func(full bool) (*testNet, uint64, float64, uint64) {
		tn := newTestNet(t, 61, memnet.Config{})
		for range size {
			tn.add(func(c *Config) { c.RefreshInterval, c.FullRefresh = 10*time.Minute, full })
		}
		tn.bootstrapAll(10 * time.Millisecond)
		r, per := refreshCost(tn, window)
		var skipped uint64
		for _, n := range tn.nodes {
			skipped += n.Stats().RefreshesSkipped
		}
		return tn, r, per, skipped
	}
	_, fullN, full, fullSkipped := run(true)
	tn, stopN, stop, skipped := run(false)
	t.Logf("N=%d: full lookup %.1f FIND_NODEs per refresh (%d refreshes); early stop %.1f (%d refreshes, %d with no request)", size, full, fullN, stop, stopN, skipped)
	if fullN < uint64(size) || stopN < uint64(size) {
		t.Fatalf("%d and %d refreshes in %v: not a round of every node's buckets", fullN, stopN, window)
	}
	if fullSkipped != 0 {
		t.Fatalf("%d refreshes skipped with FullRefresh", fullSkipped)
	}
	if stop > 0.8*full {
		t.Fatalf("the early stop costs %.1f requests per refresh, the full lookup %.1f: want at most 80%%", stop, full)
	}
	// The tables the cheap refreshes keep still route puts to the K
	// closest.
	if p := measurePuts(t, tn, 50, DefaultPutBeta, 7); p.onTrue < 0.97 {
		t.Fatalf("after early-stopped refreshes: %v", p)
	} else {
		t.Logf("puts afterwards: %v", p)
	}
}

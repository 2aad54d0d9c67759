package core

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport/memnet"
)

// The incident of issue 7: a node cut off for six hours lost all 29 of its
// contacts and still had none six hours after the network healed. A node
// with seeds must find its way back on its own.
func TestIsolatedNodeRejoinsThroughItsSeedsAfterThePartitionHeals(t *testing.T) {
	// The seeds come from Config.Seeds, or only from the Bootstrap call
	// that joined the node.
	for _, viaConfig := range []bool{true, false} {
		t.Run(fmt.Sprintf("config-seeds=%v", viaConfig), func(t *testing.T) { rejoinAfterPartition(t, viaConfig) })
	}
}

func rejoinAfterPartition(t *testing.T, viaConfig bool) {
	tn := newTestNet(t, 71, memnet.Config{})
	seed := tn.add(func(c *Config) { c.K = 4 })
	for range 10 {
		tn.add(func(c *Config) { c.K = 4 })
	}
	victim := tn.add(func(c *Config) {
		c.K = 4
		if viaConfig {
			c.Seeds = []netip.AddrPort{seed.Addr()}
		}
	})
	tn.bootstrapAll(50 * time.Millisecond)
	if n := victim.Stats().TableSize; n == 0 {
		t.Fatal("the victim has no contacts after joining")
	}

	tn.net.Partition([]netip.AddrPort{victim.Addr()})
	tn.clk.RunFor(6 * time.Hour)
	if n := victim.Stats().TableSize; n != 0 {
		t.Fatalf("after 6h cut off the victim still has %d contacts; the scenario needs an empty table", n)
	}
	tn.net.Heal()
	healed := tn.clk.Now()
	tn.clk.RunWhile(func() bool { return victim.Stats().TableSize == 0 }, healed.Add(10*time.Minute))
	if victim.Stats().TableSize == 0 {
		t.Fatalf("10 minutes after the partition healed the victim has no contacts (%d rejoin attempts)", victim.Stats().Rejoins)
	}
	t.Logf("back after %v with %d contacts, %d rejoin attempts in all",
		tn.clk.Now().Sub(healed), victim.Stats().TableSize, victim.Stats().Rejoins)
	tn.clk.RunFor(time.Minute) // let the rejoin's lookups finish

	// The victim finds a key it does not hold itself, so the answer comes
	// from the network it rejoined.
	key := farKey(t, tn, victim, 4)
	_, gr, err := putGet(t, tn, tn.nodes[3], victim, key, []byte("v"), time.Hour)
	if err != nil {
		t.Fatalf("get from the rejoined node: %v", err)
	}
	if gr.Local || len(gr.Values) != 1 {
		t.Fatalf("get from the rejoined node: local %v, values %q", gr.Local, gr.Values)
	}
}

// farKey returns a key that n is not among the k closest nodes to.
func farKey(t *testing.T, tn *testNet, n *Node, k int) id.ID {
	ids := make([]id.ID, len(tn.nodes))
	for i, m := range tn.nodes {
		ids[i] = m.ID()
	}
	for i := range 1000 {
		key := id.Key(fmt.Sprint("key-", i))
		slices.SortFunc(ids, func(a, b id.ID) int { return id.CompareDistance(key, a, b) })
		if slices.Index(ids, n.ID()) >= k {
			return key
		}
	}
	t.Fatal("no key far from the node")
	return id.ID{}
}

// An isolated node keeps trying forever, but its attempts thin out: a few in
// the first minutes, then one about every rejoinMax. Neither a fixed short
// interval nor unbounded doubling passes.
func TestRejoinBackoffGrowsThenStaysAtItsMaximum(t *testing.T) {
	tn := newTestNet(t, 72, memnet.Config{})
	n := tn.add(func(c *Config) { c.Seeds = []netip.AddrPort{nowhere} })
	start := tn.clk.Now()
	rejoinsBy := func(d time.Duration) uint64 {
		tn.clk.RunUntil(start.Add(d))
		return n.Stats().Rejoins
	}
	// Delays of 1s, 2s, ... 256s (±25%), each plus a 2s ping timeout: 9
	// attempts take 399s to 655s, and the 10th comes 225s to 375s later.
	early := rejoinsBy(10 * time.Minute)
	if early < 8 || early > 11 {
		t.Fatalf("%d rejoin attempts in the first 10 minutes, want 8 to 11 (doubling from 1s)", early)
	}
	// At the cap, one attempt every 227s to 377s: 114 to 190 in 12 hours.
	mid := rejoinsBy(12 * time.Hour)
	late := rejoinsBy(24*time.Hour) - mid
	if late < 114 || late > 190 {
		t.Fatalf("%d rejoin attempts between hours 12 and 24, want 114 to 190 (one per %v ±25%%)", late, rejoinMax)
	}
	if n.Stats().TableSize != 0 {
		t.Fatal("the table should still be empty")
	}
}

// Close ends the attempts, even one in progress, and leaves no timer behind.
func TestCloseStopsRejoining(t *testing.T) {
	tn := newTestNet(t, 73, memnet.Config{})
	n := tn.add(func(c *Config) { c.Seeds = []netip.AddrPort{nowhere} })
	tn.clk.RunWhile(func() bool { return n.Stats().Rejoins < 3 }, tn.clk.Now().Add(time.Hour))
	if got := n.Stats().Rejoins; got != 3 {
		t.Fatalf("%d rejoin attempts, want 3 before closing", got)
	}
	// The third attempt's pings are in flight now.
	n.Close()
	tn.clk.RunFor(24 * time.Hour)
	if got := n.Stats().Rejoins; got != 3 {
		t.Fatalf("%d rejoin attempts after Close, want still 3", got)
	}
	if left := tn.clk.Len(); left != 0 {
		t.Fatalf("%d events still scheduled after Close", left)
	}
}

// A node with contacts never rejoins, however long it idles: rejoining costs
// nothing while the table has contacts.
func TestNodeWithContactsNeverRejoins(t *testing.T) {
	tn := newTestNet(t, 74, memnet.Config{})
	seed := tn.add(nil)
	for range 7 {
		tn.add(func(c *Config) { c.Seeds = []netip.AddrPort{seed.Addr()} })
	}
	tn.bootstrapAll(50 * time.Millisecond)
	tn.clk.RunFor(time.Minute)
	before := make([]uint64, len(tn.nodes))
	for i, n := range tn.nodes {
		before[i] = n.Stats().Rejoins
	}
	tn.clk.RunFor(6 * time.Hour)
	for i, n := range tn.nodes {
		if st := n.Stats(); st.Rejoins != before[i] || st.TableSize == 0 {
			t.Errorf("node %d: %d contacts, rejoins went from %d to %d", i, st.TableSize, before[i], st.Rejoins)
		}
	}
}

// A node given seeds joins through them by itself: its table is empty at
// start, which is the case rejoining covers.
func TestNodeWithSeedsJoinsWithoutBootstrap(t *testing.T) {
	tn := newTestNet(t, 75, memnet.Config{})
	seed := tn.add(nil)
	n := tn.add(func(c *Config) { c.Seeds = []netip.AddrPort{seed.Addr()} })
	tn.clk.RunWhile(func() bool { return n.Stats().TableSize == 0 }, tn.clk.Now().Add(10*time.Second))
	if st := n.Stats(); st.TableSize == 0 || st.Rejoins != 1 {
		t.Fatalf("after 10s: %d contacts, %d rejoin attempts; want the seed after one attempt", st.TableSize, st.Rejoins)
	}
}

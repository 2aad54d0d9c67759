package core

import (
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
)

// Maintenance runs on one timer per node, a few times per refresh interval:
// it refreshes buckets that saw no lookup for a whole interval (paper, section
// 2.3) and sweeps expired values. One coarse timer keeps an idle node nearly
// free: 10,000 idle nodes wake a few times a second in all. While the routing
// table is empty the same timer paces rejoin attempts instead (rejoin.go).

func (n *Node) maintenanceEvery() time.Duration {
	base := n.cfg.RefreshInterval / 4
	// ±10% jitter, so that nodes started together do not refresh in step.
	return base - base/10 + time.Duration(n.rng.Int64N(int64(base/5)+1))
}

func (n *Node) armMaintenance(now time.Time) {
	if n.closed {
		return
	}
	n.mntTimer.stop()
	d := n.maintenanceEvery()
	if n.table.Len() > 0 {
		n.rejoinStreak = 0
	} else if n.needsRejoin() {
		d = n.rejoinDelay()
	}
	n.mntTimer.at = now.Add(d)
	gen := n.mntTimer.gen
	n.mntTimer.t = n.clock.AfterFunc(d, func() { n.onMaintenance(gen) })
}

func (n *Node) onMaintenance(gen uint64) {
	n.run(func(now time.Time, w transport.Writer) {
		if gen != n.mntTimer.gen || n.closed {
			return
		}
		n.mntTimer.t = nil
		if n.maintain(now, w) {
			return // a rejoin is under way; its end arms the timer again
		}
		n.armMaintenance(now)
	})
}

// maintain runs one round and reports whether it started a rejoin.
func (n *Node) maintain(now time.Time, w transport.Writer) (rejoining bool) {
	if swept := n.store.Sweep(now); swept > 0 {
		n.stats.expired += uint64(swept)
	}
	n.summarizeRefusals(now) // obs: the info line on refused stores (trace.go)
	if n.table.Len() == 0 {
		return n.rejoin()
	}
	var buf [id.Bits]int
	for _, i := range n.table.Stale(now, n.cfg.RefreshInterval, buf[:0]) {
		n.stats.refreshes++
		n.refresh(i, now, w)
	}
	return false
}

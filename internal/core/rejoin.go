package core

import (
	"net/netip"
	"slices"
	"time"
)

// Rejoining: a node that loses every contact (its network was down for hours,
// and every contact failed its refreshes) would otherwise stay alone forever,
// since maintenance has no one to ask. When its table is empty, a node with
// Config.Seeds bootstraps through them again, with exponential backoff, for
// as long as it runs. The backoff rides on the maintenance timer, so a node
// with contacts pays nothing and an isolated one one timer.

// maxSeeds bounds the seeds a node remembers for rejoining.
const maxSeeds = 64

// rememberSeeds keeps the seeds of the latest Bootstrap (or Config.Seeds)
// for rejoining. The lock is held.
func (n *Node) rememberSeeds(seeds []netip.AddrPort) {
	if len(seeds) > 0 {
		n.seeds = slices.Clone(seeds[:min(len(seeds), maxSeeds)])
	}
}

// rejoinSoon brings the next maintenance round forward when the table has
// just emptied, so that the node starts rejoining within seconds rather
// than at its next refresh round. The lock is held.
func (n *Node) rejoinSoon(now time.Time) {
	if n.table.Len() == 0 && n.needsRejoin() && n.mntTimer.t != nil && n.mntTimer.at.Sub(now) > rejoinMax {
		n.armMaintenance(now)
	}
}

// Rejoin backoff bounds: the first attempt comes soon after the table is found
// empty, and an isolated node asks its seeds about every five minutes at most.
const (
	rejoinMin = time.Second
	rejoinMax = 5 * time.Minute
)

// needsRejoin reports whether the node should bootstrap through its seeds.
// The lock is held.
func (n *Node) needsRejoin() bool {
	return n.table.Len() == 0 && len(n.seeds) > 0 && !n.closed
}

// rejoinDelay is the wait before the next rejoin attempt: rejoinMin doubled
// per attempt since the table emptied, at most rejoinMax, ±25% so that nodes
// cut off together do not all knock at once when the network heals.
func (n *Node) rejoinDelay() time.Duration {
	b := rejoinMax
	if s := n.rejoinStreak; s < 32 {
		b = min(rejoinMin<<s, rejoinMax)
	}
	return b - b/4 + time.Duration(n.rng.Int64N(int64(b/2)+1))
}

// rejoin starts a bootstrap through the seeds and reports whether it did.
// The maintenance timer is not armed meanwhile: the bootstrap's end arms it,
// so that attempts never overlap however slow the seeds are. The lock is
// held.
func (n *Node) rejoin() bool {
	if !n.needsRejoin() {
		return false
	}
	n.stats.rejoins++
	n.rejoinStreak++
	seeds := n.seeds // replaced, never modified, by Bootstrap
	if n.rejoinStreak == 1 {
		n.log.Warn("routing table empty: rejoining through seeds", "seeds", len(seeds))
	}
	n.later(func() {
		// Bootstrap takes the lock itself; its callback runs without it.
		n.Bootstrap(seeds, func(r *BootstrapResult, err error) {
			n.mu.Lock()
			defer n.unlock()
			if n.closed {
				return
			}
			if err == nil && r.TableSize > 0 {
				n.log.Info("rejoined through seeds", "attempts", n.rejoinStreak, "contacts", r.TableSize)
			} else {
				n.log.Debug("rejoin failed", "attempt", n.rejoinStreak, "err", err)
			}
			n.armMaintenance(n.clock.Now())
		})
	})
	return true
}

package core

import (
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// refresh looks up a random ID in bucket i's range (paper, section 2.3).
// What a refresh is for is a bucket of contacts known to be alive, so the
// lookup stops as soon as K contacts in the bucket's range have answered it,
// instead of converging on the K closest to an ID nobody asked for: in a
// network of thousands that is about half the requests (see
// TestRefreshStopsAtABucketOfLiveContacts). A bucket whose range holds
// fewer than K nodes, such as the node's own neighbourhood, still gets the
// full lookup. Config.FullRefresh restores the full lookup everywhere.
func (n *Node) refresh(i int, now time.Time, w transport.Writer) {
	o := n.newLookup(wire.FindNode, n.table.RefreshTarget(i, n.rng), now, func(*LookupResult, time.Time, transport.Writer) {})
	if !n.cfg.FullRefresh {
		last := i == n.table.Buckets()-1 // its range is every deeper prefix too
		o.l.StopWhen(func(l *lookup.Lookup) bool { return n.bucketHeard(l, i, last) })
	}
	n.seed(o, now, w)
}

// bucketHeard reports whether K of the contacts that answered lookup l lie
// in the range bucket i had when the refresh started: IDs sharing exactly i
// leading bits with the node's, or at least i for the last bucket. It goes
// by the prefix, not the table's bucket index, which a split may change
// while the lookup runs.
func (n *Node) bucketHeard(l *lookup.Lookup, i int, last bool) bool {
	var buf [wire.MaxContacts]id.Contact
	got := 0
	for _, c := range l.Closest(buf[:0]) {
		if p := n.self.CommonPrefixLen(c.ID); p == i || (last && p > i) {
			got++
		}
	}
	return got >= n.cfg.K
}

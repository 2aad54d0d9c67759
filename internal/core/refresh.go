package core

import (
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/routing"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// refresh looks up a random ID in bucket i's range (paper, section 2.3).
// What a refresh is for is a bucket's worth of contacts known to be alive,
// so it stops as soon as it has K of them in the bucket's range: the
// bucket's entries heard from within the routing table's freshness window
// (routing.DefaultFresh, the table's own test of a live contact), then the
// contacts in the range that answer the lookup. A bucket already full of
// fresh contacts costs no request at all (every other time: see below); any other stops at K answers in
// range instead of converging on the K closest to an ID nobody asked for
// (TestRefreshStopsAtABucketOfLiveContacts measures both). A range that
// holds fewer than K nodes, such as the node's own neighbourhood, still
// gets the full lookup. Config.FullRefresh restores the full lookup
// everywhere.
func (n *Node) refresh(i int, now time.Time, w transport.Writer) {
	target := n.table.RefreshTarget(i, n.rng)
	if n.cfg.FullRefresh {
		n.lookup(wire.FindNode, target, now, w, func(*LookupResult, time.Time, transport.Writer) {})
		return
	}
	// LastSeen moves on any request from an entry's address, and source
	// addresses can be forged: sightings alone must not keep a bucket's
	// dead contacts from ever being asked. So a bucket skipped last time
	// asks the network this time, and counts only the contacts that
	// answer it.
	var fresh []netip.AddrPort
	word, bit := i/64, uint64(1)<<(i%64)
	if n.skippedRefresh[word]&bit == 0 {
		n.table.ForEach(func(b int, e routing.Entry) {
			if b == i && e.Verified && e.Failures == 0 && now.Sub(e.LastSeen) < routing.DefaultFresh {
				fresh = append(fresh, tableAddr(e.Contact.Addr))
			}
		})
	}
	if len(fresh) >= n.cfg.K {
		n.skippedRefresh[word] |= bit
		n.stats.refreshesSkipped++
		n.table.Touch(target, now)
		return
	}
	n.skippedRefresh[word] &^= bit
	last := i == n.table.Buckets()-1 // its range is every deeper prefix too
	o := n.newLookup(wire.FindNode, target, now, func(*LookupResult, time.Time, transport.Writer) {})
	o.l.StopWhen(func(l *lookup.Lookup) bool { return n.bucketHeard(l, i, last, fresh) })
	n.seed(o, now, w)
}

// bucketHeard reports whether the fresh contacts and those that answered
// lookup l in the range bucket i had when the refresh started make K: IDs
// sharing exactly i leading bits with the node's, or at least i for the
// last bucket. It goes by the prefix, not the table's bucket index, which
// a split may change while the lookup runs. It counts addresses, not IDs,
// as the routing table does (one entry per address): K IDs answering from
// one address are one contact, and must not end the refresh.
func (n *Node) bucketHeard(l *lookup.Lookup, i int, last bool, fresh []netip.AddrPort) bool {
	var buf [wire.MaxContacts]id.Contact
	var seen [wire.MaxContacts]netip.AddrPort
	heard := seen[:0]
	got := len(fresh)
	for _, c := range l.Closest(buf[:0]) {
		a := tableAddr(c.Addr)
		if p := n.self.CommonPrefixLen(c.ID); (p == i || (last && p > i)) && !slices.Contains(fresh, a) && !slices.Contains(heard, a) {
			heard = append(heard, a)
			got++
		}
	}
	return got >= n.cfg.K
}

// tableAddr is an address as the routing table tells addresses apart: an
// IPv4-mapped IPv6 address is the IPv4 address it maps.
func tableAddr(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

package core

import (
	"net/netip"
	"testing"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/lookup"
)

// A get's quorum counts holders only while they are among the K closest
// candidates its lookup knows: three holders far from the key (forgers
// met on the first hops) make a quorum only until K closer nodes are
// known, and three of those closer nodes make it again.
func TestQuorumCountsOnlyHoldersNearTheKey(t *testing.T) {
	var target id.ID // the zero ID: a contact's distance is its ID
	contact := func(first, i byte) id.Contact {
		return id.Contact{ID: id.ID{first, i}, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, first, 0, i}), 4000)}
	}
	var far, near []id.Contact
	for i := range byte(4) {
		far = append(far, contact(0xF0, i+1))
		near = append(near, contact(0x01, i+1))
	}
	o := &lookupOp{quorum: 3, l: new(lookup.Lookup)}
	o.l.Reset(id.ID{0xAA}, target, lookup.Config{K: 4})
	o.l.AddSeeds(far)
	for _, c := range far[:3] {
		o.holderIDs = append(o.holderIDs, c.ID)
		o.holders++
	}
	if !o.quorumNear() {
		t.Fatal("three holders among the only candidates known make no quorum")
	}
	o.l.AddSeeds(near)
	if o.quorumNear() {
		t.Fatal("three far holders still make a quorum once K closer nodes are known")
	}
	for _, c := range near[:2] {
		o.holderIDs = append(o.holderIDs, c.ID)
		o.holders++
	}
	if o.quorumNear() {
		t.Fatal("two near holders make a quorum of three")
	}
	o.holderIDs = append(o.holderIDs, id.ID{}) // this node's own records
	o.holders++
	if !o.quorumNear() {
		t.Fatal("two near holders and this node make no quorum of three")
	}
}

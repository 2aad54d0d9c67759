package core

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/transport/memnet"
)

// The beta rule stores on candidates nobody asked. One address is one node
// (the routing table keeps one entry per address), so an answer naming K
// IDs at one address, its own or a victim's, must get one target there:
// otherwise a single hostile answer makes every target and spare of the put
// one address, which answers under one ID at most (the others fail on the
// sender check), so the put ends with one replica or none, after aiming 2K
// unasked PUTs at that address.
func TestReview10BetaTargetsTakeOneContactPerAddress(t *testing.T) {
	tn := newTestNet(t, 1012, memnet.Config{})
	n := tn.add(nil)
	k := n.cfg.K
	key := inBucket0(n.self, 0)
	l := lookup.New(n.self, key, lookup.Config{K: k, Alpha: n.cfg.Alpha})
	near := func(x byte) id.ID { c := key; c[id.Len-1] ^= x; return c }
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 4000)
	}
	// Three honest seeds, the closest to the key, at their own addresses.
	seeds := []id.Contact{{ID: near(1), Addr: addr(1)}, {ID: near(2), Addr: addr(2)}, {ID: near(3), Addr: addr(3)}}
	l.AddSeeds(seeds)
	asked := l.Next(nil)
	if len(asked) != 3 {
		t.Fatalf("asked %d seeds", len(asked))
	}
	// The first names 2K farther IDs, all at one victim address.
	victim := addr(99)
	var named []id.Contact
	for i := range 2 * k {
		named = append(named, id.Contact{ID: near(byte(0x40 + i)), Addr: victim})
	}
	l.OnResponse(asked[0].ID, named)
	l.OnResponse(asked[1].ID, nil)
	l.OnResponse(asked[2].ID, nil)
	n.mu.Lock()
	targets, ok := n.betaTargets(l, time.Time{})
	n.mu.Unlock()
	if !ok {
		t.Fatal("the beta rule did not stop the lookup with its 3 closest answered")
	}
	at := 0
	for _, c := range targets {
		if c.Addr == victim {
			at++
		}
	}
	if at > 1 {
		t.Fatalf("%d of the %d targets and spares are at one address", at, len(targets))
	}
}

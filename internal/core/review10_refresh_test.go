package core

import (
	"net/netip"
	"testing"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/transport/memnet"
)

// inBucket0 returns an ID sharing no leading bit with self (bucket 0's
// range), told apart by x.
func inBucket0(self id.ID, x byte) id.ID {
	c := self
	c[0] ^= 0x80
	c[id.Len-1] ^= x
	c[id.Len-2] ^= 0x5a
	return c
}

// A refresh stops early once K contacts in the bucket's range answered. The
// routing table keeps one entry per address, so K IDs answering from one
// address are one contact to it: they must not end the refresh, or one
// peer naming K IDs at its own address (it sees the refresh's target and
// can name IDs next to it) stops every refresh of a bucket after a single
// contact was learned, and the bucket never fills.
func TestReview10ManyIDsAtOneAddressDoNotEndARefresh(t *testing.T) {
	for _, tc := range []struct {
		name      string
		addresses int
		want      bool
	}{
		{"K IDs at one address", 1, false},
		{"K IDs at K addresses", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tn := newTestNet(t, 1011, memnet.Config{})
			n := tn.add(nil)
			k := n.cfg.K
			target := inBucket0(n.self, 0xff)
			l := lookup.New(n.self, target, lookup.Config{K: k, Alpha: n.cfg.Alpha})
			addr := func(i int) netip.AddrPort {
				if tc.addresses == 1 {
					i = 0
				}
				return netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + i)}), 4000)
			}
			var cs []id.Contact
			for i := range k {
				cs = append(cs, id.Contact{ID: inBucket0(n.self, byte(i+1)), Addr: addr(i)})
			}
			l.AddSeeds(cs)
			for len(l.Closest(nil)) < k {
				asked := l.Next(nil)
				if len(asked) == 0 {
					t.Fatalf("the lookup asks nobody more with %d answers", len(l.Closest(nil)))
				}
				for _, c := range asked {
					l.OnResponse(c.ID, nil)
				}
			}
			n.mu.Lock()
			got := n.bucketHeard(l, 0, false, nil)
			n.mu.Unlock()
			if got != tc.want {
				t.Fatalf("bucketHeard = %v with %d answers in range, want %v", got, k, tc.want)
			}
		})
	}
}

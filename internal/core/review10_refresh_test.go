package core

import (
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
	"net/netip"
	"testing"
	"time"

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

// A refresh is skipped when the bucket holds K verified contacts heard from
// within routing.DefaultFresh. "Heard from" includes requests, whose source
// anyone can forge: a peer that sends a PING under each dead contact's
// address every few minutes keeps the bucket "fresh", so no refresh ever
// asks those contacts, none of them fails, and the dead entries stay for
// good. (The full lookup would ask them, they would fail, and their
// replacements would take the slots.)
func TestReview10ForgedSightingsDoNotKeepDeadContactsFromARefresh(t *testing.T) {
	tn := newTestNet(t, 1014, memnet.Config{})
	v := tn.add(func(c *Config) { c.K = 4; c.RefreshInterval = 10 * time.Minute })
	k := v.cfg.K
	var ghosts []*peer
	v.run(func(now time.Time, w transport.Writer) {
		for i := range k {
			c := id.Contact{ID: inBucket0(v.self, byte(i+1)), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, 0, byte(i + 1)}), 4000)}
			v.table.Verified(c, now)
		}
	})
	for _, e := range v.Contacts() {
		// The dead node's address: it never answers, but PINGs come
		// from it (forged, in the real attack).
		ghosts = append(ghosts, tn.listenPeer(e.Contact.Addr, e.Contact.ID, func(*wire.Message, netip.AddrPort) *wire.Message { return nil }))
	}
	for range 12 { // 36 minutes: every bucket goes stale three times
		for _, g := range ghosts {
			sendRaw(t, g, v.Addr(), wire.Message{Type: wire.Ping, TxID: 1, Network: v.cfg.Network})
		}
		tn.clk.RunFor(3 * time.Minute)
	}
	alive := 0
	for _, e := range v.Contacts() {
		if e.Failures == 0 {
			alive++
		}
	}
	if alive == k {
		t.Fatalf("after 36 minutes of forged PINGs the %d dead contacts were never asked (%d refreshes skipped)", k, v.Stats().RefreshesSkipped)
	}
}

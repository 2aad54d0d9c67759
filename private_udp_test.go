package dht

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/transport/sealed"
	"github.com/dhtkit/dht/wire"
)

const privateNet = 42

var privateSecret = []byte("the private network's secret: 32")

// privateNode is a node on 127.0.0.1 with the given secret and network,
// quick to give up on peers that never answer.
func privateNode(t *testing.T, secret []byte, network uint32) *Node {
	return loopbackNode(t, func(c *Config) {
		c.Secret, c.NetworkID = secret, network
		c.RequestTimeout, c.Attempts = 300*time.Millisecond, 2
		c.LookupTimeout = 5 * time.Second
	})
}

// sealedDrops sums the private nodes' drop counts of reason.
func sealedDrops(ns []*Node, reason string) uint64 {
	var n uint64
	for _, x := range ns {
		n += x.Stats().SealedDropped[reason]
	}
	return n
}

// waitDrops waits, up to a deadline, until the private nodes have dropped
// at least want datagrams for reason: then every datagram sent before was
// handled, and whatever it could have changed has changed.
func waitDrops(t *testing.T, ns []*Node, reason string, want uint64) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for sealedDrops(ns, reason) < want {
		select {
		case <-deadline:
			t.Fatalf("dropped %d datagrams as %s, want at least %d", sealedDrops(ns, reason), reason, want)
		case <-tick.C:
		}
	}
}

// A private network of five nodes works over real UDP, and nodes without
// its secret (a wrong secret, the right secret on another network ID, or
// none) can neither join it, read from it nor write to it: the private
// nodes drop and count every datagram of theirs and never answer one.
func TestPrivateNetworkOverUDP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ns := make([]*Node, 5)
	for i := range ns {
		ns[i] = privateNode(t, privateSecret, privateNet)
	}
	seed := ns[0].Addr().String()
	for _, n := range ns[1:] {
		if err := n.Bootstrap(ctx, seed); err != nil {
			t.Fatal(err)
		}
	}
	key := Key("private value")
	res, err := ns[1].Put(ctx, key, []byte("members only"))
	if err != nil || res.Stored < 3 {
		t.Fatalf("put on the private network: stored on %d, %v", res.Stored, err)
	}
	got, err := ns[4].Get(ctx, key)
	if err != nil || len(got.Values) != 1 || string(got.Values[0].Data) != "members only" {
		t.Fatalf("get on the private network: %+v, %v", got, err)
	}

	outsiders := []struct {
		name   string
		secret []byte
		net    uint32
		reason string
	}{
		{"wrong secret", []byte("not the network's secret, 32 b."), privateNet, "bad_tag"},
		{"wrong network ID", privateSecret, privateNet + 1, "wrong_network"},
		{"no secret", nil, privateNet, "plain"},
	}
	for _, o := range outsiders {
		t.Run(o.name, func(t *testing.T) {
			before := sealedDrops(ns, o.reason)
			x := privateNode(t, o.secret, o.net)
			// Join: the seed never answers.
			if err := x.Bootstrap(ctx, seed); err == nil {
				t.Error("bootstrap through a private node succeeded")
			}
			if c := x.Contacts(); len(c) != 0 {
				t.Errorf("the outsider has %d contacts", len(c))
			}
			// Read: nothing to ask.
			if _, err := x.Get(ctx, key); err == nil {
				t.Error("the outsider read the private value")
			}
			// Write: the outsider's put lands nowhere, whether as a node
			// (it knows no peer) or as raw PUTs sent to every member.
			own := Key("outsider's value " + o.name)
			if r, err := x.Put(ctx, own, []byte("intruder")); err == nil || r.Stored > 1 {
				t.Errorf("outsider's put: stored on %d, %v", r.Stored, err)
			}
			var m wire.Message
			m.Type, m.Network, m.TxID, m.Sender = wire.Put, o.net, 1, x.ID()
			m.Target, m.Publisher, m.Version, m.TTL = own, x.ID(), 1, 3600
			m.Value, m.Size = []byte("intruder"), 8
			plain, err := m.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			raw := plain
			if o.secret != nil {
				k, err := sealed.NewKey(o.secret, o.net)
				if err != nil {
					t.Fatal(err)
				}
				var nonce [sealed.NonceSize]byte
				raw = k.Seal(nil, &nonce, plain)
			}
			conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			mid := sealedDrops(ns, o.reason)
			for _, n := range ns {
				if _, err := conn.WriteToUDPAddrPort(raw, n.Addr()); err != nil {
					t.Fatal(err)
				}
			}
			waitDrops(t, ns, o.reason, mid+uint64(len(ns)))
			for i, n := range ns {
				if _, err := n.Get(ctx, own); !errors.Is(err, ErrNotFound) {
					t.Errorf("member %d: get of the outsider's key: %v, want not found", i, err)
				}
			}
			if after := sealedDrops(ns, o.reason); after <= before+uint64(len(ns)) {
				t.Errorf("the members dropped %d datagrams as %s, want more than the %d raw ones", after-before, o.reason, len(ns))
			}
			// No member answered anything: nothing reached the outsider.
			if s := x.Stats(); s.PacketsIn != 0 {
				t.Errorf("the outsider received %d datagrams", s.PacketsIn)
			}
			// And the private network still works.
			if got, err := ns[2].Get(ctx, key); err != nil || len(got.Values) != 1 {
				t.Errorf("private get after the outsider: %+v, %v", got, err)
			}
		})
	}
	for _, n := range ns {
		if s := n.Stats().SealedDropped; s["replay"]+s["stale"]+s["malformed"] != 0 {
			t.Errorf("a member dropped its own network's datagrams: %v", s)
		}
	}
}

// A secret under 16 bytes stops New with an error that names the field; 16
// bytes and an empty secret (an open network) are fine.
func TestSecretTooShortRefused(t *testing.T) {
	for _, tc := range []struct {
		secret []byte
		ok     bool
	}{{nil, true}, {[]byte{}, true}, {make([]byte, 15), false}, {make([]byte, 16), true}} {
		c := DefaultConfig()
		c.Secret = tc.secret
		err := c.validate()
		if tc.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "Config.Secret has 15 bytes")) {
			t.Errorf("secret of %d bytes: %v", len(tc.secret), err)
		}
	}
}

package core

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// Hostile peers answering at random (silence, wrong types, wrong senders,
// duplicates, contacts pointing at the node itself, at silent addresses and
// at one another, values with and without more), against a node with a tiny
// request table (so that requests queue) running every kind of operation
// and canceling some at random: no panic, every callback exactly once, the
// request table and queue empty once every operation has ended, and no
// shortlist handed out twice by the pool.
func TestRandomHostilePeersCannotBreakTheNodesBookkeeping(t *testing.T) {
	for seed := range uint64(40) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runChaos(t, 700+seed) })
	}
}

func runChaos(t *testing.T, seed uint64) {
	tn := newTestNet(t, seed, memnet.Config{})
	rng := rand.New(rand.NewPCG(seed, 7))
	a := tn.add(func(c *Config) {
		c.K, c.Alpha = 5, 3
		c.MaxInFlight = 1 + rng.IntN(6)
		c.Attempts = 1 + rng.IntN(3)
		c.GetQuorum = 1 + rng.IntN(5)
		c.RefreshInterval = 1000 * time.Hour // no maintenance lookups in the count
	})
	const npeers = 12
	addrs := make([]netip.AddrPort, npeers)
	ids := make([]id.ID, npeers)
	for i := range npeers {
		addrs[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 90, 0, byte(i + 1)}), 4000)
		ids[i] = id.Random(rng)
	}
	contact := func() id.Contact {
		switch rng.IntN(5) {
		case 0:
			return id.Contact{ID: id.Random(rng), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 91, byte(rng.IntN(4)), byte(rng.IntN(250) + 1)}), 4000)}
		case 1:
			return id.Contact{ID: id.Random(rng), Addr: a.Addr()}
		case 2:
			return id.Contact{ID: a.ID(), Addr: addrs[rng.IntN(npeers)]}
		}
		j := rng.IntN(npeers)
		return id.Contact{ID: ids[j], Addr: addrs[j]}
	}
	for i := range npeers {
		ep, err := tn.net.Listen(addrs[i])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		var m wire.Message
		buf := make([]byte, 0, wire.MaxPacket)
		err = ep.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
			if wire.Decode(data, &m) != nil || !m.Type.IsRequest() {
				return
			}
			if rng.IntN(5) == 0 {
				return
			}
			out := wire.Message{TxID: m.TxID, Network: m.Network, Sender: ids[i]}
			if rng.IntN(10) == 0 {
				out.Sender = id.Random(rng)
			}
			types := []wire.Type{wire.Error, wire.Pong, wire.Nodes, wire.Values, wire.Stored, wire.Records, wire.PutOK, wire.Part}
			switch m.Type {
			case wire.Ping:
				out.Type = wire.Pong
			case wire.FindNode:
				out.Type = wire.Nodes
			case wire.FindValue:
				out.Type = wire.Values
			case wire.Store:
				out.Type = wire.Stored
			case wire.Get:
				out.Type = wire.Records
			case wire.Put:
				out.Type = wire.PutOK
			case wire.Fetch:
				out.Type = wire.Part
			}
			if rng.IntN(6) == 0 {
				out.Type = types[rng.IntN(len(types))]
			}
			switch out.Type {
			case wire.Pong:
				out.Observed = from
			case wire.Nodes, wire.Values:
				for range rng.IntN(6) {
					out.Contacts = append(out.Contacts, contact())
				}
				if out.Type == wire.Values && rng.IntN(2) == 0 {
					for range rng.IntN(4) {
						out.Values = append(out.Values, wire.Value{TTL: rng.Uint32(), Data: []byte{byte(rng.IntN(8))}})
					}
					out.More = rng.IntN(3) == 0
				}
			case wire.Records:
				for range rng.IntN(6) {
					out.Contacts = append(out.Contacts, contact())
				}
				if rng.IntN(2) == 0 {
					out.Contacts = nil
					for range 1 + rng.IntN(4) {
						// Few publishers, so that versions, tombstones
						// and fetch-only records collide.
						r := wire.Record{Publisher: id.ID{byte(rng.IntN(3))}, Version: uint64(rng.IntN(4)), TTL: rng.Uint32()}
						switch rng.IntN(3) {
						case 0:
							r.Deleted = true
						case 1:
							r.Size = uint32(1 + rng.IntN(3000)) // fetch-only
						default:
							r.Data = []byte{byte(rng.IntN(8))}
							r.Size = 1
						}
						out.Records = append(out.Records, r)
					}
					out.More = rng.IntN(3) == 0
				}
			case wire.PutOK:
				out.Status = uint8(rng.IntN(2))
				out.TTL = rng.Uint32()
			case wire.Part:
				out.Size = uint32(rng.IntN(3000))
				out.Offset = uint32(rng.IntN(3)) * wire.MaxPart
				if out.Offset < out.Size {
					out.Value = make([]byte, min(int(out.Size-out.Offset), wire.MaxPart))
				}
			case wire.Stored:
				out.TTL = rng.Uint32()
			case wire.Error:
				out.Code = wire.ErrorCode(rng.IntN(9))
				out.Text = []byte("no")
			}
			b, err := out.Append(buf[:0])
			if err != nil {
				return
			}
			w.WriteTo(b, from)
			if rng.IntN(8) == 0 {
				w.WriteTo(b, from) // a duplicate
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
	}

	pending := 1
	a.Bootstrap(addrs[:3], func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, 5*time.Minute)

	calls := map[int]int{}
	var cancels []func()
	const ops = 300
	pending = ops
	for i := range ops {
		done := func() {
			calls[i]++
			if calls[i] == 1 {
				pending--
			}
		}
		key := id.Random(rng)
		var c func()
		switch rng.IntN(5) {
		case 0:
			c = a.FindNode(key, func(*LookupResult, error) { done() })
		case 1:
			c = a.Get(key, func(*LookupResult, error) { done() })
		case 2:
			c = a.Put(key, []byte{1}, time.Hour, func(*PutResult, error) { done() })
		case 3:
			c = a.Ping(addrs[rng.IntN(npeers)], func(id.Contact, error) { done() })
		case 4:
			c = a.Bootstrap(addrs[rng.IntN(npeers):][:1], func(*BootstrapResult, error) { done() })
		}
		cancels = append(cancels, c)
		if rng.IntN(3) == 0 {
			tn.clk.RunFor(time.Duration(rng.IntN(1500)) * time.Millisecond)
		}
		if rng.IntN(4) == 0 {
			cancels[rng.IntN(len(cancels))]()
		}
	}
	tn.await(&pending, 10*time.Minute)
	tn.clk.RunFor(time.Minute)
	st := a.Stats()
	t.Logf("requests %d, queued %d, stalls %d, timeouts %d", st.Requests, a.stats.rpcQueued, st.Stalls, st.Timeouts)
	for i, n := range calls {
		if n != 1 {
			t.Errorf("operation %d called back %d times", i, n)
		}
	}
	a.mu.Lock()
	inFlight, queued := a.rpc.Len(), len(a.queue)-a.queueHead
	a.mu.Unlock()
	if inFlight != 0 || queued != 0 {
		t.Errorf("every operation ended, yet %d requests are in flight and %d queued", inFlight, queued)
	}
	seen := map[*lookup.Lookup]bool{}
	for range 200 {
		l := lookupPool.Get().(*lookup.Lookup)
		if seen[l] {
			t.Fatalf("the lookup pool handed out the same shortlist twice: it was put back twice")
		}
		seen[l] = true
	}
}

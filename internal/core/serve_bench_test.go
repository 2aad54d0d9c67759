package core

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// discard is a Writer that drops what it is given, so that a benchmark of
// HandlePacket measures the node's own work and nothing of a transport.
type discard struct{ n int }

func (d *discard) WriteTo(b []byte, _ netip.AddrPort) { d.n += len(b) }

// servingNode returns a node with a routing table of 200 contacts and 1,000
// stored keys, and the FIND_VALUE, FIND_NODE and PING requests to send it.
func servingNode(b *testing.B) (*Node, map[string][]byte) {
	clk := clock.NewVirtual(epoch)
	net := memnet.New(memnet.Config{Clock: clk})
	n, err := New(Config{Transport: net.NewEndpoint(), Clock: clk, Rand: rand.New(rand.NewPCG(1, 1))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	r := rand.New(rand.NewPCG(2, 2))
	n.mu.Lock()
	for i := range 200 {
		n.table.Seen(id.Contact{ID: id.Random(r), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i / 250), byte(1 + i%250)}), 4000)}, clk.Now())
	}
	n.mu.Unlock()
	for i := range 1000 {
		if err := n.store.Put(id.Key(fmt.Sprint(i)), make([]byte, 100), clk.Now().Add(time.Hour), clk.Now()); err != nil {
			b.Fatal(err)
		}
	}
	req := func(t wire.Type, target id.ID) []byte {
		m := wire.Message{Type: t, TxID: 7, Sender: id.Random(r), Target: target}
		out, err := m.Append(nil)
		if err != nil {
			b.Fatal(err)
		}
		return out
	}
	return n, map[string][]byte{
		"FindValueHit":  req(wire.FindValue, id.Key("7")),
		"FindValueMiss": req(wire.FindValue, id.Key("absent")),
		"FindNode":      req(wire.FindNode, id.Random(r)),
		"Ping":          req(wire.Ping, id.ID{}),
	}
}

// BenchmarkHandleRequest measures what a node adds to each request on top of
// the transport: decode, routing-table update, lookup, encode.
func BenchmarkHandleRequest(b *testing.B) {
	n, reqs := servingNode(b)
	from := netip.MustParseAddrPort("127.1.2.3:5000")
	for _, name := range []string{"Ping", "FindValueHit", "FindValueMiss", "FindNode"} {
		pkt := reqs[name]
		b.Run(name, func(b *testing.B) {
			var w discard
			b.ReportAllocs()
			for b.Loop() {
				n.HandlePacket(pkt, from, &w)
			}
		})
	}
}

func TestServingDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector empties sync.Pools, so every call allocates under it")
	}
	n, reqs := servingNode(&testing.B{})
	from := netip.MustParseAddrPort("127.1.2.3:5000")
	var w transport.Writer = &discard{}
	for name, pkt := range reqs {
		n.HandlePacket(pkt, from, w) // warm the pools and the table
		if a := testing.AllocsPerRun(200, func() { n.HandlePacket(pkt, from, w) }); a != 0 {
			t.Errorf("%s: %v allocations per request", name, a)
		}
	}
}

package core

import (
	"bytes"
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
	return servingNodeOn(b, clock.NewVirtual(epoch))
}

// servingNodeOn is servingNode on a given clock: stored values expire an
// hour after the clock's present, so that every FIND_VALUE of a stored key
// is a hit whichever clock the benchmark uses.
func servingNodeOn(b *testing.B, clk clock.Clock) (*Node, map[string][]byte) {
	net := memnet.New(memnet.Config{Clock: clock.NewVirtual(epoch)})
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
		if err := putValue(n.store, id.Key(fmt.Sprint(i)), make([]byte, 100), netip.Addr{}, clk.Now().Add(time.Hour), clk.Now()); err != nil {
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

// BenchmarkHandleBatch is BenchmarkHandleRequest for FIND_VALUE hits handed
// over 16 at a time, as the UDP transport does, on the real clock (whose
// reading costs tens of nanoseconds on a VM): per request, it shows what
// reading the clock and taking the lock once per batch saves.
func BenchmarkHandleBatch(b *testing.B) {
	n, reqs := servingNodeOn(b, clock.Real{})
	from := netip.MustParseAddrPort("127.1.2.3:5000")
	pkts := make([]transport.Packet, 16)
	for i := range pkts {
		pkts[i] = transport.Packet{Addr: from, Data: reqs["FindValueHit"]}
	}
	var w discard
	b.Run("single", func(b *testing.B) {
		for b.Loop() {
			for _, p := range pkts {
				n.HandlePacket(p.Data, p.Addr, &w)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(16*b.N), "ns/request")
	})
	b.Run("batch16", func(b *testing.B) {
		for b.Loop() {
			n.HandleBatch(pkts, &w)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(16*b.N), "ns/request")
	})
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

// HandleBatch answers a batch exactly as HandlePacket answers each datagram.
func TestHandleBatchAnswersLikeHandlePacket(t *testing.T) {
	b := &testing.B{}
	one, reqs := servingNode(b)
	many, _ := servingNode(b)
	defer one.Close()
	defer many.Close()
	from := netip.MustParseAddrPort("127.1.2.3:5000")
	var pkts []transport.Packet
	for _, name := range []string{"Ping", "FindValueHit", "FindValueMiss", "FindNode", "Ping"} {
		pkts = append(pkts, transport.Packet{Addr: from, Data: reqs[name]})
	}
	pkts = append(pkts, transport.Packet{Addr: from, Data: []byte("garbage")})
	var singly, batched transport.Batch
	for _, p := range pkts {
		one.HandlePacket(p.Data, p.Addr, &singly)
	}
	many.HandleBatch(pkts, &batched)
	if singly.Len() != 5 || batched.Len() != singly.Len() {
		t.Fatalf("%d replies one by one, %d batched; want 5 each", singly.Len(), batched.Len())
	}
	for i, p := range singly.Packets() {
		if q := batched.Packets()[i]; !bytes.Equal(p.Data, q.Data) || p.Addr != q.Addr {
			t.Fatalf("reply %d differs:\n%x\n%x", i, p.Data, q.Data)
		}
	}
	if one.Stats().Malformed != 1 || many.Stats().Malformed != 1 {
		t.Fatal("the garbage datagram should be counted once by each")
	}
}

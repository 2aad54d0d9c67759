package sealed

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/transport"
)

// BenchmarkSeal is one 1400-byte datagram (the largest a node sends)
// through Transport.Send to a transport that discards it: counter, nonce,
// encryption and tag.
func BenchmarkSeal(b *testing.B) {
	tr, err := New(&nopTransport{}, Config{Secret: testSecret, Network: 7})
	if err != nil {
		b.Fatal(err)
	}
	to := netip.MustParseAddrPort("127.0.0.1:2")
	pkts := []transport.Packet{{Addr: to, Data: plainDatagram(1400)}}
	b.SetBytes(1400)
	b.ReportAllocs()
	for b.Loop() {
		tr.Send(pkts)
	}
}

// BenchmarkOpen is one sealed 1400-byte datagram through the receive path
// in batches of 16, as a udp socket reads them: format, tag, decryption,
// freshness and replay checks, delivery to a handler that does nothing.
// Each datagram has its own counter, so none is refused as a replay.
func BenchmarkOpen(b *testing.B) {
	inner := &nopTransport{}
	clk := fixedClock{time.Now()}
	tr, err := New(inner, Config{Secret: testSecret, Network: 7, Clock: clk})
	if err != nil {
		b.Fatal(err)
	}
	tr.Start(nopBatch{})
	h := inner.h.(transport.BatchHandler)
	const batch = 16
	from := netip.MustParseAddrPort("127.0.0.1:2")
	k := mustKey(b, testSecret, 7)
	plain := plainDatagram(1400)
	// Enough distinct datagrams that the loop never runs out: the window
	// refuses a counter once taken, so each iteration uses fresh ones.
	const pool = 1 << 14
	sealed := make([][]byte, pool)
	base := uint64(clk.now.UnixNano())
	for i := range sealed {
		sealed[i] = k.Seal(nil, nonceOf(base+uint64(i), uint64(i%batch), 0), plain)
	}
	pkts := make([]transport.Packet, batch)
	b.SetBytes(1400)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%batch == 0 {
			if i+batch > pool {
				b.StopTimer()
				// Start the instances over: empty the table, keeping
				// its memory.
				r := tr.replay
				clear(r.index)
				r.entries, r.head, r.tail = r.entries[:0], -1, -1
				i = 0
				b.StartTimer()
			}
			for j := range pkts {
				pkts[j] = transport.Packet{Addr: from, Data: sealed[i+j]}
			}
			h.HandleBatch(pkts, nopWriter{})
		}
		i++
	}
	if s := tr.Stats(); s.Replay+s.BadTag+s.Stale != 0 {
		b.Fatalf("refused: %+v", s)
	}
}

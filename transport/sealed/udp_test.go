package sealed

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"net/netip"

	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/udp"
)

// Over real UDP sockets on 127.0.0.1, with two reader goroutines on the
// receiving side and four goroutines sending at once (the race detector
// watches the shared counter, replay table and pools), every datagram
// arrives once and none is refused. Each receiver's reply travels back
// sealed through the batched Writer.
func TestConcurrentOverUDP(t *testing.T) {
	listen := func(sockets int) *Transport {
		u, err := udp.Listen(udp.Config{Addr: "127.0.0.1:0", Sockets: sockets, ReadBuffer: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		tr, err := New(u, Config{Secret: testSecret, Network: 7})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	a, b := listen(1), listen(2)
	const senders, each = 4, 100
	var mu sync.Mutex
	seen := map[uint32]int{}
	replies := 0
	done := make(chan struct{})
	b.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
		mu.Lock()
		seen[binary.BigEndian.Uint32(data)]++
		mu.Unlock()
		w.WriteTo(data, from)
	}))
	a.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
		mu.Lock()
		replies++
		if replies == senders*each {
			close(done)
		}
		mu.Unlock()
	}))
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				var d [4]byte
				binary.BigEndian.PutUint32(d[:], uint32(s*each+i))
				a.Send([]transport.Packet{{Addr: b.LocalAddr(), Data: d[:]}})
			}
		})
	}
	wg.Wait()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d replies of %d; b saw %d distinct, counts %+v / %+v", replies, senders*each, len(seen), a.Stats(), b.Stats())
	}
	mu.Lock()
	defer mu.Unlock()
	for k, n := range seen {
		if n != 1 {
			t.Errorf("datagram %d delivered %d times", k, n)
		}
	}
	if sa, sb := a.Stats(), b.Stats(); sa != (Counts{}) || sb != (Counts{}) {
		t.Errorf("drops: a %+v, b %+v", sa, sb)
	}
}

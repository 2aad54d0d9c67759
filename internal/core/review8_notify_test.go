package core

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// notifierSetup is a subscriber node registered at one scripted peer, the
// only node it knows, for key: the peer answers lookups, GET and LISTEN as
// an honest node holding nothing would, and every FETCH with NOT_FOUND
// (it holds no record, so a forged fetch-only NOTIFY fails).
type notifierSetup struct {
	tn     *testNet
	sub    *Node
	peer   *peer
	key    id.ID
	events []Event
	fetch  int // FETCHes the peer received
	unlist int // LISTENs of ttl 0 (cancellations) the peer received
	cancel func()
}

func newNotifierSetup(t *testing.T, seed uint64) *notifierSetup {
	t.Helper()
	ns := &notifierSetup{tn: newTestNet(t, seed, memnet.Config{Latency: memnet.Fixed(5 * time.Millisecond)}), key: id.Key("review8 notify")}
	ns.sub = ns.tn.add(func(c *Config) { c.K = 4; c.RefreshInterval = 1000 * time.Hour })
	ns.peer = ns.tn.listenPeer(netip.MustParseAddrPort("127.80.0.1:4000"), id.Key("notifier"), func(req *wire.Message, from netip.AddrPort) *wire.Message {
		switch req.Type {
		case wire.Fetch:
			ns.fetch++
			return &wire.Message{Type: wire.Error, Code: wire.CodeNotFound, Text: []byte("no")}
		case wire.Listen:
			if req.TTL == 0 {
				ns.unlist++
			}
			return answer(req, from, nil)
		case wire.Ping, wire.FindNode, wire.Get:
			return answer(req, from, nil)
		}
		return nil
	})
	pending := 1
	ns.sub.Bootstrap([]netip.AddrPort{ns.peer.ep.LocalAddr()}, func(_ *BootstrapResult, err error) {
		if err != nil {
			t.Error(err)
		}
		pending--
	})
	ns.tn.await(&pending, time.Minute)
	ns.cancel = ns.sub.Listen(ns.key, func(e Event) { ns.events = append(ns.events, e) })
	ns.tn.clk.RunFor(5 * time.Second)
	if s := ns.subscription(); s == nil || len(s.nodes) != 1 {
		t.Fatalf("the subscription is not registered at the scripted notifier")
	}
	return ns
}

// subscription returns the node's one subscription to the key.
func (ns *notifierSetup) subscription() *subscription {
	ns.sub.mu.Lock()
	defer ns.sub.mu.Unlock()
	if subs := ns.sub.subs[ns.key]; len(subs) == 1 {
		return subs[0]
	}
	return nil
}

// notify sends a NOTIFY of r to the subscriber from the notifier's address
// (the notifier itself, or anyone forging its address), padded as a
// notifier pads it (a record to fetch: to minFetchNotifyLen), and returns
// its size.
func (ns *notifierSetup) notify(t *testing.T, txid uint64, r wire.Record) int {
	t.Helper()
	return ns.notifyPadded(t, txid, r, notifyLen(&r))
}

// notifyPadded is notify with the NOTIFY padded to size bytes.
func (ns *notifierSetup) notifyPadded(t *testing.T, txid uint64, r wire.Record, size int) int {
	t.Helper()
	m := wire.Message{Type: wire.Notify, TxID: txid, Network: ns.sub.Config().Network, Target: ns.key, Record: r, Sender: ns.peer.id}
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	b = wire.Pad(b, 0, size)
	if err := ns.peer.ep.Send([]transport.Packet{{Addr: ns.sub.Addr(), Data: b}}); err != nil {
		t.Fatal(err)
	}
	return len(b)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// A NOTIFY carrying a fetch-only record makes the subscriber fetch it; the
// fetch ends (the notifier has no such record), and what it held must go
// with it. A flood of them, each naming a new version of a 64 KiB record,
// must leave the subscription as small as it was: the subscription lives as
// long as its program listens, so nothing it keeps may grow with what a
// peer sends.
func TestForgedFetchOnlyNotifiesDoNotGrowTheSubscription(t *testing.T) {
	ns := newNotifierSetup(t, 801)
	const floods = 2000
	before := heapInUse()
	stops0 := len(ns.subscription().o.stops)
	for i := range floods {
		ns.notify(t, uint64(1000+i), wire.Record{Publisher: id.Key("forged"), Version: uint64(i + 1), TTL: 600, Size: 64 << 10})
		if i%50 == 49 {
			ns.tn.clk.RunFor(time.Second)
		}
	}
	ns.tn.clk.RunFor(10 * time.Second)
	if ns.fetch == 0 {
		t.Fatal("the subscriber fetched none of the notified records: the test does not exercise the fetch")
	}
	grown := int64(heapInUse()) - int64(before)
	stops := len(ns.subscription().o.stops) - stops0
	t.Logf("%d NOTIFYs: %d FETCHes, heap grew %d KiB, %d stops added", floods, ns.fetch, grown>>10, stops)
	if stops > 8 {
		t.Errorf("%d forged NOTIFYs added %d stop functions to the subscription: it grows with what a peer sends", floods, stops)
	}
	if grown > 16<<20 {
		t.Errorf("%d forged NOTIFYs of 64 KiB records left the heap %d MiB larger after their fetches ended", floods, grown>>20)
	}
}

// A notifier retries a NOTIFY whose NOTIFIED was lost, and a forger can
// repeat one at will: a fetch-only record already reported at that version
// is not fetched again (a 64 KiB value is 55 FETCHes, each padded to 467
// bytes).
func TestRepeatedNotifyOfASeenVersionIsNotFetchedAgain(t *testing.T) {
	ns := newNotifierSetup(t, 802)
	s := ns.subscription()
	ns.sub.mu.Lock()
	s.seen[id.Key("pub")] = seenVersion{version: 7}
	ns.sub.mu.Unlock()
	for i := range 20 {
		ns.notify(t, uint64(50+i), wire.Record{Publisher: id.Key("pub"), Version: 7, TTL: 600, Size: 64 << 10})
		ns.notify(t, uint64(90+i), wire.Record{Publisher: id.Key("pub"), Version: 6, TTL: 600, Size: 64 << 10})
	}
	ns.tn.clk.RunFor(10 * time.Second)
	if ns.fetch != 0 {
		t.Fatalf("40 NOTIFYs of versions already seen drew %d FETCHes; want none", ns.fetch)
	}
}

// The subscriber's traffic toward a notifier, drawn by NOTIFYs from that
// notifier's address, stays within the amplification factor of what those
// NOTIFYs carried: a forger off the path can send NOTIFYs under a notifier's
// address, and each must not make the subscriber send a window of padded
// FETCHes at the notifier.
func TestForgedNotifiesDrawBoundedFetchTraffic(t *testing.T) {
	ns := newNotifierSetup(t, 803)
	sent, got := 0, len(ns.peer.sizes)
	for i := range 200 {
		sent += ns.notify(t, uint64(300+i), wire.Record{Publisher: id.Key("forged"), Version: uint64(i + 1), TTL: 600, Size: 64 << 10})
		if i%20 == 19 {
			ns.tn.clk.RunFor(100 * time.Millisecond)
		}
	}
	ns.tn.clk.RunFor(10 * time.Second)
	drawn := 0
	for _, n := range ns.peer.sizes[got:] {
		drawn += n
	}
	if drawn > wire.AmplificationFactor*sent {
		t.Errorf("%d bytes of forged NOTIFYs drew %d bytes (%d FETCHes) at the notifier: %.1fx, over %dx",
			sent, drawn, ns.fetch, float64(drawn)/float64(sent), wire.AmplificationFactor)
	}
	t.Logf("bursts: %d bytes of NOTIFYs drew %d bytes (%d FETCHes): %.2fx", sent, drawn, ns.fetch, float64(drawn)/float64(sent))
}

// The same forgery paced, each NOTIFY sent once the fetch the last one drew
// has failed, so that every one finds the subscription's fetches free: each
// draws one FETCH (the first window is one, and the notifier never proves
// it holds the record), which the NOTIFY's padding pays for. A NOTIFY that
// is not padded draws none.
func TestPacedForgedNotifiesDrawBoundedFetchTraffic(t *testing.T) {
	for _, padded := range []bool{true, false} {
		t.Run(fmt.Sprint("padded=", padded), func(t *testing.T) {
			ns := newNotifierSetup(t, 807)
			sent, got := 0, len(ns.peer.sizes)
			for i := range 100 {
				r := wire.Record{Publisher: id.Key(fmt.Sprint("forged", i%7)), Version: uint64(i + 1), TTL: 600, Size: 64 << 10}
				size := notifyLen(&r)
				if !padded {
					size = 0
				}
				sent += ns.notifyPadded(t, uint64(300+i), r, size)
				ns.tn.clk.RunFor(100 * time.Millisecond)
			}
			ns.tn.clk.RunFor(10 * time.Second)
			drawn := 0
			for _, n := range ns.peer.sizes[got:] {
				drawn += n
			}
			t.Logf("%d bytes of NOTIFYs drew %d bytes (%d FETCHes): %.2fx", sent, drawn, ns.fetch, float64(drawn)/float64(sent))
			if drawn > wire.AmplificationFactor*sent {
				t.Errorf("%d bytes of paced forged NOTIFYs drew %d bytes (%d FETCHes): %.1fx, over %dx",
					sent, drawn, ns.fetch, float64(drawn)/float64(sent), wire.AmplificationFactor)
			}
			switch {
			case padded && ns.fetch != 100:
				t.Errorf("100 padded NOTIFYs of new versions, each with the fetches free, drew %d FETCHes; want one each", ns.fetch)
			case !padded && ns.fetch != 0:
				t.Errorf("100 NOTIFYs too short to pay for a FETCH drew %d", ns.fetch)
			}
		})
	}
}

// A subscription renews its registration every listenTTL/2 for as long as
// it runs: the renewals must not pile up state in it.
func TestRenewalsDoNotGrowTheSubscription(t *testing.T) {
	ns := newNotifierSetup(t, 804)
	stops := len(ns.subscription().o.stops)
	renewed := ns.peer.received
	ns.tn.clk.RunFor(50 * listenTTL) // 100 renewals
	if ns.peer.received-renewed < 100 {
		t.Fatalf("the notifier heard %d datagrams in 100 renewal periods: the subscription did not renew", ns.peer.received-renewed)
	}
	if got := len(ns.subscription().o.stops); got > stops+1 {
		t.Errorf("100 renewals grew the subscription's stop list from %d to %d functions (one lookup kept per renewal)", stops, got)
	}
}

// A subscription that ends tells the nodes it is registered at (LISTEN of
// ttl 0). Its stop runs long after Listen returned, on whatever goroutine
// ends it: the cancellations must go out through that call's writer, not
// the batch Listen was given (back in the pool, and perhaps in another
// goroutine's hands, by then: a data race, and a lost datagram).
func TestEndedSubscriptionTellsTheNodesItWasRegisteredAt(t *testing.T) {
	ns := newNotifierSetup(t, 806)
	// Hold the pooled batches, Listen's among them, so that the cancel
	// runs with a batch of its own, as it does on another goroutine.
	var held []*transport.Batch
	for range 64 {
		held = append(held, batchPool.Get().(*transport.Batch))
	}
	defer func() {
		for _, b := range held {
			b.Reset()
			batchPool.Put(b)
		}
	}()
	ns.cancel()
	for _, b := range held {
		if b.Len() > 0 {
			t.Errorf("the ended subscription wrote %d datagrams into a batch it does not own (Listen's, back in the pool)", b.Len())
		}
	}
	ns.tn.clk.RunFor(5 * time.Second)
	if ns.unlist != 1 {
		t.Errorf("the notifier got %d cancellations of the ended subscription, want 1", ns.unlist)
	}
}

// Listen's documentation promises cb "one call at a time per
// subscription". Events are queued under the node's lock and run by
// whichever goroutine releases it, so two goroutines entering the node
// (two sockets' readers, a user's Put and a NOTIFY, a disk store's Sync
// callback) run one subscription's callbacks at once, and in either order:
// a replacement can be reported before the value it replaces.
func TestSubscriptionCallbacksRunOneAtATime(t *testing.T) {
	ns := newNotifierSetup(t, 805)
	ns.cancel()
	var mu sync.Mutex
	running, overlap := 0, false
	var order []uint64
	entered, release := make(chan struct{}), make(chan struct{})
	first := true
	cancel := ns.sub.Listen(ns.key, func(e Event) {
		mu.Lock()
		running++
		overlap = overlap || running > 1
		order = append(order, e.Record.Version)
		wait := first
		first = false
		mu.Unlock()
		if wait {
			close(entered) // a callback that the scheduler interrupts here
			<-release
		}
		mu.Lock()
		running--
		mu.Unlock()
	})
	defer cancel()
	ns.tn.clk.RunFor(5 * time.Second) // registered at the notifier
	done := make(chan struct{})
	go func() {
		defer close(done)
		deliver(t, ns.sub, &wire.Message{Type: wire.Notify, TxID: 1, Sender: ns.peer.id, Target: ns.key,
			Record: wire.Record{Publisher: id.Key("p"), Version: 1, TTL: 60, Size: 2, Data: []byte("v1")}}, ns.peer.ep.LocalAddr())
	}()
	<-entered
	deliver(t, ns.sub, &wire.Message{Type: wire.Notify, TxID: 2, Sender: ns.peer.id, Target: ns.key,
		Record: wire.Record{Publisher: id.Key("p"), Version: 2, TTL: 60, Size: 2, Data: []byte("v2")}}, ns.peer.ep.LocalAddr())
	close(release)
	<-done
	if overlap {
		t.Errorf("two callbacks of one subscription ran at once")
	}
	// The first callback's goroutine delivers the second event once the
	// first callback returns: both are delivered, in order.
	mu.Lock()
	defer mu.Unlock()
	if len(order) != 2 || order[0] != 1 || order[1] != 2 {
		t.Errorf("the callbacks saw versions %v, want [1 2]", order)
	}
}

package core

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// A node that listens to three keys (registered at four scripted notifiers)
// and holds other nodes' listeners of two keys takes a hostile sequence of
// datagrams from many forged addresses: NOTIFYs under its notifiers'
// addresses naming inline, fetch-only, oversized, withdrawn and malformed
// records, padded or not; LISTENs (and cancellations) from addresses that
// never answer; writes that make it notify listeners, some of which ignore
// NOTIFY; stray responses. The notifiers answer its FETCHes with good parts,
// wrong parts, NOT_FOUND or silence. At every step: the listener table keeps
// its bounds, the NOTIFYs and listener checks in flight keep their shares of
// the request table, the node's own requests never wait behind them, each
// subscription keeps at most its fetches and backlog and adds no stop, and
// its callback sees each publisher's versions in order. At the end every
// NOTIFY has ended, unretried, and the heap is back near where it started.
func TestHostileListenTrafficKeepsEveryBound(t *testing.T) {
	for seed := range uint64(6) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runHostileListen(t, 8800+seed) })
	}
}

type recKey struct {
	pub id.ID
	ver uint64
}

func runHostileListen(t *testing.T, seed uint64) {
	tn := newTestNet(t, seed, memnet.Config{Latency: memnet.Fixed(5 * time.Millisecond)})
	rng := rand.New(rand.NewPCG(seed, 88))
	const maxInFlight = 256
	n := tn.add(func(c *Config) { c.K = 4; c.MaxInFlight = maxInFlight; c.RefreshInterval = 1000 * time.Hour })

	// The notifiers: honest in lookups and LISTEN, anything in FETCH.
	sizes := map[recKey]uint32{} // the sizes the NOTIFYs claimed, for the notifiers' good parts
	var notifiers []*peer
	var contacts []id.Contact
	for i := range 4 {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 91, 0, byte(i + 1)}), 4000)
		contacts = append(contacts, id.Contact{ID: id.Key(fmt.Sprint("notifier", i)), Addr: addr})
	}
	for _, c := range contacts {
		notifiers = append(notifiers, tn.listenPeer(c.Addr, c.ID, func(req *wire.Message, from netip.AddrPort) *wire.Message {
			if req.Type != wire.Fetch {
				return answer(req, from, contacts)
			}
			size, ok := sizes[recKey{req.Publisher, req.Version}]
			switch x := rng.IntN(4); {
			case x == 0 || (x == 1 && ok && req.Offset < size):
				if !ok || req.Offset >= size {
					return &wire.Message{Type: wire.Error, Code: wire.CodeNotFound}
				}
				return &wire.Message{Type: wire.Part, Offset: req.Offset, Size: size, Value: make([]byte, min(wire.MaxPart, int(size-req.Offset)))}
			case x == 2:
				return &wire.Message{Type: wire.Part, Offset: req.Offset, Size: req.Offset + 8, Value: make([]byte, 7)} // not the part asked for
			}
			return nil // silence
		}))
	}
	pending := 1
	n.Bootstrap([]netip.AddrPort{contacts[0].Addr}, func(_ *BootstrapResult, err error) {
		if err != nil {
			t.Error(err)
		}
		pending--
	})
	tn.await(&pending, time.Minute)

	// The node's own subscriptions; their callbacks check the order.
	skeys := []id.ID{id.Key("hostile s0"), id.Key("hostile s1"), id.Key("hostile s2")}
	last := map[[2]id.ID]uint64{}
	events := 0
	for _, k := range skeys {
		n.Listen(k, func(e Event) {
			events++
			kp := [2]id.ID{e.Key, e.Record.Publisher}
			if prev, ok := last[kp]; ok && (e.Record.Version < prev || (e.Record.Version == prev && e.Kind != EventDelete)) {
				t.Errorf("key %v publisher %v: version %d reported after %d", e.Key, e.Record.Publisher, e.Record.Version, prev)
			}
			last[kp] = e.Record.Version
		})
	}
	tn.clk.RunFor(5 * time.Second)
	n.mu.Lock()
	stops := map[*subscription]int{}
	for _, k := range skeys {
		for _, s := range n.subs[k] {
			if len(s.nodes) == 0 {
				t.Fatalf("subscription to %v registered nowhere", k)
			}
			stops[s] = len(s.o.stops)
		}
	}
	n.mu.Unlock()

	// Listeners of two keys held by n: half of what they are sent they
	// leave unanswered.
	lkeys := []id.ID{id.Key("hostile l0"), id.Key("hostile l1")}
	var listeners []*peer
	for h := range 3 {
		for p := range 8 {
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 92, 0, byte(h + 1)}), uint16(6000+p))
			l := tn.listenPeer(addr, id.Key(addr.String()), func(req *wire.Message, from netip.AddrPort) *wire.Message {
				if req.Type == wire.Notify && rng.IntN(2) == 0 {
					return nil
				}
				if req.Type == wire.Notify {
					return &wire.Message{Type: wire.Notified}
				}
				return answer(req, from, nil)
			})
			listeners = append(listeners, l)
			sendRaw(t, l, n.Addr(), wire.Message{Type: wire.Listen, TxID: rng.Uint64(), Target: lkeys[p%2], TTL: 1200})
		}
	}
	tn.clk.RunFor(time.Second)

	pubs := []id.ID{id.Key("p0"), id.Key("p1"), id.Key("p2"), id.Key("p3"), id.Key("p4"), id.Key("p5")}
	before := heapInUse()
	const steps = 4000
	for i := range steps {
		// Now and then a burst: the same kind of datagram 60 times at one
		// instant, to fill what a steady sequence leaves room in.
		x, burst := rng.IntN(100), 1
		if rng.IntN(40) == 0 && x < 72 {
			burst = 60
		}
		for range burst {
			hostileStep(t, tn, n, rng, x, i, contacts, listeners, skeys, lkeys, pubs, sizes)
		}
		checkListenBounds(t, n, skeys, stops, i)
		if t.Failed() {
			return
		}
		if i%500 == 499 {
			// The node's own request goes out at once, whatever the
			// listen traffic.
			n.Ping(contacts[0].Addr, func(id.Contact, error) {})
			n.mu.Lock()
			queued := len(n.queue) - n.queueHead
			n.mu.Unlock()
			if queued > 0 {
				t.Fatalf("after %d steps, the user's Ping waits behind %d requests", i+1, queued)
			}
		}
	}
	tn.clk.RunFor(2 * time.Minute)
	grown := int64(heapInUse()) - int64(before)
	n.mu.Lock()
	load := n.listenLoad
	var fetches, backlog int
	for _, k := range skeys {
		for _, s := range n.subs[k] {
			fetches += len(s.fetches)
			backlog += len(s.backlog)
		}
	}
	n.mu.Unlock()
	st := n.Stats()
	nt := st.Sent["NOTIFY"]
	t.Logf("%d steps: %d events; NOTIFYs sent %d (answered %d, timed out %d), dropped %d; listeners dropped %d, %d left; "+
		"short NOTIFYs %d, fetches dropped %d, LISTENs refused %d; FETCHes %d; heap grew %d KiB",
		steps, events, nt.Sent, nt.Answered+nt.Refused, nt.Timeouts, st.Listen.NotifiesDropped, st.Listen.ListenersDropped, st.Listeners,
		st.Listen.NotifiesShort, st.Listen.FetchesDropped, st.Listen.ListensRefused, st.Sent["FETCH"].Sent, grown>>10)
	if load.notifies != 0 || load.checks != 0 {
		t.Errorf("two minutes after the last datagram, %d NOTIFYs and %d listener checks are still counted in flight", load.notifies, load.checks)
	}
	if ended := nt.Answered + nt.Refused + nt.Timeouts + nt.Abandoned; ended != nt.Sent {
		t.Errorf("%d NOTIFY datagrams sent, %d NOTIFYs ended: some were retried or lost track of", nt.Sent, ended)
	}
	if fetches != 0 || backlog != 0 {
		t.Errorf("two minutes after the last NOTIFY, %d fetches run and %d wait", fetches, backlog)
	}
	if nt.Sent == 0 || st.Sent["FETCH"].Sent == 0 || events == 0 {
		t.Errorf("the sequence sent %d NOTIFYs, %d FETCHes and reported %d events: it does not exercise the listen paths", nt.Sent, st.Sent["FETCH"].Sent, events)
	}
	if grown > 8<<20 {
		t.Errorf("the heap grew %d MiB over the hostile sequence", grown>>20)
	}
}

// hostileStep sends n one datagram of kind x (see runHostileListen), or
// advances the clock.
func hostileStep(t *testing.T, tn *testNet, n *Node, rng *rand.Rand, x, i int, contacts []id.Contact, listeners []*peer,
	skeys, lkeys, pubs []id.ID, sizes map[recKey]uint32) {
	pick := func(keys []id.ID) id.ID {
		if rng.IntN(10) == 0 {
			return id.Random(rng)
		}
		return keys[rng.IntN(len(keys))]
	}
	var m wire.Message
	m.TxID = rng.Uint64()
	m.Sender = id.Random(rng)
	from := contacts[rng.IntN(len(contacts))].Addr
	pad := 0
	switch {
	case x < 30: // a NOTIFY forged under a notifier's address
		m.Type, m.Target = wire.Notify, pick(skeys)
		m.Sender = contacts[rng.IntN(len(contacts))].ID
		r := wire.Record{Publisher: pubs[rng.IntN(len(pubs))], Version: rng.Uint64N(60), TTL: rng.Uint32N(4000)}
		if rng.IntN(10) == 0 {
			r.Publisher = id.Random(rng)
		}
		switch y := rng.IntN(10); {
		case y < 4:
			r.Size = 1 + rng.Uint32N(wire.MaxPart)
			r.Data = make([]byte, r.Size)
		case y < 8:
			r.Size = wire.MaxPart + 1 + rng.Uint32N(70<<10)
		case y < 9:
			r.Deleted = true
		default:
			r.Size = rng.Uint32N(3 * wire.MaxPart)
			r.Data = make([]byte, rng.IntN(int(min(r.Size+1, wire.MaxPart))))
		}
		m.Record = r
		sizes[recKey{r.Publisher, r.Version}] = r.Size
		switch rng.IntN(3) {
		case 0:
			pad = notifyLen(&r)
		case 1:
			pad = rng.IntN(wire.MaxPacket)
		}
	case x < 45: // a LISTEN, or its cancellation, from an address that never answers
		m.Type, m.Target = wire.Listen, pick(lkeys)
		m.TTL = []uint32{0, 1, 60, 1200, 1 << 31}[rng.IntN(5)]
		from = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 94, 0, byte(1 + rng.IntN(8))}), uint16(1000+rng.IntN(60000)))
	case x < 55: // a write under a listened key
		m.Target = pick(lkeys)
		if rng.IntN(2) == 0 {
			m.Type, m.TTL, m.Value = wire.Store, 600, []byte(fmt.Sprint("v", rng.IntN(20)))
		} else {
			m.Type, m.TTL = wire.Put, 600
			m.Publisher, m.Version = pubs[rng.IntN(len(pubs))], rng.Uint64N(100)
			m.Value = make([]byte, 1+rng.IntN(wire.MaxPart))
			m.Size = uint32(len(m.Value))
		}
		from = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 95, byte(rng.IntN(256)), byte(rng.IntN(256))}), 4000)
	case x < 62: // a listener renews
		l := listeners[rng.IntN(len(listeners))]
		sendRaw(t, l, n.Addr(), wire.Message{Type: wire.Listen, TxID: rng.Uint64(), Target: lkeys[rng.IntN(2)], TTL: 1200})
	case x < 72: // a stray response under a notifier's address
		m.Type = []wire.Type{wire.Part, wire.Notified, wire.Listening, wire.Error, wire.Records, wire.Pong}[rng.IntN(6)]
		m.Offset, m.Size, m.Value = rng.Uint32N(70<<10), rng.Uint32N(70<<10), make([]byte, rng.IntN(wire.MaxPart))
	default:
		tn.clk.RunFor(time.Duration(rng.IntN(1500)) * time.Millisecond)
	}
	if m.Type != 0 {
		b, err := m.Append(nil)
		if err == nil {
			n.HandlePacket(wire.Pad(b, 0, pad), from, netWriter{n.tr})
		}
	}
}

// netWriter sends what a node writes while handling an injected datagram
// through its transport, as the transport's own writer would: the answer to
// a forged source goes nowhere, the NOTIFYs a write causes reach the
// listeners.
type netWriter struct{ tr transport.Transport }

func (w netWriter) WriteTo(b []byte, to netip.AddrPort) {
	_ = w.tr.Send([]transport.Packet{{Addr: to, Data: bytes.Clone(b)}})
}

// checkListenBounds checks n's listen state after step i.
func checkListenBounds(t *testing.T, n *Node, skeys []id.ID, stops map[*subscription]int, i int) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.listeners) > maxListeners {
		t.Errorf("step %d: %d listeners", i, len(n.listeners))
	}
	perKey, perHost := map[id.ID]int{}, map[netip.Addr]int{}
	for _, l := range n.listeners {
		perKey[l.key]++
		perHost[hostOf(l.addr.Addr())]++
		if l.inFlight > maxNotifiesPerListener {
			t.Errorf("step %d: %d NOTIFYs in flight to %v", i, l.inFlight, l.addr)
		}
	}
	for k, c := range perKey {
		if c > maxListenersPerKey {
			t.Errorf("step %d: %d listeners of %v", i, c, k)
		}
	}
	for h, c := range perHost {
		if c > maxListenersPerHost {
			t.Errorf("step %d: %d listeners from host %v", i, c, h)
		}
	}
	share := n.listenShare()
	if l := n.listenLoad; l.notifies < 0 || l.notifies > share || l.checks < 0 || l.checks > share {
		t.Errorf("step %d: %d NOTIFYs and %d listener checks in flight, share %d", i, l.notifies, l.checks, share)
	}
	if n.rpc.Len() > n.rpc.Cap() {
		t.Errorf("step %d: %d requests in a table of %d", i, n.rpc.Len(), n.rpc.Cap())
	}
	for _, k := range skeys {
		for _, s := range n.subs[k] {
			if len(s.fetches) > maxNotifyFetches || len(s.backlog) > maxFetchBacklog {
				t.Errorf("step %d: a subscription has %d fetches and %d waiting", i, len(s.fetches), len(s.backlog))
			}
			if len(s.o.stops) != stops[s] {
				t.Errorf("step %d: a subscription's stops went from %d to %d", i, stops[s], len(s.o.stops))
			}
			held := 0
			for _, f := range s.fetches {
				for _, fr := range f.recs {
					held += len(fr.buf)
				}
			}
			if held > maxNotifyFetches*n.cfg.MaxValueSize {
				t.Errorf("step %d: a subscription's fetches hold %d bytes", i, held)
			}
			s.events.mu.Lock()
			q, qb := len(s.events.q), s.events.bytes
			s.events.mu.Unlock()
			if q > maxQueuedEvents || qb > maxQueuedEventBytes {
				t.Errorf("step %d: %d events (%d bytes) wait for a callback", i, q, qb)
			}
		}
	}
}

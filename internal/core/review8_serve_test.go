package core

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// tapTransport records every datagram its node sends outside a datagram's
// handling (retries, late acknowledgements, notifications) before passing
// it on.
type tapTransport struct {
	transport.Transport
	sent []transport.Packet
}

func (tp *tapTransport) Send(pkts []transport.Packet) error {
	for _, p := range pkts {
		tp.sent = append(tp.sent, transport.Packet{Addr: p.Addr, Data: bytes.Clone(p.Data)})
	}
	return tp.Transport.Send(pkts)
}

// recordWriter records what a node writes while it handles one datagram.
type recordWriter struct{ pkts []transport.Packet }

func (r *recordWriter) WriteTo(b []byte, to netip.AddrPort) {
	r.pkts = append(r.pkts, transport.Packet{Addr: to, Data: bytes.Clone(b)})
}

func typeOf(b []byte) wire.Type { return wire.Type(b[2]) }
func txidOf(b []byte) uint64    { return binary.BigEndian.Uint64(b[8:16]) }

// laterSync is a store that reports durability on the virtual clock, so
// that acknowledgements go out after the request's handling.
type laterSync struct {
	*store.Memory
	tn  *testNet
	rng *rand.Rand
}

func (s *laterSync) Sync(fn func(error)) {
	s.tn.clk.AfterFunc(time.Duration(1+s.rng.IntN(500))*time.Millisecond, func() { fn(nil) })
}

// Hostile requests of every type with random fields, padding and flags,
// each from its own claimed source (a victim that never answers), against
// a node holding small, large and withdrawn records, values being
// reassembled and a listener: no panic; everything each request draws to
// its claimed source — the answer, pings of that address and their
// retries, a durable store's late acknowledgement — stays within
// AmplificationFactor times the request; no NOTIFY ever goes to an
// address that did not answer; reassembly and listener tables keep their
// bounds.
func TestHostileRequestsOfEveryTypeDrawAtMostTheirBound(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runHostileRequests(t, 8600+seed) })
	}
}

func runHostileRequests(t *testing.T, seed uint64) {
	tn := newTestNet(t, seed, memnet.Config{Latency: memnet.Fixed(5 * time.Millisecond)})
	rng := rand.New(rand.NewPCG(seed, 86))
	tap := &tapTransport{Transport: tn.net.NewEndpoint()}
	durable := seed%2 == 1
	srv := tn.add(func(c *Config) {
		c.Transport = tap
		c.K = 8
		c.RefreshInterval = 1000 * time.Hour
		if durable {
			c.Store = &laterSync{Memory: store.NewMemory(store.Limits{}), tn: tn, rng: rand.New(rand.NewPCG(seed, 87))}
		}
	})
	keys := []id.ID{id.Key("k0"), id.Key("k1"), id.Key("k2"), id.Key("k3")}
	pubs := []id.ID{{1}, {2}, {3}, {4}, {5}}
	now := tn.clk.Now()
	for ki, k := range keys {
		for pi, p := range pubs {
			v := store.Value{Publisher: p, Version: uint64(1 + pi), Expires: now.Add(time.Hour)}
			switch (ki + pi) % 4 {
			case 0:
				v.Deleted = true
			case 1:
				v.Data = make([]byte, 1+rng.IntN(wire.MaxPart))
			case 2:
				v.Data = make([]byte, 1000)
			default:
				v.Data = make([]byte, 64<<10)
			}
			if err := srv.Store().Put(k, v, netip.Addr{}, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	// An honest listener of k0: it answers the node's PING and NOTIFYs.
	lis := tn.listenPeer(netip.MustParseAddrPort("127.86.255.1:4000"), id.Key("listener"), func(req *wire.Message, from netip.AddrPort) *wire.Message {
		if req.Type == wire.Notify {
			return &wire.Message{Type: wire.Notified}
		}
		return answer(req, from, nil)
	})
	sendRaw(t, lis, srv.Addr(), wire.Message{Type: wire.Listen, TxID: 1, Target: keys[0], TTL: 1200})
	tn.clk.RunFor(time.Second)

	sizes := []uint32{1, 17, wire.MaxPart, wire.MaxPart + 1, 3 * wire.MaxPart, 5000, 64 << 10, 64<<10 + 1, wire.MaxRecordSize}
	type sent struct {
		from  netip.AddrPort
		n     int
		drawn int
		txids map[uint64]bool // requests of ours it drew to its source (pings), and its own
	}
	var reqs []*sent
	senders := make([]id.ID, 20)
	for i := range senders {
		senders[i] = id.Random(rng)
	}
	bySrc := map[netip.AddrPort]*sent{}
	const n = 3000
	pingsOwn, pingsOther := 0, 0
	for i := range n {
		m := wire.Message{TxID: rng.Uint64(), Sender: id.Random(rng), Target: keys[rng.IntN(len(keys))]}
		if rng.IntN(2) == 0 {
			// A few IDs claimed from many addresses: the node pings the
			// old address, or the new one, to learn who is there.
			m.Sender = senders[rng.IntN(len(senders))]
		}
		if rng.IntN(4) == 0 {
			m.Target = id.Random(rng)
		}
		if rng.IntN(4) == 0 {
			m.Flags = wire.FlagReadOnly
		}
		pub := pubs[rng.IntN(len(pubs))]
		if rng.IntN(4) == 0 {
			pub = id.Random(rng)
		}
		types := []wire.Type{wire.Ping, wire.FindNode, wire.FindValue, wire.Store, wire.Put, wire.Put, wire.Get, wire.Get,
			wire.Fetch, wire.Fetch, wire.Delete, wire.Listen, wire.Listen, wire.Notify, 0x7f}
		m.Type = types[rng.IntN(len(types))]
		unknown := m.Type == 0x7f
		switch m.Type {
		case 0x7f:
			m.Type = wire.Ping
		case wire.Store:
			m.TTL = uint32(rng.IntN(100000))
			m.Value = make([]byte, rng.IntN(900))
		case wire.Put:
			m.Publisher, m.Version, m.TTL = pub, uint64(rng.IntN(8)), uint32(rng.IntN(100000))
			m.Size = sizes[rng.IntN(len(sizes))]
			m.Offset = uint32(rng.IntN(int(m.Size+wire.MaxPart-1)/wire.MaxPart)) * wire.MaxPart
			m.Value = make([]byte, min(wire.MaxPart, int(m.Size-m.Offset)))
		case wire.Get:
			if rng.IntN(2) == 0 {
				m.Cursor, m.AfterVersion, m.AfterPublisher = true, uint64(rng.IntN(6)), pubs[rng.IntN(len(pubs))]
			}
		case wire.Fetch:
			m.Publisher, m.Version = pub, uint64(rng.IntN(7))
			m.Offset = uint32(rng.IntN(60)) * wire.MaxPart
			if rng.IntN(4) == 0 {
				m.Offset = rng.Uint32()
			}
		case wire.Delete:
			m.Publisher, m.Version, m.TTL = pub, uint64(rng.IntN(10)), rng.Uint32()
		case wire.Listen:
			m.TTL = uint32(rng.IntN(3)) * uint32(rng.IntN(2000))
		case wire.Notify:
			m.Record = wire.Record{Publisher: pub, Version: rng.Uint64(), TTL: rng.Uint32(), Size: uint32(rng.IntN(40))}
			m.Record.Data = make([]byte, m.Record.Size)
		}
		b, err := m.Append(nil)
		if err != nil {
			continue
		}
		if unknown {
			b[2] = 0x7f
		}
		if rng.IntN(2) == 0 {
			b = wire.Pad(b, 0, len(b)+rng.IntN(wire.MaxPacket-len(b)+1))
		}
		// Eight hosts, a port per request: reassembly and the listener
		// table count hosts, the accounting counts sources.
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 87, 0, byte(1 + rng.IntN(8))}), uint16(1000+i))
		s := &sent{from: from, n: len(b), txids: map[uint64]bool{m.TxID: true}}
		reqs = append(reqs, s)
		bySrc[from] = s
		var w recordWriter
		srv.HandlePacket(b, from, &w)
		for _, p := range w.pkts {
			if typeOf(p.Data) == wire.Ping {
				if p.Addr == from {
					pingsOwn++
				} else {
					pingsOther++
				}
			}
			if p.Addr == from {
				s.drawn += len(p.Data)
				s.txids[txidOf(p.Data)] = true
			}
		}
		srv.mu.Lock()
		parts, pbytes, listeners := len(srv.parts.list), srv.parts.bytes, len(srv.listeners)
		perKey, perHost := map[id.ID]int{}, map[netip.Addr]int{}
		for _, l := range srv.listeners {
			perKey[l.key]++
			perHost[hostOf(l.addr.Addr())]++
		}
		srv.mu.Unlock()
		if parts > maxPartials || pbytes > maxPartialBytes || listeners > maxListeners {
			t.Fatalf("after %d requests: %d partial values of %d bytes, %d listeners", i+1, parts, pbytes, listeners)
		}
		for k, c := range perKey {
			if c > maxListenersPerKey {
				t.Fatalf("%d listeners of key %v", c, k)
			}
		}
		for h, c := range perHost {
			if c > maxListenersPerHost {
				t.Fatalf("%d listeners from host %v", c, h)
			}
		}
		if i%40 == 39 {
			tn.clk.RunFor(time.Duration(rng.IntN(1500)) * time.Millisecond)
		}
	}
	tn.clk.RunFor(time.Minute)
	notifies, foreign := 0, 0
	for _, p := range tap.sent {
		s, ok := bySrc[p.Addr]
		switch {
		case !ok:
		case typeOf(p.Data) == wire.Notify:
			notifies++
		case !s.txids[txidOf(p.Data)]:
			foreign++ // a liveness check another request caused
		default:
			s.drawn += len(p.Data)
		}
	}
	worst := 0.0
	for _, s := range reqs {
		worst = max(worst, float64(s.drawn)/float64(s.n))
		if s.drawn > wire.AmplificationFactor*s.n {
			t.Errorf("a %d-byte request from %v drew %d bytes to its source, over %dx", s.n, s.from, s.drawn, wire.AmplificationFactor)
		}
	}
	if notifies != 0 {
		t.Errorf("%d NOTIFYs went to addresses that never answered", notifies)
	}
	if lis.received == 0 {
		t.Errorf("the honest listener heard nothing")
	}
	t.Logf("%d requests (durable store %v): worst ratio %.2f; pings of the source %d, of other addresses %d (%d retried later); the listener heard %d",
		len(reqs), durable, worst, pingsOwn, pingsOther, foreign, lis.received)
}

// A key's 64 listener slots can be held by one attacker from two hosts
// (32 each) with addresses that answer PING and ignore NOTIFY. Then each
// write under the key — a 63-byte STORE repeated, a refresh, accepted from
// any claimed source — puts 64 NOTIFYs in the request table for
// Attempts × RequestTimeout. The node's own requests must keep room: after
// a burst of such writes, a Ping the node's user starts goes out at once.
func TestWriteFloodCannotFillTheRequestTableWithNotifies(t *testing.T) {
	tn := newTestNet(t, 88, memnet.Config{Latency: memnet.Fixed(5 * time.Millisecond)})
	srv := tn.add(func(c *Config) { c.RefreshInterval = 1000 * time.Hour })
	key := id.Key("flooded")
	for h := range 2 {
		for p := range maxListenersPerHost {
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 88, 0, byte(h + 1)}), uint16(5000+p))
			l := tn.listenPeer(addr, id.Key(addr.String()), func(req *wire.Message, from netip.AddrPort) *wire.Message {
				if req.Type == wire.Ping {
					return answer(req, from, nil)
				}
				return nil // NOTIFYs go unanswered
			})
			sendRaw(t, l, srv.Addr(), wire.Message{Type: wire.Listen, TxID: uint64(p + 1), Target: key, TTL: 1200})
		}
	}
	tn.clk.RunFor(time.Second)
	if st := srv.Stats(); st.Listeners != maxListenersPerKey {
		t.Fatalf("%d listeners registered, want %d", st.Listeners, maxListenersPerKey)
	}
	in := 0
	for i := range 200 {
		m := wire.Message{Type: wire.Store, TxID: uint64(i), Sender: id.Random(rand.New(rand.NewPCG(uint64(i), 0))), Target: key, TTL: 3600, Value: []byte("x")}
		b, _ := m.Append(nil)
		in += len(b)
		srv.HandlePacket(b, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 89, byte(i >> 8), byte(i)}), 4000), &discard{})
	}
	srv.mu.Lock()
	inFlight := srv.rpc.Len()
	srv.mu.Unlock()
	st := srv.Stats()
	t.Logf("200 STOREs (%d bytes): %d requests in flight, %d packets out", in, inFlight, st.PacketsOut)
	if inFlight > srv.Config().MaxInFlight/2 {
		t.Errorf("200 repeated STOREs put %d requests in the node's table of %d", inFlight, srv.Config().MaxInFlight)
	}
	srv.Ping(netip.MustParseAddrPort("127.88.0.1:5000"), func(id.Contact, error) {})
	srv.mu.Lock()
	queued := len(srv.queue) - srv.queueHead
	srv.mu.Unlock()
	if queued > 0 {
		t.Errorf("the user's Ping waits in the queue behind %d requests", queued)
	}
	// 200 writes of the same bytes are one change and 199 refreshes: one
	// NOTIFY per listener, never retried.
	tn.clk.RunFor(10 * time.Second)
	st = srv.Stats()
	if sent := st.Sent["NOTIFY"].Sent; sent != maxListenersPerKey {
		t.Errorf("200 STOREs of one value sent %d NOTIFYs to %d listeners, want one each", sent, maxListenersPerKey)
	}
	if st.Retries != 0 {
		t.Errorf("%d requests retried: a NOTIFY is sent once", st.Retries)
	}

	// Then 200 STOREs of distinct values, each a change: each listener
	// gets at most maxNotifiesPerListener at once, and after its second
	// unanswered NOTIFY it is dropped, so the flood costs a bounded number
	// of NOTIFYs and leaves no listener that ignores them.
	before := st.Sent["NOTIFY"].Sent
	for i := range 200 {
		m := wire.Message{Type: wire.Store, TxID: uint64(1000 + i), Sender: id.Random(rand.New(rand.NewPCG(uint64(i), 1))), Target: key, TTL: 3600, Value: []byte(fmt.Sprint("x", i))}
		b, _ := m.Append(nil)
		srv.HandlePacket(b, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 90, byte(i >> 8), byte(i)}), 4000), &discard{})
	}
	srv.mu.Lock()
	inFlight = srv.rpc.Len()
	notifying := srv.listenLoad.notifies
	srv.mu.Unlock()
	if share := srv.Config().MaxInFlight / notifyShare; notifying > share || inFlight > srv.Config().MaxInFlight/2 {
		t.Errorf("200 distinct STOREs: %d NOTIFYs in flight (share %d), %d requests", notifying, share, inFlight)
	}
	tn.clk.RunFor(10 * time.Second)
	st = srv.Stats()
	sent := st.Sent["NOTIFY"].Sent - before
	t.Logf("200 distinct STOREs: %d NOTIFYs sent, %d dropped, %d listeners dropped, %d left", sent, st.Listen.NotifiesDropped, st.Listen.ListenersDropped, st.Listeners)
	if sent > maxListenersPerKey*maxNotifiesPerListener {
		t.Errorf("200 distinct STOREs sent %d NOTIFYs to %d listeners that never answer, over %d", sent, maxListenersPerKey, maxListenersPerKey*maxNotifiesPerListener)
	}
	if st.Listeners != 0 || st.Listen.ListenersDropped != maxListenersPerKey {
		t.Errorf("%d listeners left, %d dropped; want every listener that ignored two NOTIFYs dropped", st.Listeners, st.Listen.ListenersDropped)
	}
}

package bench

import (
	"context"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/udp"
	"github.com/dhtkit/dht/wire"
)

// testDeadline bounds a run that should end on its own long before: only a
// load generator that never sees its answers reaches it.
const testDeadline = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

// fakeNode answers FIND_VALUE like a node holding one value per key, then
// lets respond change or withhold the answer: a deliberately broken server.
type fakeNode struct {
	id      id.ID
	values  map[id.ID][]byte
	respond func(answer []byte, from netip.AddrPort, w transport.Writer)
}

func (f *fakeNode) HandlePacket(data []byte, from netip.AddrPort, w transport.Writer) {
	var m wire.Message
	if wire.Decode(data, &m) != nil || m.Type != wire.FindValue {
		return
	}
	a := wire.Message{Type: wire.Values, Network: m.Network, TxID: m.TxID, Sender: f.id,
		Values: []wire.Value{{TTL: 60, Data: f.values[m.Target]}}}
	b, err := a.Append(nil)
	if err != nil {
		panic(err)
	}
	if f.respond == nil {
		w.WriteTo(b, from)
		return
	}
	f.respond(b, from, w)
}

func listenUDP(t *testing.T) *udp.Transport {
	t.Helper()
	tr, err := udp.Listen(udp.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

// startFake starts a fakeNode and returns the load generator configuration
// that drives it.
func startFake(t *testing.T, nkeys int, respond func(answer []byte, from netip.AddrPort, w transport.Writer)) loadConfig {
	t.Helper()
	keys, values := makeKeys("fake", 7, nkeys, 40)
	f := &fakeNode{id: id.Key("fake node"), values: map[id.ID][]byte{}, respond: respond}
	for i, k := range keys {
		f.values[k] = values[i]
	}
	tr := listenUDP(t)
	if err := tr.Start(f); err != nil {
		t.Fatal(err)
	}
	return loadConfig{
		server: tr.LocalAddr(), serverID: f.id, mode: checkValues, keys: keys, values: values,
		clients: 2, concurrency: 8, timeout: time.Second, seed: 1, label: "loadgen",
	}
}

func mustLoadGen(t *testing.T, cfg loadConfig) *loadGen {
	t.Helper()
	lg, err := newLoadGen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return lg
}

func TestLoadGenCountsEveryAnswerOfARealNode(t *testing.T) {
	keys, values := makeKeys("real", 1, 50, 100)
	node, err := startServeNode(keys, plainRecords(values), 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer node.Close()
	lg := mustLoadGen(t, loadConfig{
		server: node.Addr(), serverID: node.ID(), mode: checkValues, keys: keys, values: values,
		clients: 3, concurrency: 10, timeout: 5 * time.Second, seed: 2, label: "loadgen",
	})
	const n = 500
	res, err := lg.runCount(testCtx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{Sent: n, OK: n}
	if res.Counts != want {
		t.Fatalf("counts %+v, want %+v", res.Counts, want)
	}
	if res.hist.Count() != n {
		t.Fatalf("%d latencies recorded for %d answers", res.hist.Count(), n)
	}
	if served := node.Stats().Served[wire.FindValue.String()]; served != n {
		t.Fatalf("the node served %d FIND_VALUE requests, the load generator counted %d", served, n)
	}
}

// Each broken answer is counted under its own kind and never as correct.
func TestLoadGenDetectsBrokenAnswers(t *testing.T) {
	cases := []struct {
		name   string
		mangle func(b []byte) []byte
		count  func(c Counts) uint64
	}{
		{"wrong value byte", func(b []byte) []byte { b[len(b)-2] ^= 1; return b }, func(c Counts) uint64 { return c.BadValue }},
		{"value cut short", func(b []byte) []byte {
			// Claim one byte less, and drop the value's last byte before
			// the (empty) contact list: a well-formed, shorter value.
			n := wire.HeaderLen + 2 + 4
			b[n+1]--
			return append(b[:len(b)-2], 0)
		}, func(c Counts) uint64 { return c.BadValue }},
		{"more flag set", func(b []byte) []byte { b[wire.HeaderLen] = 1; return b }, func(c Counts) uint64 { return c.BadValue }},
		{"NODES instead of VALUES", func(b []byte) []byte { b[2] = byte(wire.Nodes); return b[:wire.HeaderLen+1] }, func(c Counts) uint64 { return c.BadType }},
		{"another sender", func(b []byte) []byte { b[16] ^= 1; return b }, func(c Counts) uint64 { return c.BadType }},
		{"another network", func(b []byte) []byte { b[4] ^= 1; return b }, func(c Counts) uint64 { return c.BadType }},
		{"truncated", func(b []byte) []byte { return b[:wire.HeaderLen+5] }, func(c Counts) uint64 { return c.BadType }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := startFake(t, 5, func(b []byte, from netip.AddrPort, w transport.Writer) { w.WriteTo(tc.mangle(b), from) })
			const n = 100
			res, err := mustLoadGen(t, cfg).runCount(testCtx(t), n)
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.count(res.Counts); got != n || res.OK != 0 || res.Bad() != n {
				t.Fatalf("counts %+v: want all %d answers counted as this kind of bad and none OK", res.Counts, n)
			}
			if res.hist.Count() != 0 {
				t.Fatalf("%d latencies recorded for wrong answers", res.hist.Count())
			}
		})
	}
}

// Answers whose txid matches nothing sent are forged, not late: the
// requests they fail to answer time out and are counted lost.
func TestLoadGenDetectsWrongTxIDs(t *testing.T) {
	cases := []struct {
		name string
		off  int // byte of the txid to flip
	}{
		{"another client's tag", offTxID},
		{"an earlier sequence number", offTxID + 5},
		{"a slot out of range", offTxID + 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := startFake(t, 5, func(b []byte, from netip.AddrPort, w transport.Writer) {
				b[tc.off] ^= 0x40
				w.WriteTo(b, from)
			})
			cfg.timeout = 5 * time.Millisecond
			res, err := mustLoadGen(t, cfg).run(testCtx(t), 0, 100*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			if res.BadTxID == 0 || res.OK != 0 || res.Late != 0 || res.Bad() != res.BadTxID {
				t.Fatalf("counts %+v: want only wrong txids, none OK or late", res.Counts)
			}
			if res.Lost == 0 {
				t.Fatalf("counts %+v: the unanswered requests were not given up on", res.Counts)
			}
		})
	}
}

// A server that answers each request only after the load generator gave up
// on it and sent another: the late answer is counted late, the answer to
// the resend OK.
func TestLoadGenCountsLateAnswersApartFromForgedOnes(t *testing.T) {
	var mu sync.Mutex
	var held []byte
	cfg := startFake(t, 1, func(b []byte, from netip.AddrPort, w transport.Writer) {
		mu.Lock()
		defer mu.Unlock()
		if held == nil {
			held = b
			return
		}
		w.WriteTo(held, from)
		w.WriteTo(b, from)
		held = nil
	})
	// One request in flight, so the second request the server sees is the
	// resend of the first. The timeout is long enough that the resend's
	// answer, sent at once, beats it on a loaded machine (at 5ms it did not
	// always, and counted one more loss).
	cfg.clients, cfg.concurrency, cfg.timeout = 1, 1, 100*time.Millisecond
	const n = 10
	res, err := mustLoadGen(t, cfg).runCount(testCtx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{Sent: 2 * n, OK: n, Late: n, Lost: n}
	if res.Counts != want {
		t.Fatalf("counts %+v, want %+v", res.Counts, want)
	}
}

func TestLoadGenCountsDatagramsFromOtherAddresses(t *testing.T) {
	stranger := listenUDP(t)
	cfg := startFake(t, 5, func(b []byte, from netip.AddrPort, w transport.Writer) {
		// The same answer, first from another socket.
		_ = stranger.Send([]transport.Packet{{Addr: from, Data: b}})
		w.WriteTo(b, from)
	})
	res, err := mustLoadGen(t, cfg).run(testCtx(t), 0, 100*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if res.BadSource == 0 || res.OK == 0 || res.Bad() != res.BadSource {
		t.Fatalf("counts %+v: want the stranger's copies counted as bad source and the server's answers OK", res.Counts)
	}
}

func TestLoadGenChecksEchoReplies(t *testing.T) {
	const size = 145
	cases := []struct {
		name   string
		mangle func(b []byte) []byte
		ok     bool
	}{
		{"padded echo", func(b []byte) []byte { return b }, true},
		{"one byte short", func(b []byte) []byte { return b[:size-1] }, false},
		{"another key", func(b []byte) []byte { b[offTarget] ^= 1; return b }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEchoHandler(size)
			tr := listenUDP(t)
			h := transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
				var b transport.Batch
				e.HandlePacket(data, from, &b)
				w.WriteTo(tc.mangle(b.Packets()[0].Data), from)
			})
			if err := tr.Start(h); err != nil {
				t.Fatal(err)
			}
			keys, _ := makeKeys("echo", 1, 10, 1)
			lg := mustLoadGen(t, loadConfig{server: tr.LocalAddr(), mode: checkEcho, keys: keys, respLen: size,
				clients: 2, concurrency: 4, timeout: time.Second, seed: 3, label: "loadgen"})
			const n = 50
			res, err := lg.runCount(testCtx(t), n)
			if err != nil {
				t.Fatal(err)
			}
			want := Counts{Sent: n, OK: n}
			if !tc.ok {
				want = Counts{Sent: n, BadValue: n}
			}
			if res.Counts != want {
				t.Fatalf("counts %+v, want %+v", res.Counts, want)
			}
		})
	}
}

// The request the load generator patches together is the one the codec
// encodes, with the sender ID of the socket it leaves from; with many
// senders, each sends as many in a row as its client has in flight.
func TestPatchedRequestIsWhatTheCodecEncodes(t *testing.T) {
	keys, values := makeKeys("patch", 1, 3, 10)
	for _, senders := range []int{0, 3} {
		lg := mustLoadGen(t, loadConfig{server: netip.MustParseAddrPort("127.0.0.1:9"), mode: checkValues, keys: keys, values: values,
			network: 0xabcdef01, readOnly: true, clients: 1, senders: senders, concurrency: 2, timeout: time.Second, seed: 4})
		defer lg.closeClients()
		c := lg.clients[0]
		for round := range 8 {
			// Two requests in flight: two in a row from each sender.
			snd := c.turn()
			if want := c.senders[round/2%len(c.senders)]; snd != want {
				t.Fatalf("%d senders, request %d: sender %d's turn, want %d's: the senders take turns in a ring", senders, round, snd.idx, want.idx)
			}
			if !c.issue(1, 0, true, snd) {
				t.Fatal("no request issued")
			}
			s := c.slots[1]
			if s.snd != snd.idx {
				t.Fatalf("slot says sender %d, sent from %d", s.snd, snd.idx)
			}
			want := wire.Message{Type: wire.FindValue, Flags: wire.FlagReadOnly, Network: 0xabcdef01, TxID: s.txid, Sender: snd.self, Target: keys[s.key]}
			enc, err := want.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := c.req[:c.reqN]; string(got) != string(enc) {
				t.Fatalf("%d senders: sent  % x\nwant % x", senders, got, enc)
			}
			if s.txid&0xffff != 1 || s.txid&^0xffffffff != c.tag {
				t.Fatalf("txid %#x does not carry slot 1 and the client's tag %#x", s.txid, c.tag)
			}
		}
	}
}

// Checking an answer and sending the next request allocates nothing, from
// the socket the answer came in on (the best case) or from the next
// sender's (many).
func TestLoadGenAnswerPathDoesNotAllocate(t *testing.T) {
	keys, values := makeKeys("alloc", 1, 1, 100)
	serverTr := listenUDP(t) // a sink, so that sends from other sockets go somewhere
	server := serverTr.LocalAddr()
	serverID := id.Key("server")
	for _, senders := range []int{0, 2} {
		lg := mustLoadGen(t, loadConfig{server: server, serverID: serverID, mode: checkValues, keys: keys, values: values,
			clients: 1, senders: senders, concurrency: 1, timeout: time.Second, seed: 5})
		defer lg.closeClients()
		lg.phase.Store(phaseMeasure)
		c := lg.clients[0]
		c.issue(0, lg.now(), true, c.turn())
		a := wire.Message{Type: wire.Values, Sender: serverID, Values: []wire.Value{{TTL: 9, Data: values[0]}}}
		answer, err := a.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		var b transport.Batch
		var pkts [1]transport.Packet
		allocs := testing.AllocsPerRun(1000, func() {
			s := c.slots[0]
			binary.BigEndian.PutUint64(answer[offTxID:], s.txid)
			b.Reset()
			at := c.senders[s.snd]
			if senders == 0 {
				at.HandlePacket(answer, server, &b)
				return
			}
			pkts[0] = transport.Packet{Addr: server, Data: answer}
			turnSender{at}.HandleBatch(pkts[:], &b)
		})
		if allocs != 0 {
			t.Fatalf("%d senders: %.1f allocations per answer", senders, allocs)
		}
		if c.counts.OK < 1000 || c.counts.Bad() != 0 {
			t.Fatalf("%d senders: counts %+v: the answers were not all accepted", senders, c.counts)
		}
	}
}

func TestNewLoadGenRejectsImpossibleSettings(t *testing.T) {
	keys, values := makeKeys("bad", 1, 2, 10)
	ok := loadConfig{server: netip.MustParseAddrPort("127.0.0.1:9"), mode: checkValues, keys: keys, values: values,
		clients: 2, concurrency: 4, timeout: time.Second}
	cases := []struct {
		name   string
		change func(c *loadConfig)
	}{
		{"no clients", func(c *loadConfig) { c.clients = 0 }},
		{"fewer requests than clients", func(c *loadConfig) { c.concurrency = 1 }},
		{"more slots than txids address", func(c *loadConfig) { c.clients, c.concurrency = 1, maxSlotsPerClient+1 }},
		{"no keys", func(c *loadConfig) { c.keys = nil }},
		{"values missing", func(c *loadConfig) { c.values = c.values[:1] }},
		{"no timeout", func(c *loadConfig) { c.timeout = 0 }},
		{"fewer senders than clients", func(c *loadConfig) { c.senders = 1 }},
		{"too many senders", func(c *loadConfig) { c.senders = MaxSenders + 1 }},
	}
	for _, tc := range cases {
		cfg := ok
		tc.change(&cfg)
		if lg, err := newLoadGen(cfg); err == nil {
			lg.closeClients()
			t.Errorf("%s: accepted", tc.name)
		}
	}
}

var testAddr = netip.MustParseAddrPort("127.0.0.1:9")

// bytesBatch is a Writer that keeps a copy of the last datagram.
type bytesBatch struct{ got []byte }

func (b *bytesBatch) WriteTo(data []byte, _ netip.AddrPort) { b.got = append(b.got[:0], data...) }

// senderView is an echo server that records which sender ID each source
// address carried: the server's view of who is talking to it.
type senderView struct {
	echo *echoHandler
	mu   sync.Mutex
	ids  map[netip.AddrPort]map[id.ID]bool
}

func (v *senderView) HandlePacket(data []byte, from netip.AddrPort, w transport.Writer) {
	if len(data) >= wire.HeaderLen {
		v.mu.Lock()
		if v.ids[from] == nil {
			v.ids[from] = map[id.ID]bool{}
		}
		v.ids[from][id.ID(data[offSender:offSender+id.Len])] = true
		v.mu.Unlock()
	}
	v.echo.HandlePacket(data, from, w)
}

// With senders set, the server hears from that many distinct addresses
// (distinct IPs, none of them 127.0.0.1), each with one sender ID of its
// own; without, from one address and ID per client. So a many-senders
// figure cannot quietly come from a handful of contacts.
func TestManySendersReachTheServerAsDistinctAddressesAndIDs(t *testing.T) {
	const size = 145
	keys, _ := makeKeys("senders", 1, 10, 1)
	cases := []struct {
		clients, senders, want int
		manyIPs                bool
	}{
		{3, 0, 3, false},
		{3, 300, 300, true},
	}
	for _, tc := range cases {
		v := &senderView{echo: newEchoHandler(size), ids: map[netip.AddrPort]map[id.ID]bool{}}
		tr := listenUDP(t)
		if err := tr.Start(v); err != nil {
			t.Fatal(err)
		}
		lg := mustLoadGen(t, loadConfig{server: tr.LocalAddr(), mode: checkEcho, keys: keys, respLen: size,
			clients: tc.clients, senders: tc.senders, concurrency: 12, timeout: time.Second, seed: 6, label: "loadgen"})
		// Enough requests for every client to go round its senders
		// several times, however the shared budget falls among them (with
		// 30 for 3 clients, one busy client could take a slow one's share).
		n := max(10*tc.want, 200*tc.clients)
		res, err := lg.runCount(testCtx(t), n)
		if err != nil {
			t.Fatal(err)
		}
		if res.OK != uint64(n) || res.Bad() != 0 {
			t.Fatalf("%d senders: counts %+v, want %d correct echoes", tc.senders, res.Counts, n)
		}
		v.mu.Lock()
		ips := map[netip.Addr]bool{}
		owner := map[id.ID]netip.AddrPort{}
		for from, ids := range v.ids {
			ips[from.Addr()] = true
			if len(ids) != 1 {
				t.Errorf("%d senders: %v sent under %d IDs, want one", tc.senders, from, len(ids))
			}
			for x := range ids {
				if o, ok := owner[x]; ok {
					t.Errorf("%d senders: ID %v came from %v and %v", tc.senders, x, o, from)
				}
				owner[x] = from
			}
		}
		v.mu.Unlock()
		if len(v.ids) != tc.want || len(owner) != tc.want {
			t.Fatalf("%d senders: the server heard %d addresses and %d IDs, want %d of each", tc.senders, len(v.ids), len(owner), tc.want)
		}
		lo := netip.MustParseAddr("127.0.0.1")
		if tc.manyIPs && (len(ips) != tc.want || ips[lo]) {
			t.Fatalf("%d senders: %d distinct IPs (127.0.0.1 among them: %v), want %d others", tc.senders, len(ips), ips[lo], tc.want)
		}
		if !tc.manyIPs && (len(ips) != 1 || !ips[lo]) {
			t.Fatalf("best case: IPs %v, want 127.0.0.1 alone", ips)
		}
	}
}

// A request from the server (a node pinging a contact it took from a
// sender) is counted apart: neither an answer nor a bad one.
func TestLoadGenCountsTheServersOwnRequestsApart(t *testing.T) {
	cfg := startFake(t, 5, func(b []byte, from netip.AddrPort, w transport.Writer) {
		ping := wire.Message{Type: wire.Ping, TxID: 0x5eed, Sender: id.Key("fake node")}
		p, err := ping.Append(nil)
		if err != nil {
			panic(err)
		}
		w.WriteTo(p, from)
		w.WriteTo(b, from)
	})
	const n = 100
	res, err := mustLoadGen(t, cfg).runCount(testCtx(t), n)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Counts{Sent: n, OK: n, Requests: n}); res.Counts != want {
		t.Fatalf("counts %+v, want %+v", res.Counts, want)
	}
}

func TestSenderAddressesAreDistinctLoopbackAddresses(t *testing.T) {
	seen := map[netip.Addr]int{}
	for j := range MaxSenders {
		a := senderAddr(j)
		if !a.IsLoopback() || a == netip.MustParseAddr("127.0.0.1") {
			t.Fatalf("sender %d: %v is not a loopback address other than 127.0.0.1", j, a)
		}
		if k, ok := seen[a]; ok {
			t.Fatalf("senders %d and %d share %v", k, j, a)
		}
		seen[a] = j
	}
}

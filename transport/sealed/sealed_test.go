package sealed

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func mustKey(t testing.TB, secret []byte, network uint32) *Key {
	t.Helper()
	k, err := NewKey(secret, network)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func nonceOf(counter, instance, random uint64) *[NonceSize]byte {
	var n [NonceSize]byte
	binary.BigEndian.PutUint64(n[0:], counter)
	binary.BigEndian.PutUint64(n[8:], instance)
	binary.BigEndian.PutUint64(n[16:], random)
	return &n
}

func plainDatagram(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	copy(b, []byte{0xD7, 0x01, 0x01})
	return b
}

func TestSealOpenRoundTrip(t *testing.T) {
	k := mustKey(t, testSecret, 7)
	for _, n := range []int{0, 1, 36, 1400, MaxPlain} {
		plain := plainDatagram(n)
		s := k.Seal(nil, nonceOf(99, 5, 1), plain)
		if len(s) != n+Overhead {
			t.Fatalf("sealed %d bytes into %d, want %d", n, len(s), n+Overhead)
		}
		if n > 8 && bytes.Contains(s, plain[3:]) {
			t.Fatalf("the plain datagram shows through the sealed one")
		}
		got, c, inst, r := k.Open(nil, s)
		if r != Accepted || !bytes.Equal(got, plain) || c != 99 || inst != 5 {
			t.Fatalf("open of %d bytes: %v, counter %d instance %d, equal %v", n, r, c, inst, bytes.Equal(got, plain))
		}
	}
}

// Every single flipped bit, anywhere in a sealed datagram, is refused.
func TestTamperedByteRefused(t *testing.T) {
	k := mustKey(t, testSecret, 7)
	s := k.Seal(nil, nonceOf(1, 2, 3), plainDatagram(100))
	for i := range s {
		for bit := range 8 {
			c := bytes.Clone(s)
			c[i] ^= 1 << bit
			if _, _, _, r := k.Open(nil, c); r == Accepted {
				t.Fatalf("byte %d bit %d flipped: accepted", i, bit)
			}
		}
	}
	for n := range len(s) {
		if _, _, _, r := k.Open(nil, s[:n]); r == Accepted {
			t.Fatalf("cut to %d bytes: accepted", n)
		}
	}
	if _, _, _, r := k.Open(nil, append(bytes.Clone(s), 0)); r != BadTag {
		t.Fatalf("one byte appended: %v, want bad_tag", r)
	}
}

func TestOpenReasons(t *testing.T) {
	k := mustKey(t, testSecret, 7)
	s := k.Seal(nil, nonceOf(1, 2, 3), plainDatagram(60))
	other := mustKey(t, []byte("another secret of 32 bytes......"), 7)
	otherNet := mustKey(t, testSecret, 8)
	set := func(i int, v byte) []byte { c := bytes.Clone(s); c[i] = v; return c }
	for _, tc := range []struct {
		name string
		key  *Key
		in   []byte
		want Reason
	}{
		{"short", k, s[:Overhead-1], Malformed},
		{"bad magic", k, set(0, 0xD6), Malformed},
		{"bad version", k, set(1, 2), Malformed},
		{"plain message", k, plainDatagram(60), Plain},
		{"unknown suite", k, set(3, 2), Malformed},
		{"wrong network", otherNet, s, WrongNetwork},
		{"wrong secret", other, s, BadTag},
		// A node of network 8 that forges the prefix to say 7 still
		// holds network 8's key: the tag fails.
		{"network rewritten", otherNet, set(7, 8), BadTag},
		{"good", k, s, Accepted},
	} {
		if _, _, _, r := tc.key.Open(nil, tc.in); r != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, r, tc.want)
		}
	}
}

func TestNewKeyRefusesShortSecret(t *testing.T) {
	if _, err := NewKey(make([]byte, MinSecret-1), 0); err == nil {
		t.Fatal("a 15-byte secret was accepted")
	}
	if _, err := NewKey(make([]byte, MinSecret), 0); err != nil {
		t.Fatal(err)
	}
}

func TestReplayWindow(t *testing.T) {
	const fresh = 30 * time.Second
	r := NewReplay(4)
	ok := func(inst, c uint64) bool { return r.Check(inst, c, 0, fresh) }
	if !ok(1, 100) || ok(1, 100) {
		t.Fatal("the first copy must pass and the second fail")
	}
	// Out of order within the window: each accepted once.
	for _, c := range []uint64{105, 101, 103, 102, 104} {
		if !ok(1, c) {
			t.Fatalf("counter %d out of order refused", c)
		}
	}
	for _, c := range []uint64{100, 101, 102, 103, 104, 105} {
		if ok(1, c) {
			t.Fatalf("counter %d accepted twice", c)
		}
	}
	// Push Window more: the old ones fall below the floor and stay refused.
	for c := uint64(1000); c < 1000+Window; c++ {
		if !ok(1, c) {
			t.Fatalf("counter %d refused", c)
		}
	}
	for c := uint64(0); c <= 105; c++ {
		if ok(1, c) {
			t.Fatalf("counter %d, older than the window, accepted", c)
		}
	}
	// A counter never seen, below the window but above its floor, is
	// taken once: the floor then rises to it.
	if !ok(1, 999) || ok(1, 999) || ok(1, 998) {
		t.Fatal("an unseen counter above the floor must pass once, and the floor rise to it")
	}
	// Another instance has its own window.
	if !ok(2, 100) {
		t.Fatal("another instance's counter refused")
	}
}

// Property: against a brute-force set of everything accepted, Check never
// accepts a counter twice, and accepts every new counter within Window of
// the highest.
func TestReplayMatchesBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	r := NewReplay(1)
	seen := map[uint64]bool{}
	var high uint64
	for range 200000 {
		c := uint64(1000) + rng.Uint64N(4000)
		got := r.Check(9, c, 0, time.Second)
		if got && seen[c] {
			t.Fatalf("counter %d accepted twice", c)
		}
		// Counters strictly above the Window-th highest accepted are
		// always taken if new.
		if !got && !seen[c] && c > high {
			t.Fatalf("new highest counter %d refused", c)
		}
		if got {
			seen[c] = true
			high = max(high, c)
		}
	}
}

// A flood of instances keeps the table at its bound, and counts evictions.
func TestReplayTableBound(t *testing.T) {
	const bound = 64
	r := NewReplay(bound)
	for i := range uint64(10000) {
		r.Check(i, 1, 0, time.Second)
		if r.Len() > bound {
			t.Fatalf("table holds %d, over %d", r.Len(), bound)
		}
	}
	if r.Evicted != 10000-bound || r.EvictedFresh != r.Evicted {
		t.Fatalf("evicted %d (fresh %d), want %d", r.Evicted, r.EvictedFresh, 10000-bound)
	}
	// The most recent ones are still known; the first is forgotten.
	if r.Check(9999, 1, 0, time.Second) {
		t.Fatal("recent instance's replay accepted")
	}
	if !r.Check(0, 1, 0, time.Second) {
		t.Fatal("evicted instance should be forgotten (documented)")
	}
	// An entry heard from long ago is evicted without counting as fresh.
	r = NewReplay(1)
	r.Check(1, 1, 0, time.Second)
	r.Check(2, 1, int64(2*time.Second), time.Second)
	if r.EvictedFresh != 0 || r.Evicted != 1 {
		t.Fatalf("evicted %d fresh %d, want 1 and 0", r.Evicted, r.EvictedFresh)
	}
}

// collector records what a wrapped transport delivers.
type collector struct {
	mu   sync.Mutex
	got  [][]byte
	from []netip.AddrPort
	// batches counts HandleBatch calls.
	batches int
	reply   []byte
}

func (c *collector) HandlePacket(data []byte, from netip.AddrPort, w transport.Writer) {
	c.mu.Lock()
	c.got = append(c.got, bytes.Clone(data))
	c.from = append(c.from, from)
	reply := c.reply
	c.mu.Unlock()
	if reply != nil {
		w.WriteTo(reply, from)
	}
}

type batchCollector struct{ collector }

func (c *batchCollector) HandleBatch(pkts []transport.Packet, w transport.Writer) {
	c.mu.Lock()
	c.batches++
	c.mu.Unlock()
	for _, p := range pkts {
		c.HandlePacket(p.Data, p.Addr, w)
	}
}

func (c *collector) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.got)
}

// raw records sealed datagrams as they cross the wire.
type raw struct {
	mu  sync.Mutex
	got [][]byte
}

func (r *raw) HandlePacket(data []byte, _ netip.AddrPort, _ transport.Writer) {
	r.mu.Lock()
	r.got = append(r.got, bytes.Clone(data))
	r.mu.Unlock()
}

// pair builds two sealed endpoints on a memnet driven by a virtual clock.
func pair(t *testing.T, cfgB func(*Config)) (net *memnet.Network, clk *clock.Virtual, a, b *Transport) {
	t.Helper()
	clk = clock.NewVirtual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	net = memnet.New(memnet.Config{Clock: clk, Seed: 1})
	mk := func(mod func(*Config)) *Transport {
		c := Config{Secret: testSecret, Network: 7, Clock: clk}
		if mod != nil {
			mod(&c)
		}
		tr, err := New(net.NewEndpoint(), c)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		return tr
	}
	return net, clk, mk(nil), mk(cfgB)
}

func TestTransportDeliversAndReplies(t *testing.T) {
	_, clk, a, b := pair(t, nil)
	var ha, hb batchCollector
	hb.reply = []byte("pong")
	if err := a.Start(&ha); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(&hb); err != nil {
		t.Fatal(err)
	}
	msgs := []transport.Packet{{Addr: b.LocalAddr(), Data: []byte("one")}, {Addr: b.LocalAddr(), Data: []byte("two")}}
	if err := a.Send(msgs); err != nil {
		t.Fatal(err)
	}
	clk.RunFor(time.Second)
	if hb.count() != 2 || string(hb.got[0]) != "one" || string(hb.got[1]) != "two" {
		t.Fatalf("b got %q", hb.got)
	}
	if ha.count() != 2 || string(ha.got[0]) != "pong" {
		t.Fatalf("a got %q, want two sealed pongs", ha.got)
	}
}

// Replays of captured datagrams, from the same or another source address,
// change nothing; old counters are refused as stale.
func TestTransportRefusesReplayAndStale(t *testing.T) {
	net, clk, a, b := pair(t, nil)
	var hb collector
	if err := b.Start(&hb); err != nil {
		t.Fatal(err)
	}
	// A tap sees sealed datagrams sent to it: the attacker's capture.
	tap := net.NewEndpoint()
	var cap raw
	tap.Start(&cap)
	a.Send([]transport.Packet{{Addr: tap.LocalAddr(), Data: []byte("to tap")}, {Addr: b.LocalAddr(), Data: []byte("hello")}})
	clk.RunFor(time.Millisecond)
	if hb.count() != 1 {
		t.Fatalf("b got %d, want 1", hb.count())
	}
	// Capture what b got by sealing through a second send to the tap too.
	a.Send([]transport.Packet{{Addr: tap.LocalAddr(), Data: []byte("captured")}})
	clk.RunFor(time.Millisecond)
	if len(cap.got) != 2 {
		t.Fatalf("tap got %d", len(cap.got))
	}
	captured := cap.got[1]
	// First delivery of the captured datagram to b is new to b: taken
	// once (it was sealed by a member); every replay after is refused,
	// from any source address.
	spoof := net.NewEndpoint()
	spoof2 := net.NewEndpoint()
	for _, src := range []*memnet.Endpoint{spoof, spoof, spoof2, tap} {
		src.Send([]transport.Packet{{Addr: b.LocalAddr(), Data: captured}})
		clk.RunFor(time.Millisecond)
	}
	if hb.count() != 2 {
		t.Fatalf("b took %d datagrams, want 2 (hello and the first copy)", hb.count())
	}
	if s := b.Stats(); s.Replay != 3 {
		t.Fatalf("replays counted %d, want 3: %+v", s.Replay, s)
	}
	// A datagram older than the freshness window is stale.
	a.Send([]transport.Packet{{Addr: tap.LocalAddr(), Data: []byte("later")}})
	clk.RunFor(time.Millisecond)
	late := cap.got[2]
	clk.RunFor(DefaultFreshness + time.Second)
	spoof.Send([]transport.Packet{{Addr: b.LocalAddr(), Data: late}})
	clk.RunFor(time.Millisecond)
	if s := b.Stats(); s.Stale != 1 || hb.count() != 2 {
		t.Fatalf("stale %d, delivered %d: want 1 and 2", s.Stale, hb.count())
	}
	// One from the future too.
	k := mustKey(t, testSecret, 7)
	future := k.Seal(nil, nonceOf(uint64(clk.Now().Add(time.Minute).UnixNano()), 77, 0), []byte("future"))
	spoof.Send([]transport.Packet{{Addr: b.LocalAddr(), Data: future}})
	clk.RunFor(time.Millisecond)
	if s := b.Stats(); s.Stale != 2 {
		t.Fatalf("future counter: stale %d, want 2", s.Stale)
	}
}

func TestTransportCountsOutsiders(t *testing.T) {
	net, clk, a, b := pair(t, func(c *Config) { c.Secret = []byte("a wrong secret, 16+ bytes") })
	var ha, hb collector
	a.Start(&ha)
	b.Start(&hb)
	b.Send([]transport.Packet{{Addr: a.LocalAddr(), Data: []byte("wrong secret")}})
	plain := net.NewEndpoint()
	plain.Send([]transport.Packet{{Addr: a.LocalAddr(), Data: plainDatagram(40)}, {Addr: a.LocalAddr(), Data: []byte{1, 2}}})
	other, err := New(net.NewEndpoint(), Config{Secret: testSecret, Network: 8, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	other.Send([]transport.Packet{{Addr: a.LocalAddr(), Data: []byte("wrong network")}})
	clk.RunFor(time.Second)
	if ha.count() != 0 {
		t.Fatalf("a delivered %q", ha.got)
	}
	want := Counts{BadTag: 1, Plain: 1, Malformed: 1, WrongNetwork: 1}
	if s := a.Stats(); s != want {
		t.Fatalf("counts %+v, want %+v", s, want)
	}
	if d := a.DropCounts(); d["bad_tag"] != 1 || d["wrong_network"] != 1 || len(d) != int(numReasons) {
		t.Fatalf("DropCounts %v", d)
	}
}

func TestSendDropsTooLarge(t *testing.T) {
	_, clk, a, b := pair(t, nil)
	var hb collector
	b.Start(&hb)
	a.Send([]transport.Packet{{Addr: b.LocalAddr(), Data: make([]byte, MaxPlain+1)}, {Addr: b.LocalAddr(), Data: make([]byte, MaxPlain)}})
	clk.RunFor(time.Second)
	if hb.count() != 1 || a.Stats().TooLarge != 1 {
		t.Fatalf("delivered %d, too large %d", hb.count(), a.Stats().TooLarge)
	}
}

// Counters strictly increase even when the clock stands still.
func TestCountersIncrease(t *testing.T) {
	_, _, a, _ := pair(t, nil)
	st := a.get()
	defer a.put(st)
	var last uint64
	for range 1000 {
		s := st.seal(nil, []byte("x"), a.sent)
		c := binary.BigEndian.Uint64(s[PrefixSize:])
		if c <= last {
			t.Fatalf("counter %d after %d", c, last)
		}
		last = c
	}
}

// nopWriter discards what it is given.
type nopWriter struct{}

func (nopWriter) WriteTo([]byte, netip.AddrPort) {}

type nopTransport struct{ h transport.Handler }

func (n *nopTransport) Start(h transport.Handler) error { n.h = h; return nil }
func (*nopTransport) Send([]transport.Packet) error     { return nil }
func (*nopTransport) LocalAddr() netip.AddrPort         { return netip.MustParseAddrPort("127.0.0.1:1") }
func (*nopTransport) Close() error                      { return nil }

type nopBatch struct{}

func (nopBatch) HandlePacket([]byte, netip.AddrPort, transport.Writer)   {}
func (nopBatch) HandleBatch(pkts []transport.Packet, w transport.Writer) {}

// The hot paths allocate nothing per datagram once warm.
func TestNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector makes sync.Pool drop items at random")
	}
	inner := &nopTransport{}
	tr, err := New(inner, Config{Secret: testSecret, Network: 7})
	if err != nil {
		t.Fatal(err)
	}
	tr.Start(nopBatch{})
	from := netip.MustParseAddrPort("127.0.0.1:2")
	plain := plainDatagram(1400)
	out := []transport.Packet{{Addr: from, Data: plain}, {Addr: from, Data: plain}}
	if n := testing.AllocsPerRun(100, func() { tr.Send(out) }); n != 0 {
		t.Errorf("Send: %v allocations", n)
	}
	st := tr.get()
	in := make([]transport.Packet, 16)
	for i := range in {
		in[i] = transport.Packet{Addr: from, Data: st.seal(nil, plain, tr.sent)}
	}
	tr.put(st)
	h := inner.h.(transport.BatchHandler)
	if n := testing.AllocsPerRun(100, func() { h.HandleBatch(in, nopWriter{}) }); n != 0 {
		t.Errorf("HandleBatch: %v allocations", n)
	}
	if n := testing.AllocsPerRun(100, func() { h.HandlePacket(in[0].Data, from, nopWriter{}) }); n != 0 {
		t.Errorf("HandlePacket: %v allocations", n)
	}
}

// fixedClock is a clock that stands still.
type fixedClock struct{ now time.Time }

func (c fixedClock) Now() time.Time { return c.now }
func (c fixedClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	return clock.Real{}.AfterFunc(d, f)
}

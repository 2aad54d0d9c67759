package core

import (
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

func newTestLimits(limit float64, burst, sources int, loopback bool) rateLimits {
	c := Config{RateLimit: limit, RateBurst: burst, RateSources: sources, RateLimitLoopback: loopback}
	if err := c.validateRateLimit(); err != nil {
		panic(err)
	}
	return newRateLimits(&c)
}

// allowed counts how many of n requests from a at now pass.
func allowed(r *rateLimits, a netip.Addr, now time.Time, n int) int {
	k := 0
	for range n {
		if r.allow(a, now) {
			k++
		}
	}
	return k
}

// A source gets its burst at once, then RateLimit per second; another
// source is not affected by the first's flood; IPv6 addresses of one /64
// share a bucket and other /64s do not.
func TestRateLimitPerSourceHost(t *testing.T) {
	r := newTestLimits(10, 20, 100, false)
	a, b := netip.MustParseAddr("81.2.69.1"), netip.MustParseAddr("81.2.69.2")
	if got := allowed(&r, a, epoch, 100); got != 20 {
		t.Fatalf("a flood of 100 passed %d, want the burst of 20", got)
	}
	if got := allowed(&r, b, epoch, 5); got != 5 {
		t.Fatalf("another host passed %d of 5 during the flood", got)
	}
	if got := allowed(&r, a, epoch.Add(time.Second), 100); got != 10 {
		t.Fatalf("a second later, %d passed, want 10 (the rate)", got)
	}
	if r.dropped != 80+90 {
		t.Errorf("dropped = %d, want %d", r.dropped, 170)
	}
	v6a, v6b, v6c := netip.MustParseAddr("2a01:4f8::1"), netip.MustParseAddr("2a01:4f8::ffff:2"), netip.MustParseAddr("2a01:4f8:0:1::1")
	if got := allowed(&r, v6a, epoch, 15) + allowed(&r, v6b, epoch, 15); got != 20 {
		t.Errorf("two addresses of one /64 passed %d together, want one burst of 20", got)
	}
	if got := allowed(&r, v6c, epoch, 5); got != 5 {
		t.Errorf("another /64 passed %d of 5", got)
	}
	mapped := netip.AddrFrom16(a.As16()) // ::ffff:81.2.69.1 is 81.2.69.1
	if allowed(&r, mapped, epoch.Add(time.Second), 1) != 0 {
		t.Error("an IPv4-mapped address escaped its IPv4 address's limit")
	}
	if got := allowed(&r, netip.MustParseAddr("127.0.0.1"), epoch, 1000); got != 1000 {
		t.Errorf("loopback passed %d of 1000: it is exempt unless RateLimitLoopback", got)
	}
}

// The table never holds more than RateSources buckets; the one evicted is
// the least recently heard from, which comes back with a fresh burst.
func TestRateLimitTableIsBoundedAndEvictsLeastRecent(t *testing.T) {
	r := newTestLimits(1, 2, 300, false) // more than a page, not a whole number of pages
	host := func(i int) netip.Addr { return netip.AddrFrom4([4]byte{81, byte(i >> 16), byte(i >> 8), byte(i)}) }
	allowed(&r, host(0), epoch, 2) // host 0 spends its burst
	for i := 1; i < 300; i++ {
		allowed(&r, host(i), epoch, 1)
	}
	if allowed(&r, host(0), epoch, 1) != 0 { // still held: refused, and now the most recent
		t.Fatal("host 0 lost its bucket before the table was full")
	}
	allowed(&r, host(300), epoch, 1) // evicts host 1, the least recent
	if len(r.idx) != 300 || int(r.n) != 300 {
		t.Fatalf("table holds %d (%d in use), want 300", len(r.idx), r.n)
	}
	if _, ok := r.idx[srcKeyOf(host(1))]; ok {
		t.Error("host 1, the least recently heard from, was not the one evicted")
	}
	if allowed(&r, host(0), epoch, 1) != 0 {
		t.Error("host 0, heard from recently, was evicted")
	}
	for i := 1000; i < 11000; i++ { // a stream of new sources
		allowed(&r, host(i), epoch, 1)
	}
	if len(r.idx) != 300 || len(r.pages) != 2 {
		t.Errorf("after 10,000 new sources: %d buckets in %d pages, want 300 in 2", len(r.idx), len(r.pages))
	}
	if got := allowed(&r, host(0), epoch, 5); got != 2 {
		t.Errorf("host 0, evicted and back, passed %d, want a fresh burst of 2", got)
	}
	// The list is intact: walking it from the head visits every bucket once.
	seen := 0
	for i := r.head; i >= 0; i = r.at(i).next {
		seen++
		if seen > 300 {
			t.Fatal("the recency list has a cycle")
		}
	}
	if seen != 300 {
		t.Errorf("the recency list holds %d buckets, want 300", seen)
	}
}

func TestRateLimitConfig(t *testing.T) {
	c := Config{}
	if err := c.validateRateLimit(); err != nil || c.RateLimit != DefaultRateLimit || c.RateBurst != 2*DefaultRateLimit || c.RateSources != DefaultRateSources {
		t.Errorf("defaults: %v %v %v %v", err, c.RateLimit, c.RateBurst, c.RateSources)
	}
	off := Config{RateLimit: -1}
	if err := off.validateRateLimit(); err != nil {
		t.Fatal(err)
	}
	if r := newRateLimits(&off); !r.allow(netip.MustParseAddr("81.2.69.1"), epoch) || r.max != 0 {
		t.Error("a negative RateLimit still limits")
	}
	for _, bad := range []Config{{RateBurst: -1}, {RateSources: -1}, {RateLimit: 2e9}} {
		if err := bad.validateRateLimit(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// On the node: requests over a source's limit are dropped before any work
// (not served, not answered) and counted; another source is answered; the
// answers to the node's own requests are never limited.
func TestNodeDropsRequestsOverTheSourceLimit(t *testing.T) {
	tn := newTestNet(t, 77, memnet.Config{Latency: memnet.Fixed(time.Millisecond)})
	srv := tn.add(func(c *Config) { c.RateLimit, c.RateBurst, c.RateLimitLoopback = 10, 20, true })
	flooder := tn.listenPeer(netip.MustParseAddrPort("127.9.0.1:4000"), id.Key("flooder"), nil)
	other := tn.listenPeer(netip.MustParseAddrPort("127.9.0.2:4000"), id.Key("other"), nil)
	send := func(p *peer, n int) {
		var pkts []transport.Packet
		for i := range n {
			m := wire.Message{Type: wire.Ping, TxID: uint64(i + 1), Sender: p.id, Flags: wire.FlagReadOnly}
			b, err := m.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			pkts = append(pkts, transport.Packet{Addr: srv.Addr(), Data: b})
		}
		if err := p.ep.Send(pkts); err != nil {
			t.Fatal(err)
		}
	}
	send(flooder, 100)
	send(other, 15)
	tn.clk.RunFor(100 * time.Millisecond)
	if flooder.received != 20 || other.received != 15 {
		t.Fatalf("answers: flooder %d (want its burst, 20), other %d (want 15)", flooder.received, other.received)
	}
	st := srv.Stats()
	if st.RateLimited != 80 || st.Served["PING"] != 35 {
		t.Errorf("RateLimited %d (want 80), PINGs served %d (want 35)", st.RateLimited, st.Served["PING"])
	}

	// The node's own requests draw answers from the flooder's address as
	// fast as they come: they are not requests, and are not limited.
	flooder.script = func(req *wire.Message, from netip.AddrPort) *wire.Message { return answer(req, from, nil) }
	pending := 50
	for range 50 {
		srv.Ping(flooder.ep.LocalAddr(), func(_ id.Contact, err error) {
			if err != nil {
				t.Errorf("ping of the flooder: %v", err)
			}
			pending--
		})
	}
	tn.await(&pending, 10*time.Second)
	if got := srv.Stats().RateLimited; got != 80 {
		t.Errorf("RateLimited went from 80 to %d on answers", got)
	}
}

// A request from a source already in the table costs no allocation.
func TestRateLimitAllowDoesNotAllocate(t *testing.T) {
	r := newTestLimits(1e6, 1e6, 100, false)
	a := netip.MustParseAddr("81.2.69.1")
	r.allow(a, epoch)
	if n := testing.AllocsPerRun(1000, func() { r.allow(a, epoch) }); n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}

// The limit's cost per request: one source, and sources taking turns
// through a full table of 16,384 (each request a map hit and a move to
// the front), and more sources than the table holds (each an eviction).
//
//	go test -run '^$' -bench RateLimit -benchmem ./internal/core
func BenchmarkRateLimit(b *testing.B) {
	for _, c := range []struct {
		name    string
		sources int
	}{{"OneSource", 1}, {"FullTable", DefaultRateSources}, {"Evicting", 4 * DefaultRateSources}} {
		b.Run(c.name, func(b *testing.B) {
			r := newTestLimits(1e9, 1e9, DefaultRateSources, false)
			addrs := make([]netip.Addr, c.sources)
			for i := range addrs {
				addrs[i] = netip.AddrFrom4([4]byte{81, byte(i >> 16), byte(i >> 8), byte(i)})
				r.allow(addrs[i], epoch)
			}
			now := epoch
			i := 0
			for b.Loop() {
				r.allow(addrs[i], now)
				if i++; i == len(addrs) {
					i = 0
				}
			}
		})
	}
}

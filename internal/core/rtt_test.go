package core

import (
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

// perAddr is a memnet latency: datagrams to or from an address in slow take
// its one-way delay, every other datagram base. A nil delay function in
// wild draws a fresh delay per datagram.
type perAddr struct {
	base time.Duration
	slow map[netip.AddrPort]time.Duration
	wild map[netip.AddrPort]func(r *rand.Rand) time.Duration
}

func (l perAddr) Delay(from, to netip.AddrPort, r *rand.Rand) time.Duration {
	for _, a := range [2]netip.AddrPort{from, to} {
		if f, ok := l.wild[a]; ok {
			return f(r)
		}
		if d, ok := l.slow[a]; ok {
			return d
		}
	}
	return l.base
}

// findNodes runs one FIND_NODE lookup from each of the given nodes (of
// targets drawn from seed) and returns the results.
func findNodes(t *testing.T, tn *testNet, from []*Node, seed uint64) []*LookupResult {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]*LookupResult, len(from))
	pending := len(from)
	for i, n := range from {
		n.FindNode(id.Random(r), func(res *LookupResult, err error) {
			pending--
			if err != nil {
				t.Errorf("lookup from node %d: %v", i, err)
				return
			}
			out[i] = res
		})
	}
	tn.await(&pending, 10*time.Minute)
	return out
}

// A lookup among contacts whose round trips are 20 ms does not wait a
// second, nor half of one, for a contact that left: its request stalls at
// the contact's estimated round trip and the lookup goes on without it. The
// same network with fixed timeouts (MinRequestTimeout = RequestTimeout) is
// the control: there the same lookups wait out StallAfter (500 ms).
func TestLookupAmongFastContactsDoesNotWaitForDepartedOnes(t *testing.T) {
	run := func(adaptive bool) (worst time.Duration, met int, resent uint64) {
		tn := newTestNet(t, 21, memnet.Config{Latency: memnet.Fixed(10 * time.Millisecond)})
		for range 60 {
			tn.add(func(c *Config) {
				c.K = 8
				if !adaptive {
					c.MinRequestTimeout = DefaultRequestTimeout
				}
			})
		}
		tn.bootstrapAll(20 * time.Millisecond)
		findNodes(t, tn, tn.nodes, 1) // every node has answers to learn from
		for _, n := range tn.nodes[45:] {
			n.Close() // a quarter leave without a word
		}
		for _, r := range findNodes(t, tn, tn.nodes[:30], 2) {
			if r == nil {
				continue
			}
			// Right after a mass departure a lookup may hear from fewer
			// than K (every node still hands out the dead contacts nearest
			// the target); that it converges is what counts here.
			if r.Responded == 0 {
				t.Errorf("a lookup heard from nobody")
			}
			worst = max(worst, r.Duration)
			if r.Stalled > 0 || r.Failed > 0 {
				met++
			}
		}
		// FIND_NODE datagrams sent more than once: the lookup went on
		// without a stalled request, so it is not sent again.
		tn.clk.RunFor(2 * DefaultRequestTimeout)
		for _, n := range tn.nodes[:45] {
			c := n.Stats().Sent["FIND_NODE"]
			resent += c.Sent - (c.Answered + c.Refused + c.Timeouts + c.Abandoned)
		}
		return worst, met, resent
	}
	worst, met, resent := run(true)
	fixedWorst, fixedMet, fixedResent := run(false)
	if resent != 0 || fixedResent == 0 {
		t.Fatalf("FIND_NODE retries: %d adaptive, %d with fixed timeouts; want none and some", resent, fixedResent)
	}
	t.Logf("30 lookups after a quarter of 60 nodes left: slowest %v adaptive (%d met a departed contact), %v with fixed timeouts (%d)", worst, met, fixedWorst, fixedMet)
	if met == 0 || fixedMet == 0 {
		t.Fatalf("lookups meeting a departed contact: %d adaptive, %d fixed; the test needs some", met, fixedMet)
	}
	if fixedWorst < DefaultRequestTimeout/2 {
		t.Fatalf("with fixed timeouts the slowest lookup took %v: the control should wait out a 500ms stall", fixedWorst)
	}
	// A lookup that finds fewer than K others waits for its departed
	// contacts until it gives up on them, at three times the round trip
	// expected of them (40ms for a 20ms contact with one sample) but no
	// sooner than MinRequestTimeout (100ms), against 500ms (StallAfter) and
	// then a whole second with fixed timeouts; plus its rounds.
	if worst > 250*time.Millisecond {
		t.Fatalf("with adaptive timeouts the slowest lookup took %v, want under 250ms", worst)
	}
}

// A contact whose answers take 400 ms, among contacts that answer in 20 ms,
// is slow, not dead. A lookup that learns of it from its peers stalls and
// gives up on it at the pace of the 20 ms estimate, but the request runs on
// and its answer, not a failure, reaches the routing table. A PING of
// another such contact, which the node knows nothing of, waits the full
// RequestTimeout on its last attempt (the node-wide estimate comes from
// faster peers), its answer sets the contact's own estimate, and from then
// on its requests wait long enough that it is not even retried.
func TestSlowButAliveContactIsNotDeclaredDead(t *testing.T) {
	lat := perAddr{base: 10 * time.Millisecond, slow: map[netip.AddrPort]time.Duration{}}
	tn := newTestNet(t, 22, memnet.Config{Latency: lat})
	for range 20 {
		tn.add(nil)
	}
	tn.bootstrapAll(20 * time.Millisecond)
	a := tn.nodes[1]
	findNodes(t, tn, []*Node{a, a, a}, 3) // a's node-wide estimate: 20 ms round trips
	a.mu.Lock()
	all := a.rttAll
	a.mu.Unlock()
	if !all.Known() || all.SRTT() > 30*time.Millisecond {
		t.Fatalf("node-wide estimate %v after lookups at 20ms, want about 20ms", all.SRTT())
	}

	slow := tn.add(nil)
	lat.slow[slow.Addr()] = 200 * time.Millisecond
	pending := 1
	slow.Bootstrap([]netip.AddrPort{tn.nodes[0].Addr()}, func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	a.mu.Lock()
	a.table.Remove(slow.ID()) // a knows nothing of it
	a.mu.Unlock()
	timeouts := a.Stats().Timeouts
	for _, r := range findNodesOf(t, tn, a, slow.ID()) {
		if r.Stalled == 0 || r.Duration >= 400*time.Millisecond {
			t.Fatalf("the lookup waited for the slow node (%d stalled, %v): the test needs it to move on", r.Stalled, r.Duration)
		}
	}
	tn.clk.RunFor(2 * time.Second)
	e, ok := a.table.Get(slow.ID())
	if got := a.Stats().Timeouts - timeouts; got != 0 || !ok || e.Failures != 0 {
		t.Fatalf("after a lookup that asked the slow node: %d timeouts, in table %v with %d failures", got, ok, e.Failures)
	}

	slow2 := tn.add(nil) // never joined: a knows nothing of it
	lat.slow[slow2.Addr()] = 200 * time.Millisecond
	ping := func() (time.Duration, error) { return pingWait(tn, a, slow2.Addr()) }
	took, err := ping()
	if err != nil {
		t.Fatalf("first ping of a 400ms contact: %v (after %v)", err, took)
	}
	e, ok = a.table.Get(slow2.ID())
	if !ok || e.Failures != 0 || e.RTT.SRTT() < 400*time.Millisecond || e.RTT.SRTT() > 450*time.Millisecond {
		t.Fatalf("after its first answer: in table %v, failures %d, SRTT %v; want held, 0, about 400ms", ok, e.Failures, e.RTT.SRTT())
	}
	retries := a.Stats().Retries
	for i := range 5 {
		if took, err := ping(); err != nil || took < 400*time.Millisecond {
			t.Fatalf("ping %d of the 400ms contact: %v after %v", i+2, err, took)
		}
	}
	if got := a.Stats().Retries - retries; got != 0 {
		t.Fatalf("%d retries to a contact whose own estimate says 400ms", got)
	}
	if e, _ := a.table.Get(slow2.ID()); e.Failures != 0 {
		t.Fatalf("the slow contact has %d failures", e.Failures)
	}
}

// pingWait pings addr from n and returns, once it has ended, how long it took
// in virtual time and its error.
func pingWait(tn *testNet, n *Node, addr netip.AddrPort) (took time.Duration, err error) {
	tn.t.Helper()
	start := tn.clk.Now()
	pending := 1
	n.Ping(addr, func(_ id.Contact, e error) {
		pending--
		err, took = e, tn.clk.Now().Sub(start)
	})
	tn.await(&pending, time.Minute)
	return took, err
}

// findNodesOf runs one FIND_NODE lookup of target from n.
func findNodesOf(t *testing.T, tn *testNet, n *Node, target id.ID) []*LookupResult {
	t.Helper()
	var out []*LookupResult
	pending := 1
	n.FindNode(target, func(r *LookupResult, err error) {
		pending--
		if err != nil {
			t.Errorf("lookup: %v", err)
			return
		}
		out = append(out, r)
	})
	tn.await(&pending, time.Minute)
	return out
}

// A contact of a full bucket that leaves is replaced from the bucket's
// replacement cache as soon as one request to it fails, when the waiting
// replacement has answered us: at its first failure, not its third. Here A's bucket 0 holds B1 and B2 (K = 2) and R waits in its
// cache; B1 leaves.
func TestDepartedContactIsReplacedFromTheCache(t *testing.T) {
	tn := newTestNet(t, 23, memnet.Config{Latency: memnet.Fixed(10 * time.Millisecond)})
	r := rand.New(rand.NewPCG(23, 0))
	self := id.Random(r)
	cfg := func(x id.ID) func(*Config) {
		return func(c *Config) { c.ID, c.K, c.Alpha = x, 2, 2 }
	}
	a := tn.add(cfg(self))
	b1 := tn.add(cfg(id.RandomInBucket(r, self, 0)))
	b2 := tn.add(cfg(id.RandomInBucket(r, self, 0)))
	rep := tn.add(cfg(id.RandomInBucket(r, self, 0)))
	for _, n := range []*Node{b1, b2, rep} {
		if _, err := pingWait(tn, a, n.Addr()); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
	if got := a.table.Replacements(0); len(got) != 1 || got[0].Contact.ID != rep.ID() || !got[0].Verified {
		t.Fatalf("replacement cache of bucket 0: %+v, want R, verified", got)
	}
	b1.Close()
	left := tn.clk.Now()
	pending := 1
	a.FindNode(b1.ID(), func(*LookupResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	// Once its request failed, B1 is out of every answer A gives.
	tn.clk.RunWhile(func() bool { _, in := a.table.Get(b1.ID()); return in }, left.Add(time.Minute))
	if _, in := a.table.Get(b1.ID()); in {
		t.Fatal("B1 is still in the bucket a minute after it left")
	}
	gone := tn.clk.Now().Sub(left)
	if e, in := a.table.Get(rep.ID()); !in || !e.Verified {
		t.Fatalf("R did not take B1's place: %+v %v", e, in)
	}
	// One failed request is enough (with fixed rules, B1 would have stayed
	// for MaxFailures = 3 of them), and a request fails RequestTimeout
	// after its first send at the soonest.
	if gone > DefaultRequestTimeout+rpcGrain {
		t.Fatalf("B1 left the bucket %v after it left the network, want within a request timeout", gone)
	}
	t.Logf("B1 replaced by R %v after it left", gone)
}

// A join through a list of seeds of which all but one are dead proceeds on
// the live seed's answer: it costs no more time than a join through that
// seed alone, and one PING per dead seed, never retried. Checked for a
// short-lived read-only client and for a node that joins.
func TestSeedsAllButOneDeadCostNothingOnceOneAnswers(t *testing.T) {
	for _, readOnly := range []bool{true, false} {
		t.Run(fmt.Sprintf("read-only=%v", readOnly), func(t *testing.T) {
			join := func(dead int) (res *BootstrapResult, c *Node, toDead uint64) {
				tn := newTestNet(t, 24, memnet.Config{Latency: memnet.Fixed(10 * time.Millisecond)})
				for range 10 {
					tn.add(nil)
				}
				tn.bootstrapAll(20 * time.Millisecond)
				var seeds []netip.AddrPort
				for range dead {
					// Endpoints that never start: nothing answers there.
					seeds = append(seeds, tn.net.NewEndpoint().LocalAddr())
				}
				seeds = append(seeds, tn.nodes[5].Addr()) // the live one, last
				c = tn.add(func(c *Config) { c.ReadOnly = readOnly })
				before := tn.net.Stats()
				pending := 1
				c.Bootstrap(seeds, func(r *BootstrapResult, err error) {
					pending--
					if err != nil {
						t.Fatalf("bootstrap: %v", err)
					}
					res = r
				})
				tn.await(&pending, time.Minute)
				tn.clk.RunFor(5 * time.Second) // anything still out would go now
				after := tn.net.Stats()
				return res, c, (after.Closed + after.Unreachable) - (before.Closed + before.Unreachable)
			}
			alone, _, _ := join(0)
			res, c, toDead := join(5)
			t.Logf("join through the live seed alone: %v; with 5 dead seeds listed first: %v", alone.Duration, res.Duration)
			if len(res.Seeds) != 1 {
				t.Fatalf("seeds that answered: %v, want the live one", res.Seeds)
			}
			if res.Duration > alone.Duration+20*time.Millisecond {
				t.Fatalf("with dead seeds the join took %v, through the live seed alone %v: more than one round trip over", res.Duration, alone.Duration)
			}
			if toDead != 5 {
				t.Fatalf("%d datagrams went to the 5 dead seeds, want one PING each", toDead)
			}
			if got := c.Stats().Retries; got != 0 {
				t.Fatalf("%d retries: a dead seed was asked again", got)
			}
		})
	}
}

// Adversarial: a peer that answers with wildly varying delays, from instant
// to longer than any timeout, moves only its own estimate, within the
// clamps: requests to it never wait past RequestTimeout per attempt, and the
// node's requests to its 20 ms peers go on as before, none timed out or
// retried. A spoofer that copies each of the peer's answers at once, from
// its own address, feeds no estimate: its answers match no request.
func TestHostileAnswerTimingStaysWithinTheClamps(t *testing.T) {
	lat := perAddr{base: 10 * time.Millisecond, wild: map[netip.AddrPort]func(*rand.Rand) time.Duration{}}
	tn := newTestNet(t, 25, memnet.Config{Latency: lat})
	for range 20 {
		tn.add(nil)
	}
	tn.bootstrapAll(20 * time.Millisecond)
	a := tn.nodes[1]
	hostileAddr := netip.MustParseAddrPort("10.9.9.9:9999")
	spoofAddr := netip.MustParseAddrPort("10.9.9.8:9999")
	hid := id.Random(rand.New(rand.NewPCG(25, 1)))
	lat.wild[hostileAddr] = func(r *rand.Rand) time.Duration {
		switch r.IntN(3) {
		case 0:
			return 0
		case 1:
			return time.Duration(r.Int64N(int64(600 * time.Millisecond)))
		}
		return 3 * time.Second // past any timeout
	}
	spoofer := tn.listenPeer(spoofAddr, hid, nil)
	var buf []byte
	tn.listenPeer(hostileAddr, hid, func(req *wire.Message, from netip.AddrPort) *wire.Message {
		out := answer(req, from, nil)
		fake := *out
		fake.TxID, fake.Network, fake.Sender = req.TxID, req.Network, hid
		var err error
		if buf, err = fake.Append(buf[:0]); err != nil {
			t.Fatal(err)
		}
		spoofer.ep.Send([]transport.Packet{{Data: buf, Addr: from}})
		return out
	})
	hc := id.Contact{ID: hid, Addr: hostileAddr}
	unmatched := a.Stats().Unmatched
	var worst time.Duration
	for i := range 100 {
		took, _ := pingWait(tn, a, hostileAddr) // it may well time out
		worst = max(worst, took)
		a.mu.Lock()
		e, _ := a.table.RTT(hc)
		w, stall, _ := a.firstTimeouts(hc)
		a.mu.Unlock()
		if w < a.cfg.MinRequestTimeout || w > a.cfg.RequestTimeout || stall > w {
			t.Fatalf("ping %d: timeout %v, stall %v for the hostile peer (SRTT %v), outside [%v, %v]", i, w, stall, e.SRTT(), a.cfg.MinRequestTimeout, a.cfg.RequestTimeout)
		}
	}
	if limit := time.Duration(a.cfg.Attempts)*a.cfg.RequestTimeout + rpcGrain; worst > limit {
		t.Fatalf("a ping of the hostile peer took %v, more than %d attempts of RequestTimeout", worst, a.cfg.Attempts)
	}
	if got := a.Stats().Unmatched - unmatched; got < 100 {
		t.Fatalf("%d unmatched answers, want at least the spoofer's 100", got)
	}
	a.mu.Lock()
	all := a.rttAll
	a.mu.Unlock()
	if w := all.Timeout(a.cfg.MinRequestTimeout, a.cfg.RequestTimeout); w < a.cfg.MinRequestTimeout || w > a.cfg.RequestTimeout {
		t.Fatalf("node-wide timeout %v outside the clamps", w)
	}
	// The honest peers are unaffected: pings of each see no timeout and
	// no retry.
	before := a.Stats()
	for _, n := range tn.nodes {
		if n == a {
			continue
		}
		if _, err := pingWait(tn, a, n.Addr()); err != nil {
			t.Errorf("ping of an honest peer: %v", err)
		}
	}
	after := a.Stats()
	if after.Timeouts != before.Timeouts || after.Retries != before.Retries {
		t.Fatalf("after the hostile peer's answers, pings of honest peers had %d timeouts and %d retries",
			after.Timeouts-before.Timeouts, after.Retries-before.Retries)
	}
}

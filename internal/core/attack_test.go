package core

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// The review's attack on the lookup: peers answer every FIND_NODE with
// contacts ever closer to the target, at addresses that never answer. Each
// such contact stalls, frees a slot, and is replaced by closer ones, so the
// shortlist fills with requests still awaited. It used to end in
// panic("lookup: no candidate to evict") under the node's lock (K = 5,
// alpha 3: at 3.2 s) or to keep one lookup alive for 40 s and hundreds of
// messages. A lookup must end, bounded in requests and time, whatever the
// answers; this drives it with random variations of the attack.
func TestLookupsSurviveAnswersThatNeverConverge(t *testing.T) {
	configs := []struct{ k, alpha, retries int }{{5, 3, 1}, {5, 3, 6}, {8, 3, 2}, {20, 3, 6}, {20, 3, 1}, {3, 1, 0}}
	for ci, cfg := range configs {
		for seed := range uint64(8) {
			t.Run(fmt.Sprintf("K%d-alpha%d-retries%d-seed%d", cfg.k, cfg.alpha, cfg.retries, seed), func(t *testing.T) {
				runNeverConverging(t, 400+uint64(ci)*100+seed, cfg.k, cfg.alpha, cfg.retries)
			})
		}
	}
}

func runNeverConverging(t *testing.T, seed uint64, k, alpha, retries int) {
	tn := newTestNet(t, seed, memnet.Config{})
	rng := rand.New(rand.NewPCG(seed, 99))
	a := tn.add(func(c *Config) {
		c.K, c.Alpha = k, alpha
		c.Attempts = retries + 1
	})
	target := id.Random(rng)
	prefix := 8
	next := uint32(1)
	// The attackers hold a few addresses that answer, each under whatever
	// ID they last handed out for it.
	const liarAddrs = 12
	liarID := make([]id.ID, liarAddrs)
	liarAddr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 251, 0, byte(i + 1)}), 4000)
	}
	// closer returns a fresh contact sharing more leading bits with the
	// target than the last: most at loopback addresses where nothing
	// listens, some at the attackers' own.
	closer := func() id.Contact {
		x := id.Random(rng)
		p := min(prefix, id.Bits-1)
		for i := range p {
			mask := byte(0x80) >> (i % 8)
			x[i/8] = x[i/8]&^mask | target[i/8]&mask
		}
		mask := byte(0x80) >> (p % 8)
		x[p/8] = x[p/8]&^mask | ^target[p/8]&mask // bit p differs: exactly p shared
		if rng.IntN(3) > 0 {
			prefix++
		}
		if rng.IntN(4) == 0 {
			i := rng.IntN(liarAddrs)
			liarID[i] = x
			return id.Contact{ID: x, Addr: liarAddr(i)}
		}
		next++
		return id.Contact{ID: x, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 250, byte(next >> 8), byte(next)}), 4000)}
	}
	var seeds []netip.AddrPort
	for i := range liarAddrs {
		liarID[i] = id.Random(rng)
		tn.listenPeer(liarAddr(i), liarID[i], func(req *wire.Message, from netip.AddrPort) *wire.Message {
			if rng.IntN(10) == 0 {
				return nil // sometimes silent too
			}
			cs := make([]id.Contact, 1+rng.IntN(k))
			for j := range cs {
				cs[j] = closer()
			}
			out := answer(req, from, cs)
			out.Sender = liarID[i]
			return out
		})
		if i < 3 {
			seeds = append(seeds, liarAddr(i))
		}
	}
	pending := 1
	a.Bootstrap(seeds, func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, 5*time.Minute)

	sent := a.Stats().Requests
	start := tn.clk.Now()
	var res *LookupResult
	pending = 1
	a.FindNode(target, func(r *LookupResult, err error) { res = r; pending-- })
	tn.await(&pending, 2*DefaultLookupTimeout)
	took := tn.clk.Now().Sub(start)
	msgs := a.Stats().Requests - sent
	// The time limit plus one last request's outcome bounds the lookup.
	limit := DefaultLookupTimeout + time.Duration(retries+1)*DefaultRequestTimeout
	if took > limit {
		t.Errorf("the lookup took %v of virtual time, over its %v limit", took, limit)
	}
	if res != nil && res.Incomplete == "" && took >= DefaultLookupTimeout {
		t.Errorf("a lookup stopped by its time limit after %v does not say it may be incomplete", took)
	}
	if maxMsgs := uint64(maxLookupRequests(k, alpha) * (retries + 1)); msgs > maxMsgs {
		t.Errorf("the lookup sent %d requests, over the bound of %d", msgs, maxMsgs)
	}
}

// maxLookupRequests is the most requests one lookup may have sent, retries
// apart: the lookup package's default bound on queries.
func maxLookupRequests(k, alpha int) int { return lookup.DefaultQueriesPerSlot * (k + alpha) }

package core

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// requestsSent sums the requests every node of the network has sent, and
// those of them that were FIND_NODEs and PUTs: a put's own requests, the
// liveness pings that timeouts set off left out.
func (tn *testNet) requestsSent() (all, own uint64) {
	for _, n := range tn.nodes {
		n.mu.Lock()
		all += n.stats.requests
		own += n.stats.sent[reqSlot(wire.FindNode)].sent + n.stats.sent[reqSlot(wire.Put)].sent
		n.mu.Unlock()
	}
	return all, own
}

// trueClosest returns the IDs of the k nodes of the network (closed ones
// left out) closest to key, by brute force over them all.
func (tn *testNet) trueClosest(key id.ID, k int) map[id.ID]bool {
	var ids []id.ID
	for _, n := range tn.nodes {
		n.mu.Lock()
		closed := n.closed
		n.mu.Unlock()
		if !closed {
			ids = append(ids, n.ID())
		}
	}
	slices.SortFunc(ids, func(a, b id.ID) int { return id.CompareDistance(key, a, b) })
	out := map[id.ID]bool{}
	for _, x := range ids[:min(k, len(ids))] {
		out[x] = true
	}
	return out
}

// placement is what a run of puts cost and where their replicas landed.
type placement struct {
	puts     int
	requests float64 // per put, every node's requests counted
	own      float64 // per put, FIND_NODE and PUT datagrams only
	onTrue   float64 // share of the replicas that landed on the key's true K closest
	full     float64 // share of puts whose replicas are exactly the true K closest
	stored   float64 // replicas per put
}

func (p placement) String() string {
	return fmt.Sprintf("%.1f requests per put (%.1f FIND_NODE and PUT), %.1f replicas per put, %.1f%% of replicas on the true K closest, %.1f%% of puts on exactly them",
		p.requests, p.own, p.stored, 100*p.onTrue, 100*p.full)
}

// measurePuts runs puts of distinct keys, one at a time, through random
// nodes with the given PutBeta, and measures their cost and placement.
func measurePuts(t *testing.T, tn *testNet, puts, beta int, seed uint64) placement {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	k := tn.nodes[0].cfg.K
	allBefore, ownBefore := tn.requestsSent()
	var onTrue, stored, full int
	for i := range puts {
		n := tn.nodes[rng.IntN(len(tn.nodes))]
		n.mu.Lock()
		for n.closed {
			n.mu.Unlock()
			n = tn.nodes[rng.IntN(len(tn.nodes))]
			n.mu.Lock()
		}
		n.cfg.PutBeta = beta
		n.mu.Unlock()
		key := id.Key(fmt.Sprintf("placement %d %d", seed, i))
		pending := 1
		var res *PutResult
		n.Put(key, []byte("v"), time.Hour, func(r *PutResult, err error) {
			if err != nil {
				t.Errorf("put %d: %v", i, err)
			}
			res = r
			pending--
		})
		tn.await(&pending, time.Minute)
		if res == nil {
			continue
		}
		want := tn.trueClosest(key, k)
		got := 0
		for _, r := range res.Receipts {
			if r.Outcome == Accepted {
				stored++
				if want[r.Node.ID] {
					got++
				}
			}
		}
		onTrue += got
		if got == k {
			full++
		}
	}
	all, own := tn.requestsSent()
	return placement{
		puts:     puts,
		requests: float64(all-allBefore) / float64(puts),
		own:      float64(own-ownBefore) / float64(puts),
		onTrue:   float64(onTrue) / float64(stored),
		full:     float64(full) / float64(puts),
		stored:   float64(stored) / float64(puts),
	}
}

// TestPutPlacement measures the put's two lookups side by side on one
// network: the full lookup (PutBeta < 0: ask until the K closest that
// answered are known, then store on them) and the beta rule (stop once the
// 3 closest candidates answered, store on the K closest known). It checks
// that the beta rule costs fewer requests and still puts nearly every
// replica on the key's true K closest, found by brute force over every
// node. go test -run TestPutPlacement -v prints the figures; -short runs
// the 200-node network only.
//
// The "dead" half of each run closes a tenth of the nodes first, without
// telling the others: the candidates the beta rule stores on without
// having asked them may have left, and spares must take their place.
// PLACEMENT_SIZES=5000 (a comma-separated list) measures other sizes.
func TestPutPlacement(t *testing.T) {
	sizes := []int{200, 1000}
	if testing.Short() {
		sizes = sizes[:1]
	}
	if env := os.Getenv("PLACEMENT_SIZES"); env != "" {
		sizes = nil
		for _, f := range strings.Split(env, ",") {
			v, err := strconv.Atoi(f)
			if err != nil || v < 30 {
				t.Fatalf("PLACEMENT_SIZES=%q: want a comma-separated list of network sizes of at least 30", env)
			}
			sizes = append(sizes, v)
		}
	}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			tn := newTestNet(t, 1000+uint64(size), memnet.Config{})
			for range size {
				tn.add(func(c *Config) { c.RequireTokens = false }) // TestPutPlacementWithTokens measures them
			}
			tn.bootstrapAll(10 * time.Millisecond)
			tn.clk.RunFor(time.Minute) // let the joins' liveness pings settle
			const puts = 100
			old := measurePuts(t, tn, puts, -1, 1)
			beta := measurePuts(t, tn, puts, DefaultPutBeta, 2)
			t.Logf("N=%d full lookup: %v", size, old)
			t.Logf("N=%d beta=%d:      %v", size, DefaultPutBeta, beta)
			if beta.requests >= old.requests || beta.own >= old.own {
				t.Errorf("the beta rule costs %.1f requests per put, the full lookup %.1f", beta.requests, old.requests)
			}
			if old.onTrue < 0.99 {
				t.Errorf("full lookup: %.1f%% of replicas on the true K closest, want at least 99%%", 100*old.onTrue)
			}
			if beta.onTrue < 0.97 {
				t.Errorf("beta rule: %.1f%% of replicas on the true K closest, want at least 97%%", 100*beta.onTrue)
			}

			// A tenth of the nodes leave without a word.
			rng := rand.New(rand.NewPCG(uint64(size), 9))
			for _, i := range rng.Perm(len(tn.nodes) - 1)[:size/10] {
				tn.nodes[i+1].Close() // node 0, the seed, stays
			}
			old = measurePuts(t, tn, puts, -1, 3)
			beta = measurePuts(t, tn, puts, DefaultPutBeta, 4)
			t.Logf("N=%d, a tenth dead, full lookup: %v", size, old)
			t.Logf("N=%d, a tenth dead, beta=%d:      %v", size, DefaultPutBeta, beta)
			if beta.own >= old.own {
				t.Errorf("with dead nodes, the beta rule sends %.1f FIND_NODEs and PUTs per put, the full lookup %.1f", beta.own, old.own)
			}
			if beta.stored < float64(tn.nodes[0].cfg.K)-0.5 {
				t.Errorf("beta rule with dead nodes: %.1f replicas per put; spares should replace the dead", beta.stored)
			}
			if beta.onTrue < 0.95 {
				t.Errorf("beta rule with dead nodes: %.1f%% of replicas on the true K closest, want at least 95%%", 100*beta.onTrue)
			}
		})
	}
}

// Adversarial: the beta rule stores on candidates nobody asked, so a
// hostile node among the closest could answer with contacts at a victim's
// addresses. Each such address gets one PUT (the first part, sent once)
// until it answers, not a window of parts and their retries (16 datagrams
// of up to 1,200 bytes for this 10 KiB value), besides the one FIND_NODE
// the lookup may have sent it, as a full lookup would.
func TestBetaPutSendsOneDatagramToAddressesThatNeverAnswered(t *testing.T) {
	tn := newTestNet(t, 71, memnet.Config{})
	putter := tn.add(nil)
	key := id.Key("aimed")
	rng := rand.New(rand.NewPCG(71, 1))
	// Three hostile nodes at the key, closer than anything they name.
	var hostile []id.Contact
	for i := range 3 {
		c := id.Contact{ID: key, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 66, 0, byte(i + 1)}), 4000)}
		c.ID[id.Len-1] ^= byte(i + 1)
		hostile = append(hostile, c)
	}
	// Forty victims: addresses where something counts what arrives.
	var victims []id.Contact
	got, puts := map[netip.AddrPort]int{}, map[netip.AddrPort]int{}
	for i := range 40 {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 77, 0, byte(i + 1)}), 4000)
		tn.watch(a, func(m *wire.Message, ok bool) {
			if ok && m.Type == wire.Put {
				puts[a]++
			}
			got[a]++
		})
		c := id.Contact{ID: key, Addr: a}
		c.ID[10] ^= byte(rng.IntN(255) + 1) // farther than the hostile nodes, closer than anyone honest
		victims = append(victims, c)
	}
	for i, h := range hostile {
		hostilePeer(t, tn, h.Addr, h.ID, func(m *wire.Message, from netip.AddrPort) *wire.Message {
			switch m.Type {
			case wire.FindNode:
				return &wire.Message{Type: wire.Nodes, Contacts: victims[i*13 : i*13+13]}
			case wire.Put:
				return &wire.Message{Type: wire.PutOK, Status: wire.StatusPart}
			case wire.Ping:
				return &wire.Message{Type: wire.Pong, Observed: from}
			}
			return nil
		})
	}
	putter.run(func(now time.Time, w transport.Writer) {
		for _, h := range hostile {
			putter.table.Verified(h, now)
		}
	})
	_, _ = putRec(t, tn, putter, PutRequest{Key: key, Value: make([]byte, 10<<10), TTL: time.Hour})
	sent, reached := 0, 0
	for _, v := range victims {
		if n := got[v.Addr]; n > 0 {
			reached++
			sent += n
			if n > 2 || puts[v.Addr] > 1 {
				t.Errorf("victim %v got %d datagrams, %d of them PUTs; want at most the lookup's FIND_NODE and one PUT", v.Addr, n, puts[v.Addr])
			}
		}
	}
	if reached == 0 {
		t.Fatal("no victim was named in a put: the test proves nothing")
	}
	t.Logf("%d victims got %d datagrams in all", reached, sent)
}

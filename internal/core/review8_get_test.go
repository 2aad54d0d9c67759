package core

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// hostilePeer starts a scripted endpoint at addr whose handler builds each
// answer with script (nil: silence); answers that do not encode (too many
// records for a datagram) are cut down until they do.
func hostilePeer(t *testing.T, tn *testNet, addr netip.AddrPort, pid id.ID, script func(m *wire.Message, from netip.AddrPort) *wire.Message) {
	t.Helper()
	ep, err := tn.net.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ep.Close() })
	var m wire.Message
	buf := make([]byte, 0, wire.MaxPacket)
	err = ep.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
		if wire.Decode(data, &m) != nil || !m.Type.IsRequest() {
			return
		}
		out := script(&m, from)
		if out == nil {
			return
		}
		out.TxID, out.Network = m.TxID, m.Network
		if out.Sender.IsZero() {
			out.Sender = pid
		}
		for {
			b, err := out.Append(buf[:0])
			if err == nil {
				w.WriteTo(b, from)
				return
			}
			if len(out.Records) == 0 {
				return
			}
			out.Records = out.Records[:len(out.Records)-1]
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
}

// Hostile holders answering GET and FETCH at random — silence, contacts,
// up to 64 records of few publishers with colliding versions, tombstones,
// fetch-only records of any size up to the wire's 1 MiB, more = 1, wrong
// senders; PARTs of the right shape or with another offset, size or
// length, errors, duplicates — against gets, some canceled: no panic,
// every callback once, every get over within its lookup's time limit plus
// the fetch phase's bound on the virtual clock, results that keep the
// node's limits and order, and nothing left in flight afterwards.
func TestHostileHoldersCannotBreakAGet(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runHostileGets(t, 8100+seed) })
	}
}

func runHostileGets(t *testing.T, seed uint64) {
	tn := newTestNet(t, seed, memnet.Config{})
	rng := rand.New(rand.NewPCG(seed, 81))
	a := tn.add(func(c *Config) {
		c.K, c.Alpha = 5, 3
		c.Attempts = 1 + rng.IntN(2)
		c.GetQuorum = 1 + rng.IntN(5)
		c.MaxInFlight = []int{8, 64, 4096}[rng.IntN(3)]
		c.RefreshInterval = 1000 * time.Hour
	})
	cfg := a.Config()
	const npeers = 8
	addrs := make([]netip.AddrPort, npeers)
	ids := make([]id.ID, npeers)
	for i := range npeers {
		addrs[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 81, 0, byte(i + 1)}), 4000)
		ids[i] = id.Random(rng)
	}
	pubs := []id.ID{{1}, {2}, {3}, {4}, {5}, {6}}
	sizes := []uint32{1, 100, 1200, 1201, 2400, 5000, 64 << 10, 64<<10 + 1, 1 << 20}
	// sizeOf is what a holder claims for a (publisher, version), most of
	// the time the same across holders and answers.
	claimed := map[recordKey]uint32{}
	sizeOf := func(p id.ID, v uint64) uint32 {
		k := recordKey{publisher: p, version: v}
		if s, ok := claimed[k]; ok && rng.IntN(8) != 0 {
			return s
		}
		s := sizes[rng.IntN(len(sizes))]
		claimed[k] = s
		return s
	}
	fetches := 0
	var longest time.Duration
	for i := range npeers {
		hostilePeer(t, tn, addrs[i], ids[i], func(m *wire.Message, from netip.AddrPort) *wire.Message {
			if rng.IntN(10) == 0 {
				return nil
			}
			out := &wire.Message{}
			if rng.IntN(20) == 0 {
				out.Sender = id.Random(rng)
			}
			switch m.Type {
			case wire.Ping:
				out.Type, out.Observed = wire.Pong, from
			case wire.FindNode:
				out.Type = wire.Nodes
				for range rng.IntN(6) {
					j := rng.IntN(npeers)
					out.Contacts = append(out.Contacts, id.Contact{ID: ids[j], Addr: addrs[j]})
				}
			case wire.Get:
				out.Type = wire.Records
				if rng.IntN(3) == 0 {
					for range rng.IntN(6) {
						j := rng.IntN(npeers)
						out.Contacts = append(out.Contacts, id.Contact{ID: ids[j], Addr: addrs[j]})
					}
					break
				}
				for range 1 + rng.IntN(wire.MaxRecords) {
					p := pubs[rng.IntN(len(pubs))]
					if rng.IntN(4) == 0 {
						p = id.Random(rng)
					}
					r := wire.Record{Publisher: p, Version: uint64(rng.IntN(5)), TTL: rng.Uint32()}
					if rng.IntN(30) == 0 {
						r.Version = ^uint64(0)
					}
					switch rng.IntN(4) {
					case 0:
						r.Deleted = true
					case 1:
						r.Size = sizeOf(p, r.Version)
						if r.Size <= wire.MaxPart && rng.IntN(2) == 0 {
							r.Data = bytes.Repeat([]byte{byte(rng.IntN(256))}, int(r.Size))
						}
					default:
						r.Size = uint32(1 + rng.IntN(wire.MaxPart))
						r.Data = bytes.Repeat([]byte{byte(rng.IntN(256))}, int(r.Size))
					}
					out.Records = append(out.Records, r)
				}
				out.More = rng.IntN(3) == 0
			case wire.Fetch:
				fetches++
				size := sizeOf(m.Publisher, m.Version)
				switch rng.IntN(8) {
				case 0:
					out.Type, out.Code, out.Text = wire.Error, wire.CodeNotFound, []byte("no")
					return out
				case 1:
					size = sizes[rng.IntN(len(sizes))] // another size
				}
				out.Type, out.Size, out.Offset = wire.Part, size, m.Offset
				if rng.IntN(10) == 0 {
					out.Offset += wire.MaxPart // another part
				}
				if out.Offset >= size {
					out.Offset, out.Size = 0, max(size, 1)
				}
				n := min(int(out.Size-out.Offset), wire.MaxPart)
				if rng.IntN(10) == 0 {
					n = rng.IntN(n + 1) // another length
				}
				out.Value = make([]byte, n)
			default:
				out.Type = wire.Error
				out.Code = wire.CodeGeneric
			}
			return out
		})
	}
	pending := 1
	a.Bootstrap(addrs[:3], func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, 5*time.Minute)

	// The longest a get may take: its lookup's limit, then per record
	// maxSources holders, each failing at worst after a window of parts
	// answered one round trip apart and a last one that times out after
	// every attempt.
	parts := (cfg.MaxValueSize + wire.MaxPart - 1) / wire.MaxPart
	fetchBound := maxSources * (time.Duration(cfg.Attempts)*cfg.RequestTimeout + time.Duration((parts+putWindow-1)/putWindow)*time.Second)
	limit := cfg.LookupTimeout + fetchBound
	const gets = 20
	calls := make([]int, gets)
	var cancels []func()
	pending = gets
	for i := range gets {
		started := tn.clk.Now()
		c := a.Get(id.Random(rng), func(r *LookupResult, err error) {
			calls[i]++
			if calls[i] == 1 {
				pending--
			}
			took := tn.clk.Now().Sub(started)
			longest = max(longest, took)
			if took > limit {
				t.Errorf("get %d took %v of virtual time, over its bound of %v", i, took, limit)
			}
			if r == nil {
				return
			}
			seen := map[id.ID]bool{}
			for j, rec := range r.Records {
				if len(rec.Data) == 0 || len(rec.Data) > cfg.MaxValueSize {
					t.Errorf("get %d: a value of %d bytes (limit %d)", i, len(rec.Data), cfg.MaxValueSize)
				}
				if seen[rec.Publisher] {
					t.Errorf("get %d: publisher %v twice", i, rec.Publisher)
				}
				seen[rec.Publisher] = true
				if prev := r.Records[max(j-1, 0)]; j > 0 && (rec.Version > prev.Version || (rec.Version == prev.Version && bytes.Compare(rec.Publisher[:], prev.Publisher[:]) < 0)) {
					t.Errorf("get %d: records not newest first", i)
				}
			}
		})
		cancels = append(cancels, c)
		if rng.IntN(3) == 0 {
			tn.clk.RunFor(time.Duration(rng.IntN(3000)) * time.Millisecond)
		}
		if rng.IntN(5) == 0 {
			cancels[rng.IntN(len(cancels))]()
		}
	}
	tn.await(&pending, 2*limit)
	tn.clk.RunFor(time.Minute)
	for i, n := range calls {
		if n != 1 {
			t.Errorf("get %d called back %d times", i, n)
		}
	}
	a.mu.Lock()
	inFlight, queued := a.rpc.Len(), len(a.queue)-a.queueHead
	a.mu.Unlock()
	if inFlight != 0 || queued != 0 {
		t.Errorf("every get has ended, yet %d requests are in flight and %d queued", inFlight, queued)
	}
	t.Logf("%d FETCHes to the hostile holders; the longest get took %v (bound %v)", fetches, longest, limit)
}

// The merge of holders' answers picks, for each publisher, the record the
// ordering rule picks, whatever order the answers arrive in: a stale copy
// never rolls a value back, a value never resurrects its withdrawal, and
// which holder answers first changes nothing but, for two copies of one
// version with different bytes, which bytes win.
func TestMergeWinnerDoesNotDependOnArrivalOrder(t *testing.T) {
	n := &Node{cfg: Config{MaxValueSize: 1 << 16}}
	rng := rand.New(rand.NewPCG(82, 82))
	for round := range 2000 {
		var rs []wire.Record
		for range 1 + rng.IntN(12) {
			r := wire.Record{Publisher: id.ID{byte(rng.IntN(3))}, Version: uint64(rng.IntN(4)), TTL: uint32(rng.IntN(100))}
			if rng.IntN(3) == 0 {
				r.Deleted = true
			} else {
				r.Size = uint32(1 + rng.IntN(3))
				r.Data = bytes.Repeat([]byte{'x'}, int(r.Size))
			}
			rs = append(rs, r)
		}
		// What the rule picks: the highest version; at that version a
		// tombstone if any.
		want := map[id.ID]seenVersion{}
		for _, r := range rs {
			w, ok := want[r.Publisher]
			if !ok || r.Version > w.version || (r.Version == w.version && r.Deleted) {
				want[r.Publisher] = seenVersion{r.Version, r.Deleted || (ok && r.Version == w.version && w.deleted), false}
			}
		}
		for range 4 {
			perm := rng.Perm(len(rs))
			o := &lookupOp{}
			for i := 0; i < len(perm); {
				k := 1 + rng.IntN(len(perm)-i) // one holder's answer
				var ans []wire.Record
				for _, j := range perm[i : i+k] {
					ans = append(ans, rs[j])
				}
				o.mergeRecords(n, ans, netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), id.Contact{Addr: netip.MustParseAddrPort("10.0.0.1:1")})
				i += k
			}
			if len(o.recs) != len(want) {
				t.Fatalf("round %d: %d publishers merged, want %d", round, len(o.recs), len(want))
			}
			for _, m := range o.recs {
				w := want[m.pub]
				if m.version != w.version || m.deleted != w.deleted {
					t.Fatalf("round %d: publisher %v merged to version %d deleted %v; the rule picks %d deleted %v (records %+v)",
						round, m.pub, m.version, m.deleted, w.version, w.deleted, rs)
				}
				if !m.deleted && m.data != nil && len(m.data) != int(m.size) {
					t.Fatalf("round %d: merged %d bytes for a record of size %d", round, len(m.data), m.size)
				}
			}
		}
	}
}

// A canceled get sends nothing more, its fetches included: the FETCH
// requests in flight are forgotten (no retry), and the answers still
// arriving start no further parts.
func TestCanceledGetSendsNoMoreFetches(t *testing.T) {
	tn := newTestNet(t, 83, memnet.Config{Latency: memnet.Fixed(10 * time.Millisecond)})
	a := tn.add(func(c *Config) { c.K, c.GetQuorum = 4, 1; c.RefreshInterval = 1000 * time.Hour })
	key := id.Key("big")
	fetches := 0
	holder := tn.listenPeer(netip.MustParseAddrPort("127.83.0.1:4000"), id.Key("holder"), func(req *wire.Message, from netip.AddrPort) *wire.Message {
		switch req.Type {
		case wire.Get:
			return &wire.Message{Type: wire.Records, Records: []wire.Record{{Publisher: id.ID{9}, Version: 1, TTL: 60, Size: 64 << 10}}}
		case wire.Fetch:
			fetches++
			if fetches%2 == 0 {
				return nil // half the parts need their retry
			}
			n := min(64<<10-int(req.Offset), wire.MaxPart)
			return &wire.Message{Type: wire.Part, Size: 64 << 10, Offset: req.Offset, Value: make([]byte, n)}
		}
		return answer(req, from, nil)
	})
	pending := 1
	a.Bootstrap([]netip.AddrPort{holder.ep.LocalAddr()}, func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	var got error
	pending = 1
	cancel := a.Get(key, func(_ *LookupResult, err error) { got = err; pending-- })
	tn.clk.RunWhile(func() bool { return fetches < 12 }, tn.clk.Now().Add(time.Minute))
	if fetches < 12 {
		t.Fatalf("only %d FETCHes: the get does not reach its fetch phase", fetches)
	}
	cancel()
	tn.await(&pending, time.Second)
	at := fetches
	tn.clk.RunFor(time.Minute)
	if fetches != at {
		t.Errorf("%d FETCHes arrived after the get was canceled (%v)", fetches-at, got)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.rpc.Len() != 0 {
		t.Errorf("%d requests still in flight after the cancel", a.rpc.Len())
	}
}

// A holder claiming many publishers' fetch-only records, each the wire's
// largest (1 MiB), and never serving a part, costs a get at most the get's
// fetch budget in buffers: records over the node's value limit are
// ignored, and the rest stop at maxFetchBytes in all.
func TestClaimedRecordSizesCostAGetAtMostItsFetchBudget(t *testing.T) {
	tn := newTestNet(t, 84, memnet.Config{Latency: memnet.Fixed(10 * time.Millisecond)})
	a := tn.add(func(c *Config) { c.K, c.GetQuorum = 4, 1; c.RefreshInterval = 1000 * time.Hour })
	for _, size := range []uint32{wire.MaxRecordSize, uint32(a.Config().MaxValueSize)} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			holder := tn.listenPeer(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 84, 0, byte(size >> 16)}), 4000), id.Key(fmt.Sprint("claims", size)), func(req *wire.Message, from netip.AddrPort) *wire.Message {
				if req.Type != wire.Get {
					if req.Type == wire.Fetch {
						return nil
					}
					return answer(req, from, nil)
				}
				// 32 records an answer, continued 8 times: 288 publishers.
				start := uint64(1 << 32)
				if req.Cursor {
					start = req.AfterVersion
				}
				var rs []wire.Record
				for i := range uint64(32) {
					rs = append(rs, wire.Record{Publisher: id.ID{byte(i)}, Version: start - 1 - i, TTL: 60, Size: size})
				}
				return &wire.Message{Type: wire.Records, Records: rs, More: true}
			})
			pending := 1
			a.Bootstrap([]netip.AddrPort{holder.ep.LocalAddr()}, func(*BootstrapResult, error) { pending-- })
			tn.await(&pending, time.Minute)
			var ms0, ms1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&ms0)
			var res *LookupResult
			pending = 1
			a.Get(id.Key("claimed"), func(r *LookupResult, _ error) { res = r; pending-- })
			tn.await(&pending, 5*time.Minute)
			runtime.ReadMemStats(&ms1)
			alloc := ms1.TotalAlloc - ms0.TotalAlloc
			t.Logf("allocated %d KiB; incomplete %q", alloc>>10, res.Incomplete)
			if alloc > 2*maxFetchBytes+2<<20 { // slack for the race detector and the simulation
				t.Errorf("one get allocated %d KiB against a holder claiming large records; its fetch budget is %d KiB (bound with slack: twice that)", alloc>>10, maxFetchBytes>>10)
			}
			if res == nil || res.Incomplete == "" {
				t.Errorf("the get does not say it is incomplete")
			}
			holder.ep.Close()
		})
	}
}

// The slowest holders a get can meet: four hosts claim one 64 KiB record;
// the first answers each FETCH only on its retry and never the last part,
// the others never answer. The get still ends within its lookup's limit
// plus the fetch phase's bound, and says the value is incomplete.
func TestSlowestHoldersEndAGetWithinItsBound(t *testing.T) {
	tn := newTestNet(t, 85, memnet.Config{Latency: memnet.Fixed(10 * time.Millisecond)})
	a := tn.add(func(c *Config) { c.K, c.GetQuorum = 4, 4; c.RefreshInterval = 1000 * time.Hour })
	cfg := a.Config()
	const size = 64 << 10
	var addrs []netip.AddrPort
	var ids []id.ID
	for i := range 4 {
		addrs = append(addrs, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 85, 0, byte(i + 1)}), 4000))
		ids = append(ids, id.Key(fmt.Sprint("slow", i)))
	}
	seen := map[uint64]bool{}
	for i := range addrs {
		tn.listenPeer(addrs[i], ids[i], func(req *wire.Message, from netip.AddrPort) *wire.Message {
			switch req.Type {
			case wire.FindNode, wire.Get:
				var cs []id.Contact
				for j := range addrs {
					cs = append(cs, id.Contact{ID: ids[j], Addr: addrs[j]})
				}
				if req.Type == wire.FindNode {
					return &wire.Message{Type: wire.Nodes, Contacts: cs}
				}
				return &wire.Message{Type: wire.Records, Records: []wire.Record{{Publisher: id.ID{7}, Version: 3, TTL: 60, Size: size}}}
			case wire.Fetch:
				if i != 0 || int(req.Offset)+wire.MaxPart >= size {
					return nil
				}
				if !seen[req.TxID] {
					seen[req.TxID] = true
					return nil // the first attempt goes unanswered
				}
				return &wire.Message{Type: wire.Part, Size: size, Offset: req.Offset, Value: make([]byte, wire.MaxPart)}
			}
			return answer(req, from, nil)
		})
	}
	pending := 1
	a.Bootstrap(addrs, func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	parts := (size + wire.MaxPart - 1) / wire.MaxPart
	bound := cfg.LookupTimeout + maxSources*time.Duration(cfg.Attempts)*cfg.RequestTimeout*time.Duration(1+(parts+putWindow-1)/putWindow)
	started := tn.clk.Now()
	var res *LookupResult
	pending = 1
	a.Get(id.Key("slow"), func(r *LookupResult, _ error) { res = r; pending-- })
	tn.await(&pending, 2*bound)
	took := tn.clk.Now().Sub(started)
	t.Logf("the get took %v of virtual time (bound %v); incomplete %q", took, bound, res.Incomplete)
	if took > bound {
		t.Errorf("the get took %v, over its bound of %v", took, bound)
	}
	if len(res.Values) != 0 || res.Incomplete == "" {
		t.Errorf("got %d values, incomplete %q: want none, and the get saying why", len(res.Values), res.Incomplete)
	}
}

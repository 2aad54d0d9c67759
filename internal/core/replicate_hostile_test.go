package core

import (
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

// holdRecords stores n records under fresh keys in nd's store.
func holdRecords(t *testing.T, nd *Node, n, size int, now time.Time) []id.ID {
	t.Helper()
	var keys []id.ID
	for i := range n {
		key := id.Key(fmt.Sprint("held ", nd.ID().Short(), " ", i))
		keys = append(keys, key)
		if err := nd.Store().Put(key, store.Value{Publisher: key, Version: 1, Expires: now.Add(6 * time.Hour), Data: make([]byte, size)}, netip.Addr{}, now); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

// OFFERs from a hostile peer — endless ones, of digests that exist nowhere,
// of digests the node holds, over the digest bound, too heavy to judge,
// and with a forged source — each draw one WANT within the amplification
// limit and nothing else: no value is sent to an offerer, and the node's
// "received" marks grow only with records it holds.
func TestHostileOffersDrawOneBoundedWantEach(t *testing.T) {
	tn := newTestNet(t, 21, memnet.Config{})
	srv := tn.add(func(c *Config) {
		c.StoreLimits = store.Limits{MaxPerKey: 64, MaxPerPublisher: 10_000}
	})
	now := tn.clk.Now()
	held := holdRecords(t, srv, 20, 10, now)
	heavy := id.Key("heavy")
	for i := range 60 {
		if err := srv.Store().Put(heavy, store.Value{Publisher: id.Key(fmt.Sprint("p", i)), Version: 1, Expires: now.Add(time.Hour), Data: []byte("v")}, netip.Addr{}, now); err != nil {
			t.Fatal(err)
		}
	}
	got := map[wire.Type]int{}
	var wants [][]uint8
	var sizes []int
	hostile := tn.listenPeer(netip.MustParseAddrPort("127.60.0.1:4000"), id.Key("hostile"), nil)
	hostile.script = func(req *wire.Message, from netip.AddrPort) *wire.Message {
		got[req.Type]++
		sizes = append(sizes, hostile.sizes[len(hostile.sizes)-1])
		if req.Type == wire.Want {
			wants = append(wants, append([]uint8(nil), req.Wants...))
		}
		return answer(req, from, nil)
	}
	rng := rand.New(rand.NewPCG(21, 1))
	send := func(ds []wire.Digest) int {
		m := wire.Message{Type: wire.Offer, TxID: rng.Uint64(), Offers: ds}
		b, err := m.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		before := len(wants)
		sendRaw(t, hostile, srv.Addr(), m)
		tn.clk.RunFor(200 * time.Millisecond)
		if len(wants) != before+1 {
			t.Fatalf("an OFFER of %d digests drew %d WANTs, want 1", len(ds), len(wants)-before)
		}
		if s := sizes[len(sizes)-1]; s > wire.AmplificationFactor*len(b) {
			t.Fatalf("a %d-byte OFFER drew a %d-byte WANT", len(b), s)
		}
		return len(wants[len(wants)-1])
	}
	// Endless offers of digests that exist nowhere: all wanted, nothing marked.
	for range 300 {
		ds := make([]wire.Digest, 1+rng.IntN(wire.MaxOffer))
		for i := range ds {
			ds[i] = wire.Digest{Key: id.Random(rng), Hash: rng.Uint64()}
		}
		if n := send(ds); n != len(ds) {
			t.Fatalf("an OFFER of %d unknown digests drew a WANT of %d", len(ds), n)
		}
	}
	if len(srv.repl.marks) != 0 {
		t.Fatalf("offers of records nobody holds left %d marks", len(srv.repl.marks))
	}
	// Digests of held records: none wanted, and the marks stay within
	// the records held however often they are offered.
	var mine []wire.Digest
	for _, k := range held {
		mine = append(mine, wire.Digest{Key: k, Hash: wire.RecordDigest(k, k, 1, false)})
	}
	for range 50 {
		if n := send(mine); n != 0 {
			t.Fatalf("an OFFER of held records drew a WANT of %d", n)
		}
	}
	if len(srv.repl.marks) != len(held) {
		t.Fatalf("%d marks for %d held records", len(srv.repl.marks), len(held))
	}
	// Too heavy to judge: 48 digests under a key of 60 records cost at most
	// replOfferWork hashes; the digests past the bound are not asked for.
	ds := make([]wire.Digest, wire.MaxOffer)
	for i := range ds {
		ds[i] = wire.Digest{Key: heavy, Hash: rng.Uint64()}
	}
	if n := send(ds); n > replOfferWork/60+1 {
		t.Fatalf("a heavy OFFER was judged for %d digests, bound %d", n, replOfferWork/60+1)
	}
	// Over the digest bound: malformed, dropped, counted.
	full := wire.Message{Type: wire.Offer, TxID: 1, Sender: hostile.id, Offers: make([]wire.Digest, wire.MaxOffer)}
	b, _ := full.Append(nil)
	b[wire.HeaderLen] = wire.MaxOffer + 1
	b = append(b, make([]byte, wire.DigestLen)...)
	before, bad := len(wants), srv.Stats().Malformed
	if err := hostile.ep.Send([]transport.Packet{{Addr: srv.Addr(), Data: b}}); err != nil {
		t.Fatal(err)
	}
	tn.clk.RunFor(time.Second)
	if len(wants) != before || srv.Stats().Malformed != bad+1 {
		t.Fatalf("an OFFER of %d digests drew %d WANTs and %d malformed counts", wire.MaxOffer+1, len(wants)-before, srv.Stats().Malformed-bad)
	}
	if got[wire.Put]+got[wire.Delete] != 0 {
		t.Fatalf("offers made the node send %v to the offerer", got)
	}
	// A forged source: the victim gets the one WANT, nothing more.
	victim := tn.listenPeer(netip.MustParseAddrPort("127.61.0.1:4000"), id.Key("victim"), nil)
	forged := wire.Message{Type: wire.Offer, TxID: 5, Sender: id.Key("liar"), Offers: ds[:1]}
	fb, _ := forged.Append(nil)
	srv.HandlePacket(fb, victim.ep.LocalAddr(), sendVia{victim.ep})
	tn.clk.RunFor(time.Minute)
	total := 0
	for _, s := range victim.sizes {
		total += s
	}
	if total > wire.AmplificationFactor*len(fb) {
		t.Fatalf("a forged %d-byte OFFER drew %d bytes to its victim", len(fb), total)
	}
}

// A destination that answers OFFERs badly cannot make the node misbehave:
// a WANT naming digests the OFFER did not have is dropped whole; a WANT
// repeated, or forged from another address with the right transaction ID,
// draws each record once and nothing to the forger; a destination that
// never answers gets one OFFER (and its retry) and nothing more.
func TestHostileWantsDrawNothingOrEachRecordOnce(t *testing.T) {
	for _, mode := range []string{"out of range", "repeated and forged", "silent"} {
		t.Run(mode, func(t *testing.T) {
			tn := newTestNet(t, 22, memnet.Config{})
			srv := tn.add(func(c *Config) { c.K = 3 })
			now := tn.clk.Now()
			nrec := 10
			if mode == "silent" {
				nrec = 150 // four OFFERs' worth
			}
			holdRecords(t, srv, nrec, 10, now)
			got := map[wire.Type]int{}
			forgerGot := 0
			forger := tn.listenPeer(netip.MustParseAddrPort("127.62.0.2:4000"), id.Key("forger"), func(req *wire.Message, _ netip.AddrPort) *wire.Message {
				forgerGot++
				return nil
			})
			var dst *peer
			dst = tn.listenPeer(netip.MustParseAddrPort("127.62.0.1:4000"), id.Key("destination"), func(req *wire.Message, from netip.AddrPort) *wire.Message {
				got[req.Type]++
				if req.Type != wire.Offer {
					return answer(req, from, nil)
				}
				switch mode {
				case "silent":
					return nil
				case "out of range":
					return &wire.Message{Type: wire.Want, Wants: []uint8{uint8(len(req.Offers))}}
				}
				all := &wire.Message{Type: wire.Want, Network: req.Network, TxID: req.TxID, Sender: dst.id}
				for i := range req.Offers {
					all.Wants = append(all.Wants, uint8(i))
				}
				b, _ := all.Append(nil)
				_ = dst.ep.Send([]transport.Packet{{Addr: from, Data: b}})
				_ = forger.ep.Send([]transport.Packet{{Addr: from, Data: b}})
				return all
			})
			sendRaw(t, dst, srv.Addr(), wire.Message{Type: wire.Ping, TxID: 1})
			tn.clk.RunFor(time.Minute) // the hand-over to the newcomer comes and goes
			clear(got)
			forgerGot = 0
			triggerPass(srv)
			tn.clk.RunFor(time.Minute)
			st := srv.ReplicationStats()
			switch mode {
			case "out of range":
				if st.BadWants == 0 || got[wire.Put] != 0 {
					t.Fatalf("%d bad WANTs counted, %d PUTs sent: want the WANT dropped", st.BadWants, got[wire.Put])
				}
			case "repeated and forged":
				if got[wire.Put] != nrec || forgerGot != 0 {
					t.Fatalf("%d PUTs to the destination (want %d), %d datagrams to the forger (want 0)", got[wire.Put], nrec, forgerGot)
				}
			case "silent":
				if got[wire.Offer] > srv.Config().Attempts || got[wire.Put] != 0 {
					t.Fatalf("a silent destination got %d OFFERs (bound %d) and %d PUTs", got[wire.Offer], srv.Config().Attempts, got[wire.Put])
				}
			}
			if st.Passes != 1 || st.EventPasses == 0 {
				t.Fatalf("the pass did not end: %+v", st)
			}
		})
	}
}

// A destination that answers at random — any response type, WANTs of any
// indices, ERRORs, silence, duplicates, PUT_OKs that ask for parts that do
// not exist — cannot stall a pass, make it panic or make it send a record
// more than once per OFFER that named it.
func TestRandomAnswersNeverStallOrInflateAPass(t *testing.T) {
	tn := newTestNet(t, 23, memnet.Config{})
	srv := tn.add(func(c *Config) { c.K = 3 })
	now := tn.clk.Now()
	const nrec = 120
	keys := holdRecords(t, srv, nrec, 10, now)
	big := id.Key("big")
	if err := srv.Store().Put(big, store.Value{Publisher: big, Version: 1, Expires: now.Add(6 * time.Hour), Data: make([]byte, 3*wire.MaxPart+7)}, netip.Addr{}, now); err != nil {
		t.Fatal(err)
	}
	_ = srv.Store().Put(keys[0], store.Value{Publisher: id.Key("gone"), Version: 9, Expires: now.Add(6 * time.Hour), Deleted: true}, netip.Addr{}, now)
	rng := rand.New(rand.NewPCG(23, 1))
	puts, offers := 0, 0
	var dst *peer
	dst = tn.listenPeer(netip.MustParseAddrPort("127.63.0.1:4000"), id.Key("random"), func(req *wire.Message, from netip.AddrPort) *wire.Message {
		switch req.Type {
		case wire.Put, wire.Delete:
			puts++
		case wire.Offer:
			offers++
		}
		if req.Type == wire.FindNode || req.Type == wire.Ping {
			return answer(req, from, nil)
		}
		var out *wire.Message
		switch rng.IntN(6) {
		case 0:
			return nil // silence
		case 1:
			out = &wire.Message{Type: wire.Error, Code: wire.CodeBusy, Text: []byte("no")}
		case 2:
			out = &wire.Message{Type: wire.PutOK, Status: uint8(rng.IntN(2)), TTL: 60}
		case 3:
			out = &wire.Message{Type: wire.Deleted, TTL: 60}
		default:
			out = &wire.Message{Type: wire.Want}
			for i := range wire.MaxOffer {
				if rng.IntN(3) == 0 {
					out.Wants = append(out.Wants, uint8(i))
				}
			}
		}
		if rng.IntN(4) == 0 { // and a duplicate of it
			dup := *out
			dup.Network, dup.TxID, dup.Sender = req.Network, req.TxID, dst.id
			if b, err := dup.Append(nil); err == nil {
				_ = dst.ep.Send([]transport.Packet{{Addr: from, Data: b}})
			}
		}
		return out
	})
	sendRaw(t, dst, srv.Addr(), wire.Message{Type: wire.Ping, TxID: 1})
	tn.clk.RunFor(time.Minute)
	const passes = 30
	for range passes {
		srv.mu.Lock()
		srv.repl.marks = nil
		srv.mu.Unlock()
		triggerPass(srv)
		tn.clk.RunFor(2 * time.Minute)
	}
	st := srv.ReplicationStats()
	if st.Passes != passes {
		t.Fatalf("%d of %d passes ended: one stalled", st.Passes, passes)
	}
	srv.mu.Lock()
	running := srv.repl.pass != nil
	srv.mu.Unlock()
	if running {
		t.Fatal("a pass is still running after every answer came or timed out")
	}
	// Each OFFER names at most MaxOffer records; a record goes once per
	// OFFER that named it, its parts aside.
	if bound := offers * wire.MaxOffer * 4; puts > bound {
		t.Fatalf("%d PUTs and DELETEs for %d OFFERs, bound %d", puts, offers, bound)
	}
	if int(st.Transfers) > offers*wire.MaxOffer {
		t.Fatalf("%d records sent for %d OFFERs", st.Transfers, offers)
	}
	t.Logf("%d passes: %d OFFERs, %d PUTs/DELETEs, %+v", passes, offers, puts, st)
}

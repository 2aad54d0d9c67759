package core

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/ident"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// Node identity through the node (ident.go): what a node that requires
// identity lets into its routing table and counts as an answer, whoever
// sends what. Liars are scripted peers that speak the wire directly.

// requireIdentity is the config of a node of an identity network.
func requireIdentity(d int) func(*Config) {
	return func(c *Config) { c.RequireIdentity, c.Difficulty = true, d }
}

// prove makes out, the answer to req, carry priv's proof, as an honest
// keyed node's answer does.
func prove(priv ed25519.PrivateKey, req, out *wire.Message) *wire.Message {
	out.Sender = ident.ID(priv)
	var p [wire.ProofLen]byte
	ident.Prove(&p, priv, req.Network, req.TxID, out.Sender, uint8(out.Type))
	out.Flags |= wire.FlagProof
	out.Proof = p[:]
	return out
}

// pingAddr pings addr from n and runs the network until the answer.
func pingAddr(t *testing.T, tn *testNet, n *Node, addr netip.AddrPort) (id.Contact, error) {
	t.Helper()
	pending := 1
	var got id.Contact
	var gotErr error
	n.Ping(addr, func(c id.Contact, err error) { got, gotErr = c, err; pending-- })
	tn.await(&pending, time.Minute)
	return got, gotErr
}

// inTable reports whether n's routing table holds x.
func inTable(n *Node, x id.ID) bool {
	_, ok := n.table.Get(x)
	return ok
}

// sendAs has peer p send request m to addr, as a node at p's address,
// padded as a FIND_NODE is: a request's answer budget must hold the proof
// request it sets off, as it must any ping before insertion.
func sendAs(t *testing.T, p *peer, to netip.AddrPort, m wire.Message) {
	t.Helper()
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	b = wire.Pad(b, 0, wire.MinFindNodeLen)
	if err := p.ep.Send([]transport.Packet{{Data: b, Addr: to}}); err != nil {
		t.Fatal(err)
	}
}

func TestIdentityConfig(t *testing.T) {
	tn := newTestNet(t, 1, memnet.Config{})
	priv, _, _ := ident.Generate(randSeedErr(1), 0)
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"explicit ID without a key", func(c *Config) { c.RequireIdentity, c.ID = true, id.Key("free") }, "explicit ID"},
		{"ID that is not the key's", func(c *Config) { c.Key, c.ID = priv, id.Key("free") }, "not the ID of Key"},
		{"difficulty too high", func(c *Config) { c.Difficulty = ident.MaxDifficulty + 1 }, "Difficulty"},
		{"key without the work", func(c *Config) { c.Key, c.Difficulty = priv, ident.Work(ident.ID(priv))+1 }, "bits of work"},
		{"short key", func(c *Config) { c.Key = priv[:10] }, "ed25519"},
	}
	for _, tc := range cases {
		cfg := Config{Transport: tn.net.NewEndpoint(), Clock: tn.clk}
		tc.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one naming %q", tc.name, err, tc.want)
		}
	}
	// A key sets the ID; RequireIdentity alone generates one with the work.
	cfg := Config{Transport: tn.net.NewEndpoint(), Clock: tn.clk, Key: priv}
	if err := cfg.Validate(); err != nil || cfg.ID != ident.ID(priv) {
		t.Fatalf("Key: ID %v, err %v; want %v", cfg.ID.Short(), err, ident.ID(priv).Short())
	}
	n := tn.add(requireIdentity(6))
	if ident.Derive(n.PublicKey()) != n.ID() || ident.Work(n.ID()) < 6 {
		t.Fatalf("generated ID %v: not its key's, or %d bits of work", n.ID().Short(), ident.Work(n.ID()))
	}
	// Without either, nothing changes: a free ID and no key.
	if free := tn.add(nil); free.PublicKey() != nil {
		t.Fatal("a node without RequireIdentity or Key got a key")
	}
}

func randSeedErr(s uint64) func([]byte) error {
	f := randSeed(rand.New(rand.NewPCG(s, s)))
	return func(b []byte) error { _, err := f(b); return err }
}

// A network whose every node requires identity, at difficulty 8, joins,
// puts and gets as any network does, and every routing table holds only
// contacts that proved their ID at their address.
func TestIdentityNetworkJoinsPutsAndGets(t *testing.T) {
	tn := newTestNet(t, 11, memnet.Config{})
	for range 30 {
		tn.add(func(c *Config) {
			c.K, c.ReplicateInterval = 8, -1
			requireIdentity(8)(c)
		})
	}
	tn.bootstrapAll(20 * time.Millisecond)
	for i, n := range tn.nodes {
		if ident.Work(n.ID()) < 8 {
			t.Fatalf("node %d: ID with %d bits of work", i, ident.Work(n.ID()))
		}
		es := n.Contacts()
		if len(es) < 8 {
			t.Fatalf("node %d: %d contacts after joining", i, len(es))
		}
		for _, e := range es {
			if !n.IdentityVerified(e.Contact) {
				t.Fatalf("node %d holds %v, which never proved its ID there", i, e.Contact)
			}
		}
	}
	key := id.Key("identity")
	pending := 1
	tn.nodes[3].Put(key, []byte("v"), time.Hour, func(r *PutResult, err error) {
		if err != nil || r.Stored < 8 {
			t.Errorf("put: %v, stored on %d", err, r.Stored)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	pending = 1
	tn.nodes[20].Get(key, func(r *LookupResult, err error) {
		if err != nil || len(r.Values) != 1 || string(r.Values[0]) != "v" {
			t.Errorf("get: %v, %q", err, r.Values)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	var s IdentityCounts
	var requests uint64
	for _, n := range tn.nodes {
		st := n.Stats()
		c := st.Identity
		s.Failed += c.Failed
		s.Verified += c.Verified
		s.ProveSent += c.ProveSent
		requests += st.Requests
	}
	t.Logf("30 nodes, d=8: %d requests, %d with PROVE (%.1f%%), %d proofs verified", requests, s.ProveSent, 100*float64(s.ProveSent)/float64(requests), s.Verified)
	// Once the nodes know each other, lookups are almost all repeat contacts.
	pending = len(tn.nodes)
	for i, n := range tn.nodes {
		n.FindNode(id.Key(fmt.Sprint("again ", i)), func(*LookupResult, error) { pending-- })
	}
	tn.await(&pending, time.Minute)
	var requests2, prove2 uint64
	for _, n := range tn.nodes {
		st := n.Stats()
		requests2 += st.Requests
		prove2 += st.Identity.ProveSent
	}
	t.Logf("then 30 lookups: %d requests, %d with PROVE (%.1f%%)", requests2-requests, prove2-s.ProveSent, 100*float64(prove2-s.ProveSent)/float64(requests2-requests))
	if s.Failed != 0 || s.Verified == 0 {
		t.Fatalf("honest network: %d proofs failed, %d verified", s.Failed, s.Verified)
	}
}

// After first contact a node asks a contact for no more proofs: the check
// costs nothing per packet. The peer counts the PROVE flags it receives.
func TestNoProofRequestAfterFirstContact(t *testing.T) {
	tn := newTestNet(t, 2, memnet.Config{})
	n := tn.add(requireIdentity(0))
	priv := keyOf(7)
	proves, requests := 0, 0
	addr := netip.MustParseAddrPort("127.210.0.1:4000")
	tn.listenPeer(addr, ident.ID(priv), func(req *wire.Message, from netip.AddrPort) *wire.Message {
		requests++
		out := answer(req, from, nil)
		if req.Flags&wire.FlagProve != 0 {
			proves++
			return prove(priv, req, out)
		}
		return out
	})
	for i := range 5 {
		c, err := pingAddr(t, tn, n, addr)
		if err != nil || c.ID != ident.ID(priv) {
			t.Fatalf("ping %d: %v, %v", i, c, err)
		}
	}
	pending := 1
	n.FindNode(id.Key("x"), func(*LookupResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	if requests < 6 || proves != 1 {
		t.Fatalf("%d requests, %d with PROVE; want one PROVE, on first contact", requests, proves)
	}
	if got := n.Stats().Identity.ProveSent; got != 1 {
		t.Fatalf("Stats.Identity.ProveSent = %d, want 1", got)
	}
	if !inTable(n, ident.ID(priv)) {
		t.Fatal("the proven peer is not in the routing table")
	}
}

// A modified node whose claimed ID is not its key's, or that sends no
// proof, never enters the routing table of a node that requires identity,
// whether it sends requests or answers them, and its answers count as
// failures.
func TestLiarNeverEntersTheTable(t *testing.T) {
	honest := keyOf(8)
	liars := []struct {
		name  string
		claim id.ID
		sign  func(req, out *wire.Message) *wire.Message
	}{
		{"no proof", id.Key("liar"), func(_, out *wire.Message) *wire.Message { return out }},
		{"another key's proof", id.Key("liar"), func(req, out *wire.Message) *wire.Message {
			claim := out.Sender
			prove(honest, req, out) // a valid signature by a key that owns another ID
			out.Sender = claim
			return out
		}},
		{"a good key, a bad signature", ident.ID(honest), func(req, out *wire.Message) *wire.Message {
			prove(honest, req, out)
			out.Proof = slices.Clone(out.Proof)
			out.Proof[wire.ProofLen-1] ^= 1
			return out
		}},
	}
	for i, l := range liars {
		t.Run(l.name, func(t *testing.T) {
			tn := newTestNet(t, 3, memnet.Config{})
			n := tn.add(requireIdentity(0))
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 211, 0, byte(i + 1)}), 4000)
			p := tn.listenPeer(addr, l.claim, func(req *wire.Message, from netip.AddrPort) *wire.Message {
				out := answer(req, from, nil)
				if out == nil {
					return nil
				}
				out.Sender = l.claim
				return l.sign(req, out)
			})
			// It asks: the node asks for a proof, gets a bad one, keeps it out.
			for j := range 3 {
				sendAs(t, p, n.Addr(), wire.Message{Type: wire.Ping, TxID: uint64(j + 1), Sender: l.claim})
				tn.clk.RunFor(5 * time.Second)
			}
			// It answers: the ping fails.
			if _, err := pingAddr(t, tn, n, addr); !errors.Is(err, ErrTimeout) {
				t.Fatalf("ping of the liar: err = %v, want a failure", err)
			}
			if inTable(n, l.claim) {
				t.Fatal("the liar is in the routing table")
			}
			s := n.Stats().Identity
			if s.Failed < 2 || s.Probes < 1 || s.Verified != 0 {
				t.Fatalf("identity counts %+v: want the probe and the ping failed", s)
			}
		})
	}
}

// A proof captured from one answer and sent again for another request
// (another transaction ID) is refused; the same peer's fresh proof is not.
func TestReplayedProofIsRefused(t *testing.T) {
	tn := newTestNet(t, 4, memnet.Config{})
	n := tn.add(func(c *Config) { requireIdentity(0)(c); c.Attempts = 1 })
	priv := keyOf(9)
	addr := netip.MustParseAddrPort("127.212.0.1:4000")
	var captured []byte
	mode := "capture"
	tn.listenPeer(addr, ident.ID(priv), func(req *wire.Message, from netip.AddrPort) *wire.Message {
		out := prove(priv, req, answer(req, from, nil))
		switch mode {
		case "capture": // a proof for this txid, kept, not sent
			captured = slices.Clone(out.Proof)
			return nil
		case "replay":
			out.Proof = captured
		}
		return out
	})
	if _, err := pingAddr(t, tn, n, addr); err == nil {
		t.Fatal("the silent ping succeeded")
	}
	mode = "replay"
	if _, err := pingAddr(t, tn, n, addr); !errors.Is(err, ErrTimeout) {
		t.Fatalf("replayed proof: err = %v, want a failure", err)
	}
	if inTable(n, ident.ID(priv)) || n.Stats().Identity.Failed != 1 {
		t.Fatalf("replayed proof: in table %v, counts %+v", inTable(n, ident.ID(priv)), n.Stats().Identity)
	}
	mode = "fresh"
	if c, err := pingAddr(t, tn, n, addr); err != nil || c.ID != ident.ID(priv) {
		t.Fatalf("fresh proof: %v, %v", c, err)
	}
	if !inTable(n, ident.ID(priv)) {
		t.Fatal("the proven peer is not in the table")
	}
}

// sendWriter sends what a node writes through a transport: for datagrams
// handed to HandlePacket directly, with a forged source, whose answers and
// pings must still reach the network.
type sendWriter struct{ tr transport.Transport }

func (w sendWriter) WriteTo(b []byte, to netip.AddrPort) {
	_ = w.tr.Send([]transport.Packet{{Data: slices.Clone(b), Addr: to}})
}

// One entry per address holds with identity on: a request that claims a
// second ID from the address of a live contact (its source forged, or a
// second program behind one address) replaces nothing. The node asks that
// address to prove the new ID; the contact alive there answers as itself.
func TestSecondIDFromOneAddressReplacesNothingAlive(t *testing.T) {
	tn := newTestNet(t, 5, memnet.Config{})
	n := tn.add(requireIdentity(0))
	x, y := keyOf(10), keyOf(11)
	addr := netip.MustParseAddrPort("127.213.0.1:4000")
	proves := 0
	tn.listenPeer(addr, ident.ID(x), func(req *wire.Message, from netip.AddrPort) *wire.Message {
		out := answer(req, from, nil)
		if out != nil && req.Flags&wire.FlagProve != 0 {
			proves++
			return prove(x, req, out)
		}
		return out
	})
	if c, err := pingAddr(t, tn, n, addr); err != nil || c.ID != ident.ID(x) {
		t.Fatalf("ping of X: %v, %v", c, err)
	}
	// Y claims X's address, with a genuine key of its own.
	m := wire.Message{Type: wire.FindNode, TxID: 99, Sender: ident.ID(y), Target: id.Key("t")}
	b, _ := m.Append(nil)
	n.HandlePacket(wire.Pad(b, 0, wire.MinFindNodeLen), addr, sendWriter{n.tr})
	tn.clk.RunFor(10 * time.Second)
	if proves != 2 {
		t.Fatalf("X was asked for %d proofs, want 2 (first contact, then Y's claim)", proves)
	}
	if !inTable(n, ident.ID(x)) || inTable(n, ident.ID(y)) {
		t.Fatalf("X in table %v, Y in table %v: want X kept and Y refused", inTable(n, ident.ID(x)), inTable(n, ident.ID(y)))
	}
	if e, _ := n.table.Get(ident.ID(x)); e.Contact.Addr != addr || !e.Verified {
		t.Fatalf("X is now %+v", e)
	}
}

// eclipse starts Eve at eveAddr, a node that proves its genuine ID (eve's)
// and answers every FIND_NODE with 8 made-up contacts: IDs closer to target
// than any real node could get its key (byte flip of target changed), each
// a scripted peer at 127.block.1.x claiming its ID with no key behind it.
func (tn *testNet) eclipse(target id.ID, flip int, block byte, eve ed25519.PrivateKey, eveAddr netip.AddrPort) []id.Contact {
	var fakes []id.Contact
	for i := range 8 {
		f := target
		f[flip] ^= byte(i + 1)
		fakes = append(fakes, id.Contact{ID: f, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, block, 1, byte(i + 1)}), 4000)})
	}
	for _, f := range fakes {
		tn.listenPeer(f.Addr, f.ID, func(req *wire.Message, from netip.AddrPort) *wire.Message { return answer(req, from, fakes) })
	}
	tn.listenPeer(eveAddr, ident.ID(eve), func(req *wire.Message, from netip.AddrPort) *wire.Message {
		out := answer(req, from, fakes)
		if out != nil && req.Flags&wire.FlagProve != 0 {
			return prove(eve, req, out)
		}
		return out
	})
	return fakes
}

// An eclipse: a node that proves its own ID answers FIND_NODE with made-up
// contacts close to the target, each a scripted address claiming its ID.
// A lookup that requires identity returns none of them; the same lookup
// without it returns them (so the test can fail).
func TestEclipseContactsDoNotCountWithIdentity(t *testing.T) {
	for _, require := range []bool{true, false} {
		tn := newTestNet(t, 6, memnet.Config{})
		target := id.Key("target")
		eveAddr := netip.MustParseAddrPort("127.214.0.1:4000")
		fakes := tn.eclipse(target, 19, 214, keyOf(12), eveAddr)
		n := tn.add(func(c *Config) {
			c.K = 8
			if require {
				requireIdentity(0)(c)
			}
		})
		pending := 1
		n.Bootstrap([]netip.AddrPort{eveAddr}, func(*BootstrapResult, error) { pending-- })
		tn.await(&pending, time.Minute)
		pending = 1
		var closest []id.Contact
		n.FindNode(target, func(r *LookupResult, err error) {
			if r != nil {
				closest = r.Closest
			}
			pending--
		})
		tn.await(&pending, time.Minute)
		made := 0
		for _, c := range closest {
			if slices.ContainsFunc(fakes, func(f id.Contact) bool { return f.ID == c.ID }) {
				made++
			}
		}
		for _, f := range fakes {
			if require && inTable(n, f.ID) {
				t.Fatalf("made-up contact %v is in the routing table", f.ID.Short())
			}
		}
		switch {
		case require && made != 0:
			t.Fatalf("RequireIdentity: the lookup returned %d made-up contacts of %d", made, len(closest))
		case !require && made == 0:
			t.Fatalf("without identity the lookup returned no made-up contact (%v): the test proves nothing", closest)
		}
		if require && n.Stats().Identity.Failed < uint64(len(fakes)) {
			t.Fatalf("RequireIdentity: %d failed proofs, want one per made-up contact", n.Stats().Identity.Failed)
		}
		for _, x := range tn.nodes {
			x.Close()
		}
	}
}

// A PROVE request earns the same answer budget as the request without
// PROVE, trailer aside: the padding pays for the proof, and the answer is
// never more than AmplificationFactor times the request.
func TestProofKeepsTheAmplificationLimit(t *testing.T) {
	tn := newTestNet(t, 7, memnet.Config{})
	n := tn.add(requireIdentity(0))
	for i := range 40 {
		tn.add(func(c *Config) { c.Key = keyOf(byte(100 + i)) })
	}
	for _, x := range tn.nodes[1:] {
		n.table.Verified(id.Contact{ID: x.ID(), Addr: x.Addr()}, tn.clk.Now())
	}
	from := netip.MustParseAddrPort("127.215.0.1:4000")
	for _, tc := range []struct {
		typ wire.Type
		pad int
	}{{wire.Ping, wire.HeaderLen}, {wire.FindNode, wire.MinFindNodeLen}, {wire.FindValue, wire.MinFindValueLen}, {wire.FindNode, wire.HeaderLen + id.Len}} {
		for _, proveFlag := range []bool{false, true} {
			m := wire.Message{Type: tc.typ, TxID: 5, Sender: id.Key("asker"), Target: id.Key("t"), Flags: wire.FlagReadOnly}
			n2 := tc.pad
			if proveFlag {
				m.Flags |= wire.FlagProve
				n2 += wire.ProvePad
			}
			b, _ := m.Append(nil)
			b = wire.Pad(b, 0, n2)
			var w recordWriter
			n.HandlePacket(b, from, &w)
			if len(w.pkts) != 1 {
				t.Fatalf("%v prove=%v: %d datagrams", tc.typ, proveFlag, len(w.pkts))
			}
			out := w.pkts[0].Data
			if len(out) > wire.AmplificationFactor*len(b) || len(out) > wire.MaxPacket {
				t.Fatalf("%v prove=%v: %d-byte request, %d-byte answer", tc.typ, proveFlag, len(b), len(out))
			}
			var a wire.Message
			if err := wire.Decode(out, &a); err != nil {
				t.Fatal(err)
			}
			if proveFlag != (a.Flags&wire.FlagProof != 0) {
				t.Fatalf("%v prove=%v: answer flags %b", tc.typ, proveFlag, a.Flags)
			}
			if proveFlag {
				if _, err := ident.Check(a.Proof, a.Network, m.TxID, n.ID(), uint8(a.Type), 0); err != nil {
					t.Fatalf("%v: the node's proof: %v", tc.typ, err)
				}
			}
		}
	}
	// Unpadded PROVE PING: no room for the trailer, so no proof, and still
	// within the limit.
	m := wire.Message{Type: wire.Ping, TxID: 6, Sender: id.Key("asker"), Flags: wire.FlagProve | wire.FlagReadOnly}
	b, _ := m.Append(nil)
	var w recordWriter
	n.HandlePacket(b, from, &w)
	if len(w.pkts) != 1 || len(w.pkts[0].Data) > wire.AmplificationFactor*len(b) {
		t.Fatalf("unpadded PROVE ping: %d answers", len(w.pkts))
	}
}

// A read-only client has no key and stays out of routing tables; it still
// listens on an identity network: NOTIFY and the ping that checks a
// listener's address ask it for no proof.
func TestReadOnlyListenerOnAnIdentityNetwork(t *testing.T) {
	tn := newTestNet(t, 8, memnet.Config{})
	for range 12 {
		tn.add(func(c *Config) { c.K, c.ReplicateInterval = 4, -1; requireIdentity(2)(c) })
	}
	tn.bootstrapAll(20 * time.Millisecond)
	client := tn.add(func(c *Config) { c.K, c.ReadOnly = 4, true; requireIdentity(2)(c) })
	if client.PublicKey() != nil {
		t.Fatal("a read-only client got a key")
	}
	pending := 1
	client.Bootstrap([]netip.AddrPort{tn.nodes[0].Addr()}, func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	key := id.Key("watched")
	var events []Event
	cancel := client.Listen(key, func(e Event) { events = append(events, e) })
	defer cancel()
	tn.clk.RunFor(10 * time.Second)
	pending = 1
	tn.nodes[5].Put(key, []byte("news"), time.Hour, func(r *PutResult, err error) {
		if err != nil {
			t.Error(err)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	tn.clk.RunFor(10 * time.Second)
	if len(events) == 0 || string(events[len(events)-1].Record.Data) != "news" {
		t.Fatalf("the listener got %d events", len(events))
	}
	for _, n := range tn.nodes[:12] {
		if inTable(n, client.ID()) {
			t.Fatal("the read-only client is in a routing table")
		}
	}
}

// The verified cache is bounded, forgets its oldest pair first, keeps one
// ID at several addresses (a dual-stack node), and an address names the ID
// proven there last.
func TestVerifiedCacheBounds(t *testing.T) {
	tn := newTestNet(t, 9, memnet.Config{})
	n := tn.add(func(c *Config) { requireIdentity(0)(c); c.VerifiedCache = 4 })
	addr := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 216, 0, byte(i)}), 4000)
	}
	x := func(i int) id.ID { return id.Key(string(rune('a' + i))) }
	var pub [ident.PublicKeyLen]byte
	n.mu.Lock()
	defer n.mu.Unlock()
	for i := range 10 {
		n.learnIdentity(x(i), addr(i), pub)
		if len(n.ident.known) > 4 || len(n.ident.byAddr) > 4 || len(n.ident.ring) > 4 {
			t.Fatalf("after %d pairs the cache holds %d, %d, %d", i+1, len(n.ident.known), len(n.ident.byAddr), len(n.ident.ring))
		}
	}
	for i := range 10 {
		if got, want := n.identKnown(id.Contact{ID: x(i), Addr: addr(i)}), i >= 6; got != want {
			t.Fatalf("pair %d known %v, want %v (the 4 newest)", i, got, want)
		}
	}
	// Dual stack: one ID at two addresses.
	v6 := netip.MustParseAddrPort("[::1]:4000")
	n.learnIdentity(x(9), v6, pub)
	if !n.identKnown(id.Contact{ID: x(9), Addr: addr(9)}) || !n.identKnown(id.Contact{ID: x(9), Addr: v6}) {
		t.Fatal("an ID proven at two addresses is not known at both")
	}
	if n.wantProof(id.Contact{Addr: v6}) {
		t.Fatal("a request to a proven address alone asks for a proof")
	}
	// Another ID proves itself at v6: the address names it now.
	n.learnIdentity(x(8), v6, pub)
	if n.identKnown(id.Contact{ID: x(9), Addr: v6}) || !n.identKnown(id.Contact{ID: x(8), Addr: v6}) {
		t.Fatal("the address still names the ID proven there before")
	}
}

// grindNear returns a key whose ID shares at least bits leading bits with
// target: what an attacker pays about 2^bits key generations for.
func grindNear(target id.ID, bits int) ed25519.PrivateKey {
	r := rand.New(rand.NewPCG(uint64(bits), 1))
	seed := make([]byte, ed25519.SeedSize)
	for {
		for i := range seed {
			seed[i] = byte(r.Uint32())
		}
		k := ed25519.NewKeyFromSeed(seed)
		if ident.ID(k).CommonPrefixLen(target) >= bits {
			return k
		}
	}
}

// The eclipse inside a network: Eve, a genuine member every node knows,
// with an ID ground to share 8 bits with the target, answers FIND_NODE with
// made-up contacts closer still. With identity no lookup of any node
// returns one (Eve's own ID counts: she paid for it); without, they do.
func TestEclipseInsideANetwork(t *testing.T) {
	for _, require := range []bool{true, false} {
		tn := newTestNet(t, 12, memnet.Config{})
		target := id.Key("eclipsed")
		eveAddr := netip.MustParseAddrPort("127.217.0.1:4000")
		fakes := tn.eclipse(target, 18, 217, grindNear(target, 8), eveAddr) // Eve paid to sit near the target
		for range 20 {
			tn.add(func(c *Config) {
				c.K, c.ReplicateInterval = 8, -1
				if require {
					requireIdentity(0)(c)
				}
			})
		}
		tn.bootstrapAll(20 * time.Millisecond)
		for _, n := range tn.nodes {
			if _, err := pingAddr(t, tn, n, eveAddr); err != nil {
				t.Fatal(err) // every node knows Eve
			}
		}
		withFakes := 0
		pending := len(tn.nodes)
		for _, n := range tn.nodes {
			n.FindNode(target, func(r *LookupResult, err error) {
				if r != nil && slices.ContainsFunc(r.Closest, func(c id.Contact) bool {
					return slices.ContainsFunc(fakes, func(f id.Contact) bool { return f.ID == c.ID })
				}) {
					withFakes++
				}
				pending--
			})
		}
		tn.await(&pending, time.Minute)
		switch {
		case require && withFakes != 0:
			t.Fatalf("RequireIdentity: %d of %d lookups returned made-up contacts", withFakes, len(tn.nodes))
		case !require && withFakes == 0:
			t.Fatal("without identity no lookup returned a made-up contact: the test proves nothing")
		}
		t.Logf("require=%v: %d of %d lookups returned made-up contacts", require, withFakes, len(tn.nodes))
		for _, x := range tn.nodes {
			x.Close()
		}
	}
}

// Identity and write tokens together: a network that requires both joins,
// stores a put on its K closest and reads it back, with proofs and tokens
// in the same datagrams.
func TestIdentityAndTokensTogether(t *testing.T) {
	tn := newTestNet(t, 12, memnet.Config{})
	mod := func(c *Config) {
		c.K, c.ReplicateInterval = 8, time.Hour
		c.RequireTokens = true
		requireIdentity(0)(c)
	}
	for range 30 {
		tn.add(mod)
	}
	tn.bootstrapAll(20 * time.Millisecond)
	key := id.Key("identity and tokens")
	pending := 1
	tn.nodes[3].Put(key, []byte("both"), time.Hour, func(r *PutResult, err error) {
		if err != nil || r.Stored != 8 {
			t.Errorf("put: %v, stored on %d of 8", err, r.Stored)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	pending = 1
	tn.nodes[20].Get(key, func(r *LookupResult, err error) {
		if err != nil || len(r.Values) != 1 || string(r.Values[0]) != "both" {
			t.Errorf("get: %v, %q", err, r.Values)
		}
		pending--
	})
	tn.await(&pending, time.Minute)
	var given, failedIdent uint64
	for _, n := range tn.nodes {
		st := n.Stats()
		failedIdent += st.Identity.Failed
		given += st.Tokens.Given
		for _, e := range n.Contacts() {
			if !n.IdentityVerified(e.Contact) {
				t.Fatalf("%v holds %v, which never proved its ID there", n.ID().Short(), e.Contact)
			}
		}
	}
	if failedIdent != 0 {
		t.Errorf("%d identity failures in an honest network", failedIdent)
	}
	if given == 0 {
		t.Error("no token was handed out: the put did not go through tokens")
	}
}

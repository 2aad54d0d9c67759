package sim

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/ident"
	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/wire"
)

// idScenario is a small adversarial run with node identity.
func idScenario(m Malicious) Scenario {
	sc := advScenario(m)
	sc.Identity = true
	if raceEnabled {
		// Signatures are slow under the race detector.
		sc.Nodes, sc.Lookups = 60, 30
	}
	return sc
}

// idNetwork is idScenario's network, half the size and with one get, for
// tests that talk to the malicious nodes directly.
func idNetwork(t *testing.T, m Mix) *engine {
	sc := idScenario(Malicious{m})
	sc.Nodes, sc.Lookups = sc.Nodes/2, 1
	return advEngine(t, sc)
}

func TestIdentityScenarioValidation(t *testing.T) {
	for _, tc := range []struct {
		sc  Scenario
		err string
	}{
		{Scenario{Nodes: 10, Identity: true}, ""},
		{Scenario{Nodes: 10, Identity: true, IdentityDifficulty: MaxIdentityDifficulty}, ""},
		{Scenario{Nodes: 10, Identity: true, IdentityDifficulty: MaxIdentityDifficulty + 1}, "identity_difficulty"},
		{Scenario{Nodes: 10, Identity: true, IdentityDifficulty: -1}, "identity_difficulty"},
		{Scenario{Nodes: 10, IdentityDifficulty: 2}, `"identity": true`},
	} {
		err := tc.sc.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%+v: err %v, want %q", tc.sc, err, tc.err)
		}
	}
	sc, err := ParseScenario([]byte(`{"identity": true, "identity_difficulty": 3}`))
	if err != nil || !sc.Identity || sc.IdentityDifficulty != 3 {
		t.Fatalf("parsed %+v, %v", sc, err)
	}
}

// With identity, every node's ID is its key's, at the difficulty asked,
// and a run is as reproducible as without: the keys come from the seed.
func TestIdentityRunsAreDeterministic(t *testing.T) {
	sc := idScenario(Malicious{{Forge: 0.1, Eclipse: 0.1}})
	sc.Nodes, sc.Lookups, sc.IdentityDifficulty = sc.Nodes/2, sc.Lookups/2, 2
	a, b := jsonOf(t, run(t, sc)), jsonOf(t, run(t, sc))
	if !bytes.Equal(a, b) {
		t.Fatal("same scenario with identity, different reports")
	}
	sc.Lookups = 1
	e := advEngine(t, sc)
	for _, sn := range e.nodes {
		if sn.key == nil || ident.ID(sn.key) != sn.n.ID() || !ident.Meets(sn.n.ID(), 2) || !sn.n.Config().RequireIdentity {
			t.Fatalf("node %v: key %v, require %v: want its ID derived from its key with 2 bits of work", sn.n.ID().Short(), sn.key != nil, sn.n.Config().RequireIdentity)
		}
	}
}

// askProve sends a request with FlagProve (padded as a node pads it) to
// malicious node tr as if from honest node from, with transaction txid.
func askProve(t *testing.T, e *engine, tr *advTransport, typ wire.Type, target id.ID, from *simNode, txid uint64) []*wire.Message {
	t.Helper()
	req := wire.Message{Type: typ, Flags: wire.FlagProve, TxID: txid, Sender: from.n.ID(), Target: target}
	data, err := req.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	data = append(data, make([]byte, wire.ProvePad)...)
	return askWith(t, e, tr, typ, data, from)
}

// proven reports whether answer m carries a valid proof for its sender.
func proven(m *wire.Message, txid uint64) bool {
	_, err := ident.Check(m.Proof, m.Network, txid, m.Sender, uint8(m.Type), 0)
	return m.Flags&wire.FlagProof != 0 && err == nil
}

// Malicious nodes own real keys: forgers and colluders answer under their
// own IDs with proofs that check, for the type they answer with (a
// withholding forger turns VALUES into NODES and proves that). A made-up
// eclipse node proves its own ID, but an answer under an ID it made up
// carries no proof.
func TestIdentityMaliciousNodesProveOnlyTheirOwnIDs(t *testing.T) {
	for _, mix := range []Mix{{Forge: 0.2}, {Forge: 0.2, ForgeAs: ForgeEmpty}, {Eclipse: 0.2, EclipseAs: EclipseColluders}} {
		e := idNetwork(t, mix)
		k := forgeKind
		if mix.Eclipse > 0 {
			k = eclipseKind
		}
		ts, from := liars(e, k)
		for i, tr := range ts[:min(10, len(ts))] {
			typ := []wire.Type{wire.FindValue, wire.Get}[i%2]
			for _, m := range askProve(t, e, tr, typ, e.keys[i%len(e.keys)], from, uint64(100+i)) {
				if m.Sender != tr.self || !proven(m, uint64(100+i)) {
					t.Fatalf("%v: %v answer from %v (own %v): proof %v: want its own ID, proven", mix, m.Type, m.Sender.Short(), tr.self.Short(), proven(m, uint64(100+i)))
				}
			}
		}
	}
	e := idNetwork(t, Mix{Eclipse: 0.2})
	ts, from := liars(e, eclipseKind)
	byAddr := map[netip.AddrPort]*advTransport{}
	for _, tr := range ts {
		byAddr[tr.addr] = tr
	}
	target := e.keys[0]
	first := askProve(t, e, ts[0], wire.FindNode, target, from, 1)
	if len(first) != 1 || first[0].Sender != ts[0].self || !proven(first[0], 1) {
		t.Fatalf("eclipse node under its own ID: %d answers, want one proven", len(first))
	}
	fakes := 0
	for _, c := range first[0].Contacts {
		tr := byAddr[c.Addr]
		if tr == nil {
			continue // an address where nobody answers
		}
		for _, m := range askProve(t, e, tr, wire.FindNode, target, from, 2) {
			if m.Sender != c.ID {
				t.Fatalf("eclipse node at %v answered as %v, was handed out as %v", c.Addr, m.Sender.Short(), c.ID.Short())
			}
			if m.Flags&wire.FlagProof != 0 || proven(m, 2) {
				t.Fatalf("answer under made-up ID %v carries a proof", c.ID.Short())
			}
			fakes++
		}
	}
	if fakes == 0 {
		t.Fatal("no made-up contact pointed at an eclipse node")
	}
}

// With identity, the made-up contacts of an eclipse never enter an honest
// node's routing table nor count as answers (a lookup's closest), while
// eclipse nodes under their real IDs do, verified; the gets' requests to
// made-up IDs fail their identity check.
func TestIdentityKeepsMadeUpContactsOut(t *testing.T) {
	sc := idScenario(Malicious{{Eclipse: 0.3}})
	e := advEngine(t, sc)
	if err := e.adversaryGets(); err != nil {
		t.Fatal(err)
	}
	real := map[id.Contact]bool{}
	malicious := map[netip.AddrPort]bool{}
	for _, sn := range e.nodes {
		real[id.Contact{ID: sn.n.ID(), Addr: sn.addr}] = true
		malicious[sn.addr] = !e.adv.honestNode(sn)
	}
	var closest []id.Contact
	pending := 0
	for i, sn := range e.live[:20] {
		if !e.adv.honestNode(sn) {
			continue
		}
		pending++
		sn.n.FindNode(e.keys[i%len(e.keys)], func(r *core.LookupResult, err error) {
			pending--
			if r != nil {
				closest = append(closest, r.Closest...)
			}
		})
	}
	if ok, err := e.advance(e.clk.Now().Add(10*time.Minute), func() bool { return pending > 0 }); !ok || err != nil {
		t.Fatalf("lookups did not finish: %v", err)
	}
	for _, c := range closest {
		if !real[c] {
			t.Fatalf("a lookup counted made-up contact %v as an answer", c)
		}
	}
	var failed, eclipseIn int
	for _, sn := range e.live {
		if !e.adv.honestNode(sn) {
			continue
		}
		failed += int(sn.n.Stats().Identity.Failed)
		for _, en := range sn.n.Contacts() {
			if !real[en.Contact] {
				t.Fatalf("honest node %v holds made-up contact %v", sn.n.ID().Short(), en.Contact)
			}
			if !sn.n.IdentityVerified(en.Contact) {
				t.Fatalf("honest node %v holds unverified contact %v", sn.n.ID().Short(), en.Contact)
			}
			if malicious[en.Contact.Addr] {
				eclipseIn++
			}
		}
	}
	if failed == 0 || eclipseIn == 0 {
		t.Fatalf("%d failed identity checks, %d eclipse nodes in honest tables: want both above 0", failed, eclipseIn)
	}
	if s := e.adv.res; s.Eclipsed == 0 {
		t.Fatal("the eclipse nodes answered nothing")
	}
}

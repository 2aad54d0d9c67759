package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/record"
	"github.com/dhtkit/dht/wire"
)

func TestMaliciousJSONShapes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Malicious
		err  string
	}{
		{`{"nodes": 10}`, nil, ""},
		{`{"nodes": 10, "malicious": 0}`, nil, ""},
		{`{"nodes": 10, "malicious": null}`, nil, ""},
		{`{"malicious": {"drop": 0.1, "eclipse": 0.2}}`, Malicious{{Drop: 0.1, Eclipse: 0.2}}, ""},
		{`{"malicious": [{"drop": 0.1}, {}, {"forge": 0.3}]}`, Malicious{{Drop: 0.1}, {}, {Forge: 0.3}}, ""},
		{`{"malicious": 0.1}`, nil, "shares by kind"},
		{`{"malicious": {"lie": 0.1}}`, nil, "the kinds are drop, forge and eclipse"},
		{`{"malicious": [{"drop": 0.1}, {"sybil": 1}]}`, nil, "setting 1"},
	} {
		sc, err := ParseScenario([]byte(tc.in))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: err %v, want one saying %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("%s: %v", tc.in, err)
		case len(sc.Malicious) != len(tc.want) || (len(tc.want) > 0 && !equalMix(sc.Malicious, tc.want)):
			t.Errorf("%s: got %v, want %v", tc.in, sc.Malicious, tc.want)
		}
	}
	// One setting writes as an object, several as a list, and both read
	// back the same.
	for _, m := range []Malicious{{{Eclipse: 0.2}}, {{Drop: 0.1}, {Forge: 0.2}}} {
		b, err := json.Marshal(Scenario{Malicious: m})
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ParseScenario(b)
		if err != nil || !equalMix(sc.Malicious, m) {
			t.Fatalf("%s read back as %v, %v", b, sc.Malicious, err)
		}
		if (len(m) == 1) != bytes.Contains(b, []byte(`"malicious":{`)) {
			t.Fatalf("%s: one setting should be an object, several a list", b)
		}
	}
}

func equalMix(a, b Malicious) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestParseMalicious(t *testing.T) {
	m, err := ParseMalicious("drop=0.1,eclipse=0.2;none;forge=0.3")
	if err != nil || !equalMix(m, Malicious{{Drop: 0.1, Eclipse: 0.2}, {}, {Forge: 0.3}}) {
		t.Fatalf("got %v, %v", m, err)
	}
	if m, err := ParseMalicious("0"); err != nil || m != nil {
		t.Fatalf("0: %v, %v; want no malicious nodes", m, err)
	}
	m, err = ParseMalicious("forge=0.2,forge_as=empty;eclipse=0.1,eclipse_as=colluders")
	if err != nil || !equalMix(m, Malicious{{Forge: 0.2, ForgeAs: ForgeEmpty}, {Eclipse: 0.1, EclipseAs: EclipseColluders}}) {
		t.Fatalf("lies: got %v, %v", m, err)
	}
	if m2, err := ParseMalicious(m[0].String() + ";" + m[1].String()); err != nil || !equalMix(m2, m) {
		t.Fatalf("%v does not read back: %v, %v", m, m2, err)
	}
	// The lies that need two versions need signed records.
	for _, how := range []string{ForgeStale, ForgeMixed} {
		sc := Scenario{Nodes: 10, Malicious: Malicious{{Forge: 0.2, ForgeAs: how}}}
		if err := sc.Validate(); err == nil || !strings.Contains(err.Error(), "signed") {
			t.Errorf("forge_as %s with plain values: err %v, want one saying it needs signed records", how, err)
		}
		sc.Signed = true
		if err := sc.Validate(); err != nil {
			t.Errorf("forge_as %s with signed records: %v", how, err)
		}
	}
	if sc := (Scenario{Nodes: 10, Signed: true}); sc.Validate() == nil {
		t.Error("signed without malicious: want an error")
	}
	for _, bad := range []string{"0.1", "drop", "drop=x", "sybil=0.1", "drop=1.5", "drop=0.5,forge=0.5", "drop=-0.1", "forge=0.1,forge_as=lies", "eclipse=0.1,eclipse_as=friends"} {
		if _, err := ParseMalicious(bad); err == nil || !strings.Contains(err.Error(), "malicious") {
			t.Errorf("%q: err %v, want a message naming the option", bad, err)
		}
	}
}

// advScenario is a small adversarial run: a few hundred nodes, a few
// settings.
func advScenario(m Malicious) Scenario {
	nodes, gets := 300, 200
	if raceEnabled {
		nodes, gets = 120, 60
	}
	return Scenario{Nodes: nodes, Keys: 40, Lookups: gets, Seed: 5, Malicious: m}
}

// Malicious nodes are drawn by the seed: two runs give the same report,
// byte for byte, and each setting has its shares of nodes, none a seed.
func TestAdversarialRunsAreDeterministic(t *testing.T) {
	sc := advScenario(Malicious{{Drop: 0.1, Eclipse: 0.1}, {Forge: 0.2}})
	a, b := jsonOf(t, run(t, sc)), jsonOf(t, run(t, sc))
	if !bytes.Equal(a, b) {
		t.Fatal("same scenario, different reports")
	}
	r := run(t, sc)
	s := r.Adversary.Settings
	n := float64(sc.Nodes)
	if len(s) != 2 || s[0].Drop != int(math.Round(0.1*n)) || s[0].Eclipse != int(math.Round(0.1*n)) || s[0].Forge != 0 || s[1].Forge != int(math.Round(0.2*n)) {
		t.Fatalf("settings %+v: wrong node counts", s)
	}
	if s[0].Dropped == 0 || s[0].Eclipsed == 0 || s[1].Forged == 0 {
		t.Fatalf("malicious nodes did nothing: %+v", s)
	}
}

// The simulator's version of S/Kademlia's claim: with a fifth of the nodes
// answering lookups with made-up contacts, plain gets fail measurably and
// gets over disjoint paths nearly never; drop nodes cost neither kind its
// values; forgers get their values returned, and without signed records
// the forged version wins (the right value is returned less often than a
// value).
func TestDisjointPathsBeatEclipseAndForgersWinWithoutSignatures(t *testing.T) {
	sc := advScenario(Malicious{{Eclipse: 0.3}, {Drop: 0.3}, {Forge: 0.2}})
	if err := sc.Validate(); err != nil { // the defaults, for the bound below
		t.Fatal(err)
	}
	r := run(t, sc)
	ec, dr, fo := r.Adversary.Settings[0], r.Adversary.Settings[1], r.Adversary.Settings[2]
	t.Logf("eclipse 30%%: plain %.3f, disjoint %.3f; drop 30%%: plain %.3f, disjoint %.3f; forge 20%%: plain right %.3f of value %.3f, disjoint right %.3f of value %.3f",
		ec.Plain.Success, ec.Disjoint.Success, dr.Plain.Success, dr.Disjoint.Success, fo.Plain.Success, fo.Plain.ValueRate, fo.Disjoint.Success, fo.Disjoint.ValueRate)
	if ec.Plain.Gets != sc.Lookups || ec.Disjoint.Gets != sc.Lookups {
		t.Fatalf("gets %d plain and %d disjoint, want %d of each", ec.Plain.Gets, ec.Disjoint.Gets, sc.Lookups)
	}
	if !(ec.Plain.Success < 0.97) || !(ec.Disjoint.Success > ec.Plain.Success) || !(ec.Disjoint.Success >= 0.95) {
		t.Fatalf("eclipse 30%%: plain %.3f, disjoint %.3f: want plain hurt and disjoint paths at least 95%% and better", ec.Plain.Success, ec.Disjoint.Success)
	}
	if dr.Plain.Success < 0.98 || dr.Disjoint.Success < 0.98 {
		t.Fatalf("drop 30%%: plain %.3f, disjoint %.3f: want both at least 98%%", dr.Plain.Success, dr.Disjoint.Success)
	}
	if fo.Plain.ValueRate < 0.98 || !(fo.Plain.Success < fo.Plain.ValueRate) || !(fo.Disjoint.Success < fo.Disjoint.ValueRate) {
		t.Fatalf("forge 20%%: %+v / %+v: want values returned and forged ones among them", fo.Plain, fo.Disjoint)
	}
	// Disjoint gets are bounded: paths times a lookup's query bound, plus
	// the continuations and fetches of one get.
	if max := float64(sc.DisjointPaths * 4 * (sc.K + sc.Alpha) * 2); ec.Disjoint.Messages.Max > max {
		t.Fatalf("a disjoint get sent %v requests, bound %v", ec.Disjoint.Messages.Max, max)
	}
}

// closestOf, which colluding eclipse nodes answer with, against a full
// sort by distance: the same k contacts in the same order, the skipped one
// never among them, for sets smaller and larger than k and targets that
// are members of the set.
func TestClosestOfMatchesFullSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var scratch []id.Contact
	for trial := range 300 {
		n := r.IntN(200)
		set := make([]id.Contact, n)
		for i := range set {
			set[i] = id.Contact{ID: id.Random(r), Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, byte(i >> 8), byte(i)}), 1)}
			if i > 0 && r.IntN(4) == 0 { // neighbours sharing long prefixes
				set[i].ID = set[i-1].ID
				set[i].ID[id.Len-1-r.IntN(3)] ^= byte(1 + r.IntN(255))
			}
		}
		slices.SortFunc(set, func(x, y id.Contact) int { return x.ID.Compare(y.ID) })
		set = slices.CompactFunc(set, func(x, y id.Contact) bool { return x.ID == y.ID })
		target := id.Random(r)
		var skip id.ID
		if len(set) > 0 && trial%3 == 0 {
			skip = set[r.IntN(len(set))].ID
			if trial%2 == 0 {
				target = skip // a colluder asked about its own ID
			}
		}
		k := 1 + r.IntN(25)
		got := closestOf(set, target, k, skip, nil, &scratch)
		want := slices.Clone(set)
		slices.SortFunc(want, func(x, y id.Contact) int { return id.CompareDistance(target, x.ID, y.ID) })
		want = slices.DeleteFunc(want, func(c id.Contact) bool { return c.ID == skip })
		want = want[:min(k, len(want))]
		if !slices.Equal(got, want) {
			t.Fatalf("trial %d: %d contacts, k %d: got %v, want %v", trial, len(set), k, got, want)
		}
	}
}

// advEngine builds sc's network for its first setting, joined, put and
// with the malicious nodes turned, for tests that talk to them directly.
func advEngine(t *testing.T, sc Scenario) *engine {
	t.Helper()
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	e := newEngine(context.Background(), sc, nil)
	e.adv = newAdversary(e, sc.Malicious[0])
	t.Cleanup(func() { e.finish() })
	if err := e.prepareAdversary(); err != nil {
		t.Fatal(err)
	}
	return e
}

// ask sends a request of type typ for target to malicious node tr as if
// from the honest node at from, and returns the answers it wrote, decoded.
func ask(t *testing.T, e *engine, tr *advTransport, typ wire.Type, target id.ID, from *simNode) []*wire.Message {
	t.Helper()
	req := wire.Message{Type: typ, TxID: 7, Sender: from.n.ID(), Target: target}
	data, err := req.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	return askWith(t, e, tr, typ, data, from)
}

// askWith hands request data of type typ to tr as if from from, and
// returns the answers, decoded; requests the node sent from in passing
// (an identity ping of an unverified sender) are left out.
func askWith(t *testing.T, e *engine, tr *advTransport, typ wire.Type, data []byte, from *simNode) []*wire.Message {
	t.Helper()
	var w captureWriter
	e.adv.handle(tr, data, from.addr, &w)
	var out []*wire.Message
	for _, p := range w.b.Packets() {
		m := new(wire.Message)
		if err := wire.Decode(p.Data, m); err != nil {
			t.Fatalf("%v answer does not decode: %v", typ, err)
		}
		if p.Addr != from.addr {
			t.Fatalf("answer sent to %v, not to the requester %v", p.Addr, from.addr)
		}
		if !m.Type.IsRequest() {
			out = append(out, m)
		}
	}
	return out
}

// liars returns the turned nodes of kind k and one honest node.
func liars(e *engine, k kind) (ts []*advTransport, honestOne *simNode) {
	for _, sn := range e.live {
		t := e.adv.ts[sn]
		switch {
		case t.kind == k:
			ts = append(ts, t)
		case t.kind == honest && !sn.seed && honestOne == nil:
			honestOne = sn
		}
	}
	slices.SortFunc(ts, func(x, y *advTransport) int { return x.self.Compare(y.self) })
	return ts, honestOne
}

// A colluding eclipse node answers every lookup request with real
// malicious nodes only, under their own IDs and addresses, the K
// colluders closest to the target (itself left out), and never a value;
// it answers under its own ID.
func TestColluderEclipseReturnsOnlyMaliciousContacts(t *testing.T) {
	sc := Scenario{Nodes: 150, Keys: 10, Lookups: 10, Seed: 3, Malicious: Malicious{{Eclipse: 0.3, EclipseAs: EclipseColluders}}}
	e := advEngine(t, sc)
	ts, from := liars(e, eclipseKind)
	if len(ts) != 45 || from == nil {
		t.Fatalf("%d colluders, honest node %v", len(ts), from)
	}
	malicious := map[id.ID]netip.AddrPort{}
	for _, tr := range ts {
		malicious[tr.self] = tr.addr
	}
	r := rand.New(rand.NewPCG(4, 4))
	for i := range 60 {
		tr := ts[r.IntN(len(ts))]
		target := id.Random(r)
		switch i % 3 {
		case 1:
			target = e.keys[r.IntN(len(e.keys))]
		case 2:
			target = from.n.ID()
		}
		typ := []wire.Type{wire.FindNode, wire.FindValue, wire.Get}[i%3]
		answers := ask(t, e, tr, typ, target, from)
		if len(answers) != 1 {
			t.Fatalf("%v: %d answers, want 1", typ, len(answers))
		}
		m := answers[0]
		if m.Sender != tr.self || len(m.Values) > 0 || len(m.Records) > 0 {
			t.Fatalf("%v: sender %v (own %v), %d values, %d records: want its own ID and no value", typ, m.Sender.Short(), tr.self.Short(), len(m.Values), len(m.Records))
		}
		want := slices.Clone(ts)
		slices.SortFunc(want, func(x, y *advTransport) int { return id.CompareDistance(target, x.self, y.self) })
		want = slices.DeleteFunc(want, func(x *advTransport) bool { return x == tr })[:e.sc.K]
		if len(m.Contacts) != e.sc.K {
			t.Fatalf("%v: %d contacts, want K = %d", typ, len(m.Contacts), e.sc.K)
		}
		for j, c := range m.Contacts {
			if addr, ok := malicious[c.ID]; !ok || addr != c.Addr {
				t.Fatalf("%v: contact %v is not a malicious node", typ, c)
			}
			if c.ID != want[j].self {
				t.Fatalf("%v: contact %d is %v, want the %dth closest colluder %v", typ, j, c.ID.Short(), j, want[j].self.Short())
			}
		}
	}
	// The same nodes with made-up contacts, for contrast: none of those is
	// a real node's ID.
	sc.Malicious[0].EclipseAs = ""
	e = advEngine(t, sc)
	ts, from = liars(e, eclipseKind)
	ids := map[id.ID]bool{}
	for _, sn := range e.nodes {
		ids[sn.n.ID()] = true
	}
	for _, c := range ask(t, e, ts[0], wire.FindNode, e.keys[0], from)[0].Contacts {
		if ids[c.ID] {
			t.Fatalf("made-up eclipse handed a real node's ID %v", c)
		}
	}
}

// Forgers of signed records tell the lie they are set to, and readers
// can tell: a forged higher sequence fails record verification, a stale
// one verifies at sequence 1 only, an empty answer carries no record; the
// current sequence is never served. With ForgeMixed each forger tells one
// of the three about each key, and all three occur.
func TestSignedForgersLieAsSet(t *testing.T) {
	var pol record.Policy
	seen := map[string]int{}
	for _, how := range []string{ForgeForged, ForgeStale, ForgeEmpty, ForgeMixed} {
		sc := Scenario{Nodes: 150, Keys: 12, Lookups: 10, Seed: 8, Signed: true, Malicious: Malicious{{Forge: 0.3, ForgeAs: how}}}
		e := advEngine(t, sc)
		ts, from := liars(e, forgeKind)
		sk := e.adv.sk
		for _, tr := range ts {
			for k, key := range e.keys {
				answers := ask(t, e, tr, wire.Get, key, from)
				if len(answers) != 1 || answers[0].Type != wire.Records {
					t.Fatalf("%s: %d answers to GET, want one RECORDS", how, len(answers))
				}
				rs := answers[0].Records
				got := ForgeEmpty
				if len(rs) > 1 {
					t.Fatalf("%s: %d records, want at most the one lie", how, len(rs))
				}
				if len(rs) == 1 {
					r := rs[0]
					if r.Publisher != sk.publisher || !r.Envelope || int(r.Size) != len(r.Data) {
						t.Fatalf("%s: record %+v: want an inline envelope of the owner", how, r)
					}
					_, err := pol.Verify(key, r.Publisher, r.Version, r.Data)
					switch {
					case r.Version == currentSeq+1 && err != nil && bytes.Equal(r.Data, sk.forgery[k]):
						got = ForgeForged
					case r.Version == staleSeq && err == nil && bytes.Equal(r.Data, sk.stale[k]):
						got = ForgeStale
					default:
						t.Fatalf("%s: record at sequence %d, verification %v: neither a refused forgery nor the stale sequence", how, r.Version, err)
					}
				}
				seen[got]++
				if how != ForgeMixed && got != how {
					t.Fatalf("forger set to %s told %s", how, got)
				}
			}
		}
		if how == ForgeMixed && (seen[ForgeForged] == 0 || seen[ForgeStale] == 0 || seen[ForgeEmpty] == 0) {
			t.Fatalf("mixed forgers told %v: want all three lies", seen)
		}
	}
}

// The reader's side of signed records under forgers: a forged higher
// sequence is refused (counted in ForgedRecords) and never returned, so
// that gets return the current sequence; stale copies verify and lose to
// the current one wherever an honest holder answers, and refuse nothing.
// The same share of forgers with plain values wins (see
// TestDisjointPathsBeatEclipseAndForgersWinWithoutSignatures).
func TestSignedRecordsDefeatForgers(t *testing.T) {
	sc := advScenario(Malicious{{Forge: 0.3, ForgeAs: ForgeForged}, {Forge: 0.3, ForgeAs: ForgeStale}, {Forge: 0.3, ForgeAs: ForgeEmpty}})
	sc.Signed = true
	r := run(t, sc)
	fo, st, em := r.Adversary.Settings[0], r.Adversary.Settings[1], r.Adversary.Settings[2]
	for _, s := range r.Adversary.Settings {
		t.Logf("%v: plain right %.3f stale %d, disjoint right %.3f stale %d; %d lies, %d records refused",
			s.Malicious, s.Plain.Success, s.Plain.Stale, s.Disjoint.Success, s.Disjoint.Stale, s.Forged, s.Refused)
		for _, o := range []GetOutcome{s.Plain, s.Disjoint} {
			if o.Forged != 0 {
				t.Fatalf("%v: %d gets returned a forged sequence", s.Malicious, o.Forged)
			}
			if o.Value != o.Right+o.Stale {
				t.Fatalf("%v: %+v: a value neither current nor stale", s.Malicious, o)
			}
		}
		if s.Disjoint.Success < 0.97 {
			t.Fatalf("%v: disjoint gets returned the current sequence %.3f of the time, want at least 97%%", s.Malicious, s.Disjoint.Success)
		}
	}
	if fo.Forged == 0 || fo.Refused == 0 || fo.Refused > fo.Forged {
		t.Fatalf("forged: %d lies told, %d records refused: want some refused, at most one per lie", fo.Forged, fo.Refused)
	}
	if fo.Plain.Stale+fo.Disjoint.Stale != 0 {
		t.Fatalf("forged: stale gets %d/%d with no stale copy served", fo.Plain.Stale, fo.Disjoint.Stale)
	}
	if st.Refused != 0 || em.Refused != 0 {
		t.Fatalf("stale and empty answers are validly signed or absent: refused %d and %d, want 0", st.Refused, em.Refused)
	}
}

// Withholding forgers of plain values answer without values: RECORDS
// without records to GET, NODES to FIND_VALUE. A forger that does not hold
// the key still gives closer contacts; one that holds it gives none (an
// honest holder's answer carries none to withhold).
func TestPlainWithholdingForgersAnswerWithoutValues(t *testing.T) {
	sc := Scenario{Nodes: 100, Keys: 10, Lookups: 10, Seed: 2, Malicious: Malicious{{Forge: 0.3, ForgeAs: ForgeEmpty}}}
	e := advEngine(t, sc)
	ts, from := liars(e, forgeKind)
	byTransport := map[*advTransport]*simNode{}
	for _, sn := range e.live {
		byTransport[e.adv.ts[sn]] = sn
	}
	held, notHeld := 0, 0
	for _, tr := range ts {
		for _, key := range e.keys {
			holds := len(byTransport[tr].n.Store().Records(key, e.clk.Now(), nil)) > 0
			if holds {
				held++
			} else {
				notHeld++
			}
			for _, typ := range []wire.Type{wire.Get, wire.FindValue} {
				answers := ask(t, e, tr, typ, key, from)
				if len(answers) != 1 {
					t.Fatalf("%v: %d answers, want 1", typ, len(answers))
				}
				m := answers[0]
				want := map[wire.Type]wire.Type{wire.Get: wire.Records, wire.FindValue: wire.Nodes}[typ]
				if m.Type != want || len(m.Records) > 0 || len(m.Values) > 0 || (!holds && len(m.Contacts) == 0) {
					t.Fatalf("%v (key held: %v): answer %v with %d records, %d values, %d contacts: want %v without values", typ, holds, m.Type, len(m.Records), len(m.Values), len(m.Contacts), want)
				}
			}
		}
	}
	if held == 0 || notHeld == 0 {
		t.Fatalf("forgers hold %d and lack %d of the keys: want both cases", held, notHeld)
	}
}

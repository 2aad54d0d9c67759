package sim

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"
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
	for _, bad := range []string{"0.1", "drop", "drop=x", "sybil=0.1", "drop=1.5", "drop=0.5,forge=0.5", "drop=-0.1"} {
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

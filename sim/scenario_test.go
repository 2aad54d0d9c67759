package sim

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestScenarioFilesLoadAndValidate(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"small": false, "10k": false, "100k": false, "churn": false, "loss": false, "partition": false, "longtail": false}
	for _, f := range files {
		sc, err := LoadScenario(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if err := sc.Validate(); err != nil {
			t.Errorf("%s: %v", f, err)
		}
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		if sc.Name != name {
			t.Errorf("%s: name %q, want the file's name %q (plots are named after it)", f, sc.Name, name)
		}
		if _, ok := want[name]; ok {
			want[name] = true
		}
	}
	for name, found := range want {
		if !found {
			t.Errorf("testdata/%s.json is missing", name)
		}
	}
}

func TestZeroFieldsTakeTheDefaults(t *testing.T) {
	var sc Scenario
	if err := sc.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := DefaultScenario(); sc.Nodes != d.Nodes || sc.K != d.K || sc.Alpha != d.Alpha || sc.Latency != d.Latency ||
		sc.Lookups != d.Lookups || sc.JoinEvery != d.JoinEvery {
		t.Fatalf("validated zero scenario %+v differs from the defaults %+v", sc, d)
	}
	c := Scenario{Churn: &Churn{Leave: 0.1}, Partition: &Partition{Fraction: 0.2}}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Churn.For.D() != 30*time.Minute || c.Partition.At != c.ProbeEvery || c.Partition.For.D() != 10*time.Minute {
		t.Fatalf("churn and partition defaults not filled: %+v %+v", *c.Churn, *c.Partition)
	}
}

func TestBadOptionsAreRejectedNamingTheOption(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Scenario)
		want string
	}{
		{"one node", func(s *Scenario) { s.Nodes = 1 }, "nodes = 1"},
		{"too many nodes", func(s *Scenario) { s.Nodes = MaxNodes + 1 }, "nodes ="},
		{"k too big", func(s *Scenario) { s.K = 33 }, "k = 33"},
		{"alpha above k", func(s *Scenario) { s.K, s.Alpha = 4, 5 }, "alpha = 5"},
		{"negative loss", func(s *Scenario) { s.Loss = -0.1 }, "loss"},
		{"loss of everything", func(s *Scenario) { s.Loss = 1 }, "loss"},
		{"too many seeds", func(s *Scenario) { s.Seeds = MaxSeeds + 1 }, "seeds"},
		{"negative stagger", func(s *Scenario) { s.JoinEvery = -1 }, "join_every"},
		{"huge value", func(s *Scenario) { s.ValueSize = 5000 }, "value_size"},
		{"probe more keys than stored", func(s *Scenario) { s.Keys, s.ProbeKeys = 10, 20 }, "probe_keys"},
		{"negative malicious share", func(s *Scenario) { s.Malicious = Malicious{{Drop: -0.1}} }, "drop = -0.1"},
		{"malicious majority", func(s *Scenario) { s.Malicious = Malicious{{}, {Forge: 0.5, Eclipse: 0.5}} }, "setting 1"},
		{"too many disjoint paths", func(s *Scenario) { s.DisjointPaths = 17 }, "disjoint_paths = 17"},
		{"malicious with churn", func(s *Scenario) { s.Malicious, s.Churn = Malicious{{Drop: 0.1}}, &Churn{Leave: 0.01} }, "cannot be combined"},
		{"unknown latency model", func(s *Scenario) { s.Latency = Latency{Model: "gauss"} }, "latency model \"gauss\""},
		{"uniform backwards", func(s *Scenario) { s.Latency = Latency{Model: "uniform", Min: 50, Max: 10} }, "MIN <= MAX"},
		{"longtail without median", func(s *Scenario) { s.Latency = Latency{Model: "longtail", Sigma: 1} }, "median"},
		{"churn too fast", func(s *Scenario) { s.Churn = &Churn{Leave: 2} }, "churn.leave = 2"},
		{"negative churn join", func(s *Scenario) { s.Churn = &Churn{Join: -1} }, "churn.join"},
		{"partition of nobody", func(s *Scenario) { s.Partition = &Partition{} }, "partition.fraction = 0"},
		{"partition of most", func(s *Scenario) { s.Partition = &Partition{Fraction: 0.7} }, "partition.fraction = 0.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var sc Scenario
			tc.mod(&sc)
			err := sc.Validate()
			if err == nil {
				t.Fatalf("accepted %+v", sc)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "must") {
				t.Fatalf("error %q does not name %q and what is allowed", err, tc.want)
			}
		})
	}
}

func TestParseLatency(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Latency
		bad  bool
	}{
		{in: "fixed:30ms", want: Latency{Model: "fixed", Fixed: Duration(30 * time.Millisecond)}},
		{in: "fixed:0s", want: Latency{Model: "fixed"}},
		{in: "uniform:10ms:60ms", want: Latency{Model: "uniform", Min: Duration(10 * time.Millisecond), Max: Duration(60 * time.Millisecond)}},
		{in: "longtail:50ms:0.8", want: Latency{Model: "longtail", Median: Duration(50 * time.Millisecond), Sigma: 0.8}},
		{in: "fixed", bad: true},
		{in: "fixed:soon", bad: true},
		{in: "uniform:10ms", bad: true},
		{in: "uniform:60ms:10ms", bad: true},
		{in: "longtail:50ms", bad: true},
		{in: "longtail:50ms:9", bad: true},
		{in: "longtail:0s:0.5", bad: true},
		{in: "pareto:1:2", bad: true},
		{in: "fixed:1h", bad: true},
	} {
		got, err := ParseLatency(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("ParseLatency(%q) = %v, want an error", tc.in, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseLatency(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		if again, err := ParseLatency(got.String()); err != nil || again != got {
			t.Errorf("%q: String %q does not parse back: %+v, %v", tc.in, got.String(), again, err)
		}
	}
}

func TestScenarioJSONRoundTripsAndRejectsUnknownFields(t *testing.T) {
	sc := DefaultScenario()
	sc.Churn = &Churn{Leave: 0.01, Join: 0.02, For: Duration(time.Hour)}
	sc.Partition = &Partition{Fraction: 0.25, At: Duration(time.Minute), For: Duration(5 * time.Minute), After: Duration(2 * time.Minute)}
	b, err := json.Marshal(sc)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseScenario(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := json.Marshal(got)
	if string(b) != string(b2) {
		t.Fatalf("round trip changed the scenario:\n%s\n%s", b, b2)
	}
	for _, bad := range []string{
		`{"nodez": 10}`,
		`{"nodes": 10} {"nodes": 11}`,
		`{"join_every": 10}`,
		`{"join_every": "soon"}`,
	} {
		if _, err := ParseScenario([]byte(bad)); err == nil {
			t.Errorf("ParseScenario(%s) accepted it", bad)
		}
	}
}

package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// small is a quick scenario: a few hundred nodes, all phases but churn and
// partition.
func small(nodes int) Scenario {
	return Scenario{Nodes: nodes, Keys: 200, Lookups: 2000, Seed: 1}
}

func run(t *testing.T, sc Scenario) *Report {
	t.Helper()
	r, err := Run(context.Background(), sc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func jsonOf(t *testing.T, r *Report) []byte {
	t.Helper()
	b, err := r.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The simulator's first promise: the seed determines the run. Two runs of a
// scenario with every phase, churn and partition included, give the same
// JSON, byte for byte.
func TestSameSeedSameReport(t *testing.T) {
	sc := small(300)
	if raceEnabled {
		sc = small(50) // see raceEnabled
		sc.Lookups = 300
	}
	sc.Latency = Latency{Model: "longtail", Median: Duration(40 * time.Millisecond), Sigma: 0.8}
	sc.Loss = 0.01
	sc.ProbeKeys = 50
	sc.Churn = &Churn{Leave: 0.05, Join: 0.05, For: Duration(4 * time.Minute)}
	sc.Partition = &Partition{Fraction: 0.3, For: Duration(2 * time.Minute), After: Duration(2 * time.Minute)}
	a, b := jsonOf(t, run(t, sc)), jsonOf(t, run(t, sc))
	if !bytes.Equal(a, b) {
		t.Fatalf("two runs of the same scenario differ:\n%s\n---\n%s", a, b)
	}
	var r Report
	if err := json.Unmarshal(a, &r); err != nil {
		t.Fatal(err)
	}
	if r.Churn == nil || r.Churn.Left == 0 || r.Partition == nil || r.Partition.Minority == 0 || r.Network.Lost == 0 {
		t.Fatalf("the scenario did not exercise churn, partition and loss: %s", a)
	}
}

func TestDifferentSeedsDiffer(t *testing.T) {
	sc := small(200)
	if raceEnabled {
		sc = small(40)
		sc.Lookups = 200
	}
	a := run(t, sc)
	sc.Seed = 2
	b := run(t, sc)
	if a.Network == b.Network {
		t.Fatalf("seeds 1 and 2 sent exactly the same datagrams: %+v", a.Network)
	}
	ja, jb := jsonOf(t, a), jsonOf(t, b)
	if bytes.Equal(ja, jb) {
		t.Fatal("seeds 1 and 2 gave identical reports")
	}
}

// The Kademlia paper's basic claim: with no churn and no loss, every stored
// value is found, by every node. Every put reaches K nodes.
func TestLookupsSucceedWithoutChurn(t *testing.T) {
	sc := Scenario{Nodes: 1000, Keys: 500, Lookups: 10000, Seed: 3}
	if raceEnabled {
		sc = Scenario{Nodes: 100, Keys: 50, Lookups: 300, Seed: 3}
	}
	r := run(t, sc)
	l := r.Lookups
	if l.Lookups != sc.Lookups || l.Found != sc.Lookups || l.Success != 1 {
		t.Fatalf("found %d of %d (%d not found, %d timeouts, %d errors, %d wrong), want all",
			l.Found, l.Lookups, l.NotFound, l.Timeouts, l.Errors, l.Wrong)
	}
	if r.Join.Joined != sc.Nodes || r.Join.Failed != 0 {
		t.Fatalf("%d of %d nodes joined, %d failed", r.Join.Joined, sc.Nodes, r.Join.Failed)
	}
	if p := r.Put; p.Stored != sc.Keys || p.Replicas.Min != float64(r.Scenario.K) {
		t.Fatalf("puts: %d of %d stored, fewest replicas %v; want all on K=%d nodes", p.Stored, sc.Keys, p.Replicas.Min, r.Scenario.K)
	}
	if l.Rounds.N+l.Local != l.Found || l.LatencyMS.N != l.Rounds.N || l.Messages.Min < 1 {
		t.Fatalf("distributions do not cover the remote lookups: rounds n=%d latency n=%d local %d found %d",
			l.Rounds.N, l.LatencyMS.N, l.Local, l.Found)
	}
}

// The paper's scaling claim: lookups take O(log N) rounds. Across networks
// of growing size the mean rounds grow, and stay within log_K(N) + 1 (each
// round narrows the distance to the target by about log2(K) bits, and the
// last round is the node holding the value).
func TestRoundsGrowWithLogN(t *testing.T) {
	sizes := []int{250, 1000, 4000}
	k := 20
	if raceEnabled {
		// Smaller networks show the growth too when buckets are smaller.
		sizes, k = []int{32, 128, 512}, 4
	}
	var means []float64
	for _, n := range sizes {
		sc := Scenario{Nodes: n, K: k, Alpha: min(3, k), Keys: 100, Lookups: 2000, Seed: 4, ProbeKeys: 10}
		if raceEnabled {
			sc.Lookups = 300
		}
		r := run(t, sc)
		d := r.Lookups.Rounds
		bound := math.Log(float64(n))/math.Log(float64(k)) + 1
		t.Logf("%5d nodes: success %.4f, rounds mean %.3f p50 %v p99 %v max %v (bound %.2f); messages mean %.1f",
			n, r.Lookups.Success, d.Mean, d.P50, d.P99, d.Max, bound, r.Lookups.Messages.Mean)
		if r.Lookups.Success != 1 {
			t.Errorf("%d nodes: success %v, want 1", n, r.Lookups.Success)
		}
		if d.Mean > bound {
			t.Errorf("%d nodes: mean rounds %.3f above log_K(N)+1 = %.2f", n, d.Mean, bound)
		}
		if len(means) > 0 && d.Mean < means[len(means)-1] {
			t.Errorf("%d nodes: mean rounds %.3f fell from %.3f", n, d.Mean, means[len(means)-1])
		}
		means = append(means, d.Mean)
	}
	if means[len(means)-1] <= means[0] {
		t.Errorf("mean rounds did not grow from %d to %d nodes: %v", sizes[0], sizes[len(sizes)-1], means)
	}
}

// Without republishing, a key survives churn only while one of its K
// replicas stays. Under heavy churn the share of keys found falls, and
// every probe still reports.
func TestChurnLosesKeysAndKeepsReporting(t *testing.T) {
	sc := Scenario{Nodes: 400, K: 8, Keys: 200, Lookups: 200, Seed: 5, ProbeKeys: 200, ProbeEvery: Duration(2 * time.Minute),
		Churn: &Churn{Leave: 0.1, Join: 0.1, For: Duration(20 * time.Minute)}}
	sc.ReplicateInterval = Duration(-time.Second) // what churn does unopposed; see TestChurnWithReplicationLosesNothing
	if raceEnabled {
		sc.Nodes, sc.Keys, sc.ProbeKeys = 80, 40, 40
	}
	r := run(t, sc)
	c := r.Churn
	if c == nil || len(c.Probes) != 11 {
		t.Fatalf("churn report %+v: want 11 probes (0 to 20 minutes every 2)", c)
	}
	if c.Left == 0 || c.Joined == 0 {
		t.Fatalf("%d nodes left and %d joined: no churn happened", c.Left, c.Joined)
	}
	first, last := c.Probes[0], c.Probes[len(c.Probes)-1]
	for _, p := range c.Probes {
		if p.Keys != sc.ProbeKeys {
			t.Errorf("probe at %v looked up %d keys, want %d", p.At, p.Keys, sc.ProbeKeys)
		}
	}
	t.Logf("survival: first %.3f, last %.3f; %d left, %d joined", first.Share, last.Share, c.Left, c.Joined)
	if first.Share != 1 {
		t.Errorf("before churn %.3f of the keys were found, want all", first.Share)
	}
	if last.Share >= first.Share {
		t.Errorf("after 20 minutes at 10%% per minute with K=8, %.3f of the keys were still found: churn lost nothing", last.Share)
	}
	if r.FinalTables == nil || r.FinalTables.N != r.Nodes.Live {
		t.Errorf("final routing tables %+v do not cover the %d live nodes", r.FinalTables, r.Nodes.Live)
	}
}

// A partition cuts the minority off from most replicas: lookups from there
// fail more often while it lasts, and recover once it heals.
func TestPartitionHurtsTheMinorityUntilItHeals(t *testing.T) {
	sc := Scenario{Nodes: 400, K: 4, Alpha: 2, Keys: 200, Lookups: 200, Seed: 6, ProbeKeys: 200, ProbeEvery: Duration(time.Minute),
		Partition: &Partition{Fraction: 0.3, At: Duration(time.Minute), For: Duration(5 * time.Minute), After: Duration(5 * time.Minute)}}
	if raceEnabled {
		sc.Nodes, sc.Keys, sc.ProbeKeys = 120, 60, 60
	}
	r := run(t, sc)
	p := r.Partition
	if p == nil || p.Minority != int(math.Round(0.3*float64(sc.Nodes))) {
		t.Fatalf("partition report %+v: want %v nodes cut off", p, 0.3*float64(sc.Nodes))
	}
	t.Logf("before %.3f; during %.3f (minority %.3f, majority %.3f); after %.3f (minority %.3f)",
		p.Before.Share, p.During.Share, p.During.MinorityShare, p.During.MajorityShare, p.After.Share, p.After.MinorityShare)
	// A probe a minute from 0 to 11 minutes, both included: the split at
	// 1m, the heal at 6m.
	if p.Before.Probes != 1 || p.During.Probes != 5 || p.After.Probes != 6 {
		t.Fatalf("probes before/during/after: %d/%d/%d, want 1/5/6", p.Before.Probes, p.During.Probes, p.After.Probes)
	}
	if p.During.MinorityKeys == 0 || p.During.MinorityShare >= p.During.MajorityShare {
		t.Errorf("during the split the minority found %.3f of %d keys, the majority %.3f: the split made no difference",
			p.During.MinorityShare, p.During.MinorityKeys, p.During.MajorityShare)
	}
	if p.After.MinorityShare <= p.During.MinorityShare {
		t.Errorf("the minority found %.3f after the heal, %.3f during: no recovery", p.After.MinorityShare, p.During.MinorityShare)
	}
	if r.Network.Partitioned == 0 {
		t.Error("memnet dropped no datagram at the partition")
	}
}

// Ctrl-C must not lose the run: an interrupted run returns what it has,
// marked as such.
func TestInterruptedRunReportsWhatItHas(t *testing.T) {
	sc := small(100)
	if raceEnabled {
		sc = small(30)
	}
	sc.Lookups = 100_000
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var phases []string
	r, err := Run(ctx, sc, func(p Progress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
		if p.Phase == PhaseLookups {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if r == nil || !r.Interrupted || r.InterruptedIn != PhaseLookups {
		t.Fatalf("report %+v: want one marked interrupted in the lookups phase", r)
	}
	// Lookups still in flight are dropped, not counted as failures of the
	// network.
	if r.Lookups.Errors != 0 || r.Lookups.Found != r.Lookups.Lookups {
		t.Fatalf("lookups cut short by the interruption were counted: %+v", r.Lookups)
	}
	if r.Lookups.Lookups >= sc.Lookups || r.Join.Joined != sc.Nodes || r.Put.Stored != sc.Keys {
		t.Fatalf("partial report: %d lookups (of %d), %d joined, %d stored", r.Lookups.Lookups, sc.Lookups, r.Join.Joined, r.Put.Stored)
	}
	if len(r.Phases) != 3 || r.Phases[2].Name != PhaseLookups {
		t.Fatalf("phases %+v: want join, put and the interrupted lookups", r.Phases)
	}
	var text bytes.Buffer
	if err := r.WriteText(&text, true); err != nil || !bytes.Contains(text.Bytes(), []byte("INTERRUPTED")) {
		t.Fatalf("text report does not say it was interrupted (%v):\n%s", err, text.String())
	}
	if !bytes.Contains(jsonOf(t, r), []byte(`"interrupted": true`)) {
		t.Fatal("JSON report does not say it was interrupted")
	}
}

func TestReportJSONHoldsNoWallClockFigures(t *testing.T) {
	sc := small(50)
	sc.Lookups = 200
	r := run(t, sc)
	if r.Perf.Wall <= 0 || r.Perf.HeapPerNode <= 0 || r.Perf.LookupsPerSec <= 0 {
		t.Fatalf("perf figures missing: %+v", r.Perf)
	}
	var m map[string]any
	if err := json.Unmarshal(jsonOf(t, r), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["Perf"]; ok {
		t.Fatal("JSON has the Perf section")
	}
	for _, p := range m["phases"].([]any) {
		if _, ok := p.(map[string]any)["Wall"]; ok {
			t.Fatal("JSON has a phase's wall time")
		}
	}
	back, err := ReadReport(jsonOf(t, r))
	if err != nil || back.Lookups.Found != r.Lookups.Found || back.Scenario.Nodes != 50 {
		t.Fatalf("ReadReport: %+v, %v", back, err)
	}
}

func TestIntDist(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []int32
		want    Dist
		nbins   int
		binFrom []int64
	}{
		{name: "empty", in: nil, want: Dist{}},
		{name: "one", in: []int32{7}, want: Dist{N: 1, Mean: 7, Min: 7, P50: 7, P90: 7, P99: 7, Max: 7}, nbins: 1},
		{name: "ten", in: []int32{10, 1, 9, 2, 8, 3, 7, 4, 6, 5},
			want: Dist{N: 10, Mean: 5.5, Min: 1, P50: 5, P90: 9, P99: 10, Max: 10}, nbins: 10},
		{name: "gap", in: []int32{1, 1, 4},
			want: Dist{N: 3, Mean: 2, Min: 1, P50: 1, P90: 4, P99: 4, Max: 4}, nbins: 4, binFrom: []int64{1, 2, 3, 4}},
		{name: "wide", in: []int32{0, 1000},
			want: Dist{N: 2, Mean: 500, Min: 0, P50: 0, P90: 1000, P99: 1000, Max: 1000}, nbins: -40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := intDist(append([]int32(nil), tc.in...), true)
			hist := d.Hist
			d.Hist = nil
			if d.N != tc.want.N || d.Mean != tc.want.Mean || d.Min != tc.want.Min || d.P50 != tc.want.P50 ||
				d.P90 != tc.want.P90 || d.P99 != tc.want.P99 || d.Max != tc.want.Max {
				t.Fatalf("got %+v, want %+v", d, tc.want)
			}
			// A negative nbins means "about that many, at most".
			if n := len(hist); (tc.nbins >= 0 && n != tc.nbins) || (tc.nbins < 0 && (n > -tc.nbins || n < -tc.nbins*3/4)) {
				t.Fatalf("%d bins, want %d: %+v", n, tc.nbins, hist)
			}
			total := 0
			for i, b := range hist {
				total += b.Count
				if i > 0 && b.From != hist[i-1].To+1 {
					t.Fatalf("bins not contiguous: %+v", hist)
				}
				if tc.binFrom != nil && b.From != tc.binFrom[i] {
					t.Fatalf("bin %d from %d, want %d", i, b.From, tc.binFrom[i])
				}
			}
			if total != len(tc.in) {
				t.Fatalf("bins hold %d samples, want %d", total, len(tc.in))
			}
		})
	}
}

// Percentiles are nearest-rank: checked against a plain count of samples at
// or below each answer.
func TestPercentilesMatchACount(t *testing.T) {
	s := make([]int32, 0, 997)
	for i := range 997 {
		s = append(s, int32((i*7919)%1009))
	}
	d := intDist(append([]int32(nil), s...), false)
	for _, c := range []struct {
		p float64
		v float64
	}{{50, d.P50}, {90, d.P90}, {99, d.P99}} {
		atOrBelow, below := 0, 0
		for _, v := range s {
			if float64(v) <= c.v {
				atOrBelow++
			}
			if float64(v) < c.v {
				below++
			}
		}
		// Nearest rank: the smallest value with at least p% of the
		// samples at or below it.
		need := int(math.Ceil(c.p / 100 * float64(len(s))))
		if atOrBelow < need || below >= need {
			t.Errorf("p%v = %v: %d samples at or below, %d below; want >= %d and < %d", c.p, c.v, atOrBelow, below, need, need)
		}
	}
}

func TestPlotsAreWrittenAndDecode(t *testing.T) {
	sc := small(120)
	if raceEnabled {
		sc = small(40)
		sc.Lookups = 200
	}
	sc.Name = "plot test"
	sc.ProbeKeys = 20
	sc.Churn = &Churn{Leave: 0.05, Join: 0.05, For: Duration(2 * time.Minute)}
	sc.Partition = &Partition{Fraction: 0.2, For: Duration(time.Minute), After: Duration(time.Minute)}
	r := run(t, sc)
	dir := t.TempDir()
	files, err := WritePlots(r, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"rounds", "latency", "tables", "survival", "partition"}
	if len(files) != len(want) {
		t.Fatalf("wrote %v, want %d plots", files, len(want))
	}
	for i, f := range files {
		if filepath.Base(f) != "sim-plot-test-"+want[i]+".png" {
			t.Errorf("plot %d is %s, want sim-plot-test-%s.png", i, filepath.Base(f), want[i])
		}
		decodePNG(t, f)
	}
	sc2 := small(30)
	sc2.Lookups = 100
	scaling := filepath.Join(dir, "scaling.png")
	if err := PlotScaling([]*Report{r, run(t, sc2)}, scaling); err != nil {
		t.Fatal(err)
	}
	decodePNG(t, scaling)
	if err := PlotScaling([]*Report{r}, scaling); err == nil {
		t.Error("PlotScaling drew one report")
	}
	latencies := filepath.Join(dir, "latencies.png")
	if err := PlotLatencies([]*Report{r, r}, latencies); err != nil {
		t.Fatal(err)
	}
	decodePNG(t, latencies)
}

func decodePNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 200 {
		t.Fatalf("%s is %v: too small to read", path, b)
	}
}

package sim

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/transport/memnet"
)

// Report is what a run measured. Everything in its JSON form is a function
// of the scenario alone (virtual times, counts, distributions); wall-clock
// and memory figures, which vary from run to run, live in Perf, which JSON
// leaves out. A Report is plain data, safe to read from any goroutine once
// Run has returned.
type Report struct {
	Scenario Scenario `json:"scenario"`
	// Interrupted is set when the run was stopped before its end;
	// InterruptedIn names the phase it was in. Figures of that phase cover
	// what had finished.
	Interrupted   bool   `json:"interrupted,omitempty"`
	InterruptedIn string `json:"interrupted_in,omitempty"`

	Join    JoinReport   `json:"join"`
	Put     PutReport    `json:"put"`
	Lookups LookupReport `json:"lookups"`
	// Tables is the routing table size of each live node after the join.
	Tables Dist `json:"tables"`
	// FinalTables is the same at the end of a run with churn or a
	// partition.
	FinalTables *Dist              `json:"final_tables,omitempty"`
	Churn       *ChurnReport       `json:"churn,omitempty"`
	Partition   *PartitionReport   `json:"partition,omitempty"`
	Waves       *WavesReport       `json:"waves,omitempty"`
	Maintenance *MaintenanceReport `json:"maintenance,omitempty"`
	// Adversary is an adversarial run's figures (adversary.go).
	Adversary *AdversaryReport `json:"adversary,omitempty"`
	// Replication adds up every node's replication counters, those that
	// left included.
	Replication core.ReplicationStats `json:"replication"`
	// Phases gives each phase's virtual duration and datagrams.
	Phases []PhaseReport `json:"phases"`
	// Network counts every datagram of the run.
	Network NetStats `json:"network"`
	// Nodes adds up the counters of every node, those that left included.
	Nodes NodeTotals `json:"nodes"`

	Perf Perf `json:"-"`
}

// JoinReport describes the join phase.
type JoinReport struct {
	Nodes   int      `json:"nodes"`
	Joined  int      `json:"joined"` // the first node included
	Failed  int      `json:"failed"`
	Virtual Duration `json:"virtual"` // from the first node's start to the last join's end
	// Lookups counts the lookups each join ran; DurationMS how long each
	// took, in virtual milliseconds.
	Lookups    Dist `json:"lookups"`
	DurationMS Dist `json:"duration_ms"`
}

// PutReport describes the put phase.
type PutReport struct {
	Keys   int `json:"keys"`
	Stored int `json:"stored"` // puts that stored on at least one node
	Failed int `json:"failed"`
	// Replicas is how many nodes accepted each stored key.
	Replicas Dist `json:"replicas"`
}

// LookupReport describes a set of Gets. Rounds, Messages and LatencyMS
// cover the lookups that found the value over the network (not those the
// asking node answered from its own store, counted in Local).
type LookupReport struct {
	Lookups   int     `json:"lookups"`
	Found     int     `json:"found"` // returned the value that was stored
	NotFound  int     `json:"not_found"`
	Timeouts  int     `json:"timeouts"` // no node asked answered
	Errors    int     `json:"errors"`   // any other error (e.g. the asking node left)
	Wrong     int     `json:"wrong"`    // returned values, none of them the stored one
	Local     int     `json:"local"`
	Success   float64 `json:"success"` // Found / Lookups
	Rounds    Dist    `json:"rounds"`
	Messages  Dist    `json:"messages"`
	LatencyMS Dist    `json:"latency_ms"`
}

// ChurnReport describes the churn phase.
type ChurnReport struct {
	Left       int     `json:"left"`
	Joined     int     `json:"joined"`
	JoinFailed int     `json:"join_failed"`
	Live       int     `json:"live"` // at the end
	Probes     []Probe `json:"probes"`
}

// PartitionReport describes the partition phase; Before, During and After
// add up the probes started in each period.
type PartitionReport struct {
	Minority int          `json:"minority"` // nodes cut off
	Before   ProbeSummary `json:"before"`
	During   ProbeSummary `json:"during"`
	After    ProbeSummary `json:"after"`
	Probes   []Probe      `json:"probes"`
}

// Probe is one look at the network during churn or a partition: each of the
// first ProbeKeys stored keys looked up from a random live node.
type Probe struct {
	At    Duration `json:"at"` // since the phase started
	Label string   `json:"label"`
	Live  int      `json:"live"` // live nodes when it started
	Keys  int      `json:"keys"`
	Found int      `json:"found"`
	Share float64  `json:"share"` // Found / Keys
	// Lookups started on the minority side of a partition.
	MinorityKeys  int     `json:"minority_keys,omitempty"`
	MinorityFound int     `json:"minority_found,omitempty"`
	LatencyP50MS  float64 `json:"latency_p50_ms"`
	LatencyP99MS  float64 `json:"latency_p99_ms"`
	// Why keys were not found (churn probes): no live node held them any
	// more; or some did, of which some were held by none of their K
	// closest; and lookups in which no node asked answered.
	LostNoReplica  int `json:"lost_no_replica,omitempty"`
	LostHeld       int `json:"lost_held,omitempty"`
	LostOffClosest int `json:"lost_off_closest,omitempty"`
	Unanswered     int `json:"unanswered,omitempty"`
}

// ProbeSummary adds up probes.
type ProbeSummary struct {
	Probes        int     `json:"probes"`
	Keys          int     `json:"keys"`
	Found         int     `json:"found"`
	Share         float64 `json:"share"`
	MinorityKeys  int     `json:"minority_keys"`
	MinorityFound int     `json:"minority_found"`
	MinorityShare float64 `json:"minority_share"`
	MajorityShare float64 `json:"majority_share"`
}

// PhaseReport is one phase's virtual duration and datagrams. Wall and CPU,
// left out of JSON, are how long it took to simulate: CPU counts every
// thread of the process, the garbage collector's included.
type PhaseReport struct {
	Name     string        `json:"name"`
	Virtual  Duration      `json:"virtual"`
	Datagram NetStats      `json:"datagrams"`
	Wall     time.Duration `json:"-"`
	CPU      time.Duration `json:"-"`
}

// NetStats mirrors memnet.Stats for JSON.
type NetStats struct {
	Sent        uint64 `json:"sent"`
	Delivered   uint64 `json:"delivered"`
	Lost        uint64 `json:"lost"`
	Partitioned uint64 `json:"partitioned"`
	Unreachable uint64 `json:"unreachable"`
	Closed      uint64 `json:"closed"`
	Duplicated  uint64 `json:"duplicated"`
	Oversize    uint64 `json:"oversize"`
	Overflow    uint64 `json:"overflow"`
}

// NodeTotals adds up core.Stats over nodes.
type NodeTotals struct {
	Live           int    `json:"live"`
	Requests       uint64 `json:"requests"`
	Responses      uint64 `json:"responses"`
	Retries        uint64 `json:"retries"`
	Timeouts       uint64 `json:"timeouts"`
	RPCFull        uint64 `json:"rpc_full"`
	Unmatched      uint64 `json:"unmatched"`
	Malformed      uint64 `json:"malformed"`
	StoresAccepted uint64 `json:"stores_accepted"`
	StoresRefused  uint64 `json:"stores_refused"`
	Refreshes      uint64 `json:"refreshes"`
	StoredValues   int    `json:"stored_values"` // held by live nodes at the end
}

// Perf is how the simulation itself performed: wall time and memory. It
// varies from run to run and machine to machine, so JSON leaves it out.
type Perf struct {
	Wall              time.Duration
	CPU               time.Duration // user and system, every thread (0 where not measured)
	Events            uint64        // clock events run
	LookupsPerSec     float64       // lookups phase: lookups per wall second
	LookupsPerCPUSec  float64       // lookups phase: lookups per CPU second
	HeapLiveAfterJoin uint64        // live heap after the join, after a collection
	HeapPerNode       float64       // HeapLiveAfterJoin / nodes
	HeapLiveEnd       uint64        // live heap as of the last collection at the end
	PeakHeapObjects   uint64        // largest heap (live and garbage) sampled
}

// Dist summarizes a set of samples. Percentiles are nearest-rank. Hist, for
// integer samples, has one bin per value when they span at most 64 values,
// and about 40 equal bins otherwise; CDF, for latencies, holds the 0th to
// 100th percentiles. The zero Dist holds no samples.
type Dist struct {
	N    int       `json:"n"`
	Mean float64   `json:"mean"`
	Min  float64   `json:"min"`
	P50  float64   `json:"p50"`
	P90  float64   `json:"p90"`
	P99  float64   `json:"p99"`
	Max  float64   `json:"max"`
	Hist []Bin     `json:"histogram,omitempty"`
	CDF  []float64 `json:"cdf,omitempty"`
}

// Bin counts the samples from From to To, both included.
type Bin struct {
	From  int64 `json:"from"`
	To    int64 `json:"to"`
	Count int   `json:"count"`
}

// rank returns the nearest-rank p-th percentile of sorted samples.
func rank[T int32 | int64](sorted []T, p float64) T {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// intDist summarizes integer samples, sorting them in place.
func intDist(s []int32, hist bool) Dist {
	if len(s) == 0 {
		return Dist{}
	}
	slices.Sort(s)
	var sum int64
	for _, v := range s {
		sum += int64(v)
	}
	d := Dist{
		N: len(s), Mean: float64(sum) / float64(len(s)),
		Min: float64(s[0]), Max: float64(s[len(s)-1]),
		P50: float64(rank(s, 50)), P90: float64(rank(s, 90)), P99: float64(rank(s, 99)),
	}
	if hist {
		lo, hi := int64(s[0]), int64(s[len(s)-1])
		width := int64(1)
		if hi-lo+1 > 64 {
			width = (hi - lo + 40) / 40
		}
		// Contiguous bins, empty ones included, so that a plot's x axis
		// has no jumps.
		d.Hist = make([]Bin, (hi-lo)/width+1)
		for i := range d.Hist {
			from := lo + int64(i)*width
			d.Hist[i] = Bin{From: from, To: from + width - 1}
		}
		for _, v := range s {
			d.Hist[(int64(v)-lo)/width].Count++
		}
	}
	return d
}

// latencyDist summarizes latencies given in microseconds, in milliseconds,
// sorting them in place.
func latencyDist(us []int32) Dist {
	if len(us) == 0 {
		return Dist{}
	}
	d := intDist(us, false)
	ms := func(v float64) float64 { return v / 1000 }
	d.Mean, d.Min, d.Max = ms(d.Mean), ms(d.Min), ms(d.Max)
	d.P50, d.P90, d.P99 = ms(d.P50), ms(d.P90), ms(d.P99)
	d.CDF = make([]float64, 101)
	for i := range d.CDF {
		d.CDF[i] = ms(float64(rank(us, float64(i))))
	}
	d.CDF[0] = d.Min
	return d
}

func sortProbes(ps []Probe) {
	slices.SortStableFunc(ps, func(a, b Probe) int { return int(a.At - b.At) })
}

// summarize adds up the probes of each period.
func (pr *PartitionReport) summarize() {
	pr.Before, pr.During, pr.After = ProbeSummary{}, ProbeSummary{}, ProbeSummary{}
	for _, p := range pr.Probes {
		s := &pr.After
		switch p.Label {
		case "before":
			s = &pr.Before
		case "during":
			s = &pr.During
		}
		s.Probes++
		s.Keys += p.Keys
		s.Found += p.Found
		s.MinorityKeys += p.MinorityKeys
		s.MinorityFound += p.MinorityFound
	}
	for _, s := range []*ProbeSummary{&pr.Before, &pr.During, &pr.After} {
		s.Share = share(s.Found, s.Keys)
		s.MinorityShare = share(s.MinorityFound, s.MinorityKeys)
		s.MajorityShare = share(s.Found-s.MinorityFound, s.Keys-s.MinorityKeys)
	}
}

func share(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func netStats(s memnet.Stats) NetStats {
	return NetStats{
		Sent: s.Sent, Delivered: s.Delivered, Lost: s.Lost, Partitioned: s.Partitioned,
		Unreachable: s.Unreachable, Closed: s.Closed, Duplicated: s.Duplicated,
		Oversize: s.Oversize, Overflow: s.Overflow,
	}
}

func (a NetStats) sub(b NetStats) NetStats {
	return NetStats{
		Sent: a.Sent - b.Sent, Delivered: a.Delivered - b.Delivered, Lost: a.Lost - b.Lost,
		Partitioned: a.Partitioned - b.Partitioned, Unreachable: a.Unreachable - b.Unreachable,
		Closed: a.Closed - b.Closed, Duplicated: a.Duplicated - b.Duplicated,
		Oversize: a.Oversize - b.Oversize, Overflow: a.Overflow - b.Overflow,
	}
}

func nodeTotals(s core.Stats, live int) NodeTotals {
	return NodeTotals{
		Live: live, Requests: s.Requests, Responses: s.Responses, Retries: s.Retries,
		Timeouts: s.Timeouts, RPCFull: s.RPCFull, Unmatched: s.Unmatched, Malformed: s.Malformed,
		StoresAccepted: s.StoresAccepted, StoresRefused: s.StoresRefused,
		Refreshes: s.Refreshes, StoredValues: s.StoredValues,
	}
}

// JSON returns the report as indented JSON, without Perf. The same scenario
// gives the same bytes.
func (r *Report) JSON() ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ReadReport decodes a report written by JSON (Perf is zero).
func ReadReport(data []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("report: %w", err)
	}
	return &r, nil
}

// WriteText writes the report as a table for people. withPerf adds the
// wall-clock and memory figures, which JSON leaves out.
func (r *Report) WriteText(w io.Writer, withPerf bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	p := func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) }
	sc := &r.Scenario
	title := "dht sim"
	if sc.Name != "" {
		title += " " + sc.Name
	}
	p("%s: %d nodes, k=%d, alpha=%d, seed %d, latency %v, loss %v, %d keys, %d lookups", title,
		sc.Nodes, sc.K, sc.Alpha, sc.Seed, sc.Latency, sc.Loss, sc.Keys, sc.Lookups)
	if r.Interrupted {
		p("INTERRUPTED during the %s phase: the figures cover what had finished", r.InterruptedIn)
	}
	p("")
	j := &r.Join
	p("join\t%d of %d nodes joined, %d failed, in %v virtual", j.Joined, j.Nodes, j.Failed, j.Virtual.D().Round(time.Millisecond))
	p("  lookups per join\t%s", j.Lookups.summary(""))
	p("  join time\t%s", j.DurationMS.summary("ms"))
	p("routing table contacts\t%s", r.Tables.summary(""))
	if r.FinalTables != nil {
		p("  at the end\t%s", r.FinalTables.summary(""))
	}
	p("put\t%d keys, %d stored, %d failed", r.Put.Keys, r.Put.Stored, r.Put.Failed)
	p("  replicas\t%s", r.Put.Replicas.summary(""))
	l := &r.Lookups
	p("lookups\t%d: %s found (%d not found, %d timed out, %d errors, %d wrong), %d answered locally",
		l.Lookups, pct(l.Success), l.NotFound, l.Timeouts, l.Errors, l.Wrong, l.Local)
	p("  rounds\t%s", l.Rounds.summary(""))
	p("  messages\t%s", l.Messages.summary(""))
	p("  latency\t%s", l.LatencyMS.summary("ms"))
	if len(l.Rounds.Hist) > 0 {
		var b strings.Builder
		for _, h := range l.Rounds.Hist {
			fmt.Fprintf(&b, "%d:%s ", h.From, pct(share(h.Count, l.Rounds.N)))
		}
		p("  rounds histogram\t%s", strings.TrimSpace(b.String()))
	}
	if c := r.Churn; c != nil {
		p("churn\t%d left, %d joined (%d failed to join), %d live at the end", c.Left, c.Joined, c.JoinFailed, c.Live)
		for _, q := range c.Probes {
			line := fmt.Sprintf("  at %v\t%d live: %d/%d keys found (%s), latency p50 %.0fms p99 %.0fms",
				q.At, q.Live, q.Found, q.Keys, pct(q.Share), q.LatencyP50MS, q.LatencyP99MS)
			if q.Found < q.Keys {
				line += fmt.Sprintf("; lost: %d with no live replica, %d held (%d by none of their %d closest), %d lookups asked only departed nodes",
					q.LostNoReplica, q.LostHeld, q.LostOffClosest, sc.K, q.Unanswered)
			}
			p("%s", line)
		}
	}
	if pt := r.Partition; pt != nil {
		s := sc.Partition
		p("partition\t%d nodes cut off at %v for %v, probed %v after the heal", pt.Minority, s.At, s.For, s.After)
		for _, x := range []struct {
			name string
			s    ProbeSummary
		}{{"before", pt.Before}, {"during", pt.During}, {"after", pt.After}} {
			if x.s.Probes == 0 {
				continue
			}
			line := fmt.Sprintf("  %s\tprobes: %d, %s found", x.name, x.s.Probes, pct(x.s.Share))
			if x.s.MinorityKeys > 0 {
				line += fmt.Sprintf("; from the cut-off side %s, from the rest %s", pct(x.s.MinorityShare), pct(x.s.MajorityShare))
			}
			p("%s", line)
		}
	}
	r.writeMaintenance(p)
	r.writeAdversary(p) // adversary.go
	n := &r.Network
	p("network\t%d datagrams sent, %d delivered, %d lost, %d partitioned, %d unreachable, %d to closed nodes",
		n.Sent, n.Delivered, n.Lost, n.Partitioned, n.Unreachable, n.Closed)
	t := &r.Nodes
	p("nodes\t%d live; %d requests, %d responses, %d retries, %d timeouts, %d refused for lack of room, %d stores accepted, %d refresh lookups",
		t.Live, t.Requests, t.Responses, t.Retries, t.Timeouts, t.RPCFull, t.StoresAccepted, t.Refreshes)
	for _, ph := range r.Phases {
		p("  %s\t%v virtual, %d datagrams", ph.Name, ph.Virtual.D().Round(time.Millisecond), ph.Datagram.Sent)
	}
	if withPerf {
		r.perf(p)
	}
	return tw.Flush()
}

// WritePerf writes the wall-clock and memory figures of the run, those that
// JSON leaves out.
func (r *Report) WritePerf(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	r.perf(func(format string, a ...any) { fmt.Fprintf(tw, format+"\n", a...) })
	return tw.Flush()
}

func (r *Report) perf(p func(format string, a ...any)) {
	f := &r.Perf
	p("perf\t%v wall, %v CPU, %d events (%.0f per wall second)", f.Wall.Round(time.Millisecond), f.CPU.Round(time.Millisecond),
		f.Events, float64(f.Events)/max(f.Wall.Seconds(), 1e-9))
	for _, ph := range r.Phases {
		line := fmt.Sprintf("  %s\t%v wall, %v CPU", ph.Name, ph.Wall.Round(time.Millisecond), ph.CPU.Round(time.Millisecond))
		if ph.Name == PhaseLookups && f.LookupsPerSec > 0 {
			line += fmt.Sprintf(": %.0f lookups per wall second, %.0f per CPU second", f.LookupsPerSec, f.LookupsPerCPUSec)
		}
		p("%s", line)
	}
	join := "the join did not finish"
	if f.HeapLiveAfterJoin > 0 {
		join = fmt.Sprintf("%.1f KiB live heap per node after the join (%s in all)", f.HeapPerNode/1024, bytesIEC(f.HeapLiveAfterJoin))
	}
	p("  memory\t%s; %s live at the end, peak heap %s", join, bytesIEC(f.HeapLiveEnd), bytesIEC(f.PeakHeapObjects))
}

// summary formats a distribution on one line.
func (d Dist) summary(unit string) string {
	if d.N == 0 {
		return "no samples"
	}
	f := func(v float64) string { return fmt.Sprintf("%.4g%s", v, unit) }
	return fmt.Sprintf("mean %s  p50 %s  p90 %s  p99 %s  min %s  max %s  (n=%d)",
		f(d.Mean), f(d.P50), f(d.P90), f(d.P99), f(d.Min), f(d.Max), d.N)
}

func pct(x float64) string { return fmt.Sprintf("%.2f%%", 100*x) }

func bytesIEC(b uint64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
}

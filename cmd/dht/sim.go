package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/sim"
)

// simOptions are the flags of dht sim that are not part of the scenario.
type simOptions struct {
	scenario string
	json     bool
	plot     string
	compare  string
	progress progressMode
}

// simFlags makes dht sim's flag set, writing scenario options into sc. The
// returned function, called after parsing, attaches the churn and partition
// settings to sc when any of their flags was given.
func simFlags(sc *sim.Scenario, o *simOptions, stderr io.Writer) (*flag.FlagSet, func()) {
	fs := newFlags("sim", stderr)
	o.progress = progressMode{"auto"}
	fs.StringVar(&o.scenario, "scenario", "", "scenario file (JSON, see sim/testdata); flags given as well override it")
	fs.BoolVar(&o.json, "json", false, "print the report as JSON (without wall-clock figures, which go to stderr)")
	fs.StringVar(&o.plot, "plot", "", "write PNG plots into this directory (created if missing)")
	fs.StringVar(&o.compare, "compare", "", "comma-separated JSON reports: instead of simulating, plot them against each other into -plot DIR\n(PREFIX scaling.png: rounds against network size, when their sizes differ; PREFIX latency-compare.png: latency CDFs;\nPREFIX is sim- and the -name given, if any) and print a table")
	fs.Var(&o.progress, "progress", "auto (a bar on a terminal, a line every few seconds otherwise), bar, lines or none")

	fs.StringVar(&sc.Name, "name", sc.Name, "name of the run, used in reports and plot file names")
	fs.Var(intVar{&sc.Nodes, 2, sim.MaxNodes}, "nodes", fmt.Sprintf("nodes in the network, 2 to %d", sim.MaxNodes))
	fs.Var(intVar{&sc.K, 1, 32}, "k", "bucket size and replication factor, 1 to 32")
	fs.Var(intVar{&sc.Alpha, 1, 32}, "alpha", "lookup parallelism, 1 to k")
	fs.Uint64Var(&sc.Seed, "seed", sc.Seed, "seed of everything random in the run: same seed, same report")
	fs.Var(intVar{&sc.Seeds, 1, sim.MaxSeeds}, "seed-count", fmt.Sprintf("how many of the first nodes the others join through, 1 to %d", sim.MaxSeeds))
	fs.Var(durVar{&sc.JoinEvery, time.Nanosecond, time.Minute}, "join-every", "virtual time between two nodes starting to join")
	fs.Var(latencyVar{&sc.Latency}, "latency", "one-way delay: "+sim.LatencyForms)
	fs.Var(floatVar{&sc.Loss, 0, sim.MaxLoss, "a probability"}, "loss", "probability that a datagram is lost")
	fs.Var(intVar{&sc.Keys, 1, sim.MaxKeys}, "keys", "keys stored, each from a random node")
	fs.Var(intVar{&sc.ValueSize, 1, 1000}, "value-size", "bytes per stored value, 1 to 1000")
	fs.Var(intVar{&sc.Lookups, 1, sim.MaxLookups}, "lookups", "gets of random stored keys from random nodes")
	fs.Var(intVar{&sc.Concurrency, 1, sim.MaxConcurrency}, "concurrency", "puts or lookups in flight at once, network-wide")
	fs.Var(durVar{&sc.ProbeEvery, time.Second, sim.MaxPhase}, "probe-every", "virtual time between probes during churn or a partition")
	fs.Var(intVar{&sc.ProbeKeys, 1, sim.MaxProbeKeys}, "probe-keys", "stored keys each probe looks up (default 500, at most -keys)")
	fs.Var(maliciousVar{&sc.Malicious}, "malicious", "malicious nodes by kind, e.g. eclipse=0.2 or drop=0.1;drop=0.2 (settings run one after another; "+sim.MaliciousForms+")")
	fs.Var(intVar{&sc.DisjointPaths, 1, lookup.MaxPaths}, "disjoint-paths", "paths of the disjoint gets of a -malicious run (default 3)")

	ch := sc.Churn
	if ch == nil {
		ch = &sim.Churn{}
	}
	fs.Var(floatVar{&ch.Leave, 0, sim.MaxChurnRate, "a share of the nodes per virtual minute"}, "churn-leave", "churn: share of the nodes leaving per virtual minute (0.01 is 1%)")
	fs.Var(floatVar{&ch.Join, 0, sim.MaxChurnRate, "a share of the nodes per virtual minute"}, "churn-join", "churn: share of the nodes joining per virtual minute")
	fs.Var(durVar{&ch.For, time.Second, sim.MaxPhase}, "churn-for", "churn: how long it lasts in virtual time (default 30m)")
	pt := sc.Partition
	if pt == nil {
		pt = &sim.Partition{}
	}
	fs.Var(floatVar{&pt.Fraction, 0, 0.5, "a share of the nodes"}, "partition", "partition: share of the nodes cut off from the rest, up to 0.5")
	fs.Var(durVar{&pt.At, time.Second, sim.MaxPhase}, "partition-at", "partition: when the split happens, from the phase start (default one probe interval)")
	fs.Var(durVar{&pt.For, time.Second, sim.MaxPhase}, "partition-for", "partition: how long the split lasts (default 10m)")
	fs.Var(durVar{&pt.After, time.Second, sim.MaxPhase}, "partition-after", "partition: how long to keep probing after the heal (default 10m)")

	attach := func() {
		fs.Visit(func(f *flag.Flag) {
			switch {
			case strings.HasPrefix(f.Name, "churn-"):
				sc.Churn = ch
			case strings.HasPrefix(f.Name, "partition"):
				sc.Partition = pt
			}
		})
	}
	return fs, attach
}

// scenarioFlag names the flag that sets a scenario option named in a
// sim.Scenario validation error.
var scenarioFlag = map[string]string{
	"join_every": "join-every", "value_size": "value-size", "probe_every": "probe-every",
	"probe_keys": "probe-keys", "churn.leave": "churn-leave", "churn.join": "churn-join",
	"churn.duration": "churn-for", "partition.fraction": "partition", "partition.at": "partition-at",
	"partition.duration": "partition-for", "partition.after": "partition-after",
}

func runSim(args []string, stdout, stderr io.Writer) int {
	var o simOptions
	sc := sim.DefaultScenario()
	// Its default depends on -keys: Validate fills it in.
	sc.ProbeKeys = 0
	fs, attach := simFlags(&sc, &o, stderr)
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !noArgs(fs, stderr) {
		return exitFailure
	}
	attach()
	if o.compare != "" {
		return runCompare(o, sc.Name, stdout, stderr)
	}
	if o.scenario != "" {
		// The file first, then the flags again over it: flags win.
		var err error
		if sc, err = sim.LoadScenario(o.scenario); err != nil {
			fmt.Fprintf(stderr, "dht sim: -scenario: %v\n", err)
			return exitFailure
		}
		var again simOptions
		fs2, attach2 := simFlags(&sc, &again, io.Discard)
		if err := fs2.Parse(args); err != nil {
			return exitFailure // cannot happen: the same arguments parsed above
		}
		attach2()
	}
	if err := sc.Validate(); err != nil {
		name, _, _ := strings.Cut(err.Error(), " ")
		flagName := name
		if f, ok := scenarioFlag[name]; ok {
			flagName = f
		}
		fmt.Fprintf(stderr, "dht sim: invalid scenario: %v (flag -%s)\n", err, flagName)
		return exitFailure
	}
	if o.plot != "" {
		if err := os.MkdirAll(o.plot, 0o755); err != nil {
			fmt.Fprintf(stderr, "dht sim: -plot: %v\n", err)
			return exitFailure
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	prog := newSimProgress(o.progress.v, stderr)
	r, err := sim.Run(ctx, sc, prog.update)
	prog.done(r != nil && r.Interrupted)
	if r == nil {
		fmt.Fprintf(stderr, "dht sim: %v\n", err)
		return exitFailure
	}
	code := exitOK
	switch {
	case r.Interrupted:
		fmt.Fprintf(stderr, "dht sim: interrupted during the %s phase; the report covers what had finished\n", r.InterruptedIn)
		code = exitFailure
	case err != nil:
		fmt.Fprintf(stderr, "dht sim: %v\n", err)
		code = exitFailure
	}
	if o.json {
		b, jerr := r.JSON()
		if jerr != nil {
			fmt.Fprintf(stderr, "dht sim: %v\n", jerr)
			return exitFailure
		}
		stdout.Write(b)
		r.WritePerf(stderr)
	} else if werr := r.WriteText(stdout, true); werr != nil {
		fmt.Fprintf(stderr, "dht sim: %v\n", werr)
		return exitFailure
	}
	if o.plot != "" {
		files, perr := sim.WritePlots(r, o.plot)
		for _, f := range files {
			fmt.Fprintf(stderr, "dht sim: wrote %s\n", f)
		}
		if perr != nil {
			fmt.Fprintf(stderr, "dht sim: plots: %v\n", perr)
			code = exitFailure
		}
	}
	return code
}

// runCompare plots saved JSON reports against each other; name, from
// -name, goes into the plot file names as in a run's plots.
func runCompare(o simOptions, name string, stdout, stderr io.Writer) int {
	if o.plot == "" {
		fmt.Fprintln(stderr, "dht sim: flag -compare needs -plot DIR to write the plots into")
		return exitFailure
	}
	var reports []*sim.Report
	sizes := map[int]bool{}
	for _, path := range strings.Split(o.compare, ",") {
		path = strings.TrimSpace(path)
		data, err := os.ReadFile(path)
		if err == nil {
			var r *sim.Report
			if r, err = sim.ReadReport(data); err == nil {
				reports = append(reports, r)
				sizes[r.Scenario.Nodes] = true
				continue
			}
		}
		fmt.Fprintf(stderr, "dht sim: -compare: %s: %v\n", path, err)
		return exitFailure
	}
	if err := os.MkdirAll(o.plot, 0o755); err != nil {
		fmt.Fprintf(stderr, "dht sim: -plot: %v\n", err)
		return exitFailure
	}
	prefix := filepath.Join(o.plot, sim.PlotPrefix(&sim.Report{Scenario: sim.Scenario{Name: name}}))
	var files []string
	if len(sizes) == len(reports) && len(reports) > 1 {
		path := prefix + "scaling.png"
		if err := sim.PlotScaling(reports, path); err != nil {
			fmt.Fprintf(stderr, "dht sim: -compare: %v\n", err)
			return exitFailure
		}
		files = append(files, path)
	} else {
		fmt.Fprintln(stderr, "dht sim: -compare: no rounds-against-size plot: two reports have the same number of nodes")
	}
	path := prefix + "latency-compare.png"
	if err := sim.PlotLatencies(reports, path); err != nil {
		fmt.Fprintf(stderr, "dht sim: -compare: %v\n", err)
		return exitFailure
	}
	files = append(files, path)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "nodes\tname\tlatency\tloss\tlookups\tsuccess\tmean rounds\tp50\tp90\tp99\tmax\tmessages\tlatency p50\tp90\tp99")
	for _, r := range reports {
		l, sc := &r.Lookups, &r.Scenario
		fmt.Fprintf(tw, "%d\t%s\t%v\t%v\t%d\t%.2f%%\t%.2f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%.0fms\t%.0fms\t%.0fms\n",
			sc.Nodes, sc.Name, sc.Latency, sc.Loss, l.Lookups, 100*l.Success,
			l.Rounds.Mean, l.Rounds.P50, l.Rounds.P90, l.Rounds.P99, l.Rounds.Max, l.Messages.Mean,
			l.LatencyMS.P50, l.LatencyMS.P90, l.LatencyMS.P99)
	}
	tw.Flush()
	for _, f := range files {
		fmt.Fprintf(stderr, "dht sim: wrote %s\n", f)
	}
	return exitOK
}

// simProgress shows a run's progress on stderr: a bar per phase on a
// terminal, or a line every few seconds.
type simProgress struct {
	w     io.Writer
	mode  string
	phase string
	bar   *progressbar.ProgressBar
	last  time.Time
	start time.Time
}

func newSimProgress(mode string, w io.Writer) *simProgress {
	if mode == "auto" {
		mode = "lines"
		if isTerminal(w) {
			mode = "bar"
		}
	}
	return &simProgress{w: w, mode: mode, start: time.Now()}
}

func (p *simProgress) update(pr sim.Progress) {
	switch p.mode {
	case "bar":
		if pr.Phase != p.phase {
			if p.bar != nil {
				p.bar.Finish()
				fmt.Fprintln(p.w)
			}
			p.phase = pr.Phase
			p.bar = progressbar.NewOptions(max(pr.Total, 1),
				progressbar.OptionSetWriter(p.w),
				progressbar.OptionSetDescription(fmt.Sprintf("%-9s", pr.Phase)),
				progressbar.OptionShowCount(),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionSetPredictTime(true),
			)
		}
		p.bar.Set(pr.Done)
	case "lines":
		now := time.Now()
		if pr.Phase == p.phase && now.Sub(p.last) < 5*time.Second {
			return
		}
		p.phase, p.last = pr.Phase, now
		fmt.Fprintf(p.w, "dht sim: %6.1fs %-9s %d/%d (virtual time %v)\n",
			now.Sub(p.start).Seconds(), pr.Phase, pr.Done, pr.Total, pr.Virtual.Round(time.Millisecond))
	}
}

// done ends the bar: full at the end of a run, where it stood when
// interrupted.
func (p *simProgress) done(interrupted bool) {
	if p.bar != nil {
		if interrupted {
			p.bar.Exit()
		} else {
			p.bar.Finish()
		}
		fmt.Fprintln(p.w)
		p.bar = nil
	}
}

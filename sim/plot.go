package sim

import (
	"errors"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Plot sizes: wide enough for a docs page, small enough for a PNG of a few
// tens of KiB.
const (
	plotW = 7 * vg.Inch
	plotH = 4 * vg.Inch
)

var (
	blue   = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
	orange = color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff}
	green  = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	red    = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
)

// PlotPrefix is the start of the names of the files WritePlots makes for r:
// "sim-" and, when the scenario has a name, that name and a dash.
func PlotPrefix(r *Report) string {
	name := strings.Map(func(c rune) rune {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
			return c
		}
		return '-'
	}, r.Scenario.Name)
	if name == "" {
		return "sim-"
	}
	return "sim-" + name + "-"
}

// WritePlots draws r as PNG files in dir (which must exist) and returns
// their paths: the rounds histogram (PREFIX rounds.png), the lookup latency
// CDF (latency.png), the routing table size histogram (tables.png) and, when
// the run had them, key survival under churn (survival.png) and lookup
// success around a partition (partition.png). PREFIX is PlotPrefix(r).
func WritePlots(r *Report, dir string) ([]string, error) {
	prefix := filepath.Join(dir, PlotPrefix(r))
	type job struct {
		name string
		draw func() (*plot.Plot, error)
	}
	jobs := []job{
		{"rounds.png", func() (*plot.Plot, error) { return roundsPlot(r) }},
		{"latency.png", func() (*plot.Plot, error) { return latencyPlot(r) }},
		{"tables.png", func() (*plot.Plot, error) { return tablesPlot(r) }},
	}
	if r.Churn != nil {
		jobs = append(jobs, job{"survival.png", func() (*plot.Plot, error) { return survivalPlot(r) }})
	}
	if r.Partition != nil {
		jobs = append(jobs, job{"partition.png", func() (*plot.Plot, error) { return partitionPlot(r) }})
	}
	var files []string
	for _, j := range jobs {
		p, err := j.draw()
		if err != nil {
			return files, fmt.Errorf("plot %s: %w", j.name, err)
		}
		path := prefix + j.name
		if err := p.Save(plotW, plotH, path); err != nil {
			return files, err
		}
		files = append(files, path)
	}
	return files, nil
}

func subtitle(r *Report) string {
	sc := &r.Scenario
	s := fmt.Sprintf("%d nodes, k=%d, alpha=%d, latency %v", sc.Nodes, sc.K, sc.Alpha, sc.Latency)
	if sc.Loss > 0 {
		s += fmt.Sprintf(", loss %v", sc.Loss)
	}
	if r.Interrupted {
		s += " (interrupted)"
	}
	return s
}

// bars draws a histogram as labelled bars of percentages.
func bars(title, xlabel string, bins []Bin, total int) (*plot.Plot, error) {
	if total == 0 || len(bins) == 0 {
		return nil, errors.New("no samples")
	}
	vals := make(plotter.Values, len(bins))
	names := make([]string, len(bins))
	for i, b := range bins {
		vals[i] = 100 * float64(b.Count) / float64(total)
		names[i] = strconv.FormatInt(b.From, 10)
		if b.To != b.From {
			names[i] += "-" + strconv.FormatInt(b.To, 10)
		}
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "% of samples"
	p.Y.Min = 0
	w := vg.Points(math.Max(3, math.Min(60, 360/float64(len(bins)))))
	bc, err := plotter.NewBarChart(vals, w)
	if err != nil {
		return nil, err
	}
	bc.Color = blue
	bc.LineStyle.Width = 0
	p.Add(bc, plotter.NewGrid())
	p.NominalX(thinLabels(names)...)
	p.Y.Max = 1.1 * slices.Max(vals)
	return p, nil
}

// thinLabels blanks labels so that about a dozen stay readable.
func thinLabels(names []string) []string {
	step := (len(names) + 11) / 12
	if step <= 1 {
		return names
	}
	out := make([]string, len(names))
	for i := range names {
		if i%step == 0 {
			out[i] = names[i]
		}
	}
	return out
}

func roundsPlot(r *Report) (*plot.Plot, error) {
	d := r.Lookups.Rounds
	return bars(fmt.Sprintf("Rounds per lookup: mean %.2f, p50 %.0f, p99 %.0f\n%s", d.Mean, d.P50, d.P99, subtitle(r)),
		"rounds (hops) to the first node holding the value", d.Hist, d.N)
}

func tablesPlot(r *Report) (*plot.Plot, error) {
	d := r.Tables
	return bars(fmt.Sprintf("Routing table size after the join: mean %.0f contacts\n%s", d.Mean, subtitle(r)),
		"contacts in the routing table", d.Hist, d.N)
}

// cdfLine is a step-free CDF through the percentile points.
func cdfLine(cdf []float64) plotter.XYs {
	xys := make(plotter.XYs, len(cdf))
	for i, v := range cdf {
		xys[i] = plotter.XY{X: v, Y: float64(i) / float64(len(cdf)-1)}
	}
	return xys
}

func latencyPlot(r *Report) (*plot.Plot, error) {
	d := r.Lookups.LatencyMS
	if len(d.CDF) < 2 {
		return nil, errors.New("no samples")
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Lookup latency (virtual): p50 %.0fms, p90 %.0fms, p99 %.0fms\n%s", d.P50, d.P90, d.P99, subtitle(r))
	p.X.Label.Text = "latency (ms)"
	p.Y.Label.Text = "share of lookups done"
	p.Y.Min, p.Y.Max = 0, 1
	if d.Min > 0 && d.Max > 20*d.P50 {
		// A long tail squeezes the body of the curve into one corner on a
		// linear axis.
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.LogTicks{Prec: -1}
		p.X.Label.Text = "latency (ms, log scale)"
	}
	if _, isLog := p.X.Scale.(plot.LogScale); !isLog {
		p.X.Tick.Marker = plainTicks{}
	}
	l, err := plotter.NewLine(cdfLine(d.CDF))
	if err != nil {
		return nil, err
	}
	l.Color = blue
	l.Width = vg.Points(2)
	p.Add(l, plotter.NewGrid())
	return p, nil
}

// addLine draws xys on p as a line with points, in colour c, and gives it a
// legend entry.
func addLine(p *plot.Plot, xys plotter.XYs, c color.Color, dashed bool, label string) error {
	l, s, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color, s.Color = c, c
	l.Width = vg.Points(1.5)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	s.Radius = vg.Points(2)
	p.Add(l, s)
	p.Legend.Add(label, l, s)
	return nil
}

func survivalPlot(r *Report) (*plot.Plot, error) {
	c := r.Churn
	if len(c.Probes) == 0 {
		return nil, errors.New("no probes")
	}
	ch := r.Scenario.Churn
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Stored keys still found under churn (leave %.3g, join %.3g of the nodes per minute)\n%s",
		ch.Leave, ch.Join, subtitle(r))
	p.X.Label.Text = "virtual minutes since churn began"
	p.Y.Label.Text = "%"
	p.Y.Min, p.Y.Max = 0, 105
	found := make(plotter.XYs, len(c.Probes))
	live := make(plotter.XYs, len(c.Probes))
	for i, q := range c.Probes {
		x := q.At.D().Minutes()
		found[i] = plotter.XY{X: x, Y: 100 * q.Share}
		live[i] = plotter.XY{X: x, Y: 100 * float64(q.Live) / float64(r.Scenario.Nodes)}
	}
	p.Add(plotter.NewGrid())
	if err := addLine(p, found, blue, false, "keys found"); err != nil {
		return nil, err
	}
	if err := addLine(p, live, orange, true, "live nodes (% of the initial count)"); err != nil {
		return nil, err
	}
	return p, nil
}

func partitionPlot(r *Report) (*plot.Plot, error) {
	pr := r.Partition
	if len(pr.Probes) == 0 {
		return nil, errors.New("no probes")
	}
	ps := r.Scenario.Partition
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Lookups around a partition: %.0f%% cut off at %v, healed at %v\n%s",
		100*ps.Fraction, ps.At, ps.At+ps.For, subtitle(r))
	p.X.Label.Text = "virtual minutes since the phase began"
	p.Y.Label.Text = "% of keys found"
	p.Y.Min, p.Y.Max = 0, 105
	var all, minority, majority plotter.XYs
	for _, q := range pr.Probes {
		x := q.At.D().Minutes()
		all = append(all, plotter.XY{X: x, Y: 100 * q.Share})
		if q.MinorityKeys > 0 {
			minority = append(minority, plotter.XY{X: x, Y: 100 * share(q.MinorityFound, q.MinorityKeys)})
		}
		if q.Keys > q.MinorityKeys {
			majority = append(majority, plotter.XY{X: x, Y: 100 * share(q.Found-q.MinorityFound, q.Keys-q.MinorityKeys)})
		}
	}
	for _, s := range []struct {
		xys   plotter.XYs
		c     color.Color
		label string
	}{{all, blue, "all lookups"}, {majority, green, "from the majority side"}, {minority, red, "from the cut-off side"}} {
		if len(s.xys) == 0 {
			continue
		}
		if err := addLine(p, s.xys, s.c, false, s.label); err != nil {
			return nil, err
		}
	}
	p.Add(plotter.NewGrid())
	return p, nil
}

// PlotScaling draws how lookup rounds grow with the network's size across
// runs of different sizes (mean, median and 99th percentile against the node
// count on a log scale: logarithmic growth is a straight line) and saves it
// as a PNG at path.
func PlotScaling(reports []*Report, path string) error {
	if len(reports) < 2 {
		return errors.New("need at least two reports of different sizes")
	}
	rs := slices.Clone(reports)
	slices.SortFunc(rs, func(a, b *Report) int { return a.Scenario.Nodes - b.Scenario.Nodes })
	var mean, p50, p99 plotter.XYs
	for _, r := range rs {
		d := r.Lookups.Rounds
		if d.N == 0 {
			continue
		}
		x := float64(r.Scenario.Nodes)
		mean = append(mean, plotter.XY{X: x, Y: d.Mean})
		p50 = append(p50, plotter.XY{X: x, Y: d.P50})
		p99 = append(p99, plotter.XY{X: x, Y: d.P99})
	}
	if len(mean) < 2 {
		return errors.New("need at least two reports with lookups")
	}
	sc := rs[0].Scenario
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Lookup rounds against network size (k=%d, alpha=%d)", sc.K, sc.Alpha)
	p.X.Label.Text = "nodes (log scale)"
	p.Y.Label.Text = "rounds (hops)"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Tick.Marker = plainTicks{}
	p.Y.Min = 0
	for _, s := range []struct {
		xys    plotter.XYs
		c      color.Color
		label  string
		dashed bool
	}{{mean, blue, "mean", false}, {p50, green, "median", true}, {p99, red, "99th percentile", true}} {
		if err := addLine(p, s.xys, s.c, s.dashed, s.label); err != nil {
			return err
		}
	}
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	for _, q := range p99 {
		p.Y.Max = max(p.Y.Max, q.Y+1)
	}
	return p.Save(plotW, plotH, path)
}

// plainTicks are the default ticks labelled without trailing zeros.
type plainTicks struct{}

// Ticks implements plot.Ticker.
func (plainTicks) Ticks(min, max float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(min, max)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = strconv.FormatFloat(ts[i].Value, 'f', -1, 64)
		}
	}
	return ts
}

// PlotLatencies draws the lookup latency CDFs of several runs on one plot,
// each labelled with its scenario's name (or its size), and saves it as a
// PNG at path. The latency axis is logarithmic: runs differ by factors.
func PlotLatencies(reports []*Report, path string) error {
	p := plot.New()
	p.Title.Text = "Lookup latency (virtual), by run"
	p.X.Label.Text = "latency (ms, log scale)"
	p.Y.Label.Text = "share of lookups done"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Y.Min, p.Y.Max = 0, 1
	palette := []color.Color{blue, orange, green, red,
		color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff}}
	drawn := 0
	for i, r := range reports {
		cdf := r.Lookups.LatencyMS.CDF
		if len(cdf) < 2 || cdf[0] <= 0 {
			continue
		}
		l, err := plotter.NewLine(cdfLine(cdf))
		if err != nil {
			return err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(2)
		if i >= len(palette) {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l)
		label := r.Scenario.Name
		if label == "" {
			label = fmt.Sprintf("%d nodes", r.Scenario.Nodes)
		}
		p.Legend.Add(fmt.Sprintf("%s (%v, p50 %.0fms, p99 %.0fms)", label, r.Scenario.Latency, r.Lookups.LatencyMS.P50, r.Lookups.LatencyMS.P99), l)
		drawn++
	}
	if drawn == 0 {
		return errors.New("no report has lookup latencies above 0")
	}
	p.Add(plotter.NewGrid())
	// The top left is empty: no run has most lookups done that early.
	p.Legend.Top, p.Legend.Left = true, true
	return p.Save(plotW, plotH, path)
}

package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dhtkit/dht/wire"
)

// The targets. Reports print whether a run reached them; nothing
// asserts them, since timing depends on the machine.
const (
	TargetServeRatio     = 0.9
	TargetPutRate        = 15_000
	TargetGetRate        = 40_000
	TargetClusterP99     = 20 * time.Millisecond
	TargetIdleCPUPercent = 10
	TargetRSSPerNode     = 100 << 10
)

// WriteText writes the report as a readable table.
func (r *ServeReport) WriteText(w io.Writer) error {
	c := r.Config
	p := &printer{w: w}
	p.f("dht bench serve: %s keys of %d bytes; node and echo server on %d socket(s); %d client(s), %d requests in flight\n",
		commas(float64(c.Keys)), c.ValueSize, c.Sockets, c.Clients, c.Concurrency)
	if r.BestCase {
		p.f("best case: %d sender(s), one socket per client on 127.0.0.1, each heard from many times a second\n", r.Senders)
	} else {
		p.f("%s senders, each its own ID and 127.x.y.z address, taking turns within each client\n", commas(float64(r.Senders)))
	}
	p.f("%d round(s) of %v per server after %v warm-up; request %d bytes, response %d bytes\n",
		c.Rounds, c.Duration, c.Warmup, r.RequestSize, r.ResponseSize)
	if c.ReadOnly {
		p.f("requests marked READ_ONLY: the node leaves its routing table alone\n")
	}
	switch c.Records {
	case RecordsPlain:
		p.f("records: plain, asked for with GET\n")
	case RecordsSigned:
		p.f("records: signed (ed25519 envelopes, checked when stored, not on each read), asked for with GET\n")
	}
	p.machine(r.Machine)
	if r.Interrupted {
		p.f("INTERRUPTED: figures cover what ran before the interruption\n")
	}
	p.f("\n%5s  %-10s %12s %10s %10s %8s %6s %6s\n", "round", "server", "req/s", "p50", "p99", "bad", "late", "lost")
	row := func(m Measurement) {
		p.f("%5d  %-10s %12s %10v %10v %8d %6d %6d\n", m.Round, m.Server, commas(m.Rate),
			roundDur(m.Latency.P50), roundDur(m.Latency.P99), m.Counts.Bad(), m.Counts.Late, m.Counts.Lost)
	}
	for i := range max(len(r.Node), len(r.Echo)) {
		if i < len(r.Node) {
			row(r.Node[i])
		}
		if i < len(r.Echo) {
			row(r.Echo[i])
		}
	}
	p.f("%5s  %-10s %12s %10v %10v\n", "median", "node", commas(r.NodeRate), roundDur(r.NodeP50), roundDur(r.NodeP99))
	p.f("%5s  %-10s %12s %10v %10v\n", "median", "echo", commas(r.EchoRate), roundDur(r.EchoP50), roundDur(r.EchoP99))
	if r.EchoRate > 0 {
		p.f("\nnode/echo ratio %.3f (rounds: %s); target ≥ %.2f: %s\n", r.Ratio, floats(r.RoundRatios, 3), TargetServeRatio, met(r.Ratio >= TargetServeRatio))
	}
	if m := r.Naive; m != nil {
		p.f("naive echo (one net.UDPConn, for reference): %s req/s, p50 %v, p99 %v\n", commas(m.Rate), roundDur(m.Latency.P50), roundDur(m.Latency.P99))
	}
	request := r.Request
	if request == "" {
		request = wire.FindValue.String() // a report from before records
	}
	p.f("the node answered %s %s requests in all (warm-ups included); its routing table holds %s contacts\n",
		commas(float64(r.NodeServed)), request, commas(float64(r.NodeContacts)))
	var asked uint64
	for _, m := range append(r.Node, r.Echo...) {
		asked += m.Counts.Requests
	}
	if asked > 0 {
		p.f("the node sent the senders %s requests of its own (liveness pings), left unanswered\n", commas(float64(asked)))
	}
	return p.err
}

// WriteText writes the report as readable lines.
func (r *ClusterReport) WriteText(w io.Writer) error {
	c := r.Config
	p := &printer{w: w}
	p.f("dht bench cluster: %s nodes, %s ops, %d in flight, %d-byte values\n", commas(float64(c.Nodes)), commas(float64(c.Ops)), c.Concurrency, c.ValueSize)
	p.machine(r.Machine)
	if r.Interrupted {
		p.f("INTERRUPTED: figures cover what ran before the interruption\n")
	}
	p.f("\nstart: created %d nodes in %v, joined in %v (%d failed); mean routing table %.1f contacts\n",
		c.Nodes, roundDur(r.Create), roundDur(r.Join), r.JoinFailures, r.TableMean)
	target := c.Nodes == 200 && c.Concurrency == 64 && c.ValueSize == 100
	phase := func(name string, ph Phase, rate float64) {
		p.f("%s: %s done, %s ok in %v: %s/s; latency p50 %v, p99 %v, max %v; %.1f requests per %s\n", name, commas(float64(ph.Done)), commas(float64(ph.OK)),
			roundDur(ph.Elapsed), commas(ph.Rate), roundDur(ph.Latency.P50), roundDur(ph.Latency.P99), roundDur(ph.Latency.Max), ph.RequestsPerOp, name)
		if len(ph.Failures) > 0 {
			for _, k := range slices.Sorted(maps.Keys(ph.Failures)) {
				p.f("  failed %s: %s (e.g. %q)\n", k, commas(float64(ph.Failures[k])), ph.Examples[k])
			}
		}
		if target {
			p.f("  target ≥ %s/s: %s; p99 < %v: %s\n", commas(rate), met(ph.Rate >= rate), TargetClusterP99, met(ph.Latency.P99 < TargetClusterP99))
		}
	}
	if r.Put.Done > 0 || !r.Interrupted {
		phase("put", r.Put, TargetPutRate)
		p.f("  each value stored on %.1f nodes on average\n", r.StoredMean)
	}
	if r.Get.Done > 0 {
		phase("get", r.Get, TargetGetRate)
		p.f("  correct: %s of %s gets returned exactly the value put (%.2f%%); %d returned something else\n",
			commas(float64(r.Correct)), commas(float64(r.Get.Done)), 100*r.CorrectShare, r.Wrong)
		if target {
			p.f("  target 100%% correct: %s\n", met(r.Correct == r.Get.Done && r.Get.Done == c.Ops))
		}
	}
	t := r.Totals
	p.f("nodes in all: %s datagrams in, %s out; %s requests, %s retries, %s timeouts, %s refused for lack of room\n",
		commas(float64(t.PacketsIn)), commas(float64(t.PacketsOut)), commas(float64(t.Requests)), commas(float64(t.Retries)),
		commas(float64(t.Timeouts)), commas(float64(t.RPCFull)))
	return p.err
}

// WriteText writes the report as readable lines.
func (r *IdleReport) WriteText(w io.Writer) error {
	c := r.Config
	p := &printer{w: w}
	p.f("dht bench idle: %s nodes, one UDP socket each (batch %d), joined through %d seed(s)\n", commas(float64(c.Nodes)), c.Batch, c.Seeds)
	p.machine(r.Machine)
	p.f("open-file limit %d\n", r.FDLimit)
	if r.Interrupted {
		p.f("INTERRUPTED: figures cover what ran before the interruption\n")
	}
	p.f("\nstart-up: created in %v, joined in %v (%d failed): %v in all; mean routing table %.1f contacts\n",
		roundDur(r.Create), roundDur(r.Join), r.JoinFailures, roundDur(r.Startup), r.TableMean)
	if t := r.JoinTotals; t.Requests > 0 {
		p.f("  joining cost %s requests (%s retries, %s timeouts, %s refused for lack of room)\n",
			commas(float64(t.Requests)), commas(float64(t.Retries)), commas(float64(t.Timeouts)), commas(float64(t.RPCFull)))
	}
	if c.Values > 0 {
		p.f("values: %s puts (%d per node) in %v, %d failed; the nodes hold %s values\n",
			commas(float64(c.Values*c.Nodes)), c.Values, roundDur(r.Puts), r.PutFailures, commas(float64(r.StoredValues)))
	}
	if r.RSSAfterGC > 0 {
		p.f("memory: RSS %s before the nodes, %s after joining, %s after a GC\n", mib(float64(r.RSSBefore)), mib(float64(r.RSSAfterJoin)), mib(float64(r.RSSAfterGC)))
		p.f("  per node: %s RSS after GC (%s before it); Go heap %s, stacks %s; target < %s: %s\n",
			kib(r.RSSPerNode), kib(r.RSSPerNodeNoGC), kib(r.HeapPerNode), kib(r.StackPerNode), kib(TargetRSSPerNode), met(r.RSSPerNode < TargetRSSPerNode))
	}
	if r.IdleWall > 0 {
		refresh := "the nodes' default"
		if c.RefreshInterval > 0 {
			refresh = c.RefreshInterval.String()
		}
		replicate := "the nodes' default"
		if c.ReplicateInterval > 0 {
			replicate = c.ReplicateInterval.String()
		}
		p.f("idle: %.3f%% of one core (%v of CPU in %v); %s datagrams received, %s bucket refreshes (refresh interval %s, replication interval %s); target < %d%%: %s\n",
			r.IdleCPUPercent, roundDur(r.IdleCPU), roundDur(r.IdleWall), commas(float64(r.IdlePackets)), commas(float64(r.IdleRefreshes)),
			refresh, replicate, TargetIdleCPUPercent, met(r.IdleCPUPercent < TargetIdleCPUPercent))
	}
	return p.err
}

// printer writes formatted lines and keeps the first error.
type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *printer) machine(m Machine) {
	model := m.CPUModel
	if model == "" {
		model = "unknown CPU"
	}
	p.f("machine: %s, %d CPUs (GOMAXPROCS %d), %s memory, %s %s/%s", model, m.CPUs, m.GOMAXPROCS, gib(float64(m.MemoryBytes)), m.GoVersion, m.OS, m.Arch)
	if m.LoadAvg != "" {
		p.f("; load average at start %s", m.LoadAvg)
	}
	p.f("\n")
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// commas formats x rounded to a whole number with thousands separators.
func commas(x float64) string {
	s := strconv.FormatFloat(x, 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func floats(xs []float64, prec int) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', prec, 64)
	}
	return strings.Join(parts, ", ")
}

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }
func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
func gib(b float64) string { return fmt.Sprintf("%.1f GiB", b/(1<<30)) }

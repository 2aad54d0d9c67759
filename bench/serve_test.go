package bench

import (
	"bytes"
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dht/wire"
)

func smallServe() ServeConfig {
	return ServeConfig{
		Keys: 20, ValueSize: 64, Sockets: 2, Clients: 2, Concurrency: 8,
		Duration: 150 * time.Millisecond, Warmup: 30 * time.Millisecond, Rounds: 2,
		Timeout: time.Second, Seed: 3,
	}
}

func closeTo(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b)) }

func TestRunServeReportIsConsistent(t *testing.T) {
	cfg := smallServe()
	rep, err := RunServe(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Interrupted || len(rep.Node) != cfg.Rounds || len(rep.Echo) != cfg.Rounds || rep.Naive == nil {
		t.Fatalf("want %d node and echo rounds and a naive echo, got %d, %d, %v (interrupted %v)",
			cfg.Rounds, len(rep.Node), len(rep.Echo), rep.Naive != nil, rep.Interrupted)
	}
	if rep.RequestSize != 56 || rep.ResponseSize != 45+cfg.ValueSize {
		t.Errorf("sizes %d and %d, want 56 and %d", rep.RequestSize, rep.ResponseSize, 45+cfg.ValueSize)
	}
	var nodeOK uint64
	all := append(append([]Measurement{*rep.Naive}, rep.Node...), rep.Echo...)
	for _, m := range all {
		c := m.Counts
		if c.OK == 0 || c.Bad() != 0 || c.Late != 0 {
			t.Errorf("%s round %d: counts %+v: want answers, all correct", m.Server, m.Round, c)
		}
		if m.Latency.Count != c.OK {
			t.Errorf("%s round %d: %d latencies for %d answers", m.Server, m.Round, m.Latency.Count, c.OK)
		}
		if want := float64(c.OK) / m.Elapsed.Seconds(); !closeTo(m.Rate, want) {
			t.Errorf("%s round %d: rate %f, want OK/elapsed = %f", m.Server, m.Round, m.Rate, want)
		}
		if m.Elapsed < cfg.Duration {
			t.Errorf("%s round %d: measured %v, less than the %v asked for", m.Server, m.Round, m.Elapsed, cfg.Duration)
		}
		// The loop is closed: every request sent in the window answers an
		// answer or a loss in it, give or take the requests in flight at
		// either edge.
		if d := math.Abs(float64(c.Sent) - float64(c.OK+c.Lost)); d > float64(cfg.Concurrency) {
			t.Errorf("%s round %d: sent %d but %d answered or lost", m.Server, m.Round, c.Sent, c.OK+c.Lost)
		}
		if m.Server == "node" {
			nodeOK += c.OK
		}
		if m.Latency.P50 > m.Latency.P99 || m.Latency.P99 > m.Latency.Max {
			t.Errorf("%s round %d: quantiles out of order: %+v", m.Server, m.Round, m.Latency)
		}
	}
	if rep.NodeServed < nodeOK {
		t.Errorf("the node served %d requests, fewer than the %d correct answers counted", rep.NodeServed, nodeOK)
	}
	rates := func(ms []Measurement) []float64 {
		var xs []float64
		for _, m := range ms {
			xs = append(xs, m.Rate)
		}
		return xs
	}
	if rep.NodeRate != median(rates(rep.Node)) || rep.EchoRate != median(rates(rep.Echo)) {
		t.Errorf("rates %f and %f are not the medians of %v and %v", rep.NodeRate, rep.EchoRate, rates(rep.Node), rates(rep.Echo))
	}
	if !closeTo(rep.Ratio, rep.NodeRate/rep.EchoRate) {
		t.Errorf("ratio %f, want %f / %f", rep.Ratio, rep.NodeRate, rep.EchoRate)
	}
	for i, r := range rep.RoundRatios {
		if !closeTo(r, rep.Node[i].Rate/rep.Echo[i].Rate) {
			t.Errorf("round %d ratio %f, want %f / %f", i+1, r, rep.Node[i].Rate, rep.Echo[i].Rate)
		}
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node/echo ratio", "median  node", "naive echo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
}

// cancelOn is a progress writer that cancels a run when a line contains
// word: an interruption at a known point.
type cancelOn struct {
	mu     sync.Mutex
	word   string
	cancel context.CancelFunc
}

func (c *cancelOn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if bytes.Contains(p, []byte(c.word)) {
		c.cancel()
	}
	return len(p), nil
}

func TestRunServeInterruptedReturnsWhatItMeasured(t *testing.T) {
	ctx, cancel := context.WithCancel(testCtx(t))
	defer cancel()
	cfg := smallServe()
	cfg.Rounds = 3
	cfg.Progress = &cancelOn{word: "round 1 node", cancel: cancel}
	rep, err := RunServe(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Interrupted || len(rep.Node) != 1 || len(rep.Echo) != 0 || rep.Naive != nil {
		t.Fatalf("interrupted after the first measurement: got interrupted=%v, %d node, %d echo, naive %v",
			rep.Interrupted, len(rep.Node), len(rep.Echo), rep.Naive != nil)
	}
	if rep.NodeRate != rep.Node[0].Rate || rep.Ratio != 0 {
		t.Fatalf("node rate %f (measured %f), ratio %f without an echo rate", rep.NodeRate, rep.Node[0].Rate, rep.Ratio)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "INTERRUPTED") {
		t.Fatalf("text report does not say it was interrupted:\n%s", out.String())
	}
}

func TestServeConfigRejectsNonsenseNamingTheField(t *testing.T) {
	cases := []struct {
		change func(c *ServeConfig)
		field  string
	}{
		{func(c *ServeConfig) { c.Keys = -1 }, "Keys"},
		{func(c *ServeConfig) { c.Keys = MaxServeKeys + 1 }, "Keys"},
		{func(c *ServeConfig) { c.ValueSize = wire.MaxValueSize + 1 }, "ValueSize"},
		{func(c *ServeConfig) { c.Sockets = 65 }, "Sockets"},
		{func(c *ServeConfig) { c.Clients = MaxClients + 1 }, "Clients"},
		{func(c *ServeConfig) { c.Clients, c.Concurrency = 8, 4 }, "Concurrency"},
		{func(c *ServeConfig) { c.Senders = 2 }, "Senders"},
		{func(c *ServeConfig) { c.Senders = MaxSenders + 1 }, "Senders"},
		{func(c *ServeConfig) { c.Duration = -time.Second }, "Duration"},
		{func(c *ServeConfig) { c.Warmup = -time.Second }, "Warmup"},
		{func(c *ServeConfig) { c.Rounds = MaxRounds + 1 }, "Rounds"},
		{func(c *ServeConfig) { c.Timeout = time.Microsecond }, "Timeout"},
	}
	for _, tc := range cases {
		cfg := DefaultServeConfig()
		tc.change(&cfg)
		_, err := RunServe(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "ServeConfig."+tc.field) {
			t.Errorf("%s: error %v, want one naming ServeConfig.%s", tc.field, err, tc.field)
		}
	}
	var zero ServeConfig
	if err := zero.validate(); err != nil {
		t.Fatalf("the zero config takes the defaults, but: %v", err)
	}
	d := DefaultServeConfig()
	d.Warmup = 0 // the one field whose zero is a choice
	if zero != d {
		t.Fatalf("zero config became %+v, want the defaults %+v", zero, d)
	}
}

func TestMedian(t *testing.T) {
	cases := []struct {
		xs   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{1, 1, 100}, 1},
	}
	for _, tc := range cases {
		in := append([]float64(nil), tc.xs...)
		if got := median(tc.xs); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.xs, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.xs[i] {
				t.Errorf("median reordered its argument: %v", tc.xs)
			}
		}
	}
}

func TestEchoHandlerRepliesWithTheRequestPaddedToTheNodesAnswerSize(t *testing.T) {
	size := valuesLen(100)
	e := newEchoHandler(size)
	req := bytes.Repeat([]byte{7}, reqLen)
	var b, b2 bytesBatch
	e.HandlePacket(req, testAddr, &b)
	if len(b.got) != size || !bytes.Equal(b.got[:reqLen], req) || !bytes.Equal(b.got[reqLen:], make([]byte, size-reqLen)) {
		t.Fatalf("echo of %d bytes: % x", len(b.got), b.got)
	}
	short := newEchoHandler(20)
	short.HandlePacket(req, testAddr, &b2)
	if !bytes.Equal(b2.got, req[:20]) {
		t.Fatalf("echo cut to 20 bytes: % x", b2.got)
	}
	if a := testing.AllocsPerRun(1000, func() { e.HandlePacket(req, testAddr, &b) }); a != 0 {
		t.Fatalf("echo allocates %.1f times per datagram", a)
	}
}

// With many senders the node's routing table fills with contacts taken
// from them (it keeps up to K per bucket), which the best case's handful
// of senders cannot do: the report shows which the figures come from.
func TestRunServeWithManySendersFillsTheNodesRoutingTable(t *testing.T) {
	cfg := smallServe()
	cfg.Rounds, cfg.SkipNaive = 1, true
	best, err := RunServe(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Senders = 256
	many, err := RunServe(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !best.BestCase || best.Senders != cfg.Clients || best.NodeContacts > cfg.Clients {
		t.Errorf("best case: best_case %v, %d senders, %d contacts; want true, %d and at most %d", best.BestCase, best.Senders, best.NodeContacts, cfg.Clients, cfg.Clients)
	}
	// 256 random IDs fill about 20 × log2(256/20) + 20 ≈ 94 entries.
	if many.BestCase || many.Senders != 256 || many.NodeContacts < 60 {
		t.Errorf("256 senders: best_case %v, %d senders, %d contacts; want false, 256 and at least 60", many.BestCase, many.Senders, many.NodeContacts)
	}
	for _, m := range append(many.Node, many.Echo...) {
		if c := m.Counts; c.OK == 0 || c.Bad() != 0 || c.Late != 0 {
			t.Errorf("256 senders, %s: counts %+v: want answers, all correct", m.Server, c)
		}
	}
	var out bytes.Buffer
	if err := many.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "256 senders, each its own ID") {
		t.Errorf("text report does not say how many senders:\n%s", out.String())
	}
}

func TestManySendersBeyondTheFileLimitAreRefusedNamingIt(t *testing.T) {
	if err := checkSenderFDs(4096, 2, 4164); err != nil {
		t.Fatalf("4096 senders and 4 server sockets fit in 4164 descriptors with the reserve of 64: %v", err)
	}
	err := checkSenderFDs(4096, 2, 4163)
	if err == nil {
		t.Fatal("4096 senders accepted under a limit of 4163 file descriptors")
	}
	for _, want := range []string{"4096 senders", "limit is 4163", "at most 4095 senders", "ulimit -n"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// With Records plain or signed the load generator asks with GET and checks
// each RECORDS answer against the record stored (its envelope flag, its
// publisher, version and bytes): every answer of a correct node counts,
// the node's GET counter says it served them, and the sizes are those of
// the datagrams sent (a GET padded as nodes pad theirs; a signed envelope is
// 107 bytes larger than its value with an 8-byte salt).
func TestRunServeRecordsAsksWithGETAndChecksEachRecord(t *testing.T) {
	var sizes [2]int
	for i, recs := range []string{RecordsPlain, RecordsSigned} {
		cfg := smallServe()
		// 100-byte values, as dht bench serve's: a signed answer (285
		// bytes) is then over 3x an unpadded GET (85).
		cfg.Records, cfg.Rounds, cfg.SkipNaive, cfg.ValueSize = recs, 1, true, 100
		rep, err := RunServe(testCtx(t), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Request != "GET" || rep.RequestSize != wire.MinFindValueLen {
			t.Errorf("%s: request %s of %d bytes, want GET padded to %d", recs, rep.Request, rep.RequestSize, wire.MinFindValueLen)
		}
		for _, m := range append(rep.Node, rep.Echo...) {
			if c := m.Counts; c.OK == 0 || c.Bad() != 0 {
				t.Errorf("%s: %s counts %+v: want answers, all correct", recs, m.Server, c)
			}
		}
		if rep.NodeServed < rep.Node[0].Counts.OK {
			t.Errorf("%s: the node served %d GETs, fewer than the %d answers", recs, rep.NodeServed, rep.Node[0].Counts.OK)
		}
		sizes[i] = rep.ResponseSize
	}
	if d := sizes[1] - sizes[0]; d != 1+1+32+64+1+8 {
		t.Errorf("signed answers are %d bytes larger than plain ones, want 107", d)
	}
	bad := smallServe()
	bad.Records = "forged"
	if _, err := RunServe(testCtx(t), bad); err == nil || !strings.Contains(err.Error(), "Records") {
		t.Errorf("Records forged: %v", err)
	}
}

package metrics_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/metrics"
)

// scrape GETs url and returns each sample of the text format by its series
// as written ("name{label="value",...}"; labels in name order).
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("scrape: %s, %q: %s", resp.Status, resp.Header.Get("Content-Type"), body)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("sample %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func startNode(t *testing.T) *dht.Node {
	t.Helper()
	cfg := dht.DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	n, err := dht.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// Two nodes on 127.0.0.1 exchange real datagrams; the scraped metrics of
// both move with what they did.
func TestScrapeShowsRealTrafficBetweenTwoNodes(t *testing.T) {
	a, b := startNode(t), startNode(t)
	srvA := httptest.NewServer(metrics.Handler(metrics.NewCollector(a.Stats)))
	defer srvA.Close()
	srvB := httptest.NewServer(metrics.Handler(metrics.NewCollector(b.Stats)))
	defer srvB.Close()

	before := scrape(t, srvA.URL+"/metrics")
	for _, s := range []string{
		`dht_requests_sent_total{outcome="answered",type="PING"}`,
		`dht_request_duration_seconds_count{group="other"}`,
		`dht_lookups_started_total{kind="node"}`,
		`dht_store_refusals_total{reason="stale"}`,
		`dht_datagrams_dropped_total{reason="malformed"}`,
	} {
		if v, ok := before[s]; !ok || v != 0 {
			t.Fatalf("before any traffic, %s = %v (present %v), want a zero sample", s, v, ok)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Bootstrap(ctx, b.Addr().String()); err != nil {
		t.Fatal(err)
	}
	key := dht.Key("metrics-test")
	if _, err := a.Put(ctx, key, []byte("v2"), dht.WithVersion(2)); err != nil {
		t.Fatal(err)
	}
	// An older version is refused by b as stale (and kept by a itself,
	// which holds the newer one too, so the put fails).
	_, _ = a.Put(ctx, key, []byte("v1"), dht.WithVersion(1))
	if _, err := b.Get(ctx, key); err != nil {
		t.Fatal(err)
	}

	after := scrape(t, srvA.URL+"/metrics")
	atLeast := func(m map[string]float64, series string, min float64) {
		t.Helper()
		if m[series] < min {
			t.Errorf("%s = %v, want at least %v", series, m[series], min)
		}
	}
	atLeast(after, `dht_requests_sent_total{outcome="answered",type="PING"}`, 1)
	atLeast(after, `dht_requests_sent_total{outcome="answered",type="PUT"}`, 1)
	atLeast(after, `dht_requests_sent_total{outcome="refused",type="PUT"}`, 1)
	atLeast(after, `dht_request_errors_total{code="stale"}`, 1)
	atLeast(after, `dht_request_attempts_total{type="PING"}`, 1)
	atLeast(after, `dht_request_duration_seconds_count{group="other"}`, 1)
	atLeast(after, `dht_request_duration_seconds_count{group="store"}`, 2)
	atLeast(after, `dht_lookups_started_total{kind="node"}`, 1)
	atLeast(after, `dht_lookup_rounds_count{kind="node"}`, 1)
	atLeast(after, `dht_datagrams_sent_total`, 3)
	atLeast(after, `dht_datagrams_received_total`, 3)
	if c, inf := after[`dht_request_duration_seconds_count{group="other"}`], after[`dht_request_duration_seconds_bucket{group="other",le="+Inf"}`]; c != inf {
		t.Errorf("histogram count %v differs from its +Inf bucket %v", c, inf)
	}
	contacts := 0.0
	for s, v := range after {
		if strings.HasPrefix(s, "dht_routing_table_contacts{") {
			contacts += v
		}
	}
	if contacts != 1 {
		t.Errorf("a's buckets hold %v contacts, want 1 (b)", contacts)
	}
	if _, ok := after["go_goroutines"]; !ok {
		t.Error("no Go runtime metrics")
	}
	if _, ok := after["process_cpu_seconds_total"]; !ok && runtime.GOOS == "linux" {
		t.Error("no process metrics")
	}

	onB := scrape(t, srvB.URL+"/metrics")
	atLeast(onB, `dht_requests_served_total{type="PUT"}`, 2)
	atLeast(onB, `dht_stores_accepted_total`, 1)
	atLeast(onB, `dht_store_refusals_total{reason="stale"}`, 1)
	atLeast(onB, `dht_errors_sent_total{code="stale"}`, 1)
	atLeast(onB, `dht_stored_records`, 1)
	atLeast(onB, `dht_stored_bytes`, 2)
	atLeast(onB, `dht_lookups_started_total{kind="value"}`, 1)
}

// Every name, help text and unit passes client_golang's lint.
func TestMetricNamesPassLint(t *testing.T) {
	n := startNode(t)
	problems, err := testutil.CollectAndLint(metrics.NewCollector(n.Stats))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// What Collect sends matches what Describe promises, with no duplicate
// series: a pedantic registry checks both on every gather.
func TestCollectMatchesDescribe(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(metrics.NewCollector(startNode(t).Stats))
	if _, err := reg.Gather(); err != nil {
		t.Fatal(err)
	}
}

// The collector maps each field of Stats to its series: counters as they
// are, histograms with cumulative buckets.
func TestCollectorMapsStatsFields(t *testing.T) {
	lat := core.Histogram{Bounds: []float64{0.01, 0.1}, Counts: []uint64{2, 3, 1}, Count: 6, Sum: 0.5}
	st := dht.Stats{
		Malformed:     4,
		Sent:          map[string]core.RequestCounts{"GET": {Sent: 9, Answered: 5, Refused: 1, Timeouts: 2, Abandoned: 1}},
		StoreRefusals: map[string]uint64{"quota": 3},
		Latency:       map[string]core.Histogram{"lookup": lat},
		BucketSizes:   []int{0, 7},
		ForgedRecords: 2,
	}
	c := metrics.NewCollector(func() dht.Stats { return st })
	want := `
# HELP dht_store_refusals_total STORE, PUT and DELETE requests refused, by reason: too_large, store_full (MaxValues or MaxBytes), key_full (MaxPerKey or MaxBytesPerKey), quota (a source's, site's or publisher's share), bad_ttl, stale (not newer than the held version), busy (the disk cannot take it), too_many (too many values arriving in parts), invalid (a record that breaks its kind's rules), conflict (a compare-and-swap on another sequence), other.
# TYPE dht_store_refusals_total counter
dht_store_refusals_total{reason="bad_ttl"} 0
dht_store_refusals_total{reason="busy"} 0
dht_store_refusals_total{reason="conflict"} 0
dht_store_refusals_total{reason="invalid"} 0
dht_store_refusals_total{reason="key_full"} 0
dht_store_refusals_total{reason="other"} 0
dht_store_refusals_total{reason="quota"} 3
dht_store_refusals_total{reason="stale"} 0
dht_store_refusals_total{reason="store_full"} 0
dht_store_refusals_total{reason="too_large"} 0
dht_store_refusals_total{reason="too_many"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "dht_store_refusals_total"); err != nil {
		t.Error(err)
	}
	out, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, "dht_requests_sent_total", "dht_request_duration_seconds",
		"dht_datagrams_dropped_total", "dht_routing_table_contacts", "dht_request_attempts_total", "dht_forged_records_total")
	if err != nil {
		t.Fatal(err)
	}
	text := string(out)
	for _, s := range []string{
		`dht_requests_sent_total{outcome="answered",type="GET"} 5`,
		`dht_requests_sent_total{outcome="refused",type="GET"} 1`,
		`dht_requests_sent_total{outcome="timeout",type="GET"} 2`,
		`dht_requests_sent_total{outcome="abandoned",type="GET"} 1`,
		`dht_requests_sent_total{outcome="answered",type="PING"} 0`,
		`dht_request_attempts_total{type="GET"} 9`,
		`dht_request_duration_seconds_bucket{group="lookup",le="0.01"} 2`,
		`dht_request_duration_seconds_bucket{group="lookup",le="0.1"} 5`,
		`dht_request_duration_seconds_bucket{group="lookup",le="+Inf"} 6`,
		`dht_request_duration_seconds_sum{group="lookup"} 0.5`,
		`dht_request_duration_seconds_count{group="lookup"} 6`,
		`dht_datagrams_dropped_total{reason="malformed"} 4`,
		`dht_routing_table_contacts{bucket="0"} 0`,
		`dht_routing_table_contacts{bucket="1"} 7`,
		`dht_forged_records_total 2`,
	} {
		if !strings.Contains(text, s+"\n") {
			t.Errorf("missing %s in:\n%s", s, text)
		}
	}
}

// A private network's drops appear as dht_sealed_dropped_total by reason;
// an open network (nil SealedDropped) exports none.
func TestSealedDroppedByReason(t *testing.T) {
	st := dht.Stats{SealedDropped: map[string]uint64{"bad_tag": 5, "replay": 2}}
	c := metrics.NewCollector(func() dht.Stats { return st })
	out, err := testutil.CollectAndFormat(c, expfmt.TypeTextPlain, "dht_sealed_dropped_total")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`dht_sealed_dropped_total{reason="bad_tag"} 5`, `dht_sealed_dropped_total{reason="replay"} 2`} {
		if !strings.Contains(string(out), s+"\n") {
			t.Errorf("missing %s in:\n%s", s, out)
		}
	}
	st = dht.Stats{}
	if n := testutil.CollectAndCount(c, "dht_sealed_dropped_total"); n != 0 {
		t.Errorf("an open network exports %d sealed series", n)
	}
}

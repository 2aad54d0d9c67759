package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/node"
)

// The browser test drives a headless Chromium (Debian's chromium in CI) at
// the dashboard of a node in a small network on 127.0.0.1. Environment:
//
//	DHT_CHROME=PATH      the browser to use (else chromium, chrome... on PATH)
//	DHT_BROWSER_TEST=1   a missing browser fails the test instead of skipping it (CI sets it)
//	DHT_SCREENSHOT=1     save docs/dashboard.png (a larger network, a minute of traffic)

// findBrowser returns the path of a Chromium or Chrome binary, or "".
func findBrowser() string {
	if p := os.Getenv("DHT_CHROME"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// testNet is a network of dht.Nodes on 127.0.0.1, all joined through the
// first one.
func testNet(t *testing.T, ctx context.Context, n int) []*dht.Node {
	t.Helper()
	ns := make([]*dht.Node, n)
	for i := range ns {
		cfg := dht.DefaultConfig()
		cfg.Listen = []string{"127.0.0.1:0"}
		cfg.K = 8
		cfg.RequestTimeout = 300 * time.Millisecond // the stopped nodes' timeouts come quickly
		cfg.Attempts = 1
		nd, err := dht.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		ns[i] = nd
	}
	seed := ns[0].Addr().String()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, nd := range ns[1:] {
		wg.Go(func() {
			if err := nd.Bootstrap(ctx, seed); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal("bootstrap:", err)
	}
	return ns
}

// lookupRecorder passes requests to the API and hands over the body of
// each lookup's answer: what the page received, to compare with what it
// drew. Only lookups are wrapped, so the event streams keep their
// ResponseController.
type lookupRecorder struct {
	h       http.Handler
	lookups chan []byte
}

func (l *lookupRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != api.Base+"/lookup" {
		l.h.ServeHTTP(w, r)
		return
	}
	tw := &teeWriter{ResponseWriter: w}
	l.h.ServeHTTP(tw, r)
	select {
	case l.lookups <- tw.buf.Bytes():
	default:
	}
}

type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (t *teeWriter) Write(b []byte) (int, error) {
	t.buf.Write(b)
	return t.ResponseWriter.Write(b)
}

// lookupJSON is the part of a lookup's answer the test checks.
type lookupJSON struct {
	Rounds []struct {
		Queries []struct {
			Node struct {
				ID string `json:"id"`
			} `json:"node"`
			Answer string `json:"answer"`
		} `json:"queries"`
	} `json:"rounds"`
}

func TestDashboardInBrowser(t *testing.T) {
	bin := findBrowser()
	if bin == "" {
		msg := "no chromium or chrome binary found on PATH (install Debian's chromium, or set DHT_CHROME=PATH)"
		if os.Getenv("DHT_BROWSER_TEST") == "1" {
			t.Fatal(msg + "; DHT_BROWSER_TEST=1 requires the browser test to run")
		}
		t.Skip(msg)
	}
	screenshot := os.Getenv("DHT_SCREENSHOT") == "1"
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	if screenshot {
		ctx, cancel = context.WithTimeout(context.Background(), 3*time.Minute)
	}
	defer cancel()

	nodes, stopped := 16, 2
	if screenshot {
		nodes, stopped = 120, 3 // more ranges and rounds
	}
	ns := testNet(t, ctx, nodes)
	dash := ns[1] // a node that joined: its table was filled by its own bootstrap
	// Keys next to the dashboard's node, so that it is among their
	// closest nodes and stores them.
	keys := make([]dht.ID, 12)
	for i := range keys {
		keys[i] = dash.ID()
		keys[i][len(keys[i])-1] ^= byte(i + 1)
		if _, err := ns[i%len(ns)].Put(ctx, keys[i], []byte(strings.Repeat("v", 10+40*i)), dht.WithTTL(time.Duration(i+1)*time.Hour)); err != nil {
			t.Fatal("put:", err)
		}
	}
	backend := node.NewBackend(dash, node.BackendOptions{Version: "browser-test", Network: api.Network{Name: "loopback", ID: 0}})
	rec := &lookupRecorder{h: api.New(backend, api.Options{Token: "t", Mux: Mount}), lookups: make(chan []byte, 1)}
	srv := httptest.NewServer(rec)
	defer srv.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.WindowSize(1400, 1000),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root
	}
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	bctx, bcancel := chromedp.NewContext(actx)
	defer bcancel()

	// Anything the page throws or logs as an error (a CSP refusal, a
	// failed load, a bug) fails the test.
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("starting %s: %v", bin, err)
	}
	var mu sync.Mutex
	var pageErrors []string
	console := chromedp.Console(bctx)
	go func() {
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				mu.Lock()
				pageErrors = append(pageErrors, m.String()+" "+m.URL)
				mu.Unlock()
			}
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range pageErrors {
			t.Error("the page:", e)
		}
	}()

	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	start := time.Now()
	run("open the dashboard", chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitReady(chromedp.CSS(`#routing-table[data-loaded="1"]`)))
	t.Logf("browser up and table drawn in %v", time.Since(start).Round(time.Millisecond))

	checkTable(t, bctx, backend)

	// A lookup from the form, after the nodes closest to its target
	// stopped: the queries to them time out.
	const target = "a target for the browser test"
	others := slices.Clone(ns[2:])
	slices.SortFunc(others, func(a, b *dht.Node) int { return id.CompareDistance(dht.Key(target), a.ID(), b.ID()) })
	running := append([]*dht.Node{ns[0], ns[1]}, others[stopped:]...)
	for _, nd := range others[:stopped] {
		nd.Close()
	}
	run("run a lookup from the form",
		chromedp.SetValue(chromedp.CSS(`#lookup-target`), target),
		chromedp.SetValue(chromedp.CSS(`#lookup-type`), "node"),
		chromedp.Click(chromedp.CSS(`#lookup-run`)))
	var raw []byte
	select {
	case raw = <-rec.lookups:
	case <-ctx.Done():
		t.Fatal("the form's lookup never reached the API")
	}
	var lr lookupJSON
	if err := json.Unmarshal(raw, &lr); err != nil {
		t.Fatalf("the lookup's answer: %v: %s", err, raw)
	}
	var want []string
	timeouts := 0
	for i, r := range lr.Rounds {
		for _, q := range r.Queries {
			want = append(want, fmt.Sprint(i+1, " ", q.Node.ID))
			if q.Answer == "timeout" {
				timeouts++
			}
		}
	}
	if len(want) == 0 || timeouts == 0 {
		t.Fatalf("the API's lookup made %d queries, %d timed out; the test needs both answers and timeouts to check: %s", len(want), timeouts, raw)
	}
	run("wait for the drawn rounds", chromedp.WaitReady(chromedp.CSS(fmt.Sprintf(`#lookup-plot[data-queries="%d"]`, len(want)))))
	type drawnLookup struct {
		Rounds   string   `json:"rounds"`
		Points   []string `json:"points"`
		Timeouts int      `json:"timeouts"`
		Bars     int      `json:"bars"`
		Rows     int      `json:"rows"`
	}
	drawn, err := chromedp.Run(bctx, chromedp.Evaluate[drawnLookup](`({
		rounds: document.querySelector('#lookup-plot').dataset.rounds,
		points: [...document.querySelectorAll('#lookup-plot circle.q')].map(c => c.dataset.round + ' ' + c.dataset.id),
		timeouts: document.querySelectorAll('#lookup-plot circle.q.timeout').length,
		bars: document.querySelectorAll('#lookup-timing rect.bar').length,
		rows: document.querySelectorAll('#lookup-queries tbody tr').length,
	})`))
	if err != nil {
		t.Fatal("reading the drawn rounds:", err)
	}
	sort.Strings(want)
	sort.Strings(drawn.Points)
	if drawn.Rounds != fmt.Sprint(len(lr.Rounds)) || strings.Join(drawn.Points, ",") != strings.Join(want, ",") {
		t.Errorf("drawn: %s rounds, queries %v; the API answered %d rounds, queries %v", drawn.Rounds, drawn.Points, len(lr.Rounds), want)
	}
	if drawn.Timeouts != timeouts || drawn.Bars != len(want) || drawn.Rows != len(want) {
		t.Errorf("drawn: %d timeouts, %d timing bars, %d rows; the API answered %d queries, %d timeouts", drawn.Timeouts, drawn.Bars, drawn.Rows, len(want), timeouts)
	}
	t.Logf("lookup: %d rounds, %d queries, %d timeouts drawn", len(lr.Rounds), len(want), timeouts)

	// The live charts draw the node's event stream.
	samples := 1
	if screenshot {
		samples = 40
		go traffic(ctx, running, keys)
	}
	run("wait for live samples", chromedp.WaitReady(chromedp.CSS(`#stream-state[data-state="live"]`)),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`Number(document.querySelector('#chart-rates').dataset.samples) >= %d`, samples), chromedp.WithPollingTimeout(0)))
	// The latency chart draws the round trips of the requests the node
	// sends once the stream is live: a lookup's, answered on loopback.
	if _, err := dash.FindNode(ctx, dht.Key("latency for the chart")); err != nil {
		t.Fatal("a lookup for the latency chart:", err)
	}
	run("wait for a latency sample", chromedp.Poll[chromedp.Void](`Number(document.querySelector('#chart-latency').dataset.peak) > 0`, chromedp.WithPollingTimeout(0)))
	// A series above zero has a point above the plot's baseline (y 162
	// in the chart's 180-high box, whose bottom margin is 18).
	drawnLatency, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#chart-latency polyline.series')]
		.filter(p => p.getAttribute('points').split(' ').filter(Boolean).some(xy => Number(xy.split(',')[1]) < 161.5))
		.map(p => p.dataset.series)`))
	if err != nil {
		t.Fatal("reading the latency chart:", err)
	}
	if len(drawnLatency) == 0 {
		t.Error("the latency chart has a sample above zero but no series drawn above its baseline")
	}
	t.Logf("latency chart: series drawn above zero: %v", drawnLatency)

	rows, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('#keys-table tbody tr[data-key]').length`))
	if err != nil {
		t.Fatal("counting the keys:", err)
	}
	if stored, _ := backend.Keys(ctx, api.KeysQuery{Limit: 50}); rows != len(stored.Keys) || rows == 0 {
		t.Errorf("the keys table has %d rows; the node stores %d keys", rows, len(stored.Keys))
	}

	if screenshot {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal("screenshot:", err)
		}
		out := filepath.Join("..", "docs", "dashboard.png")
		if err := os.WriteFile(out, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", out, len(png))
	}

	checkTokenFlow(t, bctx, backend)
	t.Logf("browser test done in %v", time.Since(start).Round(time.Millisecond))
}

// checkTable compares the drawn routing table with the API's: a row per
// range with the API's count, and as many filled slots.
func checkTable(t *testing.T, bctx context.Context, b api.Backend) {
	t.Helper()
	type row struct {
		Index  int `json:"index"`
		Count  int `json:"count"`
		K      int `json:"k"`
		Filled int `json:"filled"`
	}
	for attempt := 0; ; attempt++ {
		renders, err := chromedp.Run(bctx, chromedp.Evaluate[int](`Number(document.querySelector('#routing-table').dataset.renders)`))
		if err != nil {
			t.Fatal(err)
		}
		drawn, err := chromedp.Run(bctx, chromedp.Evaluate[[]row](`[...document.querySelectorAll('#routing-table tr.bucket')].map(tr => ({
			index: Number(tr.dataset.index), count: Number(tr.dataset.count), k: Number(tr.dataset.k),
			filled: tr.querySelectorAll('.slot.filled').length }))`))
		if err != nil {
			t.Fatal(err)
		}
		tab, err := b.Table(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var want []row
		for _, bk := range tab.Buckets {
			want = append(want, row{bk.Index, len(bk.Contacts), bk.K, len(bk.Contacts)})
		}
		if fmt.Sprint(drawn) == fmt.Sprint(want) && len(want) > 0 {
			t.Logf("routing table: %d ranges drawn as the API has them: %v", len(want), want)
			return
		}
		if attempt == 2 {
			t.Fatalf("drawn table (index count k filled) %v; the API's %v", drawn, want)
		}
		// The table changed between the page's read and ours: wait for
		// the page's next refresh.
		if err := chromedp.Do(bctx, chromedp.Poll[chromedp.Void](fmt.Sprintf(`Number(document.querySelector('#routing-table').dataset.renders) > %d`, renders))); err != nil {
			t.Fatal(err)
		}
	}
}

// checkTokenFlow serves the page as a node on a public address does (the
// API wants the token for every read; the page's files need none): the
// page loads, asks for the token, then reads the table and the event
// stream (the fetch-based reader, as EventSource cannot send the header).
func checkTokenFlow(t *testing.T, bctx context.Context, b api.Backend) {
	t.Helper()
	srv := httptest.NewServer(api.New(b, api.Options{Token: "secret", RequireAuthForReads: true, Mux: Mount}))
	defer srv.Close()
	tctx, cancel := chromedp.NewContext(bctx) // a new tab
	defer cancel()
	steps := []struct {
		what string
		a    chromedp.Action[chromedp.Void]
	}{
		{"open the page", chromedp.Navigate(srv.URL + "/")},
		{"the token form shows", chromedp.WaitVisible(chromedp.CSS(`#token-form`))},
		{"type the token", chromedp.SendKeys(chromedp.CSS(`#token`), "secret")},
		{"send it", chromedp.Click(chromedp.CSS(`#token-form button`))},
		{"the table is drawn", chromedp.WaitReady(chromedp.CSS(`#routing-table[data-loaded="1"]`))},
		{"the form hides", chromedp.WaitNotVisible(chromedp.CSS(`#token-form`))},
		{"the stream is live", chromedp.WaitReady(chromedp.CSS(`#stream-state[data-state="live"]`))},
		{"a sample is drawn", chromedp.Poll[chromedp.Void](`Number(document.querySelector('#chart-rates').dataset.samples) >= 1`)},
	}
	for _, s := range steps {
		if err := chromedp.Do(tctx, s.a); err != nil {
			t.Fatalf("with a token: %s: %v", s.what, err)
		}
	}
}

// traffic keeps the network busy for the screenshot's charts.
func traffic(ctx context.Context, ns []*dht.Node, keys []dht.ID) {
	tick := time.NewTicker(150 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		n := ns[i%len(ns)]
		if i%3 == 0 {
			n.Get(ctx, keys[i%len(keys)])
		} else {
			n.FindNode(ctx, dht.Key(fmt.Sprint("random-", i)))
		}
	}
}

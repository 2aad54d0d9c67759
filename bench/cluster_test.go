package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht"
)

func TestRunClusterGetsReturnExactlyWhatWasPut(t *testing.T) {
	cfg := ClusterConfig{Nodes: 12, Ops: 60, Concurrency: 6, ValueSize: 50, Seeds: 2, JoinConcurrency: 4, Seed: 9}
	rep, err := RunCluster(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Interrupted || rep.JoinFailures != 0 {
		t.Fatalf("interrupted %v, %d joins failed", rep.Interrupted, rep.JoinFailures)
	}
	for name, ph := range map[string]Phase{"put": rep.Put, "get": rep.Get} {
		if ph.Done != cfg.Ops || ph.OK != cfg.Ops || len(ph.Failures) != 0 {
			t.Errorf("%s: %d done, %d ok, failures %v; want all %d ok", name, ph.Done, ph.OK, ph.Failures, cfg.Ops)
		}
		if ph.Latency.Count != uint64(ph.OK) {
			t.Errorf("%s: %d latencies for %d operations", name, ph.Latency.Count, ph.OK)
		}
		if ph.Requests == 0 || !closeTo(ph.RequestsPerOp, float64(ph.Requests)/float64(ph.Done)) {
			t.Errorf("%s: %d requests, %f per op", name, ph.Requests, ph.RequestsPerOp)
		}
		if want := float64(ph.OK) / ph.Elapsed.Seconds(); !closeTo(ph.Rate, want) {
			t.Errorf("%s: rate %f, want %f", name, ph.Rate, want)
		}
	}
	if rep.Correct != cfg.Ops || rep.Wrong != 0 || rep.CorrectShare != 1 {
		t.Errorf("%d correct, %d wrong, share %f; want every get to return exactly its value", rep.Correct, rep.Wrong, rep.CorrectShare)
	}
	// The counts below assume every request was answered in time. On a
	// loaded machine a request may outlive its stall time (10 ms and up):
	// the lookup then asks another node, and a put does not store on a
	// target that stalled. Such a run still checks every get's value.
	if slow := rep.Totals.Stalls + rep.Totals.Retries; slow > 0 {
		t.Logf("%d stalled and %d retried requests: placement and request counts not checked (stored on %.2f nodes, %.2f requests per get)",
			rep.Totals.Stalls, rep.Totals.Retries, rep.StoredMean, rep.Get.RequestsPerOp)
	} else {
		// With 12 nodes and K = 20, every node is among the K closest: each put
		// stores on all of them.
		if rep.StoredMean != float64(cfg.Nodes) {
			t.Errorf("values stored on %.2f nodes on average, want all %d", rep.StoredMean, cfg.Nodes)
		}
		// A put looks up the key (a FIND_NODE to each of the other nodes at
		// most) and stores on the rest: never more requests than twice the
		// network, never fewer than the 11 STOREs.
		if rpo := rep.Put.RequestsPerOp; rpo < float64(cfg.Nodes-1) || rpo > float64(2*cfg.Nodes) {
			t.Errorf("%.1f requests per put in a network of %d", rpo, cfg.Nodes)
		}
		// Every node holds every value, but a get still asks others until
		// GetQuorum (3) nodes, itself included, answered with values: at least
		// 2 requests, and at most its first Alpha (3) plus the one the first
		// answer's freed slot sends before the second answer ends the get.
		if rpo := rep.Get.RequestsPerOp; rpo < 2 || rpo > 4 {
			t.Errorf("%.2f requests per get where every node holds the value: want 2 to 4", rpo)
		}
	}
	if rep.Put.Requests+rep.Get.Requests > rep.Totals.Requests {
		t.Errorf("phases' requests %d + %d exceed the nodes' total %d", rep.Put.Requests, rep.Get.Requests, rep.Totals.Requests)
	}
	if rep.TableMean < 1 || rep.Totals.PacketsIn == 0 {
		t.Errorf("mean table %.1f, %d datagrams: the nodes did not talk", rep.TableMean, rep.Totals.PacketsIn)
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("correct: %d of %d gets", cfg.Ops, cfg.Ops); !strings.Contains(out.String(), want) {
		t.Errorf("text report lacks %q:\n%s", want, out.String())
	}
}

func TestRunPhaseCountsFailuresByKind(t *testing.T) {
	ph := runPhase(testCtx(t), ClusterConfig{Ops: 5, Concurrency: 2, OpTimeout: time.Second}, 1,
		func(ctx context.Context, _ *rand.Rand, i int) error {
			if i%2 == 0 {
				return fmt.Errorf("get %d: %w", i, dht.ErrNotFound)
			}
			return nil
		})
	if ph.Done != 5 || ph.OK != 2 || ph.Failures["not found"] != 3 || len(ph.Failures) != 1 ||
		!strings.Contains(ph.Examples["not found"], "not found") || ph.Latency.Count != 2 {
		t.Fatalf("phase %+v: want 5 done, 2 ok, 3 not found with an example", ph)
	}
}

func TestOnlyExactlyTheValuePutIsCorrect(t *testing.T) {
	v := []byte("the value")
	cases := []struct {
		name string
		got  []dht.Value
		want bool
	}{
		{"the value", []dht.Value{{Data: []byte("the value")}}, true},
		{"nothing", nil, false},
		{"another value", []dht.Value{{Data: []byte("the valuf")}}, false},
		{"a prefix", []dht.Value{{Data: []byte("the val")}}, false},
		{"the value and another", []dht.Value{{Data: []byte("the value")}, {Data: []byte("x")}}, false},
	}
	for _, tc := range cases {
		if got := exactly(tc.got, v); got != tc.want {
			t.Errorf("%s: exactly = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestErrorKindNamesWrappedErrors(t *testing.T) {
	cases := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("dht: get x: %w", dht.ErrNotFound), "not found"},
		{fmt.Errorf("dht: get x: %w: %w", dht.ErrNotFound, dht.ErrNoPeers), "not found"},
		{fmt.Errorf("dht: put x: %w: none answered", dht.ErrTimeout), "timeout"},
		{fmt.Errorf("dht: put x: %w by 1.2.3.4:5: full", dht.ErrRejected), "rejected"},
		{fmt.Errorf("dht: put x: %w", dht.ErrNoPeers), "no peers"},
		{dht.ErrClosed, "closed"},
		{fmt.Errorf("dht: put x: %w", context.DeadlineExceeded), "deadline"},
		{errors.New("something else"), "other"},
	}
	for _, tc := range cases {
		if got := errorKind(tc.err); got != tc.want {
			t.Errorf("errorKind(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestClusterConfigRejectsNonsenseNamingTheField(t *testing.T) {
	cases := []struct {
		change func(c *ClusterConfig)
		field  string
	}{
		{func(c *ClusterConfig) { c.Nodes = 1 }, "Nodes"},
		{func(c *ClusterConfig) { c.Nodes = MaxClusterNodes + 1 }, "Nodes"},
		{func(c *ClusterConfig) { c.Ops = -1 }, "Ops"},
		{func(c *ClusterConfig) { c.Concurrency = -1 }, "Concurrency"},
		{func(c *ClusterConfig) { c.ValueSize = 64<<10 + 1 }, "ValueSize"},
		{func(c *ClusterConfig) { c.K = 33 }, "K"},
		{func(c *ClusterConfig) { c.K, c.Alpha = 4, 5 }, "Alpha"},
		{func(c *ClusterConfig) { c.Nodes, c.Seeds = 3, 4 }, "Seeds"},
		{func(c *ClusterConfig) { c.JoinConcurrency = 5000 }, "JoinConcurrency"},
		{func(c *ClusterConfig) { c.OpTimeout = time.Microsecond }, "OpTimeout"},
	}
	for _, tc := range cases {
		cfg := DefaultClusterConfig()
		tc.change(&cfg)
		_, err := RunCluster(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "ClusterConfig."+tc.field) {
			t.Errorf("%s: error %v, want one naming ClusterConfig.%s", tc.field, err, tc.field)
		}
	}
}

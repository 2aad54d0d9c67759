package bench

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestRunIdleReportsStartupCPUAndMemory(t *testing.T) {
	cfg := IdleConfig{Nodes: 30, Idle: 100 * time.Millisecond, Settle: -1, Seeds: 2, JoinConcurrency: 8, Seed: 2}
	rep, err := RunIdle(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Interrupted || rep.JoinFailures != 0 {
		t.Fatalf("interrupted %v, %d joins failed", rep.Interrupted, rep.JoinFailures)
	}
	if rep.Startup != rep.Create+rep.Join || rep.Create <= 0 || rep.Join <= 0 {
		t.Errorf("start-up %v is not creation %v plus joining %v", rep.Startup, rep.Create, rep.Join)
	}
	if rep.TableMean < 1 {
		t.Errorf("mean routing table %.1f: the nodes did not meet", rep.TableMean)
	}
	if rep.IdleRefreshes != 0 {
		t.Errorf("%d bucket refreshes in %v with the default 1h refresh interval", rep.IdleRefreshes, rep.IdleWall)
	}
	if rep.IdleWall < cfg.Idle {
		t.Errorf("idle measured over %v, less than the %v asked", rep.IdleWall, cfg.Idle)
	}
	if want := 100 * rep.IdleCPU.Seconds() / rep.IdleWall.Seconds(); !closeTo(rep.IdleCPUPercent, want) {
		t.Errorf("idle CPU %.4f%%, want %v / %v = %.4f%%", rep.IdleCPUPercent, rep.IdleCPU, rep.IdleWall, want)
	}
	if runtime.GOOS == "linux" {
		if rep.RSSBefore == 0 || rep.RSSAfterGC == 0 {
			t.Errorf("RSS not read: before %d, after %d", rep.RSSBefore, rep.RSSAfterGC)
		}
		n := float64(cfg.Nodes)
		if want := (float64(rep.RSSAfterGC) - float64(rep.RSSBefore)) / n; rep.RSSPerNode != want {
			t.Errorf("RSS per node %f, want %f", rep.RSSPerNode, want)
		}
	}
	var out bytes.Buffer
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"start-up:", "of one core", "per node:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestCheckFDsSaysHowManyNodesFit(t *testing.T) {
	if err := checkFDs(10_000, 20_000); err != nil {
		t.Fatalf("10,000 nodes under a limit of 20,000: %v", err)
	}
	err := checkFDs(20_000, 20_000)
	if err == nil {
		t.Fatal("20,000 nodes accepted under a limit of 20,000 file descriptors")
	}
	for _, want := range []string{"20000 nodes", "limit is 20000", "at most 19936 nodes", "ulimit -n"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestIdleConfigRejectsNonsenseNamingTheField(t *testing.T) {
	cases := []struct {
		change func(c *IdleConfig)
		field  string
	}{
		{func(c *IdleConfig) { c.Nodes = -1 }, "Nodes"},
		{func(c *IdleConfig) { c.Nodes = MaxIdleNodes + 1 }, "Nodes"},
		{func(c *IdleConfig) { c.Idle = -time.Second }, "Idle"},
		{func(c *IdleConfig) { c.Idle = MaxIdleWindow + time.Second }, "Idle"},
		{func(c *IdleConfig) { c.Settle = 2 * MaxDuration }, "Settle"},
		{func(c *IdleConfig) { c.Batch = 2000 }, "Batch"},
		{func(c *IdleConfig) { c.RefreshInterval = time.Millisecond }, "RefreshInterval"},
		{func(c *IdleConfig) { c.K = 40 }, "K"},
		{func(c *IdleConfig) { c.K, c.Alpha = 2, 3 }, "Alpha"},
		{func(c *IdleConfig) { c.Nodes, c.Seeds = 2, 3 }, "Seeds"},
		{func(c *IdleConfig) { c.JoinConcurrency = -2 }, "JoinConcurrency"},
	}
	for _, tc := range cases {
		cfg := DefaultIdleConfig()
		tc.change(&cfg)
		_, err := RunIdle(context.Background(), cfg)
		if err == nil || !strings.Contains(err.Error(), "IdleConfig."+tc.field) {
			t.Errorf("%s: error %v, want one naming IdleConfig.%s", tc.field, err, tc.field)
		}
	}
}

// A short refresh interval brings bucket maintenance into the idle window,
// and the report shows it as refreshes and traffic.
func TestRunIdleWithShortRefreshIntervalCountsMaintenance(t *testing.T) {
	cfg := IdleConfig{Nodes: 20, Idle: 1500 * time.Millisecond, Settle: -1, RefreshInterval: time.Second, Seeds: 2, Seed: 3}
	rep, err := RunIdle(testCtx(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if rep.IdleRefreshes == 0 || rep.IdlePackets == 0 {
		t.Fatalf("%d refreshes and %d datagrams in %v idle with a %v refresh interval; want some",
			rep.IdleRefreshes, rep.IdlePackets, rep.IdleWall, cfg.RefreshInterval)
	}
}

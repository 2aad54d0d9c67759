package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestBenchFlagsRejectedWithClearMessages(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"bench"}, []string{"serve", "cluster", "idle"}},
		{[]string{"bench", "speed"}, []string{`unknown benchmark "speed"`, "serve"}},
		{[]string{"bench", "serve", "--concurrency", "0"}, []string{"-concurrency", "1 to 65536"}},
		{[]string{"bench", "serve", "--clients", "8", "--concurrency", "4"}, []string{"-concurrency", "at least -clients (8)"}},
		{[]string{"bench", "serve", "--value-size", "2000"}, []string{"-value-size", "1 to 1000"}},
		{[]string{"bench", "serve", "--keys", "many"}, []string{"-keys", "whole number"}},
		{[]string{"bench", "serve", "--duration", "0"}, []string{"-duration", "from 1ms to 1h"}},
		{[]string{"bench", "serve", "--duration", "2h"}, []string{"-duration", "from 1ms to 1h"}},
		{[]string{"bench", "serve", "--warmup", "-1s"}, []string{"-warmup", "from 0s to 1h"}},
		{[]string{"bench", "serve", "--rounds", "0"}, []string{"-rounds", "1 to 100"}},
		{[]string{"bench", "serve", "--sockets", "65"}, []string{"-sockets", "1 to 64"}},
		{[]string{"bench", "serve", "--senders", "2"}, []string{"-senders", "at least -clients (4)", "best case"}},
		{[]string{"bench", "serve", "--senders", "20000"}, []string{"-senders", "0 to 16384"}},
		{[]string{"bench", "serve", "extra"}, []string{`unexpected argument "extra"`}},
		{[]string{"bench", "cluster", "--nodes", "1"}, []string{"-nodes", "2 to 20000"}},
		{[]string{"bench", "cluster", "--ops", "0"}, []string{"-ops", "1 to 1000000"}},
		{[]string{"bench", "cluster", "--k", "10", "--alpha", "11"}, []string{"-alpha", "at most -k (10)"}},
		{[]string{"bench", "cluster", "--nodes", "2", "--seed-count", "3"}, []string{"-seed-count", "at most -nodes (2)"}},
		{[]string{"bench", "cluster", "--op-timeout", "soon"}, []string{"-op-timeout", "duration"}},
		{[]string{"bench", "idle", "--nodes", "0"}, []string{"-nodes", "1 to 100000"}},
		{[]string{"bench", "idle", "--batch", "0"}, []string{"-batch", "1 to 1024"}},
		{[]string{"bench", "idle", "--idle", "0"}, []string{"-idle", "from 1ms to 6h"}},
		{[]string{"bench", "idle", "--idle", "7h"}, []string{"-idle", "from 1ms to 6h"}},
		{[]string{"bench", "idle", "--refresh-interval", "48h"}, []string{"-refresh-interval", "from 0s to 24h"}},
		{[]string{"bench", "idle", "--cpuprofile", "/nonexistent/dir/cpu.prof", "--nodes", "1"}, []string{"-cpuprofile", "no such file"}},
	}
	for _, tc := range cases {
		code, _, stderr := runCmd(tc.args...)
		if code != exitFailure {
			t.Errorf("dht %s: exit %d, want %d", strings.Join(tc.args, " "), code, exitFailure)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("dht %s: stderr lacks %q:\n%s", strings.Join(tc.args, " "), w, stderr)
			}
		}
	}
}

// hardFileLimit reads the hard limit on open files from /proc (so that the
// test builds everywhere), or returns 0.
func hardFileLimit() int {
	b, err := os.ReadFile("/proc/self/limits")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "Max open files"); ok {
			if f := strings.Fields(rest); len(f) >= 2 {
				n, _ := strconv.Atoi(f[1])
				return n
			}
		}
	}
	return 0
}

func TestBenchIdleSaysWhenNodesExceedTheFileLimit(t *testing.T) {
	limit := hardFileLimit()
	if limit == 0 || limit >= 100_000 {
		t.Skip("no hard open-file limit under the largest node count the flag accepts")
	}
	n := limit + 1
	code, _, stderr := runCmd("bench", "idle", "--nodes", strconv.Itoa(n))
	if code != exitFailure || !strings.Contains(stderr, "file descriptors") || !strings.Contains(stderr, "ulimit -n") {
		t.Fatalf("dht bench idle --nodes %d under a limit of %d: exit %d, stderr:\n%s", n, limit, code, stderr)
	}
}

func TestBenchHelpListsEveryFlag(t *testing.T) {
	for cmd, flags := range map[string][]string{
		"serve":   {"-keys", "-value-size", "-sockets", "-clients", "-senders", "-concurrency", "-duration", "-warmup", "-rounds", "-request-timeout", "-naive", "-read-only", "-json", "-cpuprofile", "-seed"},
		"cluster": {"-nodes", "-ops", "-concurrency", "-value-size", "-k", "-alpha", "-seed-count", "-join-concurrency", "-op-timeout", "-json", "-cpuprofile"},
		"idle":    {"-nodes", "-idle", "-settle", "-batch", "-refresh-interval", "-values", "-replicate-interval", "-seed-count", "-join-concurrency", "-json", "-cpuprofile"},
	} {
		code, _, stderr := runCmd("bench", cmd, "--help")
		if code != exitOK {
			t.Errorf("dht bench %s --help: exit %d", cmd, code)
		}
		for _, f := range flags {
			if !strings.Contains(stderr, f) {
				t.Errorf("dht bench %s --help does not mention %s", cmd, f)
			}
		}
	}
}

func TestBenchServeJSONReport(t *testing.T) {
	prof := filepath.Join(t.TempDir(), "cpu.prof")
	code, stdout, stderr := runCmd("bench", "serve", "--keys", "10", "--clients", "2", "--concurrency", "4",
		"--duration", "100ms", "--warmup", "0", "--rounds", "1", "--naive=false", "--json", "--cpuprofile", prof)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rep struct {
		Node     []struct{ Counts struct{ OK, BadValue uint64 } }
		Echo     []json.RawMessage
		NodeRate float64 `json:"node_req_per_s"`
		EchoRate float64 `json:"echo_req_per_s"`
		Ratio    float64
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("the report is not JSON: %v\n%s", err, stdout)
	}
	if len(rep.Node) != 1 || len(rep.Echo) != 1 || rep.Node[0].Counts.OK == 0 || rep.Node[0].Counts.BadValue != 0 {
		t.Fatalf("report %+v: want one node and one echo measurement with correct answers", rep)
	}
	if rep.EchoRate == 0 || rep.Ratio != rep.NodeRate/rep.EchoRate {
		t.Fatalf("ratio %f, want %f / %f", rep.Ratio, rep.NodeRate, rep.EchoRate)
	}
	if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Fatalf("no CPU profile written: %v", err)
	}
}

// The text report says which case it measured: the best case by default,
// else how many senders.
func TestBenchServeTextReportNamesItsSenders(t *testing.T) {
	for _, tc := range []struct {
		senders string
		want    string
	}{
		{"0", "best case: 2 sender(s)"},
		{"64", "64 senders, each its own ID"},
	} {
		code, stdout, stderr := runCmd("bench", "serve", "--keys", "10", "--clients", "2", "--senders", tc.senders, "--concurrency", "4",
			"--duration", "50ms", "--warmup", "0", "--rounds", "1", "--naive=false")
		if code != exitOK {
			t.Fatalf("--senders %s: exit %d: %s", tc.senders, code, stderr)
		}
		if !strings.Contains(stdout, tc.want) || !strings.Contains(stdout, "routing table holds") {
			t.Errorf("--senders %s: report lacks %q or the routing table's size:\n%s", tc.senders, tc.want, stdout)
		}
	}
}

func TestBenchClusterAndIdleTextReports(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"bench", "cluster", "--nodes", "8", "--ops", "20", "--concurrency", "4"},
			[]string{"8 nodes", "correct: 20 of 20 gets"}},
		{[]string{"bench", "idle", "--nodes", "10", "--idle", "50ms", "--settle", "0"},
			[]string{"10 nodes", "start-up:", "of one core", "per node:"}},
	}
	for _, tc := range cases {
		code, stdout, stderr := runCmd(tc.args...)
		if code != exitOK {
			t.Fatalf("dht %s: exit %d: %s", strings.Join(tc.args, " "), code, stderr)
		}
		for _, w := range tc.want {
			if !strings.Contains(stdout, w) {
				t.Errorf("dht %s: report lacks %q:\n%s", strings.Join(tc.args, " "), w, stdout)
			}
		}
	}
}

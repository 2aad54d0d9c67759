package main

import (
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhtkit/dht/sim"
)

// tinySim is a run that takes well under a second, even under -race.
var tinySim = []string{"sim", "--nodes", "40", "--keys", "30", "--lookups", "200", "--progress", "none"}

func simArgs(extra ...string) []string { return append(append([]string(nil), tinySim...), extra...) }

func decodeReport(t *testing.T, out string) *sim.Report {
	t.Helper()
	r, err := sim.ReadReport([]byte(out))
	if err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, out)
	}
	return r
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := png.Decode(f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestSimSmallRunWritesJSONAndPlots(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "plots") // -plot creates it
	code, out, errOut := runCmd(simArgs("--json", "--plot", dir, "--churn-leave", "0.05", "--churn-for", "2m", "--probe-keys", "10")...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	r := decodeReport(t, out)
	if r.Scenario.Nodes != 40 || r.Lookups.Lookups != 200 || r.Churn == nil || r.Scenario.Churn.Leave != 0.05 {
		t.Fatalf("the report does not describe the run asked for: %+v", r.Scenario)
	}
	if r.Lookups.Success != 1 {
		t.Errorf("success %v, want 1", r.Lookups.Success)
	}
	if !strings.Contains(errOut, "lookups per wall second") || strings.Contains(out, "wall") {
		t.Errorf("wall-clock figures belong on stderr, not in the JSON:\nstdout %s\nstderr %s", out, errOut)
	}
	for _, name := range []string{"rounds", "latency", "tables", "survival"} {
		path := filepath.Join(dir, "sim-"+name+".png")
		checkPNG(t, path)
		if !strings.Contains(errOut, path) {
			t.Errorf("stderr does not say it wrote %s: %s", path, errOut)
		}
	}
}

func TestSimTextReport(t *testing.T) {
	code, out, errOut := runCmd(simArgs("--name", "tiny")...)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"dht sim tiny: 40 nodes", "lookups", "rounds", "latency", "routing table contacts", "KiB live heap per node", "lookups per wall second"} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
}

func TestSimFlagsOverrideTheScenarioFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "s.json")
	if err := os.WriteFile(file, []byte(`{"name": "from-file", "nodes": 80, "keys": 30, "lookups": 150, "loss": 0.01}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCmd("sim", "--scenario", file, "--nodes", "30", "--json", "--progress", "none")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	sc := decodeReport(t, out).Scenario
	if sc.Nodes != 30 || sc.Name != "from-file" || sc.Loss != 0.01 || sc.Lookups != 150 {
		t.Fatalf("scenario %+v: want the file's values with -nodes 30 over them", sc)
	}
}

func TestSimBadFlagsNameTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--nodes", "1"}, []string{"-nodes", "from 2 to"}},
		{[]string{"--nodes", "many"}, []string{"-nodes", "whole number"}},
		{[]string{"--latency", "gauss:1ms"}, []string{"-latency", "fixed:DELAY"}},
		{[]string{"--loss", "2"}, []string{"-loss", "probability"}},
		{[]string{"--malicious", "0.1"}, []string{"-malicious", "KIND=SHARE"}},
		{[]string{"--malicious", "eclipse=0.5,drop=0.5"}, []string{"-malicious", "add up to"}},
		{[]string{"--alpha", "30"}, []string{"alpha = 30", "-alpha"}},
		{[]string{"--keys", "10", "--probe-keys", "20"}, []string{"probe_keys", "-probe-keys"}},
		{[]string{"--partition", "0.7"}, []string{"-partition", "0.5"}},
		{[]string{"--churn-for", "-1m"}, []string{"-churn-for", "duration"}},
		{[]string{"--progress", "fancy"}, []string{"-progress", "auto"}},
		{[]string{"--scenario", "/nonexistent/s.json"}, []string{"-scenario", "no such file"}},
		{[]string{"--compare", "a.json"}, []string{"-compare", "-plot"}},
		{[]string{"extra"}, []string{"unexpected argument"}},
	} {
		code, _, errOut := runCmd(append([]string{"sim"}, tc.args...)...)
		if code != exitFailure {
			t.Errorf("dht sim %v: exit %d, want %d", tc.args, code, exitFailure)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("dht sim %v: message %q does not mention %q", tc.args, errOut, w)
			}
		}
	}
}

func TestSimComparePlotsSavedReports(t *testing.T) {
	dir := t.TempDir()
	var files []string
	for _, n := range []string{"30", "90"} {
		code, out, errOut := runCmd("sim", "--nodes", n, "--keys", "20", "--lookups", "100", "--json", "--progress", "none")
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		f := filepath.Join(dir, n+".json")
		if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	code, out, errOut := runCmd("sim", "--compare", strings.Join(files, ","), "--plot", dir, "--name", "sizes")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	checkPNG(t, filepath.Join(dir, "sim-sizes-scaling.png"))
	checkPNG(t, filepath.Join(dir, "sim-sizes-latency-compare.png"))
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "30 ") || !strings.HasPrefix(lines[2], "90 ") {
		t.Fatalf("scaling table should have a header and one row per report:\n%s", out)
	}
}

func TestSimHelpListsEveryFlag(t *testing.T) {
	code, _, errOut := runCmd("sim", "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, f := range []string{"-scenario", "-json", "-plot", "-seed", "-nodes", "-k", "-alpha", "-latency", "-loss",
		"-keys", "-lookups", "-concurrency", "-churn-leave", "-churn-join", "-churn-for", "-partition", "-partition-for",
		"-malicious", "-progress", "-compare"} {
		if !strings.Contains(errOut, "  "+f+" ") && !strings.Contains(errOut, "  "+f+"\n") {
			t.Errorf("dht sim --help does not list %s", f)
		}
	}
}

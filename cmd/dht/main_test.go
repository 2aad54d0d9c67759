package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func runCmd(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

func TestHelpExplainsEveryCommandAndFlag(t *testing.T) {
	code, out, _ := runCmd("--help")
	if code != exitOK {
		t.Fatalf("--help exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(out, c.name) {
			t.Errorf("dht --help does not list %q", c.name)
		}
	}
	for cmd, flags := range map[string][]string{
		"node": {"-listen", "-seeds", "-k", "-alpha", "-network", "-sockets", "-log"},
		"put":  {"-seeds", "-ttl", "-k", "-alpha", "-timeout", "KEY VALUE"},
		"get":  {"-seeds", "-timeout", "KEY"},
	} {
		code, _, errOut := runCmd(cmd, "--help")
		if code != exitOK {
			t.Errorf("dht %s --help exit %d", cmd, code)
		}
		for _, f := range flags {
			if !strings.Contains(errOut, f) {
				t.Errorf("dht %s --help does not mention %s:\n%s", cmd, f, errOut)
			}
		}
	}
}

func TestBadFlagsNameTheFlagAndWhatIsAllowed(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"node", "--listen", "nonsense"}, []string{"-listen", "HOST:PORT"}},
		{[]string{"node", "--listen", "127.0.0.1:99999"}, []string{"-listen", "0 to 65535"}},
		{[]string{"node", "--k", "0"}, []string{"-k", "1 to 32"}},
		{[]string{"node", "--k", "20", "--alpha", "21"}, []string{"-alpha", "at most k"}},
		{[]string{"node", "--log-level", "loud"}, []string{"-log-level", "debug, info, warn or error"}},
		{[]string{"node", "--network-id", "-1"}, []string{"-network-id", "4294967295"}},
		{[]string{"node", "stray"}, []string{"unexpected argument"}},
		{[]string{"put", "--seeds", "127.0.0.1:1", "--ttl", "0s", "k", "v"}, []string{"-ttl", "positive duration"}},
		{[]string{"put", "k", "v"}, []string{"no running node found", "-seeds"}},
		{[]string{"put", "--seeds", "127.0.0.1:1", "k"}, []string{"missing VALUE"}},
		{[]string{"get", "--seeds", "localhost"}, []string{"-seeds", "HOST:PORT"}},
		{[]string{"frobnicate"}, []string{"unknown command"}},
	}
	for _, c := range cases {
		code, _, errOut := runCmd(c.args...)
		if code != exitFailure {
			t.Errorf("%v: exit %d, want %d", c.args, code, exitFailure)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr does not say %q:\n%s", c.args, w, errOut)
			}
		}
	}
}

// buildDHT compiles the command once for the process tests.
func buildDHT(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "dht")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return bin
}

// proc is a running `dht node`.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	joined chan struct{}
	eof    chan struct{} // closed when the output reader has read everything
	mu     sync.Mutex
	out    strings.Builder
}

func startNode(t *testing.T, bin string, seeds string) *proc {
	t.Helper()
	if seeds == "" {
		seeds = "none"
	}
	args := []string{"node", "--listen", "127.0.0.1:0", "--memory", "--seeds", seeds, "--http", "off"}
	p := &proc{cmd: exec.Command(bin, args...), joined: make(chan struct{}), eof: make(chan struct{})}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stderr = os.Stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		defer close(p.eof)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.out.WriteString(line + "\n")
			p.mu.Unlock()
			if a, ok := strings.CutPrefix(line, "listening on "); ok {
				addr <- a
			}
			if strings.HasPrefix(line, "joined") || strings.HasPrefix(line, "no seeds") {
				close(p.joined)
			}
		}
	}()
	select {
	case p.addr = <-addr:
	case <-time.After(30 * time.Second):
		t.Fatal("dht node did not print its address")
	}
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func cli(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, o.String(), e.String()
}

// Thirty `dht node` processes on loopback form a network; values put through
// one seed are read through another, and a key never stored is not found.
func TestThirtyNodeProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 30 processes; covered by the full run")
	}
	bin := buildDHT(t)
	first := startNode(t, bin, "")
	nodes := []*proc{first}
	for range 29 {
		nodes = append(nodes, startNode(t, bin, first.addr))
	}
	defer func() {
		for _, p := range nodes {
			p.cmd.Process.Kill()
		}
	}()
	for i, p := range nodes {
		select {
		case <-p.joined:
		case <-time.After(30 * time.Second):
			t.Fatalf("node %d did not join:\n%s", i, p.output())
		}
	}
	const keys = 20
	for k := range keys {
		code, out, errOut := cli(t, bin, "put", "--seeds", nodes[3].addr, "--ttl", "10m", fmt.Sprint("user", k, "@id.example.org:address"), fmt.Sprint("203.0.113.", k, ":4000"))
		if code != 0 || !strings.HasPrefix(out, "stored on 20 of 20") {
			t.Fatalf("put %d: exit %d, stdout %q, stderr %q", k, code, out, errOut)
		}
	}
	for k := range keys {
		code, out, errOut := cli(t, bin, "get", "--seeds", nodes[17].addr+","+nodes[25].addr, fmt.Sprint("user", k, "@id.example.org:address"))
		if want := fmt.Sprint("203.0.113.", k, ":4000\n"); code != 0 || out != want {
			t.Fatalf("get %d: exit %d, stdout %q (want %q), stderr %q", k, code, out, want, errOut)
		}
	}
	code, out, errOut := cli(t, bin, "get", "--seeds", nodes[17].addr, "nobody@id.example.org:address")
	if code != 1 || out != "" || strings.TrimSpace(errOut) != "not found" {
		t.Fatalf("get of a key never stored: exit %d, stdout %q, stderr %q; want exit 1 and \"not found\"", code, out, errOut)
	}
	// Every node shuts down cleanly on SIGTERM.
	for i, p := range nodes {
		p.cmd.Process.Signal(syscall.SIGTERM)
		// Wait may only be called once the pipe has been read to its end.
		select {
		case <-p.eof:
		case <-time.After(30 * time.Second):
			t.Fatalf("node %d did not exit on SIGTERM", i)
		}
		if err := p.cmd.Wait(); err != nil {
			t.Errorf("node %d exited with %v", i, err)
		}
		if !strings.Contains(p.output(), "shutting down") {
			t.Errorf("node %d did not report its shutdown:\n%s", i, p.output())
		}
	}
}

func TestPutWithNoReachableSeedFailsClearly(t *testing.T) {
	code, _, errOut := runCmd("put", "--seeds", "127.0.0.1:9", "--timeout", "3s", "k", "v")
	if code != exitNetwork || !strings.Contains(errOut, "no answer") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

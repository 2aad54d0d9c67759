package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemon is a `dht node` process with a data directory and an HTTP API.
type daemon struct {
	cmd  *exec.Cmd
	dir  string
	api  string
	done chan struct{}
}

// freePorts returns n UDP-and-TCP ports free on 127.0.0.1 now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var out []int
	for len(out) < n {
		l, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.LocalAddr().(*net.UDPAddr).Port
		l.Close()
		if tl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1)); err == nil {
			tl.Close()
			out = append(out, p)
		}
	}
	return out
}

// startDaemon runs `dht node` from the networks file nets, on UDP port
// port and its API on port+1, keeping its data in dir, and waits for its
// API file.
func startDaemon(t *testing.T, bin, nets, dir string, port int) *daemon {
	t.Helper()
	d := &daemon{dir: dir, api: fmt.Sprintf("127.0.0.1:%d", port+1), done: make(chan struct{})}
	d.cmd = exec.Command(bin, "node", "--network", nets+":e2e", "--listen", fmt.Sprintf("127.0.0.1:%d", port),
		"--data", dir, "--http", d.api)
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd.Stderr = io.Discard
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan struct{})
	go func() {
		defer close(d.done)
		sc := bufio.NewScanner(out)
		once := false
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "api on ") && !once {
				once = true
				close(listening)
			}
		}
		d.cmd.Wait()
	}()
	select {
	case <-listening:
	case <-time.After(30 * time.Second):
		t.Fatal("dht node did not start its API")
	}
	t.Cleanup(func() { d.stop(syscall.SIGKILL) })
	return d
}

func (d *daemon) stop(sig syscall.Signal) {
	if d.cmd.Process != nil {
		d.cmd.Process.Signal(sig)
	}
	<-d.done
}

// Three `dht node` processes from one networks file: a value written
// through the HTTP API of one is read with the CLI through another, `dht
// listen` at the third sees a later put arrive, a `dht del` by another
// publisher is refused, and a node stopped and restarted with its data
// directory still serves the value.
func TestThreeDaemonsFromANetworksFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three node processes; run without -short")
	}
	bin := buildDHT(t)
	ports := freePorts(t, 3)
	nets := filepath.Join(t.TempDir(), "networks.json")
	seeds := ""
	for i, p := range ports {
		if i > 0 {
			seeds += ","
		}
		seeds += fmt.Sprintf(`{"host": "127.0.0.1", "udp_port": %d}`, p)
	}
	if err := os.WriteFile(nets, []byte(`{"e2e": {"label": "end to end", "dht-seeds": [`+seeds+`]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	ds := make([]*daemon, 3)
	for i := range ds {
		ds[i] = startDaemon(t, bin, nets, filepath.Join(root, fmt.Sprint("n", i)), ports[i])
	}
	// Wait until every node has joined (its status says so).
	for _, d := range ds {
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, out, _ := cli(t, bin, "status", "--json", "--data", d.dir)
			var st struct{ Joined bool }
			if code == 0 && json.Unmarshal([]byte(out), &st) == nil && st.Joined {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s did not join: %s", d.dir, out)
			}
			cli(t, bin, "ping", "--data", d.dir, fmt.Sprintf("127.0.0.1:%d", ports[0])) // a request: not a sleep
		}
	}

	// dht listen at node 2, before any put.
	lctx, lcancel := context.WithCancel(context.Background())
	defer lcancel()
	listen := exec.CommandContext(lctx, bin, "listen", "--data", ds[2].dir, "alice@id.example.org:incoming")
	lout, err := listen.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := listen.Start(); err != nil {
		t.Fatal(err)
	}
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(lout)
		for sc.Scan() {
			events <- sc.Text()
		}
		close(events)
	}()
	awaitEvent := func(want string) {
		t.Helper()
		timeout := time.After(30 * time.Second)
		for {
			select {
			case e, ok := <-events:
				if !ok {
					t.Fatalf("dht listen ended before %q", want)
				}
				if strings.Contains(e, want) {
					return
				}
			case <-timeout:
				t.Fatalf("dht listen did not see %q", want)
			}
		}
	}

	// Write through node 0's HTTP API.
	token, err := os.ReadFile(filepath.Join(ds[0].dir, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPut, "http://"+ds[0].api+"/api/v1/values?key=alice@id.example.org:incoming&ttl=600", strings.NewReader("bob calling"))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT through the API: %s %s", resp.Status, body)
	}
	awaitEvent("bob calling")

	// Read with the CLI through node 1.
	if code, out, errOut := cli(t, bin, "get", "--data", ds[1].dir, "alice@id.example.org:incoming"); code != 0 || !strings.Contains(out, "bob calling") {
		t.Fatalf("dht get through node 1: exit %d, %q %q", code, out, errOut)
	}
	// A later put, through node 1's CLI, reaches the listener too.
	if code, out, errOut := cli(t, bin, "put", "--data", ds[1].dir, "alice@id.example.org:incoming", "carol calling"); code != 0 {
		t.Fatalf("dht put: exit %d, %q %q", code, out, errOut)
	}
	awaitEvent("carol calling")
	// Node 1 is another publisher than node 0: its delete withdraws only
	// its own value; node 0's stays.
	if code, _, _ := cli(t, bin, "del", "--data", ds[1].dir, "alice@id.example.org:incoming"); code != 0 {
		t.Fatalf("node 1 deleting its own value: exit %d", code)
	}
	awaitEvent("delete")
	if code, _, errOut := cli(t, bin, "del", "--data", ds[1].dir, "alice@id.example.org:incoming"); code != 1 || !strings.Contains(errOut, "no node held a value of this publisher") {
		t.Fatalf("node 1 deleting node 0's value: exit %d, %q; want it refused", code, errOut)
	}
	lcancel()
	listen.Wait()

	// Node 1 stops and starts again with its data directory: it serves the
	// value from its own store.
	ds[1].stop(syscall.SIGTERM)
	ds[0].stop(syscall.SIGTERM)
	ds[2].stop(syscall.SIGTERM)
	ds[1] = startDaemon(t, bin, nets, ds[1].dir, ports[1])
	code, out, errOut := cli(t, bin, "keys", "--json", "--data", ds[1].dir)
	if code != 0 || !strings.Contains(out, `"records"`) {
		t.Fatalf("keys after the restart: exit %d %q %q", code, out, errOut)
	}
	if code, out, _ := cli(t, bin, "get", "--data", ds[1].dir, "alice@id.example.org:incoming"); code != 0 || !strings.Contains(out, "bob calling") {
		t.Fatalf("get from the restarted node alone: exit %d %q", code, out)
	}
}

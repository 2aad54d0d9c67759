package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/api/apitest"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/node"
)

// The tests never find the developer's own node: every directory a
// command looks in is a fresh one.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dht-cli-test")
	if err != nil {
		panic(err)
	}
	for k, v := range map[string]string{"XDG_DATA_HOME": filepath.Join(dir, "data"), "XDG_RUNTIME_DIR": filepath.Join(dir, "run")} {
		os.Setenv(k, v)
	}
	for _, k := range []string{"DHT_DATA", "DHT_API", "DHT_TOKEN"} {
		os.Unsetenv(k)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const testToken = "cli-test-token"

// node is a fake node behind the real API.
type fakeNode struct {
	f    *apitest.Fake
	srv  *httptest.Server
	addr string
}

func newFakeNode(t *testing.T) *fakeNode {
	t.Helper()
	f := apitest.New()
	srv := httptest.NewServer(api.New(f, api.Options{Token: testToken}))
	t.Cleanup(srv.Close)
	return &fakeNode{f, srv, srv.Listener.Addr().String()}
}

// run runs dht with --api and --token of the fake node first.
func (n *fakeNode) run(args ...string) (int, string, string) {
	cmd := args[0]
	return runCmd(append([]string{cmd, "--api", n.addr, "--token", testToken}, args[1:]...)...)
}

func TestHelpListsEveryCommandAndTheExitCodes(t *testing.T) {
	code, out, _ := runCmd("--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, c := range commands {
		if !strings.Contains(out, "  "+c.name+" ") {
			t.Errorf("dht --help does not list %s", c.name)
		}
	}
	for _, w := range []string{"Exit codes", "0  ok", "1  not found", "2  usage", "3  network", "DHT_API", "DHT_TOKEN", "api.json"} {
		if !strings.Contains(out, w) {
			t.Errorf("dht --help does not say %q", w)
		}
	}
	if code, _, errOut := runCmd(); code != exitUsage || !strings.Contains(errOut, "Commands:") {
		t.Errorf("dht alone: exit %d, %q", code, errOut)
	}
}

// A usage error is two lines: what is wrong, then where help is.
func TestUsageErrorsAreOneLineAndAPointerToHelp(t *testing.T) {
	n := newFakeNode(t)
	hex := strings.Repeat("ab", 20)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "--frobnicate", "k"}, "flag provided but not defined: -frobnicate"},
		{[]string{"get", "--api", n.addr}, "missing KEY"},
		{[]string{"get", "--api", n.addr, "a", "b"}, `unexpected argument "b"`},
		{[]string{"get", "--api", n.addr, "--hex", "xyz"}, "-hex"},
		{[]string{"get", "--api", n.addr, "--raw", "--json", "k"}, "-raw or -json"},
		{[]string{"get", "--api", n.addr, "--seeds", "127.0.0.1:1", "k"}, "not both"},
		{[]string{"get", "--api", n.addr, strings.Repeat("k", api.MaxKey+1)}, "at most 1024"},
		{[]string{"put", "--api", n.addr, "--ttl", "0s", "k", "v"}, "-ttl"},
		{[]string{"put", "--api", n.addr, "--quorum", "-1", "k", "v"}, "-quorum"},
		{[]string{"put", "--api", n.addr, "--publisher", "me", "k", "v"}, "-publisher"},
		{[]string{"put", "--api", n.addr, "--file", "/nonexistent", "k"}, "no such file"},
		{[]string{"put", "--api", n.addr, "--file", "/dev/null", "k", "v"}, "VALUE or -file"},
		{[]string{"put", "--api", n.addr, "k"}, "missing VALUE"},
		{[]string{"lookup", "--api", n.addr, "--type", "store", "k"}, "-type"},
		{[]string{"keys", "--api", n.addr, "--limit", "0"}, "-limit"},
		{[]string{"keys", "--api", n.addr, "--after", hex[:10]}, "-after"},
		{[]string{"ping", "--api", n.addr, "nonsense"}, "HOST:PORT"},
		{[]string{"ping", "--api", n.addr}, "missing HOST:PORT"},
		{[]string{"status", "--api", n.addr, "extra"}, `unexpected argument "extra"`},
		{[]string{"status", "--k", "20", "--alpha", "21"}, "at most -k"},
		{[]string{"version", "extra"}, "unexpected argument"},
		{[]string{"status"}, "no running node found"},
		{[]string{"node", "--k", "0"}, "-k"},
	} {
		code, out, errOut := runCmd(tc.args...)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		name := "dht " + tc.args[0]
		if code != exitUsage || len(lines) != 2 || !strings.HasPrefix(lines[0], name+": ") || !strings.Contains(lines[0], tc.want) ||
			lines[1] != "Run '"+name+" --help' for usage." || out != "" {
			t.Errorf("%q: exit %d, stdout %q, stderr:\n%s\nwant exit 2 and two lines, the first saying %q", tc.args, code, out, errOut, tc.want)
		}
	}
	code, _, errOut := runCmd("frobnicate")
	if code != exitUsage || strings.Count(errOut, "\n") != 2 || !strings.Contains(errOut, "unknown command") {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
}

// helpFlags reads the flags and their texts from a command's --help.
func helpFlags(t *testing.T, cmd string) map[string]string {
	t.Helper()
	code, _, out := runCmd(cmd, "--help")
	if code != exitOK {
		t.Fatalf("dht %s --help: exit %d", cmd, code)
	}
	flags := map[string]string{}
	var name string
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, "  -"); ok {
			name = strings.Fields(rest)[0]
			flags[name] = ""
			continue
		}
		if name != "" && strings.HasPrefix(line, "    \t") {
			flags[name] += strings.TrimPrefix(line, "    \t")
		}
	}
	return flags
}

// A flag name means one thing in every command that drives a node: the
// same text in each --help (defaults aside).
func TestOneMeaningPerFlagName(t *testing.T) {
	seen, where := map[string]string{}, map[string]string{}
	for _, c := range []string{"status", "table", "keys", "ping", "lookup", "put", "get", "del", "listen", "version"} {
		for name, text := range helpFlags(t, c) {
			if i := strings.Index(text, " (default "); i >= 0 {
				text = text[:i]
			}
			if prev, ok := seen[name]; ok && prev != text {
				t.Errorf("-%s in dht %s: %q\n-%s in dht %s: %q", name, c, text, name, where[name], prev)
			}
			seen[name], where[name] = text, c
		}
	}
	for _, name := range []string{"api", "token", "data", "json", "timeout", "seeds", "network", "network-id", "hex", "publisher"} {
		if _, ok := seen[name]; !ok {
			t.Errorf("no command has -%s", name)
		}
	}
}

func TestStatusDescribesTheNode(t *testing.T) {
	n := newFakeNode(t)
	code, out, errOut := n.run("status")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, w := range []string{n.f.Self.ID.String(), "test (id 7)", "127.0.0.1:4000", "1h", "joined     yes", "contacts   3", "seed.invalid:4000  unresolved: no such host"} {
		if !strings.Contains(out, w) {
			t.Errorf("status does not say %q:\n%s", w, out)
		}
	}
	code, out, _ = n.run("status", "--json")
	var info api.Info
	if code != exitOK || json.Unmarshal([]byte(out), &info) != nil || info.ID != n.f.Self.ID {
		t.Errorf("status --json: %d %s", code, out)
	}
}

// dht table prints one row per distance range, farthest first, with the
// contacts held out of K, how fresh they are and when the range was last
// looked up; runs of empty ranges take one row.
func TestTableIsTheKademliaLookupTable(t *testing.T) {
	n := newFakeNode(t)
	code, out, errOut := n.run("table")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{
		"routing table of " + n.f.Self.ID.String() + ": 3 contact(s), k = 20",
		"DISTANCE      CONTACTS  LAST SEEN    LOOKED UP  NOTES",
		"2^159..2^160  0/20      -            5.0s ago   1 waiting",
		"2^158..2^159  2/20      1m..20m ago  2m ago     1 failing, 1 unverified",
		"2^157..2^158  1/20      3.0s ago     never",
		"2^0..2^157    0/20      -            never      (closer ranges are empty, as expected)",
	}
	for i, w := range want {
		if i >= len(lines) || strings.TrimRight(lines[i], " ") != w {
			t.Errorf("line %d:\n got %q\nwant %q\n%s", i, lines[min(i, len(lines)-1)], w, out)
		}
	}
	code, out, _ = n.run("table", "--json")
	var tab api.Table
	if code != exitOK || json.Unmarshal([]byte(out), &tab) != nil || len(tab.Buckets) != 3 {
		t.Errorf("table --json: %d %s", code, out)
	}
}

func TestKeysListsStoredKeysAndPages(t *testing.T) {
	n := newFakeNode(t)
	if code, out, _ := n.run("keys"); code != exitOK || out != "no keys stored\n" {
		t.Errorf("no keys: %d %q", code, out)
	}
	for i := range 3 {
		n.f.Put(context.Background(), id.Key(fmt.Sprint("k", i)), []byte("value"), api.PutOptions{})
	}
	code, out, errOut := n.run("keys", "--limit", "2")
	if code != exitOK || strings.Count(out, "\n") != 3 || !strings.Contains(errOut, "dht keys -after ") {
		t.Errorf("a page: %d %q %q", code, out, errOut)
	}
	code, out, _ = n.run("keys", "--all", "--limit", "1", "--json")
	var p api.KeysPage
	if code != exitOK || json.Unmarshal([]byte(out), &p) != nil || len(p.Keys) != 3 || p.Keys[0].Bytes != 5 {
		t.Errorf("keys --all --json: %d %s", code, out)
	}
}

func TestPingPrintsTheContactAndRTT(t *testing.T) {
	n := newFakeNode(t)
	c := n.f.Closest[0]
	code, out, _ := n.run("ping", c.Addr.String())
	if code != exitOK || out != fmt.Sprintf("%s answered from %s in 1.5ms\n", c.ID, c.Addr) {
		t.Errorf("ping: %d %q", code, out)
	}
	if code, _, errOut := n.run("ping", "127.0.0.1:9"); code != exitNetwork || errOut == "" {
		t.Errorf("ping of nobody: %d %q", code, errOut)
	}
	code, out, _ = n.run("ping", "--json", c.Addr.String())
	var r api.PingResult
	if code != exitOK || json.Unmarshal([]byte(out), &r) != nil || r.Contact != c {
		t.Errorf("ping --json: %d %s", code, out)
	}
}

func TestLookupPrintsTheClosestAndItsTrace(t *testing.T) {
	n := newFakeNode(t)
	code, out, _ := n.run("lookup", "k")
	if code != exitOK || strings.Count(out, "\n") != 3 || !strings.Contains(out, n.f.Closest[0].ID.String()) {
		t.Errorf("lookup: %d %q", code, out)
	}
	code, out, _ = n.run("lookup", "--trace", "k")
	for _, w := range []string{"round 1: 1 node(s) asked", "round 2: 2 node(s) asked", "took 38.0ms", "timeout", "2 contact(s)", "node lookup of"} {
		if code != exitOK || !strings.Contains(out, w) {
			t.Errorf("lookup --trace does not say %q:\n%s", w, out)
		}
	}
	// A value lookup that finds nothing: exit 1, with the trace asked for.
	code, out, _ = n.run("lookup", "--type", "value", "--trace", "k")
	if code != exitNotFound || !strings.Contains(out, "round 2") {
		t.Errorf("value lookup of nothing: %d %q", code, out)
	}
	code, out, _ = n.run("lookup", "--json", "--hex", n.f.Closest[1].ID.String())
	var r api.LookupResult
	if code != exitOK || json.Unmarshal([]byte(out), &r) != nil || r.Target != n.f.Closest[1].ID || len(r.Rounds) != 2 {
		t.Errorf("lookup --json: %d %s", code, out)
	}
}

func TestPutPrintsItsReceiptsAndTheGrantedTTL(t *testing.T) {
	n := newFakeNode(t)
	n.f.NoAnswer, n.f.MaxTTL = 3, 12*time.Hour
	code, out, errOut := n.run("put", "--ttl", "48h", "alice", "203.0.113.7:4000")
	if code != exitOK || out != "stored on 17 of 20 (3 no answer)\ngranted TTL 12h0m0s (asked 48h0m0s)\n" || errOut != "" {
		t.Errorf("put: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	code, out, _ = n.run("put", "--ttl", "2h", "alice", "v2")
	if code != exitOK || out != "stored on 17 of 20 (3 no answer)\n" {
		t.Errorf("put with a TTL granted as asked: %d %q", code, out)
	}
	n.f.Refuse = 1
	code, out, _ = n.run("put", "--json", "--publisher", strings.Repeat("ab", 20), "alice", "v3")
	var r api.PutResult
	if code != exitOK || json.Unmarshal([]byte(out), &r) != nil || r.Stored != 16 || r.Publisher.String() != strings.Repeat("ab", 20) {
		t.Errorf("put --json: %d %s", code, out)
	}
	code, out, _ = n.run("put", "alice", "v4")
	if !strings.Contains(out, "stored on 16 of 20 (3 no answer, 1 refused)\nrefused by 127.0.0.2:5003: store: key full") {
		t.Errorf("refusals: %d %q", code, out)
	}
}

// Below its quorum a put exits 3, after printing what it got.
func TestPutBelowQuorumExitsNonZero(t *testing.T) {
	n := newFakeNode(t)
	n.f.NoAnswer = 3
	code, out, errOut := n.run("put", "--quorum", "18", "k", "v")
	if code != exitNetwork || out != "stored on 17 of 20 (3 no answer)\n" || !strings.Contains(errOut, "quorum not reached") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if code, _, _ := n.run("put", "--quorum", "17", "k", "v"); code != exitOK {
		t.Errorf("at the quorum: exit %d", code)
	}
	code, out, _ = n.run("put", "--json", "--quorum", "18", "k", "v")
	var r api.PutResult
	if code != exitNetwork || json.Unmarshal([]byte(out), &r) != nil || len(r.Receipts) != 20 {
		t.Errorf("--json below quorum: %d %s", code, out)
	}
}

func TestPutReadsStdinAndFiles(t *testing.T) {
	n := newFakeNode(t)
	bin := []byte{0, 1, 2, 0xfe, 0xff, '\n'}
	stdin = bytes.NewReader(bin)
	defer func() { stdin = os.Stdin }()
	if code, _, errOut := n.run("put", "from-stdin", "-"); code != exitOK {
		t.Fatalf("put -: %d %s", code, errOut)
	}
	file := filepath.Join(t.TempDir(), "v")
	os.WriteFile(file, []byte("from a file"), 0o600)
	if code, _, errOut := n.run("put", "--file", file, "from-file"); code != exitOK {
		t.Fatalf("put --file: %d %s", code, errOut)
	}
	for key, want := range map[string][]byte{"from-stdin": bin, "from-file": []byte("from a file")} {
		g, err := n.f.Get(context.Background(), id.Key(key))
		if err != nil || !bytes.Equal(g.Values[0].Data, want) {
			t.Errorf("%s: %v %+v", key, err, g.Values)
		}
	}
	stdin = bytes.NewReader(bytes.Repeat([]byte("x"), api.MaxBody+1))
	if code, _, errOut := n.run("put", "big", "-"); code != exitUsage || !strings.Contains(errOut, "over") {
		t.Errorf("an oversize value: %d %q", code, errOut)
	}
	// Flags after the arguments, and "--" before a value that looks like one.
	if code, _, errOut := n.run("put", "dash", "--ttl", "1h", "--", "-5"); code != exitOK {
		t.Errorf("put -- -5: %d %s", code, errOut)
	}
	if g, _ := n.f.Get(context.Background(), id.Key("dash")); len(g.Values) != 1 || string(g.Values[0].Data) != "-5" {
		t.Errorf("put -- -5 stored %+v", g.Values)
	}
}

// Get never writes a value's raw bytes to the terminal unless asked: text
// is printed as it is, anything else quoted with escapes.
func TestGetIsBinarySafe(t *testing.T) {
	n := newFakeNode(t)
	ctx := context.Background()
	for i, v := range []string{"203.0.113.7:4000", "line one\nline two", "\x1b[31mred\x1b[0m", "\x00\xff", `"quoted"`, "right\u202eleft"} {
		n.f.Put(ctx, id.Key("k"), []byte(v), api.PutOptions{Publisher: id.Key(fmt.Sprint("p", i)), Version: uint64(10 - i)})
	}
	code, out, _ := n.run("get", "k")
	want := "203.0.113.7:4000\n" + `"line one\nline two"` + "\n" + `"\x1b[31mred\x1b[0m"` + "\n" + `"\x00\xff"` + "\n" + `"\"quoted\""` + "\n" + `"right\u202eleft"` + "\n"
	if code != exitOK || out != want {
		t.Errorf("get:\n got %q\nwant %q", out, want)
	}
	code, out, errOut := n.run("get", "--raw", "k")
	if code != exitOK || out != "203.0.113.7:4000" || !strings.Contains(errOut, "5 older value(s)") {
		t.Errorf("get --raw: %d %q %q", code, out, errOut)
	}
	n.f.Put(ctx, id.Key("bin"), []byte{0, 0xff, '\n'}, api.PutOptions{})
	if code, out, _ := n.run("get", "--raw", "bin"); code != exitOK || out != "\x00\xff\n" {
		t.Errorf("get --raw of binary: %q", out)
	}
	code, out, _ = n.run("get", "--json", "bin")
	var g api.GetResult
	if code != exitOK || json.Unmarshal([]byte(out), &g) != nil || !bytes.Equal(g.Values[0].Data, []byte{0, 0xff, '\n'}) || !strings.Contains(out, `"data": "AP8K"`) {
		t.Errorf("get --json: %d %s", code, out)
	}
}

func TestNotFoundExitsOne(t *testing.T) {
	n := newFakeNode(t)
	if code, out, errOut := n.run("get", "nobody"); code != exitNotFound || out != "" || errOut != "not found\n" {
		t.Errorf("get: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := n.run("del", "nobody"); code != exitNotFound || !strings.Contains(errOut, "no node held") {
		t.Errorf("del: %d %q", code, errOut)
	}
}

func TestDelWithdrawsTheValue(t *testing.T) {
	n := newFakeNode(t)
	n.f.NoAnswer = 2
	n.run("put", "k", "v")
	code, out, _ := n.run("del", "k")
	if code != exitOK || out != "withdrawn from 18 of 20 (2 no answer)\n" {
		t.Errorf("del: %d %q", code, out)
	}
	if code, _, _ := n.run("get", "k"); code != exitNotFound {
		t.Errorf("get after del: exit %d", code)
	}
	pub := strings.Repeat("cd", 20)
	n.run("put", "--publisher", pub, "k", "v")
	code, out, _ = n.run("del", "--json", "--publisher", pub, "k")
	var r api.DeleteResult
	if code != exitOK || json.Unmarshal([]byte(out), &r) != nil || r.Publisher.String() != pub {
		t.Errorf("del --json: %d %s", code, out)
	}
}

// The node or the network failing exits 3, with what went wrong.
func TestNetworkFailuresExitThree(t *testing.T) {
	n := newFakeNode(t)
	n.f.Fail("Get", api.ErrNoPeers)
	if code, _, errOut := n.run("get", "k"); code != exitNetwork || !strings.Contains(errOut, "no peers") {
		t.Errorf("no peers: %d %q", code, errOut)
	}
	code, _, errOut := runCmd("put", "--api", n.addr, "--token", "wrong", "k", "v")
	if code != exitNetwork || !strings.Contains(errOut, "wrong token") || !strings.Contains(errOut, "-token") {
		t.Errorf("wrong token: %d %q", code, errOut)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	gone := l.Addr().String()
	l.Close()
	if code, _, errOut := runCmd("status", "--api", gone); code != exitNetwork || !strings.Contains(errOut, "cannot reach the node at "+gone) || !strings.Contains(errOut, "refused") {
		t.Errorf("nobody at --api: %d %q", code, errOut)
	}
	n.f.Block("Table")
	if code, _, errOut := n.run("table", "--timeout", "10ms"); code != exitNetwork || !strings.Contains(errOut, "no answer within 10ms") {
		t.Errorf("timeout: %d %q", code, errOut)
	}
}

// Without --api or --seeds, a command talks to the node running on this
// machine, found through DATA/api.json and authenticated with DATA/api.token;
// a file left by a node that is gone is skipped.
func TestCommandsFindTheRunningNode(t *testing.T) {
	n := newFakeNode(t)
	dir := t.TempDir()
	writeJSON := func(pid int) {
		b, _ := json.Marshal(apiFile{Addr: n.addr, PID: pid})
		os.WriteFile(filepath.Join(dir, "api.json"), b, 0o600)
	}
	writeJSON(os.Getpid())
	os.WriteFile(filepath.Join(dir, "api.token"), []byte(testToken+"\n"), 0o600)
	if code, out, errOut := runCmd("put", "--data", dir, "k", "v"); code != exitOK || !strings.HasPrefix(out, "stored on 20 of 20") {
		t.Errorf("put through DATA/api.json: %d %q %q", code, out, errOut)
	}
	t.Setenv("DHT_DATA", dir)
	if code, out, _ := runCmd("get", "k"); code != exitOK || out != "v\n" {
		t.Errorf("get through $DHT_DATA: %d %q", code, out)
	}
	// The default data directory.
	def := filepath.Join(os.Getenv("XDG_DATA_HOME"), "dht")
	os.MkdirAll(def, 0o700)
	defer os.RemoveAll(def)
	os.Unsetenv("DHT_DATA") // t.Setenv restores it
	b, _ := os.ReadFile(filepath.Join(dir, "api.json"))
	os.WriteFile(filepath.Join(def, "api.json"), b, 0o600)
	if code, out, errOut := runCmd("status"); code != exitOK || !strings.Contains(out, def) {
		t.Errorf("status through the default data dir: %d %q %q", code, out, errOut)
	}
	// A node that died without removing its file.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Skip(err)
	}
	writeJSON(dead.Process.Pid)
	os.Remove(filepath.Join(def, "api.json"))
	if code, _, errOut := runCmd("get", "--data", dir, "k"); code != exitUsage || !strings.Contains(errOut, "no running node found") {
		t.Errorf("stale api.json: %d %q", code, errOut)
	}
}

// listenBackend is a Fake whose Listen channel the test ends.
type listenBackend struct {
	*apitest.Fake
	ch chan api.ValueEvent
}

func (b *listenBackend) Listen(ctx context.Context, key id.ID) (<-chan api.ValueEvent, error) {
	return b.ch, nil
}

func TestListenPrintsEventsAsTheyArrive(t *testing.T) {
	b := &listenBackend{Fake: apitest.New(), ch: make(chan api.ValueEvent)}
	srv := httptest.NewServer(api.New(b, api.Options{Token: testToken}))
	defer srv.Close()
	for _, asJSON := range []bool{false, true} {
		pr, pw := io.Pipe()
		var errOut bytes.Buffer
		done := make(chan int, 1)
		args := []string{"listen", "--api", srv.Listener.Addr().String(), "k"}
		if asJSON {
			args = append(args, "--json")
		}
		go func() { done <- run(args, pw, &errOut); pw.Close() }()
		lines := bufio.NewScanner(pr)
		key := id.Key("k")
		b.ch <- api.ValueEvent{Kind: api.EventPut, Key: key, Value: api.Value{Data: []byte("v1\x00"), Publisher: id.Key("p"), Version: 3, TTL: time.Hour}}
		if !lines.Scan() {
			t.Fatal("no line")
		}
		line := lines.Text()
		if asJSON {
			var ev api.ValueEvent
			if err := json.Unmarshal([]byte(line), &ev); err != nil || ev.Kind != api.EventPut || string(ev.Value.Data) != "v1\x00" {
				t.Errorf("listen --json line %q: %v", line, err)
			}
		} else if want := "put\tpublisher " + id.Key("p").Short() + "\tversion 3\tttl 1h\t\"v1\\x00\""; line != want {
			t.Errorf("listen line\n got %q\nwant %q", line, want)
		}
		b.ch <- api.ValueEvent{Kind: api.EventDelete, Key: key, Value: api.Value{Publisher: id.Key("p"), Version: 4}}
		if !lines.Scan() || !strings.Contains(lines.Text(), "delete") {
			t.Errorf("no delete line: %q", lines.Text())
		}
		if asJSON {
			// The node stops: the stream ends, and so does the command.
			close(b.ch)
			if code := <-done; code != exitNetwork || !strings.Contains(errOut.String(), "the node ended the stream") {
				t.Errorf("after the node ended the stream: exit %d, %q", code, errOut.String())
			}
		} else {
			srv.CloseClientConnections()
			if code := <-done; code != exitNetwork || !strings.Contains(errOut.String(), "broke") {
				t.Errorf("after the connection broke: exit %d, %q", code, errOut.String())
			}
		}
		io.Copy(io.Discard, pr)
	}
	// -timeout ends listening as asked: exit 0.
	n := newFakeNode(t)
	if code, _, errOut := n.run("listen", "--timeout", "10ms", "k"); code != exitOK {
		t.Errorf("listen --timeout: exit %d %q", code, errOut)
	}
}

func TestVersionPrintsTheVersion(t *testing.T) {
	code, out, _ := runCmd("version")
	if code != exitOK || !strings.HasPrefix(out, "dht ") || !strings.Contains(out, "go1.") {
		t.Errorf("version: %d %q", code, out)
	}
	code, out, _ = runCmd("version", "--json")
	var v map[string]string
	if code != exitOK || json.Unmarshal([]byte(out), &v) != nil || v["version"] == "" {
		t.Errorf("version --json: %d %q", code, out)
	}
}

// loopbackNodes starts n nodes on 127.0.0.1 with the network number
// network, closed at the end of the test; they have not joined.
func loopbackNodes(t *testing.T, n int, network uint32) []*dht.Node {
	t.Helper()
	var nodes []*dht.Node
	for range n {
		cfg := dht.DefaultConfig()
		cfg.Listen = []string{"127.0.0.1:0"}
		cfg.NetworkID = network
		nd, err := dht.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nd.Close() })
		nodes = append(nodes, nd)
	}
	return nodes
}

// With --seeds, a command runs a short-lived node of its own that joins
// through them, as before there was a running node to talk to.
func TestSeedsRunAShortLivedNode(t *testing.T) {
	nodes := loopbackNodes(t, 3, 0)
	seed := nodes[0].Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, n := range nodes[1:] {
		if err := n.Bootstrap(ctx, seed); err != nil {
			t.Fatal(err)
		}
	}
	code, out, errOut := runCmd("put", "--seeds", seed, "--quorum", "2", "k", "v")
	if code != exitOK || !strings.HasPrefix(out, "stored on 3 of 3") {
		t.Fatalf("put: %d %q %q", code, out, errOut)
	}
	if code, out, errOut := runCmd("get", "--seeds", seed, "k"); code != exitOK || out != "v\n" {
		t.Errorf("get: %d %q %q", code, out, errOut)
	}
	if code, _, _ := runCmd("get", "--seeds", seed, "nobody"); code != exitNotFound {
		t.Errorf("get of nothing: exit %d", code)
	}
	if code, out, _ := runCmd("put", "--seeds", seed, "--quorum", "4", "k", "v"); code != exitNetwork || !strings.HasPrefix(out, "stored on 3 of 3") {
		t.Errorf("below quorum: %d %q", code, out)
	}
	if code, out, _ := runCmd("ping", "--seeds", seed, nodes[2].Addr().String()); code != exitOK || !strings.HasPrefix(out, nodes[2].ID().String()) {
		t.Errorf("ping: %d %q", code, out)
	}
	if code, out, _ := runCmd("lookup", "--seeds", seed, "k"); code != exitOK || strings.Count(out, "\n") < 3 {
		t.Errorf("lookup: %d %q", code, out)
	}
	// A short-lived node has an ID of its own: it is another publisher,
	// whose delete withdraws nothing; with the publisher named, it does.
	if code, _, errOut := runCmd("del", "--seeds", seed, "k"); code != exitNotFound || !strings.Contains(errOut, "no node held a value of this publisher") {
		t.Errorf("del by another publisher: %d %q", code, errOut)
	}
	pub := strings.Repeat("ab", 20)
	if code, out, errOut := runCmd("put", "--seeds", seed, "--publisher", pub, "k2", "v2"); code != exitOK {
		t.Fatalf("put as %s: %d %q %q", pub, code, out, errOut)
	}
	if code, out, errOut := runCmd("del", "--seeds", seed, "--publisher", pub, "k2"); code != exitOK {
		t.Errorf("del by the publisher: %d %q %q", code, out, errOut)
	}
	if code, out, _ := runCmd("status", "--seeds", seed, "--json"); code != exitOK || !strings.Contains(out, `"read_only": true`) {
		t.Errorf("status: %d %q", code, out)
	}
}

// The HTTP handler `dht node` serves, on a public address: the dashboard
// loads without the token, the API and the metrics need it.
func TestNodeHandlerOnAPublicAddress(t *testing.T) {
	n := loopbackNodes(t, 1, 0)[0]
	h := nodeHooks.Handler(&node.Service{Node: n, Status: &node.Status{}, Token: testToken, Public: true, Config: &node.DaemonConfig{Node: dht.DefaultConfig()}})
	get := func(path, auth string) int {
		req := httptest.NewRequest("GET", path, nil)
		req.Host = "192.0.2.10:4001"
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	for _, p := range []string{"/", "/app.js", "/style.css"} {
		if code := get(p, ""); code != 200 {
			t.Errorf("GET %s without the token: %d, want 200", p, code)
		}
	}
	for _, p := range []string{"/api/v1/info", "/api/v1/events", "/metrics", "/openapi.json"} {
		if code := get(p, ""); code != 401 {
			t.Errorf("GET %s without the token: %d, want 401", p, code)
		}
	}
	for _, p := range []string{"/api/v1/info", "/metrics"} {
		if code := get(p, "Bearer "+testToken); code != 200 {
			t.Errorf("GET %s with the token: %d, want 200", p, code)
		}
	}
}

// flagKind says what a command's flag takes, from its --help line and from
// which values the command accepts for it: a boolean (no value shown), a
// number, a duration, HOST:PORT addresses, or any text.
func flagKind(t *testing.T, cmd []string, name string, boolean bool) string {
	t.Helper()
	if boolean {
		return "boolean"
	}
	accepts := func(v string) bool {
		code, _, _ := runCmd(append(slices.Clone(cmd), "--"+name, v, "--help")...)
		return code == exitOK
	}
	num, dur, addr := accepts("2"), accepts("2s"), accepts("127.0.0.1:4000")
	switch {
	case num && dur && addr:
		return "text"
	case num && !dur && !addr:
		return "number"
	case dur && !num && !addr:
		return "duration"
	case addr && !num && !dur:
		return "addresses"
	}
	return fmt.Sprintf("other (accepts 2: %v, 2s: %v, 127.0.0.1:4000: %v)", num, dur, addr)
}

// helpFlagNames reads a command's flags from its --help: name, and whether
// it shows no value (a boolean).
func helpFlagNames(t *testing.T, cmd []string) map[string]bool {
	t.Helper()
	code, out, errOut := runCmd(append(slices.Clone(cmd), "--help")...)
	if code != exitOK {
		t.Fatalf("dht %s --help: exit %d", strings.Join(cmd, " "), code)
	}
	flags := map[string]bool{}
	for _, line := range strings.Split(out+errOut, "\n") {
		if rest, ok := strings.CutPrefix(line, "  -"); ok && !strings.HasPrefix(rest, " ") {
			fields := strings.Fields(rest)
			flags[fields[0]] = len(fields) == 1
		}
	}
	if len(flags) == 0 {
		t.Fatalf("dht %s --help lists no flags; the pattern no longer matches it", strings.Join(cmd, " "))
	}
	return flags
}

// Across every command, dht node's settings included, a flag name takes
// one kind of value. What a name means beyond its kind is checked for the
// commands that drive a node by TestOneMeaningPerFlagName; here the
// exceptions left are listed, each with why, and the test fails when one
// is no longer needed, so that the list stays true.
func TestOneKindPerFlagNameAcrossAllCommands(t *testing.T) {
	known := map[string]string{}              // none left; a name added here says why
	kinds := map[string]map[string][]string{} // name -> kind -> commands
	add := func(name, kind, cmd string) {
		if kinds[name] == nil {
			kinds[name] = map[string][]string{}
		}
		kinds[name][kind] = append(kinds[name][kind], cmd)
	}
	nodeKinds := map[string]string{"string": "text", "integer": "number", "boolean": "boolean", "duration": "duration", "list": "list"}
	for _, s := range node.Settings() {
		k := nodeKinds[s.Type]
		if k == "" {
			t.Fatalf("dht node --%s: setting type %q unknown to this test", s.Name, s.Type)
		}
		if k == "list" && strings.Contains(s.Allowed, "HOST:PORT") {
			k = "addresses"
		}
		add(s.Name, k, "node")
	}
	cmds := [][]string{{"bench", "serve"}, {"bench", "cluster"}, {"bench", "idle"}, {"bench", "flood"}, {"sim"}}
	for _, c := range commands {
		if c.name != "node" && c.name != "sim" && c.name != "bench" {
			cmds = append(cmds, []string{c.name})
		}
	}
	for _, cmd := range cmds {
		for name, boolean := range helpFlagNames(t, cmd) {
			add(name, flagKind(t, cmd, name, boolean), strings.Join(cmd, " "))
		}
	}
	for name, byKind := range kinds {
		_, excused := known[name]
		if len(byKind) > 1 && !excused {
			t.Errorf("--%s takes different kinds of value: %v", name, byKind)
		}
		if len(byKind) == 1 && excused {
			t.Errorf("--%s now takes one kind of value everywhere: remove it from this test's exceptions", name)
		}
	}
	for _, name := range []string{"network", "network-id", "seeds", "k", "alpha", "data", "json", "timeout"} {
		if len(kinds[name]) == 0 {
			t.Errorf("no command has --%s: the test no longer reads the flags", name)
		}
	}
	if byKind := kinds["network"]; len(byKind) != 1 || len(byKind["text"]) < 2 {
		t.Errorf("--network: %v, want FILE[:NAME] text in dht node and the commands that drive a node", byKind)
	}
}

// --network FILE:NAME means what it means to dht node: a short-lived
// node joins through the network's seeds with its constants (here its
// network number), and --seeds or --network-id override them.
func TestNetworkFileRunsAShortLivedNodeOnThatNetwork(t *testing.T) {
	nodes := loopbackNodes(t, 2, 4242)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := nodes[1].Bootstrap(ctx, nodes[0].Addr().String()); err != nil {
		t.Fatal(err)
	}
	if _, err := nodes[1].Put(ctx, dht.Key("k"), []byte("on lab")); err != nil {
		t.Fatal(err)
	}
	seed := nodes[0].Addr()
	file := filepath.Join(t.TempDir(), "networks.json")
	doc := fmt.Sprintf(`{"lab": {"label": "lab", "dht-constants": {"network_id": 4242, "rpc_timeout": 1},
		"dht-seeds": [{"host": %q, "udp_port": %d}]}}`, seed.Addr().String(), seed.Port())
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runCmd("get", "--network", file+":lab", "k"); code != exitOK || out != "on lab\n" {
		t.Errorf("get --network FILE:lab: %d %q %q", code, out, errOut)
	}
	// Another network number: the seed drops the datagrams.
	if code, _, errOut := runCmd("get", "--network", file+":lab", "--network-id", "7", "--timeout", "3s", "k"); code != exitNetwork {
		t.Errorf("get on network 7 through network 4242's seed: exit %d %q, want 3", code, errOut)
	}
	if code, _, errOut := runCmd("get", "--network", file+":nope", "k"); code != exitUsage || !strings.Contains(errOut, "-network") {
		t.Errorf("an unknown network: exit %d %q, want a usage error naming -network", code, errOut)
	}
	if code, _, errOut := runCmd("get", "--network", file+":lab", "--api", "127.0.0.1:1", "k"); code != exitUsage || !strings.Contains(errOut, "not both") {
		t.Errorf("--network with --api: exit %d %q, want a usage error", code, errOut)
	}
}

// termWriter stands for a terminal: it keeps what is written and says when
// the first bytes came.
type termWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first chan struct{}
}

func (w *termWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() == 0 && len(p) > 0 {
		close(w.first)
	}
	return w.buf.Write(p)
}

func (w *termWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// withProgressNow draws progress at once (no delay) for one test, with
// isTerm deciding what is a terminal (nil: the real check).
func withProgressNow(t *testing.T, isTerm func(io.Writer) bool) {
	oldDelay, oldTerm := progressDelay, stderrIsTerminal
	progressDelay = 0
	if isTerm != nil {
		stderrIsTerminal = isTerm
	}
	t.Cleanup(func() { progressDelay, stderrIsTerminal = oldDelay, oldTerm })
}

// On a terminal, a put shows what it waits for while it waits, and clears
// the line when done: the node answers only once the spinner was drawn.
func TestProgressShowsOnATerminalWhileTheOperationWaits(t *testing.T) {
	withProgressNow(t, func(w io.Writer) bool { _, ok := w.(*termWriter); return ok })
	tw := &termWriter{first: make(chan struct{})}
	inner := api.New(apitest.New(), api.Options{Token: testToken})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-tw.first:
		case <-time.After(10 * time.Second):
		}
		inner.ServeHTTP(w, r)
	}))
	defer srv.Close()
	var out bytes.Buffer
	code := run([]string{"put", "--api", srv.Listener.Addr().String(), "--token", testToken, "--quorum", "1", "k", "v"}, &out, tw)
	select {
	case <-tw.first:
	default:
		t.Fatalf("put on a terminal: exit %d, nothing written to the terminal while it waited", code)
	}
	got := tw.String()
	if code != exitOK || !strings.Contains(got, "waiting for 1 node(s) to accept") || !strings.HasSuffix(got, "\r") {
		t.Errorf("put on a terminal: exit %d, terminal %q: want the spinner's description, then the line cleared", code, got)
	}
	if !strings.HasPrefix(out.String(), "stored on") {
		t.Errorf("stdout %q", out.String())
	}
}

// Where stderr is not a terminal (a pipe, a file, /dev/null, a buffer),
// nothing but the command's own messages is written to it, even with no
// delay before the spinner would show.
func TestProgressStaysQuietWhenStderrIsNotATerminal(t *testing.T) {
	withProgressNow(t, nil) // the real terminal check
	n := newFakeNode(t)
	dir := t.TempDir()
	file, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	if stderrIsTerminal(devNull) || stderrIsTerminal(pw) || stderrIsTerminal(file) || stderrIsTerminal(&bytes.Buffer{}) {
		t.Fatal("a pipe, a file, /dev/null or a buffer taken for a terminal")
	}
	var buf bytes.Buffer
	for _, w := range []io.Writer{file, pw, devNull, &buf} {
		for _, args := range [][]string{{"put", "--quorum", "1", "k", "v"}, {"get", "k"}, {"lookup", "k"}, {"del", "k"}, {"ping", "127.0.0.1:4000"}} {
			var out bytes.Buffer
			full := append([]string{args[0], "--api", n.addr, "--token", testToken}, args[1:]...)
			if code := run(full, &out, w); code != exitOK {
				t.Fatalf("%v: exit %d", args, code)
			}
		}
	}
	pw.Close()
	piped, _ := io.ReadAll(pr)
	written, _ := os.ReadFile(file.Name())
	for what, b := range map[string]string{"a file": string(written), "a pipe": string(piped), "a buffer": buf.String()} {
		if b != "" {
			t.Errorf("with stderr %s, the commands wrote %q to it", what, b)
		}
	}
}

// An operation over before the progress delay draws nothing, even on a
// terminal: a quick command's output is not littered with a spinner.
func TestProgressWaitsBeforeShowing(t *testing.T) {
	withProgressNow(t, func(w io.Writer) bool { _, ok := w.(*termWriter); return ok })
	progressDelay = time.Minute // far longer than a put to a fake node
	n := newFakeNode(t)
	tw := &termWriter{first: make(chan struct{})}
	var out bytes.Buffer
	if code := run([]string{"put", "--api", n.addr, "--token", testToken, "k", "v"}, &out, tw); code != exitOK {
		t.Fatalf("put: exit %d", code)
	}
	if got := tw.String(); got != "" {
		t.Errorf("a quick put wrote %q to the terminal", got)
	}
}

package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/store"
)

// The daemon tests run real nodes over UDP on 127.0.0.1 and wait on the
// daemon's Status (or a hook), never on time.Sleep. Timeouts are short so
// that a dead seed costs an attempt little.

const testWait = 30 * time.Second

func fastConfig() dht.Config {
	cfg := dht.DefaultConfig()
	cfg.Listen = []string{"127.0.0.1:0"}
	cfg.RequestTimeout = 100 * time.Millisecond
	cfg.Attempts = 1
	return cfg
}

// plainNode starts an ordinary node on loopback, joined through seeds.
func plainNode(t *testing.T, seeds ...string) *dht.Node {
	t.Helper()
	n, err := dht.New(fastConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if len(seeds) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), testWait)
		defer cancel()
		if err := n.Bootstrap(ctx, seeds...); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// deadAddr is a loopback UDP address where nothing listens.
func deadAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	c.Close()
	return a
}

func seedOf(a netip.AddrPort) Seed { return Seed{Host: a.Addr().String(), UDPPort: a.Port()} }

// logRecorder is a slog handler that keeps the messages and attributes.
type logRecorder struct {
	mu   sync.Mutex
	recs []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	l.mu.Lock()
	l.recs = append(l.recs, b.String())
	l.mu.Unlock()
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// count returns how many messages are exactly msg.
func (l *logRecorder) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, r := range l.recs {
		if r == msg || strings.HasPrefix(r, msg+" ") {
			n++
		}
	}
	return n
}

// daemonRun is a running Run.
type daemonRun struct {
	svc    *Service
	cancel context.CancelFunc
	done   chan error
}

// startDaemon runs Run until the test ends (or stop is called) and returns
// once the node runs.
func startDaemon(t *testing.T, cfg DaemonConfig, hooks Hooks) *daemonRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &daemonRun{cancel: cancel, done: make(chan error, 1)}
	started := make(chan *Service, 1)
	user := hooks.Started
	hooks.Started = func(s *Service) {
		if user != nil {
			user(s)
		}
		started <- s
	}
	go func() { r.done <- Run(ctx, cfg, hooks) }()
	select {
	case r.svc = <-started:
	case err := <-r.done:
		t.Fatalf("Run returned before starting: %v", err)
	case <-time.After(testWait):
		t.Fatal("the daemon did not start")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it; it may be called more than once.
func (r *daemonRun) stop(t *testing.T) {
	t.Helper()
	r.cancel()
	if r.done == nil {
		return
	}
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(testWait):
		t.Fatal("Run did not return after cancel")
	}
	r.done = nil
}

func (r *daemonRun) wait(t *testing.T, what string, cond func(StatusSnapshot) bool) StatusSnapshot {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	s, err := r.svc.Status.Wait(ctx, cond)
	if err != nil {
		var seeds []string
		for _, sd := range s.Seeds {
			seeds = append(seeds, fmt.Sprintf("%s %s (%s)", sd.Seed, sd.State, sd.LastError))
		}
		t.Fatalf("waiting for %s: %v; joined %v via %q, %d attempts, last error %q, seeds %v", what, err, s.Joined, s.JoinedVia, s.Attempts, s.LastError, seeds)
	}
	return s
}

func joined(s StatusSnapshot) bool { return s.Joined }

func daemonConfig(dir string, seeds ...Seed) DaemonConfig {
	return DaemonConfig{
		Node: fastConfig(), Network: Network{Name: "test"}, Seeds: seeds, DataDir: dir,
		backoffMin: time.Millisecond, backoffMax: 10 * time.Millisecond,
	}
}

// A daemon joins through its seed, writes its identity, token and contacts,
// and comes back with the same ID from the same data directory.
func TestDaemonJoinsThroughSeedAndKeepsItsIdentityAndContacts(t *testing.T) {
	seed := plainNode(t)
	plainNode(t, seed.Addr().String())
	dir := t.TempDir()
	r := startDaemon(t, daemonConfig(dir, seedOf(seed.Addr())), Hooks{})
	s := r.wait(t, "joined", joined)
	if s.JoinedVia != "seeds" || s.Seeds[0].State != SeedUp || s.Seeds[0].ID != seed.ID() || s.Attempts != 1 {
		t.Errorf("status after joining: %+v", s)
	}
	r.stop(t)
	d := DataDir{Path: dir}
	id, created, err := d.LoadOrCreateID()
	if err != nil || created || id != s.ID {
		t.Errorf("node.key holds %v (created %v, %v), want the daemon's ID %v", id, created, err, s.ID)
	}
	cs, _, err := d.LoadContacts()
	if err != nil || !containsID(cs, seed.ID()) {
		t.Errorf("contacts.json saved at shutdown: %v, %v; want the seed %v", cs, err, seed.ID())
	}
	if _, err := os.Stat(d.File(TokenFile)); err != nil {
		t.Errorf("no api.token: %v", err)
	}
	r2 := startDaemon(t, daemonConfig(dir, seedOf(seed.Addr())), Hooks{})
	if got := r2.svc.Node.ID(); got != s.ID {
		t.Errorf("restarted with ID %v, want %v from node.key", got, s.ID)
	}
}

func containsID(cs []dht.Contact, id dht.ID) bool {
	for _, c := range cs {
		if c.ID == id {
			return true
		}
	}
	return false
}

// When every seed is down, the daemon joins through the contacts it saved
// last time.
func TestDaemonJoinsThroughSavedContactsWhenEverySeedIsDown(t *testing.T) {
	b := plainNode(t)
	dir := t.TempDir()
	d, _ := OpenDataDir(dir)
	if err := d.SaveContacts([]dht.Contact{{ID: b.ID(), Addr: b.Addr()}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	logs := &logRecorder{}
	cfg := daemonConfig(dir, seedOf(deadAddr(t)), seedOf(deadAddr(t)))
	cfg.Logger = slog.New(logs)
	r := startDaemon(t, cfg, Hooks{})
	s := r.wait(t, "joined", joined)
	if s.JoinedVia != "saved contacts" || s.SavedContacts != 1 {
		t.Errorf("joined via %q with %d saved contacts; want through the saved contacts", s.JoinedVia, s.SavedContacts)
	}
	for _, sd := range s.Seeds {
		if sd.State != SeedDown || sd.LastError != "no answer" {
			t.Errorf("seed %s: %s (%q), want down with no answer", sd.Seed, sd.State, sd.LastError)
		}
	}
	if !containsID(b.Contacts(), r.svc.Node.ID()) {
		t.Error("the saved contact never heard from the daemon")
	}
	if n := logs.count("seed down"); n != 2 {
		t.Errorf("%d \"seed down\" logs, want one per seed", n)
	}
}

// While no seed answers, the daemon keeps trying with backoff, logs one line
// per attempt (and each seed's state once), and says so in its status.
func TestDaemonKeepsRetryingAndLogsOncePerAttempt(t *testing.T) {
	logs := &logRecorder{}
	cfg := daemonConfig(t.TempDir(), seedOf(deadAddr(t)))
	cfg.Logger = slog.New(logs)
	r := startDaemon(t, cfg, Hooks{})
	s := r.wait(t, "four failed attempts", func(s StatusSnapshot) bool { return s.Attempts >= 4 && !s.NextAttempt.IsZero() })
	if s.Joined || !strings.Contains(s.LastError, "no seed answered") || s.Seeds[0].State != SeedDown {
		t.Errorf("status while no seed answers: %+v", s)
	}
	r.stop(t)
	s = r.svc.Status.Snapshot()
	fails := logs.count("join attempt failed")
	if fails < s.Attempts-1 || fails > s.Attempts {
		t.Errorf("%d \"join attempt failed\" logs for %d attempts, want one per failed attempt", fails, s.Attempts)
	}
	if n := logs.count("seed down"); n != 1 {
		t.Errorf("%d \"seed down\" logs, want 1: a seed's state is logged when it changes", n)
	}
	failEvents := 0
	for _, e := range s.Events {
		if e.Kind == EventJoinFailed {
			failEvents++
		}
	}
	if failEvents != fails {
		t.Errorf("%d join_failed events, %d log lines", failEvents, fails)
	}
}

// A seed's name is looked up again at every attempt: a name that does not
// resolve at first (DNS down, or the seed not yet published) is found later.
func TestDaemonResolvesSeedNamesAgainAtEveryAttempt(t *testing.T) {
	seed := plainNode(t)
	var lookups atomic.Int32
	logs := &logRecorder{}
	cfg := daemonConfig(t.TempDir(), Seed{Host: "seed.test", UDPPort: seed.Addr().Port()})
	cfg.Logger = slog.New(logs)
	cfg.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		if host != "seed.test" {
			return nil, errors.New("unexpected host")
		}
		if lookups.Add(1) <= 2 {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return []netip.Addr{seed.Addr().Addr()}, nil
	}
	r := startDaemon(t, cfg, Hooks{})
	s := r.wait(t, "joined", joined)
	if s.Attempts != 3 || lookups.Load() != 3 || s.Seeds[0].State != SeedUp || s.Seeds[0].Addrs[0] != seed.Addr() {
		t.Errorf("after %d lookups: %+v", lookups.Load(), s)
	}
	if logs.count("seed down") != 1 || logs.count("seed found") != 1 {
		t.Errorf("want one \"seed down\" then one \"seed found\": %q", logs.recs)
	}
	found := false
	for _, e := range s.Events {
		found = found || e.Kind == EventSeedFound
	}
	if !found {
		t.Errorf("no seed_found event: %+v", s.Events)
	}
}

// A seed node reads a networks file that lists itself: it does not ask
// itself, and joins through the other seeds.
func TestDaemonSkipsItselfAmongTheSeeds(t *testing.T) {
	other := plainNode(t)
	self := deadAddr(t) // a free port for the daemon to take
	cfg := daemonConfig(t.TempDir(), seedOf(self), seedOf(other.Addr()))
	cfg.Node.Listen = []string{self.String()}
	r := startDaemon(t, cfg, Hooks{})
	s := r.wait(t, "joined", joined)
	if s.Seeds[0].State != SeedSelf || s.Seeds[1].State != SeedUp {
		t.Errorf("seeds %+v; want the first to be this node", s.Seeds)
	}
	own := ownAddrs([]netip.AddrPort{netip.MustParseAddrPort("0.0.0.0:4000"), netip.MustParseAddrPort("[::1]:4001")})
	for a, want := range map[string]bool{"127.0.0.1:4000": true, "127.0.0.1:4001": false, "[::1]:4001": true, "[::1]:4000": false, "192.0.2.1:4000": false} {
		if own(netip.MustParseAddrPort(a)) != want {
			t.Errorf("ownAddrs(%s) = %v, want %v", a, !want, want)
		}
	}
}

// A node with no seeds starts a network; once another node joins through it,
// its status says it is joined.
func TestDaemonWithoutSeedsIsJoinedOnceOthersFindIt(t *testing.T) {
	cfg := daemonConfig("")
	cfg.Memory = true
	cfg.watchEvery = 5 * time.Millisecond
	r := startDaemon(t, cfg, Hooks{})
	if s := r.svc.Status.Snapshot(); s.Joined || s.Attempts != 0 {
		t.Errorf("alone: %+v", s)
	}
	plainNode(t, r.svc.Node.Addr().String())
	s := r.wait(t, "joined", joined)
	if s.JoinedVia != "incoming" {
		t.Errorf("joined via %q, want incoming", s.JoinedVia)
	}
}

// The routing table is saved every saveEvery, not only at shutdown.
func TestDaemonSavesContactsPeriodically(t *testing.T) {
	seed := plainNode(t)
	dir := t.TempDir()
	cfg := daemonConfig(dir, seedOf(seed.Addr()))
	cfg.saveEvery = 5 * time.Millisecond
	r := startDaemon(t, cfg, Hooks{})
	s := r.wait(t, "contacts saved", func(s StatusSnapshot) bool { return !s.ContactsSaved.IsZero() })
	cs, _, err := DataDir{Path: dir}.LoadContacts()
	if err != nil || len(cs) != s.SavedContacts || !containsID(cs, seed.ID()) {
		t.Errorf("contacts.json %v, %v; status says %d", cs, err, s.SavedContacts)
	}
}

// The API handler is served on the HTTP address with the token, api.json says
// where, pprof is there when asked for, and api.json goes at shutdown.
func TestDaemonServesTheAPIAndWritesAndRemovesAPIFile(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(dir)
	cfg.Memory = true // api.json still goes to DataDir
	cfg.HTTP = "127.0.0.1:0"
	cfg.PProf = true
	var got *Service
	handler := func(s *Service) http.Handler {
		got = s
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, s.Node.ID().String()+" "+s.Token)
		})
	}
	r := startDaemon(t, cfg, Hooks{Handler: handler})
	if got == nil || got.Public || !validToken(got.Token) || got.Status != r.svc.Status {
		t.Fatalf("the handler got %+v", got)
	}
	info, err := ReadAPIInfo(dir)
	if err != nil || info.PID != os.Getpid() {
		t.Fatalf("api.json: %+v, %v", info, err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + info.Addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/api/v1/info"); code != 200 || body != r.svc.Node.ID().String()+" "+got.Token {
		t.Errorf("API answered %d %q", code, body)
	}
	if code, _ := get("/debug/pprof/cmdline"); code != 200 {
		t.Errorf("pprof answered %d", code)
	}
	r.stop(t)
	if _, err := os.Stat(DataDir{Path: dir}.File(APIFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("api.json left after shutdown: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("--memory left files: %v", ents)
	}
}

// The API is never served to the network without a token, a non-loopback
// address makes every request need it, and pprof there is behind it too.
func TestPublicAPINeedsAToken(t *testing.T) {
	for a, want := range map[string]bool{"127.0.0.1:4001": true, "[::1]:4001": true, "localhost:4001": true, "127.8.9.10:1": true,
		"0.0.0.0:4001": false, ":4001": false, "192.0.2.7:4001": false, "node.example.org:4001": false, "[::]:4001": false} {
		if isLoopbackHostPort(a) != want {
			t.Errorf("isLoopbackHostPort(%s) = %v, want %v", a, !want, want)
		}
	}
	d := &daemon{cfg: &DaemonConfig{HTTP: "192.0.2.7:4001"}, log: slog.New(slog.DiscardHandler)}
	_, err := d.startHTTP(&Service{Public: true}, Hooks{Handler: func(*Service) http.Handler { return http.NotFoundHandler() }}, make(chan error, 1))
	if err == nil || !strings.Contains(err.Error(), "no API token") {
		t.Errorf("a public API without a token: %v", err)
	}
	h := requireToken("secret", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for auth, want := range map[string]int{"": 401, "Bearer nope": 401, "secret": 401, "Bearer secret": 200} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/debug/pprof/", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Errorf("Authorization %q: %d, want %d", auth, rec.Code, want)
		}
	}
}

// The store hook opens DataDir/values.db with the configured limits, and Run
// closes it after the node.
func TestDaemonOpensAndClosesTheStoreThroughItsHook(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(dir)
	cfg.Node.StoreLimits.MaxValues = 123
	var path string
	var limits store.Limits
	st := &closingStore{Memory: store.NewMemory(store.Limits{})}
	r := startDaemon(t, cfg, Hooks{OpenStore: func(p string, l store.Limits) (store.Store, error) {
		path, limits = p, l
		return st, nil
	}})
	r.stop(t)
	if path != (DataDir{Path: dir}).File(StoreFile) || limits.MaxValues != 123 || !st.closed.Load() {
		t.Errorf("OpenStore(%q, %+v), closed %v", path, limits, st.closed.Load())
	}
}

type closingStore struct {
	*store.Memory
	closed atomic.Bool
}

func (s *closingStore) Close() error { s.closed.Store(true); return nil }

// Status snapshots are copies: changing one changes nothing else.
func TestStatusSnapshotIsACopy(t *testing.T) {
	var st Status
	st.update(func(s *StatusSnapshot) {
		s.Seeds = []SeedStatus{{Seed: "a:1", Addrs: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:1")}}}
	})
	s := st.Snapshot()
	s.Seeds[0].Seed = "changed"
	s.Seeds[0].Addrs[0] = netip.AddrPort{}
	if s2 := st.Snapshot(); s2.Seeds[0].Seed != "a:1" || !s2.Seeds[0].Addrs[0].IsValid() {
		t.Errorf("a snapshot shares memory with the status: %+v", s2)
	}
	for range maxEvents + 10 {
		st.update(func(s *StatusSnapshot) { addEvent(s, time.Now(), EventJoined, "x") })
	}
	if n := len(st.Snapshot().Events); n != maxEvents {
		t.Errorf("%d events kept, want at most %d", n, maxEvents)
	}
	b, _ := json.Marshal(st.Snapshot())
	if len(b) == 0 {
		t.Error("a snapshot does not marshal")
	}
}

// A joined node whose table has emptied (its network was cut off) says it is
// no longer joined and starts joining again, through freshly resolved seeds.
func TestDaemonRejoinsWhenItLosesEveryContact(t *testing.T) {
	seed := plainNode(t)
	cfg := daemonConfig("", seedOf(seed.Addr()))
	logs := &logRecorder{}
	cfg.Logger = slog.New(logs)
	d := &daemon{cfg: &cfg, log: cfg.Logger, out: io.Discard, status: &Status{}}
	d.fillDefaults()
	d.n = plainNode(t) // a node whose table is empty
	d.own = ownAddrs(d.n.Addrs())
	d.status.update(func(s *StatusSnapshot) {
		s.Joined, s.JoinedVia = true, "seeds"
		s.Seeds = []SeedStatus{{Seed: seedOf(seed.Addr()).Addr(), State: SeedUp}}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); d.wg.Wait() }()
	d.watch(ctx)
	wctx, wcancel := context.WithTimeout(ctx, testWait)
	defer wcancel()
	// The join loop may be done before the first look: the events say what
	// happened in order.
	s, err := d.status.Wait(wctx, func(s StatusSnapshot) bool { return s.Joined && s.Attempts > 0 })
	if err != nil || s.Attempts != 1 || !containsID(d.n.Contacts(), seed.ID()) {
		t.Fatalf("rejoin: %v, %d attempts, contacts %v", err, s.Attempts, d.n.Contacts())
	}
	var kinds []string
	for _, e := range s.Events {
		kinds = append(kinds, e.Kind)
	}
	if strings.Join(kinds, ",") != EventContactsLost+","+EventJoined {
		t.Errorf("events %v, want contacts_lost then joined", kinds)
	}
	if logs.count("lost every contact; rejoining through the seeds and saved contacts") != 1 {
		t.Errorf("logs: %q", logs.recs)
	}
}

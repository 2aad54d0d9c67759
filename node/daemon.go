package node

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/ident"
	"github.com/dhtkit/dht/store"
)

// DaemonConfig configures Run. LoadConfig makes one from flags, environment
// and config file; programs may also fill one in themselves. DataDir must be
// set unless Memory is; otherwise the zero value runs a node with dht's
// defaults, no seeds and no HTTP API.
type DaemonConfig struct {
	// Node is the node's configuration: listen addresses, sockets, protocol
	// constants, store limits. Its ID, when zero, comes from node.key (a
	// random one with Memory); its Seeds are ignored (Run joins through
	// Seeds below); its Logger is replaced by Logger.
	Node dht.Config
	// Network is the network the node joins, for its name and maintainers.
	Network Network
	// Seeds are the nodes to join through: the network's, or the seeds
	// setting's. None starts a new network (or rejoins through the saved
	// contacts, when there are some).
	Seeds []Seed
	// DataDir is the data directory. With Memory it only says where
	// api.json goes (empty: RuntimeDir).
	DataDir string
	// Memory keeps nothing on disk but api.json.
	Memory bool
	// HTTP is the address the HTTP API (Hooks.Handler) and pprof listen on;
	// empty for none.
	HTTP string
	// PProf serves Go's profiler at /debug/pprof/ on HTTP.
	PProf bool
	// LogLevel and LogFormat ("text" or "json") are what NewLogger is given
	// by the command; Run itself logs to Logger.
	LogLevel  slog.Level
	LogFormat string
	// DefaultTTL and MinTTL are the TTL of a put through the API that names
	// none and the shortest one may ask for; Node.MaxTTL is the longest.
	// See PutTTL.
	DefaultTTL, MinTTL time.Duration
	// Logger receives the daemon's logs (and the node's); nil for none.
	Logger *slog.Logger
	// Out receives a few lines for a person at a terminal (the node's ID
	// and address, joined, shutting down); nil for none.
	Out io.Writer

	// Tuning, for tests: zero takes the default.
	backoffMin, backoffMax time.Duration // join retries: 1s doubling up to 1m
	saveEvery              time.Duration // contacts.json: every 5m
	watchEvery             time.Duration // checks for a lost or found network: every 30s
	resolveTimeout         time.Duration // one seed name lookup: 5s
	lookup                 func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Defaults of the daemon's tuning.
const (
	defaultBackoffMin     = time.Second
	defaultBackoffMax     = time.Minute
	defaultSaveEvery      = 5 * time.Minute
	defaultWatchEvery     = 30 * time.Second
	defaultResolveTimeout = 5 * time.Second
	// maxFallback bounds the saved contacts one join attempt pings.
	maxFallback = 32
)

// ErrTTLTooShort is PutTTL's error for a TTL below MinTTL.
var ErrTTLTooShort = errors.New("ttl below the network's minimum")

// PutTTL returns the TTL for a put that asked for requested: DefaultTTL for
// 0, at most Node.MaxTTL (the nodes storing it would cap it there anyway),
// and an error wrapping ErrTTLTooShort below MinTTL.
func (c *DaemonConfig) PutTTL(requested time.Duration) (time.Duration, error) {
	switch {
	case requested == 0:
		return c.DefaultTTL, nil
	case requested < c.MinTTL:
		return 0, fmt.Errorf("%w: %v is shorter than %v", ErrTTLTooShort, requested, c.MinTTL)
	case c.Node.MaxTTL > 0 && requested > c.Node.MaxTTL:
		return c.Node.MaxTTL, nil
	}
	return requested, nil
}

// Hooks are what the command plugs into Run: the HTTP API and the
// persistent store live in other packages.
type Hooks struct {
	// Handler, when set, makes the HTTP API, which Run serves on
	// DaemonConfig.HTTP from when the node runs until Run returns.
	Handler func(*Service) http.Handler
	// OpenStore, when set and the daemon keeps data on disk, opens the
	// node's store at path (DataDir/values.db) with the configured limits.
	// Run closes it, if it is an io.Closer, after the node.
	OpenStore func(path string, limits store.Limits) (store.Store, error)
	// Started, when set, is called once the node and the API run, before
	// the first join attempt: to register metrics, or to learn the node's
	// address in tests.
	Started func(*Service)
}

// Service is the running daemon, as the HTTP API sees it.
type Service struct {
	// Node is the running node.
	Node *dht.Node
	// Status is the daemon's join status.
	Status *Status
	// Token is the API's bearer token.
	Token string
	// Public is set when the API listens on a non-loopback address: every
	// request must then carry the token, reads too.
	Public bool
	// Config is the daemon's configuration, defaults filled in. Do not
	// modify it.
	Config *DaemonConfig
	// Logger is the daemon's logger.
	Logger *slog.Logger
}

// Run runs the daemon until ctx is done: it opens the data directory (the
// node's ID, its saved contacts, the API token), starts the node and the HTTP
// API, and joins the network through the seeds, retrying with backoff for as
// long as it takes (resolving seed names again at every attempt, and trying
// the saved contacts when no seed answers). It saves the routing table every
// few minutes and at the end. It returns an error when the node cannot start
// or the API stops on its own; a canceled ctx is a clean stop (nil).
func Run(ctx context.Context, cfg DaemonConfig, hooks Hooks) (err error) {
	d := &daemon{cfg: &cfg, log: cfg.Logger, out: cfg.Out, status: &Status{}}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.out == nil {
		d.out = io.Discard
	}
	d.fillDefaults()
	if err := d.openData(); err != nil {
		return err
	}
	closeStore := func() {}
	if hooks.OpenStore != nil && !cfg.Memory {
		st, err := hooks.OpenStore(d.dir.File(StoreFile), cfg.Node.StoreLimits)
		if err != nil {
			return fmt.Errorf("opening the store %s: %w", d.dir.File(StoreFile), err)
		}
		cfg.Node.Store, cfg.Node.StoreLimits = st, store.Limits{}
		if c, ok := st.(io.Closer); ok {
			closeStore = func() {
				if err := c.Close(); err != nil {
					d.log.Error("closing the store", "err", err)
				}
			}
		}
	}
	defer closeStore()

	cfg.Node.Logger = d.log
	cfg.Node.Seeds = nil // Run joins; the core remembers what each join used
	if !cfg.Memory && cfg.Node.KeepAliveStore == nil {
		cfg.Node.KeepAliveStore = d.dir.KeepAlives() // `dht put --keep` outlives a restart (keepalive.go)
	}
	n, err := dht.New(cfg.Node)
	if err != nil {
		return err
	}
	defer n.Close()
	d.n = n
	d.own = ownAddrs(n.Addrs())
	now := time.Now()
	d.status.update(func(s *StatusSnapshot) {
		s.ID, s.Addrs, s.Started = n.ID(), n.Addrs(), now
		s.Network, s.NetworkID = cfg.Network.Name, cfg.Node.NetworkID
		s.SavedContacts = len(d.saved)
		for _, sd := range cfg.Seeds {
			s.Seeds = append(s.Seeds, SeedStatus{Seed: sd.Addr(), Maintainer: sd.Maintainer, State: SeedPending})
		}
		addEvent(s, now, EventStarted, fmt.Sprintf("node %s started on %v", n.ID().Short(), n.Addrs()))
	})
	fmt.Fprintf(d.out, "id %s\nlistening on %s\n", n.ID(), n.Addr())
	d.log.Info("node started", "id", n.ID().String(), "addrs", n.Addrs(), "network", cfg.Network.Name, "network_id", cfg.Node.NetworkID,
		"seeds", len(cfg.Seeds), "data", d.dataDesc(), "saved_contacts", len(d.saved))

	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	apiErr := make(chan error, 1)
	svc := &Service{Node: n, Status: d.status, Token: d.token, Public: cfg.HTTP != "" && !isLoopbackHostPort(cfg.HTTP), Config: &cfg, Logger: d.log}
	shutdownAPI, err := d.startHTTP(svc, hooks, apiErr)
	if err != nil {
		return err
	}
	defer shutdownAPI()
	if hooks.Started != nil {
		hooks.Started(svc)
	}

	if len(cfg.Seeds) == 0 && len(d.saved) == 0 {
		fmt.Fprintln(d.out, "no seeds: this node starts a new network")
		d.log.Info("no seeds and no saved contacts: this node starts a new network; others join through it")
		d.status.update(func(s *StatusSnapshot) {
			addEvent(s, time.Now(), EventAlone, "no seeds: this node starts a new network")
		})
	} else {
		d.startJoin(runCtx)
	}
	d.wg.Add(1)
	go d.maintain(runCtx)

	select {
	case <-ctx.Done():
	case err = <-apiErr:
		d.log.Error("the HTTP API stopped", "err", err)
	}
	fmt.Fprintln(d.out, "shutting down")
	d.log.Info("shutting down")
	stop()
	d.wg.Wait()
	shutdownAPI()
	d.saveContacts()
	if cerr := n.Close(); err == nil {
		err = cerr
	}
	return err
}

// daemon is Run's state. Run owns it; the join loop and maintain run in
// goroutines that Run waits for.
type daemon struct {
	cfg    *DaemonConfig
	log    *slog.Logger
	out    io.Writer
	status *Status
	n      *dht.Node
	own    func(netip.AddrPort) bool
	dir    DataDir // empty with Memory
	apiDir DataDir // where api.json goes
	token  string
	wg     sync.WaitGroup

	mu      sync.Mutex
	joining bool          // a join loop runs
	saved   []dht.Contact // the latest snapshot, loaded or saved
}

func (d *daemon) fillDefaults() {
	c := d.cfg
	set := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	set(&c.backoffMin, defaultBackoffMin)
	set(&c.backoffMax, defaultBackoffMax)
	set(&c.saveEvery, defaultSaveEvery)
	set(&c.watchEvery, defaultWatchEvery)
	set(&c.resolveTimeout, defaultResolveTimeout)
	if c.lookup == nil {
		c.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	if c.Network.Name == "" {
		c.Network.Name = "unnamed"
	}
	if c.DefaultTTL == 0 {
		c.DefaultTTL = DefaultConstants().DefaultTTL
	}
	if c.MinTTL == 0 {
		c.MinTTL = min(DefaultConstants().MinTTL, c.DefaultTTL)
	}
}

func (d *daemon) dataDesc() string {
	if d.cfg.Memory {
		return "none (--memory)"
	}
	return d.dir.Path
}

// openData opens the data directory and reads or makes the node's ID, its
// saved contacts and the API token.
func (d *daemon) openData() error {
	c := d.cfg
	if c.Memory {
		d.token = NewToken()
		p := c.DataDir
		if p == "" {
			var err error
			if p, err = RuntimeDir(); err != nil {
				return err
			}
		}
		if c.HTTP == "" {
			return nil
		}
		var err error
		d.apiDir, err = OpenDataDir(p)
		return err
	}
	dir, err := OpenDataDir(c.DataDir)
	if err != nil {
		return err
	}
	d.dir, d.apiDir = dir, dir
	if c.Node.ID.IsZero() && c.Node.Key == nil {
		// The node owns its ID: identity.key, made at first start (an
		// older directory's free ID is kept, unless identity is required).
		key, created, err := dht.LoadIdentity(dir.Path, c.Node.Difficulty, c.Node.RequireIdentity)
		if err != nil {
			return err
		}
		if key != nil {
			c.Node.Key, c.Node.ID = key, ident.ID(key)
			if err := dir.SaveID(c.Node.ID); err != nil {
				return err
			}
			if created {
				d.log.Info("new node identity", "id", c.Node.ID.String(), "file", dir.File(dht.KeyFile))
			}
		}
	}
	if c.Node.ID.IsZero() {
		id, created, err := dir.LoadOrCreateID()
		if err != nil {
			return err
		}
		c.Node.ID = id
		if created {
			d.log.Info("new node identity", "id", id.String(), "file", dir.File(KeyFile))
		}
	}
	if d.token, _, err = dir.LoadOrCreateToken(); err != nil {
		return err
	}
	saved, at, err := dir.LoadContacts()
	if err != nil {
		d.log.Warn("saved contacts unusable; starting without them", "err", err)
	} else if len(saved) > 0 {
		d.log.Info("saved contacts loaded", "contacts", len(saved), "saved", at)
	}
	d.saved = saved
	return nil
}

// startHTTP listens on the API address when there is something to serve.
// It returns the function that stops the server and removes api.json.
func (d *daemon) startHTTP(svc *Service, hooks Hooks, errc chan<- error) (func(), error) {
	c := d.cfg
	if c.HTTP == "" || (hooks.Handler == nil && !c.PProf) {
		return func() {}, nil
	}
	public := svc.Public
	if public && svc.Token == "" {
		return nil, fmt.Errorf("http %s is not a loopback address and there is no API token: refusing to serve the API to the network unprotected", c.HTTP)
	}
	ln, err := net.Listen("tcp", c.HTTP)
	if err != nil {
		return nil, fmt.Errorf("http %s: %w", c.HTTP, err)
	}
	mux := http.NewServeMux()
	if hooks.Handler != nil {
		mux.Handle("/", hooks.Handler(svc))
	}
	if c.PProf {
		var h http.Handler = pprofMux()
		if public {
			h = requireToken(d.token, h)
		} else {
			h = tokenForForeignHost(d.token, h)
		}
		mux.Handle("/debug/pprof/", h)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	addr := connectable(ln.Addr().(*net.TCPAddr).AddrPort())
	if err := d.apiDir.WriteAPIInfo(APIInfo{Addr: addr.String(), PID: os.Getpid()}); err != nil {
		srv.Close()
		return nil, err
	}
	fmt.Fprintf(d.out, "api on http://%s\n", addr)
	d.log.Info("HTTP API listening", "addr", ln.Addr().String(), "public", public, "pprof", c.PProf, "api_file", d.apiDir.File(APIFile))
	var once sync.Once
	return func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				srv.Close()
			}
			if err := d.apiDir.RemoveAPIInfo(); err != nil {
				d.log.Warn("removing api.json", "err", err)
			}
		})
	}, nil
}

func pprofMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("/debug/pprof/", pprof.Index)
	m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	m.HandleFunc("/debug/pprof/profile", pprof.Profile)
	m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return m
}

// requireToken lets through only requests with "Authorization: Bearer token".
func requireToken(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			w.Header().Set("WWW-Authenticate", "Bearer")
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// tokenForForeignHost lets through requests whose Host names loopback, and
// others only with the token: a web page whose name was pointed at
// 127.0.0.1 (DNS rebinding) must not read a loopback pprof.
func tokenForForeignHost(token string, h http.Handler) http.Handler {
	guarded := requireToken(token, h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "" && api.NeedsAuthForReads(r.Host) {
			guarded.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// isLoopbackHostPort reports whether a listen address stays on this machine:
// a loopback IP or localhost. A name other than localhost, or an empty host
// (every interface), is not.
func isLoopbackHostPort(hp string) bool {
	host, _, err := net.SplitHostPort(hp)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// connectable turns a wildcard listen address into one a client on this
// machine can connect to.
func connectable(a netip.AddrPort) netip.AddrPort {
	ip := a.Addr().Unmap()
	if ip.IsUnspecified() {
		if ip.Is4() {
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		} else {
			ip = netip.IPv6Loopback()
		}
	}
	return netip.AddrPortFrom(ip, a.Port())
}

// ownAddrs returns a test for "this address is this node": one of its listen
// addresses, or, for a wildcard listen address, its port on a loopback or
// local interface address.
func ownAddrs(listen []netip.AddrPort) func(netip.AddrPort) bool {
	local := map[netip.Addr]bool{}
	if as, err := net.InterfaceAddrs(); err == nil {
		for _, a := range as {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				local[p.Addr().Unmap()] = true
			}
		}
	}
	return func(a netip.AddrPort) bool {
		ip := a.Addr().Unmap()
		for _, l := range listen {
			lip := l.Addr().Unmap()
			if l.Port() != a.Port() {
				continue
			}
			// 0.0.0.0 takes IPv4 only; [::] may take both.
			wild := lip.IsUnspecified() && (lip.Is6() || ip.Is4())
			if lip == ip || (wild && (ip.IsLoopback() || local[ip])) {
				return true
			}
		}
		return false
	}
}

// startJoin starts the join loop unless one runs.
func (d *daemon) startJoin(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.joining {
		return
	}
	d.joining = true
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.joinLoop(ctx)
		d.mu.Lock()
		d.joining = false
		d.mu.Unlock()
	}()
}

// joinLoop makes join attempts until one succeeds or ctx ends, waiting
// backoffMin, then twice as long each time up to backoffMax (±20%, so that
// nodes cut off together do not knock on the seeds at once).
func (d *daemon) joinLoop(ctx context.Context) {
	backoff := d.cfg.backoffMin
	for {
		res := d.attempt(ctx)
		if ctx.Err() != nil {
			return
		}
		if res.err == nil {
			return
		}
		wait := backoff - backoff/5 + rand.N(2*backoff/5+1)
		next := time.Now().Add(wait)
		d.status.update(func(s *StatusSnapshot) {
			s.LastError, s.NextAttempt = res.err.Error(), next
			addEvent(s, time.Now(), EventJoinFailed, fmt.Sprintf("join attempt %d failed: %v", res.n, res.err))
		})
		d.log.Warn("join attempt failed", "attempt", res.n, "seeds", len(d.cfg.Seeds), "seeds_up", res.up,
			"seeds_down", res.downText(), "saved_contacts_tried", res.fallback, "err", res.err, "retry_in", wait.Round(time.Millisecond).String())
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(2*backoff, d.cfg.backoffMax)
	}
}

// attemptResult is what one join attempt found, for its one log line.
type attemptResult struct {
	n        int
	up       int
	down     []string // "seed (why)"
	fallback int
	err      error
}

func (r attemptResult) downText() string { return strings.Join(r.down, "; ") }

// seedCheck is what resolving and pinging one seed found.
type seedCheck struct {
	i     int // the seed's index in DaemonConfig.Seeds
	state SeedState
	addrs []netip.AddrPort
	ans   netip.AddrPort // the address that answered
	id    dht.ID
	rtt   time.Duration
	err   error
}

// attempt is one join attempt. It resolves and pings every seed at once and
// bootstraps through the first that answers, without waiting for the others
// (a dead seed costs a join nothing); when none answers, it bootstraps
// through the saved contacts and whatever contacts the table has. It
// returns once the bootstrap is done and every seed has reported, so that
// its log line and the status tell about all of them.
func (d *daemon) attempt(ctx context.Context) attemptResult {
	var res attemptResult
	start := time.Now()
	d.status.update(func(s *StatusSnapshot) {
		s.Attempts++
		res.n = s.Attempts
		s.LastAttempt, s.NextAttempt = start, time.Time{}
	})
	seeds := d.cfg.Seeds
	checks := make(chan seedCheck, len(seeds))
	for i, sd := range seeds {
		go func() {
			ck := d.checkSeed(ctx, sd)
			ck.i = i
			checks <- ck
		}()
	}
	// Bootstrap through the first seed that answers, and say so as soon as
	// it is done; the other seeds' checks are still recorded as they end.
	boot := make(chan error, 1)
	booting, booted, done := false, false, false
	for remaining := len(seeds); remaining > 0 || (booting && !booted); {
		select {
		case ck := <-checks:
			remaining--
			if ctx.Err() != nil {
				continue // stopping: a canceled ping says nothing of the seed
			}
			d.recordSeed(ck, time.Now())
			switch ck.state {
			case SeedUp:
				res.up++
				if !booting {
					booting = true
					go func() { boot <- d.n.Bootstrap(ctx, ck.ans.String()) }()
				}
			case SeedDown, SeedUnresolved:
				res.down = append(res.down, fmt.Sprintf("%s (%v)", seeds[ck.i].Addr(), ck.err))
			}
		case err := <-boot:
			booted = true
			if res.err = d.joinedOrNot(ctx, err); res.err == nil {
				d.markJoined("seeds", res, start, 0)
				done = true
			}
		}
	}
	if done || booting || ctx.Err() != nil {
		if ctx.Err() != nil {
			res.err = ctx.Err()
		}
		return res
	}
	// No seed answered: the saved contacts, and nodes that found this one.
	via := "saved contacts"
	var targets []string
	for _, c := range d.fallback() {
		targets = append(targets, c.Addr.String())
		if c.saved {
			res.fallback++
		}
	}
	if res.fallback == 0 {
		via = "incoming"
	}
	var err error
	switch {
	case len(targets) == 0 && len(seeds) == 0:
		err = errors.New("no seeds, and no saved contacts")
	case len(targets) == 0:
		err = fmt.Errorf("no seed answered (%d down, %d this node), and there are no saved contacts", len(res.down), len(seeds)-len(res.down))
	default:
		if err = d.n.Bootstrap(ctx, targets...); err != nil {
			err = fmt.Errorf("no seed answered, nor any of %d saved or known contact(s)", len(targets))
		}
		err = d.joinedOrNot(ctx, err)
	}
	if res.err = err; err == nil {
		d.markJoined(via, res, start, len(targets))
	}
	return res
}

// joinedOrNot turns a bootstrap's outcome into the attempt's error: a
// bootstrap that left the table empty (only this node answered) is no join.
func (d *daemon) joinedOrNot(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		return err
	case len(d.n.Contacts()) == 0:
		return errors.New("the nodes that answered know no other node")
	}
	return nil
}

// markJoined records and reports a successful join attempt.
func (d *daemon) markJoined(via string, res attemptResult, start time.Time, through int) {
	contacts := len(d.n.Contacts())
	took := time.Since(start).Round(time.Millisecond)
	now := time.Now()
	d.status.update(func(s *StatusSnapshot) {
		s.Joined, s.JoinedAt, s.JoinedVia, s.LastError = true, now, via, ""
		addEvent(s, now, EventJoined, fmt.Sprintf("joined through %s at attempt %d: %d contacts", via, res.n, contacts))
	})
	if via == "seeds" {
		fmt.Fprintf(d.out, "joined through %d seed(s) in %v: %d contacts\n", max(res.up, 1), took, contacts)
	} else {
		fmt.Fprintf(d.out, "joined through %d %s in %v (no seed answered): %d contacts\n", through, via, took, contacts)
	}
	d.log.Info("joined", "via", via, "attempt", res.n, "seeds_up", res.up, "seeds_down", len(res.down), "contacts", contacts, "took", took.String())
}

// checkSeed resolves a seed's name (again at every attempt: a seed that
// moved is found at its new address) and pings its addresses until one
// answers.
func (d *daemon) checkSeed(ctx context.Context, sd Seed) seedCheck {
	var ck seedCheck
	if ip, err := netip.ParseAddr(sd.Host); err == nil {
		ck.addrs = []netip.AddrPort{netip.AddrPortFrom(ip.Unmap(), sd.UDPPort)}
	} else {
		rctx, cancel := context.WithTimeout(ctx, d.cfg.resolveTimeout)
		ips, err := d.cfg.lookup(rctx, sd.Host)
		cancel()
		if err == nil && len(ips) == 0 {
			err = errors.New("no address")
		}
		if err != nil {
			ck.state, ck.err = SeedUnresolved, resolveError(err)
			return ck
		}
		for _, ip := range ips[:min(len(ips), 8)] {
			ck.addrs = append(ck.addrs, netip.AddrPortFrom(ip.Unmap(), sd.UDPPort))
		}
	}
	ck.state = SeedDown
	for _, a := range ck.addrs {
		if d.own(a) {
			ck.state, ck.err = SeedSelf, nil
			return ck
		}
		t := time.Now()
		c, err := d.n.Ping(ctx, a.String())
		if err != nil {
			ck.err = pingError(err)
			continue
		}
		if c.ID == d.n.ID() {
			ck.state, ck.err = SeedSelf, nil
			return ck
		}
		ck.state, ck.ans, ck.id, ck.rtt, ck.err = SeedUp, a, c.ID, time.Since(t), nil
		return ck
	}
	return ck
}

// pingError shortens a ping's error to its reason.
func pingError(err error) error {
	if errors.Is(err, dht.ErrTimeout) {
		return dht.ErrTimeout
	}
	return errors.New(strings.TrimPrefix(err.Error(), "dht: "))
}

// resolveError shortens a resolver error to its reason: the seed's name is
// in the message already.
func resolveError(err error) error {
	var de *net.DNSError
	if errors.As(err, &de) {
		if de.IsNotFound {
			return errors.New("no such host")
		}
		return errors.New(de.Err)
	}
	return err
}

// recordSeed stores a seed's state and logs what changed: a seed down at its
// first check, lost (it answered before), or found (it did not).
func (d *daemon) recordSeed(ck seedCheck, now time.Time) {
	var was SeedState
	seed := d.cfg.Seeds[ck.i].Addr()
	d.status.update(func(s *StatusSnapshot) {
		ss := &s.Seeds[ck.i]
		was = ss.State
		ss.State, ss.Addrs, ss.Checked = ck.state, ck.addrs, now
		ss.LastError = ""
		if ck.err != nil {
			ss.LastError = ck.err.Error()
		}
		if ck.state == SeedUp {
			ss.ID, ss.LastSeen, ss.RTT = ck.id, now, ck.rtt
		}
		switch {
		case was == SeedUp && ck.state != SeedUp && ck.state != SeedSelf:
			addEvent(s, now, EventSeedLost, fmt.Sprintf("seed %s lost: %v", seed, ck.err))
		case (was == SeedDown || was == SeedUnresolved) && ck.state == SeedUp:
			addEvent(s, now, EventSeedFound, fmt.Sprintf("seed %s found at %v", seed, ck.ans))
		}
	})
	down := ck.state == SeedDown || ck.state == SeedUnresolved
	switch {
	case was == SeedPending && down:
		d.log.Info("seed down", "seed", seed, "state", ck.state, "err", ck.err)
	case was == SeedUp && down:
		d.log.Info("seed lost", "seed", seed, "state", ck.state, "err", ck.err)
	case (was == SeedDown || was == SeedUnresolved) && ck.state == SeedUp:
		d.log.Info("seed found", "seed", seed, "addr", ck.ans, "id", ck.id.String())
	case was == SeedPending && ck.state == SeedUp:
		d.log.Debug("seed up", "seed", seed, "addr", ck.ans, "id", ck.id.String(), "rtt", ck.rtt.String())
	case was == SeedPending && ck.state == SeedSelf:
		d.log.Info("seed is this node; not asking it", "seed", seed)
	}
}

// fallbackContact is a contact to join through when no seed answers.
type fallbackContact struct {
	dht.Contact
	saved bool // from the snapshot, not the live table
}

// fallback returns up to maxFallback contacts to join through when no seed
// answers: the saved snapshot and the table's current contacts (nodes that
// found this one), in random order, leaving out this node.
func (d *daemon) fallback() []fallbackContact {
	var cs []fallbackContact
	d.mu.Lock()
	for _, c := range d.saved {
		cs = append(cs, fallbackContact{c, true})
	}
	d.mu.Unlock()
	for _, c := range d.n.Contacts() {
		cs = append(cs, fallbackContact{c, false})
	}
	seen := map[netip.AddrPort]bool{}
	out := cs[:0]
	for _, c := range cs {
		if seen[c.Addr] || c.ID == d.n.ID() || d.own(c.Addr) {
			continue
		}
		seen[c.Addr] = true
		out = append(out, c)
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out[:min(len(out), maxFallback)]
}

// maintain saves the contacts every saveEvery and, every watchEvery, notices
// a node that lost every contact (it starts the join loop again, which
// resolves the seeds anew) or that other nodes found while it had no seed.
func (d *daemon) maintain(ctx context.Context) {
	defer d.wg.Done()
	save := time.NewTicker(d.cfg.saveEvery)
	defer save.Stop()
	watch := time.NewTicker(d.cfg.watchEvery)
	defer watch.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-save.C:
			d.saveContacts()
		case <-watch.C:
			d.watch(ctx)
		}
	}
}

func (d *daemon) watch(ctx context.Context) {
	contacts := len(d.n.Contacts())
	d.mu.Lock()
	joining, saved := d.joining, len(d.saved)
	d.mu.Unlock()
	joined := d.status.Snapshot().Joined
	now := time.Now()
	switch {
	case joined && contacts == 0:
		d.status.update(func(s *StatusSnapshot) {
			s.Joined = false
			addEvent(s, now, EventContactsLost, "lost every contact: rejoining")
		})
		d.log.Warn("lost every contact; rejoining through the seeds and saved contacts")
		if len(d.cfg.Seeds) > 0 || saved > 0 {
			d.startJoin(ctx)
		}
	case !joined && !joining && contacts > 0:
		d.status.update(func(s *StatusSnapshot) {
			s.Joined, s.JoinedAt, s.JoinedVia = true, now, "incoming"
			addEvent(s, now, EventJoined, fmt.Sprintf("joined: %d node(s) found this one", contacts))
		})
		d.log.Info("joined: other nodes found this one", "contacts", contacts)
	}
}

// saveContacts writes the routing table to contacts.json (not with Memory,
// and not when the table is empty: the last good snapshot is kept).
func (d *daemon) saveContacts() {
	if d.cfg.Memory || d.n == nil {
		return
	}
	cs := d.n.Contacts()
	if len(cs) == 0 {
		return
	}
	now := time.Now()
	if err := d.dir.SaveContacts(cs, now); err != nil {
		d.log.Warn("saving contacts", "err", err)
		return
	}
	d.mu.Lock()
	d.saved = cs
	d.mu.Unlock()
	d.status.update(func(s *StatusSnapshot) {
		s.SavedContacts, s.ContactsSaved = len(cs), now
	})
	d.log.Debug("contacts saved", "contacts", len(cs), "file", d.dir.File(ContactsFile))
}

package sim

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"strconv"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/ident"
	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/transport/memnet"
)

// Epoch is the virtual time at which every run starts.
var Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// valueTTL is the lifetime of stored values: longer than any phase, so that
// what the churn phase measures is lost replicas, never expiry.
const valueTTL = 24 * time.Hour

// Phase names, as reported in Progress and Report.
const (
	PhaseJoin      = "join"
	PhasePut       = "put"
	PhaseLookups   = "lookups"
	PhaseChurn     = "churn"
	PhasePartition = "partition"
	PhaseWaves     = "waves"
	PhaseIdle      = "idle"
)

// Progress tells how far a run has got. Done and Total count the phase's
// units: nodes joined, keys stored, lookups finished, or virtual seconds of a
// churn or partition phase.
type Progress struct {
	Phase   string
	Done    int
	Total   int
	Virtual time.Duration // virtual time since the run started
}

// errInterrupted stops the phases when the context ends.
var errInterrupted = errors.New("interrupted")

// Run simulates sc: N real nodes (internal/core) on an in-memory network
// driven by a virtual clock, all on the calling goroutine. It runs the
// phases in order (join, put, lookups, then churn and partition when
// configured) and returns the report. The report's JSON form depends only on
// sc: the same scenario gives the same bytes.
//
// progress, if not nil, is called on the calling goroutine at the start and
// end of each phase and every 100ms or so of wall time in between; it must
// not hold on to the run for long, since the simulation waits for it.
//
// When ctx ends, Run stops within a few milliseconds and returns the partial
// report, marked Interrupted, together with ctx's error. Other errors (an
// invalid scenario, a phase that does not finish) come with a nil report
// or, for a phase that stalls, the report so far.
func Run(ctx context.Context, sc Scenario, progress func(Progress)) (*Report, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	if len(sc.Malicious) > 0 {
		return runAdversary(ctx, sc, progress) // adversary.go
	}
	e := newEngine(ctx, sc, progress)
	err := e.run()
	r := e.finish()
	if errors.Is(err, errInterrupted) {
		return r, ctx.Err()
	}
	return r, err
}

// engine is one run's state. Everything it owns is touched only from the
// goroutine that called Run: node callbacks run inside clock events, which
// run on that goroutine.
type engine struct {
	sc       Scenario
	ctx      context.Context
	progress func(Progress)

	clk *clock.Virtual
	net *memnet.Network
	rng *rand.Rand // the simulator's own choices: who joins, who asks, what

	nodes    []*simNode // every node ever created, by creation order
	live     []*simNode // joined and not left: where operations start from
	seeds    []netip.AddrPort
	keys     []id.ID
	left     core.Stats // counters of nodes that have left
	leftRepl core.ReplicationStats
	bytes    *uint64   // bytes sent by every node, when counted (see endpoint)
	valBuf   []byte    // scratch for the expected value of a key
	started  time.Time // wall clock at the start, for Perf only
	startCPU time.Duration

	phase       string
	done, total int
	steps       uint64
	lastTick    time.Time
	stopped     bool
	closing     bool // finish is closing the nodes: their callbacks report nothing
	phaseWall   time.Time
	phaseCPU    time.Duration
	phaseNet    memnet.Stats
	phaseVStart time.Time

	r *Report

	adv *adversary // malicious nodes, in an adversarial run (adversary.go)
}

// simNode is one node and the simulator's notes on it.
type simNode struct {
	n      *core.Node
	addr   netip.AddrPort
	liveAt int32 // position in engine.live; -1 when not there
	seed   bool
	side   int8 // partition side: 1 for the minority
	// key is the node's identity key with Scenario.Identity: malicious
	// nodes sign their answers with it.
	key ed25519.PrivateKey
}

func newEngine(ctx context.Context, sc Scenario, progress func(Progress)) *engine {
	clk := clock.NewVirtual(Epoch)
	e := &engine{
		sc:       sc,
		ctx:      ctx,
		progress: progress,
		clk:      clk,
		rng:      rand.New(rand.NewPCG(sc.Seed, 0x73696d756c61746f)),
		started:  time.Now(),
		startCPU: cpuTime(),
		r:        &Report{Scenario: sc},
	}
	e.net = memnet.New(memnet.Config{
		Clock:   clk,
		Seed:    sc.Seed,
		Latency: sc.Latency.model(sc.Seed),
		Loss:    sc.Loss,
	})
	e.keys = make([]id.ID, sc.Keys)
	for i := range e.keys {
		e.keys[i] = id.Key("sim-key-" + strconv.Itoa(i))
	}
	e.nodes = make([]*simNode, 0, sc.Nodes)
	e.live = make([]*simNode, 0, sc.Nodes)
	return e
}

func (e *engine) run() error {
	phases := []func() error{e.join, e.put, e.lookups}
	if e.sc.Churn != nil {
		phases = append(phases, e.churn)
	}
	if e.sc.Partition != nil {
		phases = append(phases, e.partition)
	}
	if e.sc.Waves != nil {
		phases = append(phases, e.waves)
	}
	if e.sc.Idle > 0 {
		phases = append(phases, e.idle)
	}
	for _, p := range phases {
		if err := p(); err != nil {
			return err
		}
	}
	return nil
}

// finish completes the report from the network's final state and closes
// every node.
func (e *engine) finish() *Report {
	r := e.r
	if e.stopped {
		r.Interrupted = true
		r.InterruptedIn = e.phase
	}
	e.endPhase()
	r.Network = netStats(e.net.Stats())
	tot := e.left
	var sizes []int32
	for _, sn := range e.nodes {
		if sn.n == nil {
			continue
		}
		st := sn.n.Stats()
		addStats(&tot, st)
		if sn.liveAt >= 0 {
			sizes = append(sizes, int32(st.TableSize))
		}
	}
	r.Nodes = nodeTotals(tot, len(e.live))
	r.Replication = e.replTotals()
	if e.sc.Churn != nil || e.sc.Partition != nil {
		d := intDist(sizes, true)
		r.FinalTables = &d
	}
	r.Perf.Wall = time.Since(e.started)
	r.Perf.Events = e.steps
	r.Perf.HeapLiveEnd = heapLive()
	for _, ph := range r.Phases {
		if ph.Name == PhaseLookups && ph.Wall > 0 {
			r.Perf.LookupsPerSec = float64(r.Lookups.Lookups) / ph.Wall.Seconds()
			if ph.CPU > 0 {
				r.Perf.LookupsPerCPUSec = float64(r.Lookups.Lookups) / ph.CPU.Seconds()
			}
		}
	}
	r.Perf.CPU = cpuTime() - e.startCPU
	e.closing = true
	for _, sn := range e.nodes {
		if sn.n != nil {
			sn.n.Close()
			sn.n = nil
		}
	}
	return r
}

// beginPhase starts measuring a phase; the previous one ends.
func (e *engine) beginPhase(name string, total int) {
	e.endPhase()
	e.phase, e.done, e.total = name, 0, total
	e.phaseWall = time.Now()
	e.phaseCPU = cpuTime()
	e.phaseNet = e.net.Stats()
	e.phaseVStart = e.clk.Now()
	e.report()
}

func (e *engine) endPhase() {
	if e.phase == "" {
		return
	}
	e.report()
	e.r.Phases = append(e.r.Phases, PhaseReport{
		Name:     e.phase,
		Virtual:  Duration(e.clk.Now().Sub(e.phaseVStart)),
		Datagram: netStats(e.net.Stats()).sub(netStats(e.phaseNet)),
		Wall:     time.Since(e.phaseWall),
		CPU:      cpuTime() - e.phaseCPU,
	})
	e.phase = ""
}

func (e *engine) report() {
	if e.progress != nil {
		e.progress(Progress{Phase: e.phase, Done: e.done, Total: e.total, Virtual: e.clk.Now().Sub(Epoch)})
	}
	e.sampleHeap()
}

// tick runs every 1024 events: it notices the context ending and calls
// progress now and then. It reports whether to stop.
func (e *engine) tick() bool {
	if e.ctx.Err() != nil {
		e.stopped = true
		return true
	}
	if now := time.Now(); now.Sub(e.lastTick) >= 100*time.Millisecond {
		e.lastTick = now
		e.report()
	}
	return false
}

// advance runs clock events until more() turns false or nothing is due
// before limit. more runs before every event, on this goroutine, so it may
// start operations. advance reports whether it stopped because more()
// turned false; it returns errInterrupted if the context ended.
func (e *engine) advance(limit time.Time, more func() bool) (bool, error) {
	if e.stopped {
		return false, errInterrupted
	}
	finished := false
	e.clk.RunWhile(func() bool {
		if !more() {
			finished = true
			return false
		}
		e.steps++
		if e.steps&1023 == 0 && e.tick() {
			return false
		}
		return true
	}, limit)
	if e.stopped {
		return false, errInterrupted
	}
	return finished, nil
}

// newNode starts a node; it is not live (a place operations start from)
// until its join finishes.
func (e *engine) newNode() (*simNode, error) {
	i := len(e.nodes)
	tr := e.endpoint()
	if e.adv != nil {
		tr = e.adv.wrap(tr)
	}
	r := rand.New(rand.NewPCG(e.sc.Seed, uint64(i)))
	var key ed25519.PrivateKey
	if e.sc.Identity {
		// Drawn here rather than by core from the same stream, so that a
		// malicious node can sign with it (core does not give it out).
		k, _, err := ident.Generate(func(b []byte) error {
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			return nil
		}, e.sc.IdentityDifficulty)
		if err != nil {
			return nil, err
		}
		key = k
	}
	n, err := core.New(core.Config{
		Transport: tr,
		Clock:     e.clk,
		Rand:      r,
		K:         e.sc.K,
		Alpha:     e.sc.Alpha,

		Key:             key,
		RequireIdentity: e.sc.Identity,
		Difficulty:      e.sc.IdentityDifficulty,

		ReplicateInterval: e.sc.ReplicateInterval.D(),
		StoreLimits:       e.storeLimits(),
	})
	if err != nil {
		return nil, err
	}
	sn := &simNode{n: n, addr: n.Addr(), liveAt: -1, key: key}
	e.nodes = append(e.nodes, sn)
	if e.adv != nil {
		e.adv.bind(sn, tr)
	}
	return sn, nil
}

func (e *engine) addLive(sn *simNode) {
	sn.liveAt = int32(len(e.live))
	e.live = append(e.live, sn)
}

func (e *engine) removeLive(sn *simNode) {
	i := sn.liveAt
	if i < 0 {
		return
	}
	last := e.live[len(e.live)-1]
	e.live[i] = last
	last.liveAt = i
	e.live = e.live[:len(e.live)-1]
	sn.liveAt = -1
}

// randomLive picks a live node uniformly.
func (e *engine) randomLive() *simNode { return e.live[e.rng.IntN(len(e.live))] }

// leave closes a node without warning, keeping its counters.
func (e *engine) leave(sn *simNode) {
	st := sn.n.Stats()
	st.StoredValues = 0 // they leave with it
	addStats(&e.left, st)
	addRepl(&e.leftRepl, sn.n.ReplicationStats())
	e.removeLive(sn)
	sn.n.Close()
	sn.n = nil
}

// value returns the value stored under key i, in a buffer reused by the
// next call.
func (e *engine) value(i int) []byte {
	b := append(e.valBuf[:0], "value-"...)
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, '-')
	for len(b) < e.sc.ValueSize {
		b = append(b, byte('a'+len(b)%26))
	}
	e.valBuf = b
	return b[:e.sc.ValueSize]
}

// join starts the nodes one every JoinEvery; each bootstraps through the
// seeds that started before it.
func (e *engine) join() error {
	sc := e.sc
	e.beginPhase(PhaseJoin, sc.Nodes)
	first, err := e.newNode()
	if err != nil {
		return err
	}
	first.seed = true
	e.seeds = append(e.seeds, first.addr)
	e.addLive(first)
	e.done = 1
	jr := &e.r.Join
	jr.Nodes = sc.Nodes
	jr.Joined = 1
	var lookups, durations []int32
	pending := sc.Nodes - 1
	next := 1
	var failure error
	var startNext func()
	startNext = func() {
		sn, err := e.newNode()
		if err != nil {
			failure = err
			return
		}
		i := next
		next++
		seeds := e.seeds[:len(e.seeds):len(e.seeds)]
		if i < sc.Seeds {
			sn.seed = true
			e.seeds = append(e.seeds, sn.addr)
		}
		sn.n.Bootstrap(seeds, func(r *core.BootstrapResult, err error) {
			if e.closing {
				return
			}
			pending--
			e.done++
			if err != nil {
				jr.Failed++
				return
			}
			jr.Joined++
			lookups = append(lookups, int32(r.Lookups))
			durations = append(durations, int32(r.Duration/time.Millisecond))
			e.addLive(sn)
		})
		if next < sc.Nodes {
			e.clk.AfterFunc(sc.JoinEvery.D(), startNext)
		}
	}
	if sc.Nodes > 1 {
		e.clk.AfterFunc(sc.JoinEvery.D(), startNext)
	}
	limit := e.clk.Now().Add(time.Duration(sc.Nodes)*sc.JoinEvery.D() + 10*time.Minute)
	ok, err := e.advance(limit, func() bool { return pending > 0 && failure == nil })
	jr.Virtual = Duration(e.clk.Now().Sub(Epoch))
	jr.Lookups = intDist(lookups, true)
	jr.DurationMS = intDist(durations, false)
	switch {
	case failure != nil:
		return failure
	case err != nil:
		return err
	case !ok:
		return fmt.Errorf("join: %d nodes still joining after %v of virtual time", pending, jr.Virtual)
	}
	sizes := make([]int32, len(e.live))
	for i, sn := range e.live {
		sizes[i] = int32(sn.n.Stats().TableSize)
	}
	e.r.Tables = intDist(sizes, true)
	e.r.Perf.HeapLiveAfterJoin = heapLiveAfterGC()
	e.r.Perf.HeapPerNode = float64(e.r.Perf.HeapLiveAfterJoin) / float64(len(e.nodes))
	return nil
}

// put stores every key from a random live node, Concurrency at a time.
func (e *engine) put() error {
	if e.sc.Preload {
		return e.preload()
	}
	return e.putEach(e.sc.Keys, func(k int, cb func(*core.PutResult, error)) {
		e.randomLive().n.Put(e.keys[k], e.value(k), valueTTL, cb)
	}, nil)
}

// putEach is the put phase: n puts, Concurrency at a time, start(i, cb)
// starting the ith. Each failure counts in the report's Put, and so does
// each success, with its replicas, unless counted says otherwise for it
// (a signed run's first sequence, adversary.go).
func (e *engine) putEach(n int, start func(i int, cb func(*core.PutResult, error)), counted func(i int) bool) error {
	sc := e.sc
	e.beginPhase(PhasePut, n)
	pr := &e.r.Put
	pr.Keys = sc.Keys
	replicas := make([]int32, 0, sc.Keys)
	started, inFlight := 0, 0
	more := func() bool {
		for inFlight < sc.Concurrency && started < n {
			i := started
			started++
			inFlight++
			start(i, func(r *core.PutResult, err error) {
				if e.closing {
					return
				}
				inFlight--
				e.done++
				switch {
				case err != nil:
					pr.Failed++
				case counted == nil || counted(i):
					pr.Stored++
					replicas = append(replicas, int32(r.Stored))
				}
			})
		}
		return inFlight > 0
	}
	limit := e.clk.Now().Add(time.Duration(n/sc.Concurrency+1)*time.Minute + 10*time.Minute)
	ok, err := e.advance(limit, more)
	pr.Replicas = intDist(replicas, true)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("put: %d puts still in flight after %v of virtual time", inFlight, e.clk.Now().Sub(e.phaseVStart))
	}
	return nil
}

// lookups gets random stored keys from random live nodes, Concurrency at
// a time.
func (e *engine) lookups() error {
	sc := e.sc
	e.beginPhase(PhaseLookups, sc.Lookups)
	acc := newLookupAcc(sc.Lookups)
	started, inFlight := 0, 0
	more := func() bool {
		for inFlight < sc.Concurrency && started < sc.Lookups {
			started++
			inFlight++
			k := e.rng.IntN(sc.Keys)
			e.randomLive().n.Get(e.keys[k], func(r *core.LookupResult, err error) {
				if e.closing {
					return
				}
				inFlight--
				e.done++
				acc.add(r, err, e.value(k))
			})
		}
		return inFlight > 0
	}
	limit := e.clk.Now().Add(time.Duration(sc.Lookups/sc.Concurrency+1)*time.Minute + 10*time.Minute)
	ok, err := e.advance(limit, more)
	e.r.Lookups = acc.report()
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("lookups: %d still in flight after %v of virtual time", inFlight, e.clk.Now().Sub(e.phaseVStart))
	}
	return nil
}

// lookupAcc gathers the outcomes of a set of lookups. Its counts and
// sorted samples do not depend on the order results arrive in, which matters
// because a closing node fails its operations in map order.
type lookupAcc struct {
	n, found, notFound, timeouts, errs, wrong, local int
	rounds, messages, latencyUS                      []int32
}

func newLookupAcc(capacity int) *lookupAcc {
	return &lookupAcc{
		rounds:    make([]int32, 0, capacity),
		messages:  make([]int32, 0, capacity),
		latencyUS: make([]int32, 0, capacity),
	}
}

// add records one lookup; it reports whether the lookup found want.
func (a *lookupAcc) add(r *core.LookupResult, err error, want []byte) bool {
	a.n++
	switch {
	case errors.Is(err, core.ErrNotFound):
		a.notFound++
		return false
	case errors.Is(err, core.ErrTimeout):
		a.timeouts++
		return false
	case err != nil:
		a.errs++
		return false
	}
	ok := false
	for _, v := range r.Values {
		if bytes.Equal(v, want) {
			ok = true
		}
	}
	if !ok {
		a.wrong++
		return false
	}
	a.found++
	if r.Local {
		a.local++
		return true
	}
	a.rounds = append(a.rounds, int32(r.Rounds))
	a.messages = append(a.messages, int32(r.Messages))
	a.latencyUS = append(a.latencyUS, int32(min(r.Duration/time.Microsecond, math.MaxInt32)))
	return true
}

func (a *lookupAcc) report() LookupReport {
	lr := LookupReport{
		Lookups: a.n, Found: a.found, NotFound: a.notFound, Timeouts: a.timeouts,
		Errors: a.errs, Wrong: a.wrong, Local: a.local,
		Rounds:    intDist(a.rounds, true),
		Messages:  intDist(a.messages, true),
		LatencyMS: latencyDist(a.latencyUS),
	}
	if a.n > 0 {
		lr.Success = float64(a.found) / float64(a.n)
	}
	return lr
}

// probe looks up the first ProbeKeys keys, each from a random live node,
// and reports through then when all have finished.
func (e *engine) probe(label string, then func(Probe)) {
	p := Probe{At: Duration(e.clk.Now().Sub(e.phaseVStart)), Label: label, Live: len(e.live)}
	acc := newLookupAcc(e.sc.ProbeKeys)
	left := e.sc.ProbeKeys
	lost := make([]bool, e.sc.ProbeKeys)
	for k := range e.sc.ProbeKeys {
		from := e.randomLive()
		side := from.side
		from.n.Get(e.keys[k], func(r *core.LookupResult, err error) {
			if e.closing {
				return
			}
			found := acc.add(r, err, e.value(k))
			lost[k] = !found
			if !found && r != nil && r.Queried > 0 && r.Responded == 0 {
				p.Unanswered++
			}
			if side == 1 {
				p.MinorityKeys++
				if found {
					p.MinorityFound++
				}
			}
			if left--; left == 0 {
				p.Keys, p.Found = acc.n, acc.found
				p.Share = float64(acc.found) / float64(acc.n)
				lat := latencyDist(acc.latencyUS)
				p.LatencyP50MS, p.LatencyP99MS = lat.P50, lat.P99
				if acc.found < acc.n && label == PhaseChurn {
					p.LostNoReplica, p.LostHeld, p.LostOffClosest, _ = e.lostReasons(lost)
				}
				then(p)
			}
		})
	}
}

// churn makes nodes leave and join as Poisson processes while probing how
// many stored keys can still be found.
func (e *engine) churn() error {
	c := e.sc.Churn
	e.beginPhase(PhaseChurn, int(c.For.D()/time.Second))
	cr := &ChurnReport{}
	e.r.Churn = cr
	start := e.clk.Now()
	end := start.Add(c.For.D())
	perMinute := float64(e.sc.Nodes) / float64(time.Minute)
	pendingJoins := 0

	// Draw the next gap of a Poisson process with the given rate per
	// nanosecond; ok is false when the rate is 0.
	gap := func(rate float64) (time.Duration, bool) {
		if rate <= 0 {
			return 0, false
		}
		return time.Duration(e.rng.ExpFloat64()/rate) + 1, true
	}
	var leaveNext, joinNext func()
	leaveNext = func() {
		if !e.clk.Now().Before(end) {
			return
		}
		// Seeds stay: they are the well-known entry points new nodes join
		// through.
		for tries := 0; tries < 16 && len(e.live) > len(e.seeds); tries++ {
			if sn := e.randomLive(); !sn.seed {
				e.leave(sn)
				cr.Left++
				break
			}
		}
		if d, ok := gap(c.Leave * perMinute); ok {
			e.clk.AfterFunc(d, leaveNext)
		}
	}
	joinNext = func() {
		if !e.clk.Now().Before(end) {
			return
		}
		sn, err := e.newNode()
		if err == nil {
			pendingJoins++
			sn.n.Bootstrap(e.seeds, func(_ *core.BootstrapResult, err error) {
				if e.closing {
					return
				}
				pendingJoins--
				if err != nil {
					cr.JoinFailed++
					return
				}
				cr.Joined++
				e.addLive(sn)
			})
		}
		if d, ok := gap(c.Join * perMinute); ok {
			e.clk.AfterFunc(d, joinNext)
		}
	}
	if d, ok := gap(c.Leave * perMinute); ok {
		e.clk.AfterFunc(d, leaveNext)
	}
	if d, ok := gap(c.Join * perMinute); ok {
		e.clk.AfterFunc(d, joinNext)
	}
	probes := e.scheduleProbes(c.For.D(), func(time.Duration) string { return PhaseChurn }, func(p Probe) {
		cr.Probes = append(cr.Probes, p)
	})
	ok, err := e.advance(end.Add(10*time.Minute), func() bool {
		e.done = int(e.clk.Now().Sub(start) / time.Second)
		return e.clk.Now().Before(end) || *probes > 0 || pendingJoins > 0
	})
	sortProbes(cr.Probes)
	cr.Live = len(e.live)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("churn: %d probes and %d joins still running 10m after the phase ended", *probes, pendingJoins)
	}
	return nil
}

// scheduleProbes starts a probe every ProbeEvery from now to span later,
// both ends included; the returned counter is the probes still running.
func (e *engine) scheduleProbes(span time.Duration, label func(at time.Duration) string, record func(Probe)) *int {
	pending := new(int)
	every := e.sc.ProbeEvery.D()
	for at := time.Duration(0); at <= span; at += every {
		*pending++
		e.clk.AfterFunc(at, func() {
			e.probe(label(at), func(p Probe) {
				*pending--
				record(p)
			})
		})
	}
	return pending
}

// partition splits off a random share of the live nodes, heals the split
// later, and probes lookups before, during and after.
func (e *engine) partition() error {
	p := e.sc.Partition
	span := p.At.D() + p.For.D() + p.After.D()
	e.beginPhase(PhasePartition, int(span/time.Second))
	pr := &PartitionReport{}
	e.r.Partition = pr
	start := e.clk.Now()
	healAt := p.At.D() + p.For.D()
	e.clk.AfterFunc(p.At.D(), func() {
		// A partial Fisher-Yates shuffle picks the minority.
		order := make([]*simNode, len(e.live))
		copy(order, e.live)
		m := int(math.Round(p.Fraction * float64(len(order))))
		group := make([]netip.AddrPort, 0, m)
		for i := range m {
			j := i + e.rng.IntN(len(order)-i)
			order[i], order[j] = order[j], order[i]
			order[i].side = 1
			group = append(group, order[i].addr)
		}
		pr.Minority = m
		e.net.Partition(group)
	})
	e.clk.AfterFunc(healAt, func() {
		e.net.Heal()
	})
	label := func(at time.Duration) string {
		switch {
		case at < p.At.D():
			return "before"
		case at < healAt:
			return "during"
		}
		return "after"
	}
	probes := e.scheduleProbes(span, label, func(q Probe) { pr.Probes = append(pr.Probes, q) })
	end := start.Add(span)
	ok, err := e.advance(end.Add(10*time.Minute), func() bool {
		e.done = int(e.clk.Now().Sub(start) / time.Second)
		return e.clk.Now().Before(end) || *probes > 0
	})
	sortProbes(pr.Probes)
	pr.summarize()
	for _, sn := range e.nodes {
		sn.side = 0
	}
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("partition: %d probes still running 10m after the phase ended", *probes)
	}
	return nil
}

// addStats adds a node's counters to a running total.
func addStats(t *core.Stats, s core.Stats) {
	t.PacketsIn += s.PacketsIn
	t.PacketsOut += s.PacketsOut
	t.Malformed += s.Malformed
	t.WrongNetwork += s.WrongNetwork
	t.Unmatched += s.Unmatched
	t.Responses += s.Responses
	t.Requests += s.Requests
	t.Retries += s.Retries
	t.Timeouts += s.Timeouts
	t.RPCFull += s.RPCFull
	t.StoresAccepted += s.StoresAccepted
	t.StoresRefused += s.StoresRefused
	t.Expired += s.Expired
	t.Refreshes += s.Refreshes
	t.StoredValues += s.StoredValues
}

// heapLiveAfterGC collects garbage and returns the bytes of live heap:
// what the nodes really hold, without garbage not yet collected.
func heapLiveAfterGC() uint64 {
	runtime.GC()
	return heapLive()
}

// heapLive is the live heap as of the last collection.
func heapLive() uint64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// sampleHeap tracks the largest heap seen, for Perf.
func (e *engine) sampleHeap() {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindUint64 {
		e.r.Perf.PeakHeapObjects = max(e.r.Perf.PeakHeapObjects, s[0].Value.Uint64())
	}
}

package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/dhtkit/dht/wire"
)

// ServeConfig configures RunServe. Start from DefaultServeConfig; zero
// fields other than Warmup take its values, so the zero value is the default
// run without warm-up. It is a plain value, copied by RunServe.
type ServeConfig struct {
	// Keys is how many keys the node holds, one value each.
	Keys int `json:"keys"`
	// ValueSize is the size of each value in bytes, at most
	// wire.MaxValueSize.
	ValueSize int `json:"value_size"`
	// Sockets is the number of sockets of the node and of the echo server
	// (SO_REUSEPORT).
	Sockets int `json:"sockets"`
	// Clients is the number of load generator clients, each with its share
	// of the requests in flight: one socket each, unless Senders spreads
	// them over more.
	Clients int `json:"clients"`
	// Senders is the number of distinct senders the requests come from,
	// each a socket with its own sender ID and loopback address
	// (127.x.y.z), taken in turn; from Clients to MaxSenders. 0 is the best
	// case: one sender per client, all on 127.0.0.1, each heard from so
	// often that the node's routing table only updates a timestamp.
	Senders int `json:"senders"`
	// Concurrency is the number of requests in flight over all clients; at
	// least Clients.
	Concurrency int `json:"concurrency"`
	// Duration is the length of each measurement.
	Duration time.Duration `json:"duration_ns"`
	// Warmup is how long load runs before each measurement without being
	// measured; zero means none.
	Warmup time.Duration `json:"warmup_ns"`
	// Rounds is how many times the node and the echo server are measured,
	// alternately; the report gives medians.
	Rounds int `json:"rounds"`
	// Timeout is how long the load generator waits for an answer before it
	// gives up on the request (counted as lost) and sends another.
	Timeout time.Duration `json:"timeout_ns"`
	// ReadOnly sets READ_ONLY on the requests, as short-lived clients do:
	// the node then answers without offering the requester to its routing
	// table. By default the load generator's sockets look like peer nodes.
	ReadOnly bool `json:"read_only"`
	// SkipNaive leaves out the reference measurement of a single-socket
	// net.UDPConn echo server.
	SkipNaive bool `json:"skip_naive"`
	// Records is what the node holds and how it is asked: RecordsLegacy
	// (the default) plain values asked for with FIND_VALUE, as every
	// figure before record kinds; RecordsPlain plain records asked for
	// with GET; RecordsSigned signed records (envelopes of ValueSize-byte
	// values, one key pair, a salt per key) asked for with GET, so that
	// plain and signed compare with the same request and answer format.
	Records string `json:"records"`
	// Seed makes keys, values, IDs and transaction IDs reproducible.
	Seed uint64 `json:"seed"`
	// Progress, when set, receives a line per finished measurement.
	Progress io.Writer `json:"-"`
}

// DefaultServeConfig returns the configuration `dht bench serve` runs with
// when given no flags.
func DefaultServeConfig() ServeConfig {
	return ServeConfig{
		Keys:        1000,
		ValueSize:   100,
		Sockets:     2,
		Clients:     4,
		Concurrency: 64,
		Duration:    5 * time.Second,
		Warmup:      time.Second,
		Rounds:      3,
		Timeout:     250 * time.Millisecond,
		Records:     RecordsLegacy,
		Seed:        1,
	}
}

func (c *ServeConfig) validate() error {
	d := DefaultServeConfig()
	fill(&c.Keys, d.Keys)
	fill(&c.ValueSize, d.ValueSize)
	fill(&c.Sockets, d.Sockets)
	fill(&c.Clients, d.Clients)
	fill(&c.Concurrency, d.Concurrency)
	fill(&c.Rounds, d.Rounds)
	fill(&c.Duration, d.Duration)
	fill(&c.Timeout, d.Timeout)
	fill(&c.Seed, d.Seed)
	if c.Records == "" {
		c.Records = RecordsLegacy
	}
	switch {
	case c.Records != RecordsLegacy && c.Records != RecordsPlain && c.Records != RecordsSigned:
		return fmt.Errorf("bench: ServeConfig.Records is %q: must be %s, %s or %s", c.Records, RecordsLegacy, RecordsPlain, RecordsSigned)
	case c.Keys < 1 || c.Keys > MaxServeKeys:
		return fmt.Errorf("bench: ServeConfig.Keys is %d: must be from 1 to %d", c.Keys, MaxServeKeys)
	case c.ValueSize < 1 || c.ValueSize > wire.MaxValueSize:
		return fmt.Errorf("bench: ServeConfig.ValueSize is %d: must be from 1 to %d bytes", c.ValueSize, wire.MaxValueSize)
	case c.Sockets < 1 || c.Sockets > 64:
		return fmt.Errorf("bench: ServeConfig.Sockets is %d: must be from 1 to 64", c.Sockets)
	case c.Clients < 1 || c.Clients > MaxClients:
		return fmt.Errorf("bench: ServeConfig.Clients is %d: must be from 1 to %d", c.Clients, MaxClients)
	case c.Senders != 0 && (c.Senders < c.Clients || c.Senders > MaxSenders):
		return fmt.Errorf("bench: ServeConfig.Senders is %d: must be 0 (one per client) or from Clients (%d) to %d", c.Senders, c.Clients, MaxSenders)
	case c.Concurrency < c.Clients || c.Concurrency > MaxConcurrency:
		return fmt.Errorf("bench: ServeConfig.Concurrency is %d: must be from Clients (%d) to %d", c.Concurrency, c.Clients, MaxConcurrency)
	case c.Duration < 0 || c.Duration > MaxDuration:
		return fmt.Errorf("bench: ServeConfig.Duration is %v: must be positive and at most %v", c.Duration, MaxDuration)
	case c.Warmup < 0 || c.Warmup > MaxDuration:
		return fmt.Errorf("bench: ServeConfig.Warmup is %v: must be from 0 to %v", c.Warmup, MaxDuration)
	case c.Rounds < 1 || c.Rounds > MaxRounds:
		return fmt.Errorf("bench: ServeConfig.Rounds is %d: must be from 1 to %d", c.Rounds, MaxRounds)
	case c.Timeout < time.Millisecond || c.Timeout > time.Minute:
		return fmt.Errorf("bench: ServeConfig.Timeout is %v: must be from 1ms to 1m", c.Timeout)
	}
	return nil
}

// What ServeConfig.Records selects.
const (
	RecordsLegacy = "legacy" // plain values, FIND_VALUE
	RecordsPlain  = "plain"  // plain records, GET
	RecordsSigned = "signed" // signed records (envelopes), GET
)

// Bounds on the benchmarks' settings, so that every run is bounded in memory
// and time.
const (
	MaxServeKeys   = 1_000_000
	MaxClients     = 256
	MaxConcurrency = 65_536
	MaxRounds      = 100
	MaxDuration    = time.Hour
	// MaxIdleWindow is longer than MaxDuration: the idle window must be able
	// to hold a whole default refresh interval (1h) and the timers' jitter.
	MaxIdleWindow = 6 * time.Hour
)

// fill sets *v to def when it is the zero value.
func fill[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Measurement is one timed run of the load generator against one server: a
// plain value, like every report type of this package.
type Measurement struct {
	// Server is "node", "echo" (the udp transport) or "naive-echo" (one
	// net.UDPConn).
	Server string `json:"server"`
	// Round counts from 1.
	Round int `json:"round"`
	// Elapsed is the measured window: Duration, or less if interrupted.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Rate is correct answers per second of Elapsed.
	Rate float64 `json:"req_per_s"`
	// Latency is the round-trip time of the correct answers.
	Latency Latency `json:"latency"`
	Counts  Counts  `json:"counts"`
}

func newMeasurement(server string, round int, r loadResult) Measurement {
	m := Measurement{Server: server, Round: round, Elapsed: r.elapsed, Latency: r.hist.Summary(), Counts: r.Counts}
	if r.elapsed > 0 {
		m.Rate = float64(r.OK) / r.elapsed.Seconds()
	}
	return m
}

// ServeReport is what RunServe measured. Once returned it is plain data,
// safe to read from any goroutine.
type ServeReport struct {
	Config  ServeConfig `json:"config"`
	Machine Machine     `json:"machine"`
	// Senders is how many distinct senders (ID and address) the requests
	// of each measurement came from: Config.Senders, or Config.Clients in
	// the best case.
	Senders int `json:"senders"`
	// BestCase is set when each client was one sender on 127.0.0.1
	// (Config.Senders 0): few senders, each heard from many times a second.
	BestCase bool `json:"best_case"`
	// RequestSize and ResponseSize are the datagram sizes, the same for the
	// node and the echo servers.
	RequestSize  int `json:"request_bytes"`
	ResponseSize int `json:"response_bytes"`
	// Node and Echo hold each round's measurement.
	Node []Measurement `json:"node"`
	Echo []Measurement `json:"echo"`
	// Naive is the single-socket net.UDPConn echo, for reference; nil when
	// skipped or interrupted before it.
	Naive *Measurement `json:"naive_echo,omitempty"`
	// NodeRate and EchoRate are the medians of the rounds' rates, and
	// Ratio is NodeRate / EchoRate (0 without an echo rate).
	NodeRate float64 `json:"node_req_per_s"`
	EchoRate float64 `json:"echo_req_per_s"`
	Ratio    float64 `json:"ratio"`
	// RoundRatios is each round's node rate over its echo rate.
	RoundRatios []float64 `json:"round_ratios"`
	// Medians over the rounds of each round's latency quantiles.
	NodeP50 time.Duration `json:"node_p50_ns"`
	NodeP99 time.Duration `json:"node_p99_ns"`
	EchoP50 time.Duration `json:"echo_p50_ns"`
	EchoP99 time.Duration `json:"echo_p99_ns"`
	// NodeServed is the number of FIND_VALUE requests the node answered over
	// the whole run, warm-ups included.
	NodeServed uint64 `json:"node_served"`
	// Request is the request the load generator sends: FIND_VALUE, or GET
	// with Config.Records plain or signed.
	Request string `json:"request"`
	// NodeContacts is the size of the node's routing table at the end: a
	// few in the best case, hundreds with many senders (it keeps up to K
	// per bucket; the rest wait in replacement caches or are dropped).
	NodeContacts int `json:"node_contacts"`
	// Interrupted is set when ctx ended the run early; the report holds
	// what was measured until then.
	Interrupted bool `json:"interrupted"`
}

// RunServe measures how many FIND_VALUE requests one node answers per
// second over loopback UDP, against an echo server on the same transport
// with the same sockets, packet sizes and load (the same senders too),
// measured alternately for cfg.Rounds rounds. When ctx ends it stops and returns what it measured,
// with Interrupted set.
func RunServe(ctx context.Context, cfg ServeConfig) (*ServeReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Senders != 0 {
		limit, err := fdLimit(uint64(cfg.Senders+2*cfg.Sockets) + fdReserve)
		if err != nil {
			return nil, fmt.Errorf("bench: reading the open-file limit: %w", err)
		}
		if err := checkSenderFDs(cfg.Senders, cfg.Sockets, limit); err != nil {
			return nil, err
		}
	}
	keys, values := makeKeys("serve", cfg.Seed, cfg.Keys, cfg.ValueSize)
	recs := plainRecords(values)
	if cfg.Records == RecordsSigned {
		keys, recs = signedRecords(cfg.Seed, values)
	}
	node, err := startServeNode(keys, recs, cfg.Sockets, cfg.Seed)
	if err != nil {
		return nil, err
	}
	defer node.Close()
	respLen, request := valuesLen(cfg.ValueSize), wire.FindValue
	if cfg.Records != RecordsLegacy {
		// Every record of a run has one size (salts are of one length).
		respLen, request = recordsLen(&recs[0]), wire.Get
	}
	echo, err := startEcho(cfg.Sockets, respLen)
	if err != nil {
		return nil, err
	}
	defer echo.Close()

	rep := &ServeReport{Config: cfg, Machine: thisMachine(), Senders: cfg.Senders, BestCase: cfg.Senders == 0, RequestSize: requestLen(request), ResponseSize: respLen, Request: request.String()}
	if rep.BestCase {
		rep.Senders = cfg.Clients
	}
	base := loadConfig{
		keys:        keys,
		values:      values,
		respLen:     respLen,
		clients:     cfg.Clients,
		senders:     cfg.Senders,
		concurrency: cfg.Concurrency,
		timeout:     cfg.Timeout,
		readOnly:    cfg.ReadOnly,
		label:       "loadgen",
		request:     request,
	}
	if request == wire.Get {
		base.records = recs
	}
	// measure runs one measurement; false means stop (interrupted).
	measure := func(server string, round int, lc loadConfig) (*Measurement, bool, error) {
		lc.seed = cfg.Seed*1_000_003 + uint64(round)*16 + uint64(len(server))
		lg, err := newLoadGen(lc)
		if err != nil {
			return nil, false, err
		}
		res, err := lg.run(ctx, cfg.Warmup, cfg.Duration)
		if err != nil {
			if ctx.Err() != nil {
				return nil, false, nil
			}
			return nil, false, err
		}
		m := newMeasurement(server, round, res)
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, "round %d %-10s %12.0f req/s  p50 %v  p99 %v\n", round, server, m.Rate, roundDur(m.Latency.P50), roundDur(m.Latency.P99))
		}
		return &m, ctx.Err() == nil, nil
	}

	nodeCfg := base
	nodeCfg.server, nodeCfg.serverID, nodeCfg.mode = node.Addr(), node.ID(), checkValues
	echoCfg := base
	echoCfg.server, echoCfg.mode = echo.LocalAddr(), checkEcho
	func() {
		for r := 1; r <= cfg.Rounds; r++ {
			m, ok, e := measure("node", r, nodeCfg)
			if m != nil {
				rep.Node = append(rep.Node, *m)
			}
			if !ok {
				err = e
				return
			}
			m, ok, e = measure("echo", r, echoCfg)
			if m != nil {
				rep.Echo = append(rep.Echo, *m)
				if nm := rep.Node[len(rep.Node)-1]; m.Rate > 0 {
					rep.RoundRatios = append(rep.RoundRatios, nm.Rate/m.Rate)
				}
			}
			if !ok {
				err = e
				return
			}
		}
		if cfg.SkipNaive {
			return
		}
		naive, e := startNaiveEcho(respLen)
		if e != nil {
			err = e
			return
		}
		defer naive.close()
		naiveCfg := base
		naiveCfg.server, naiveCfg.mode = naive.addr(), checkEcho
		m, _, e := measure("naive-echo", 1, naiveCfg)
		rep.Naive, err = m, e
	}()
	if err != nil {
		return nil, err
	}
	rep.Interrupted = ctx.Err() != nil
	st := node.Stats()
	rep.NodeServed = st.Served[request.String()]
	rep.NodeContacts = st.TableSize
	rep.summarize()
	return rep, nil
}

// checkSenderFDs says whether senders sockets fit under the open-file limit,
// beside the node's and the echo server's sockets and a reserve.
func checkSenderFDs(senders, sockets int, limit uint64) error {
	servers := uint64(2 * sockets)
	need := uint64(senders) + servers + fdReserve
	if need > limit {
		return fmt.Errorf("bench: %d senders need about %d file descriptors (one socket each, %d for the servers, plus %d), but the limit is %d: use at most %d senders or raise the limit (ulimit -n)",
			senders, need, servers, fdReserve, limit, max(int64(limit)-int64(servers)-fdReserve, 0))
	}
	return nil
}

// summarize computes the medians and the ratio from the rounds.
func (r *ServeReport) summarize() {
	pick := func(ms []Measurement, f func(Measurement) float64) float64 {
		xs := make([]float64, len(ms))
		for i, m := range ms {
			xs[i] = f(m)
		}
		return median(xs)
	}
	rate := func(m Measurement) float64 { return m.Rate }
	p50 := func(m Measurement) float64 { return float64(m.Latency.P50) }
	p99 := func(m Measurement) float64 { return float64(m.Latency.P99) }
	r.NodeRate, r.EchoRate = pick(r.Node, rate), pick(r.Echo, rate)
	r.NodeP50, r.NodeP99 = time.Duration(pick(r.Node, p50)), time.Duration(pick(r.Node, p99))
	r.EchoP50, r.EchoP99 = time.Duration(pick(r.Echo, p50)), time.Duration(pick(r.Echo, p99))
	r.Ratio = 0
	if r.EchoRate > 0 {
		r.Ratio = r.NodeRate / r.EchoRate
	}
}

// median returns the middle value (the mean of the two middle ones for an
// even count), 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// roundDur rounds d for display: three significant digits or so.
func roundDur(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}

package bench

import (
	"context"
	"crypto/sha1"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/udp"
	"github.com/dhtkit/dht/wire"
)

// The flood benchmark (`dht bench flood`) asks whether one source flooding
// a node takes service from its other clients. One node on 127.0.0.1 with
// a per-source rate limit serves a few clients, each from a loopback
// address of its own (a source host of its own to the limit), at a fixed
// offered load of FIND_NODE and GET requests. Each round measures the rate
// at which the clients' requests are answered without a flood, then with
// one more source sending Factor times the limit, then (the control) the
// same flood against a node with the limit off. The clients' offered load
// is fixed, so the rates compare what was served of the same demand.
//
// Its best case, stated as such: client, flooder and node share one
// machine and its cores, so the flooder's sending also takes CPU from the
// node, and loopback loses nothing; the node's routing table is empty, so
// a FIND_NODE costs the node little more than its header (a GET reads and
// encodes a record).

// FloodConfig configures RunFlood. Zero fields take DefaultFloodConfig's
// values. It is a plain value, copied by RunFlood.
type FloodConfig struct {
	// Clients is the number of normal clients, each a socket on a
	// loopback address of its own.
	Clients int `json:"clients"`
	// ClientRate is the requests per second each client offers,
	// FIND_NODE and GET in turn, whether or not answers come.
	ClientRate int `json:"client_rate"`
	// RateLimit is the node's limit per source host, in requests per
	// second (its burst is twice that, the node's default).
	RateLimit int `json:"rate_limit"`
	// Factor is the flooder's rate as a multiple of RateLimit.
	Factor int `json:"factor"`
	// Duration is the length of each measurement; the flooder stops at
	// its end, after Factor x RateLimit x Duration requests.
	Duration time.Duration `json:"duration_ns"`
	// Rounds is how many times the three measurements run; the report
	// gives medians.
	Rounds int `json:"rounds"`
	// Timeout is how long after its request an answer still counts.
	Timeout time.Duration `json:"timeout_ns"`
	// Keys is how many keys the node holds (one 100-byte record each),
	// which the GETs ask for.
	Keys int `json:"keys"`
	// Seed makes IDs and keys reproducible.
	Seed uint64 `json:"seed"`
	// Progress, when set, receives a line per finished measurement.
	Progress io.Writer `json:"-"`
}

// DefaultFloodConfig returns the configuration `dht bench flood` runs with
// when given no flags: 10 clients at 50 requests/s each, a flooder at 100
// times the node's default limit of 200 requests/s.
func DefaultFloodConfig() FloodConfig {
	return FloodConfig{
		Clients:    10,
		ClientRate: 50,
		RateLimit:  200,
		Factor:     100,
		Duration:   3 * time.Second,
		Rounds:     3,
		Timeout:    500 * time.Millisecond,
		Keys:       100,
		Seed:       1,
	}
}

func (c *FloodConfig) validate() error {
	d := DefaultFloodConfig()
	fill(&c.Clients, d.Clients)
	fill(&c.ClientRate, d.ClientRate)
	fill(&c.RateLimit, d.RateLimit)
	fill(&c.Factor, d.Factor)
	fill(&c.Duration, d.Duration)
	fill(&c.Rounds, d.Rounds)
	fill(&c.Timeout, d.Timeout)
	fill(&c.Keys, d.Keys)
	fill(&c.Seed, d.Seed)
	switch {
	case c.Clients < 1 || c.Clients > 254:
		return fmt.Errorf("bench: %d flood clients: want 1 to 254", c.Clients)
	case c.ClientRate < 1 || c.ClientRate >= c.RateLimit:
		return fmt.Errorf("bench: client rate %d/s: want 1 to below the rate limit (%d/s), so that normal clients are never limited", c.ClientRate, c.RateLimit)
	case c.RateLimit < 1 || c.Factor < 1 || c.RateLimit*c.Factor > 1_000_000:
		return fmt.Errorf("bench: rate limit %d/s x factor %d: each at least 1, the flood at most 1,000,000/s", c.RateLimit, c.Factor)
	case c.Duration < 100*time.Millisecond || c.Duration > time.Hour:
		return fmt.Errorf("bench: duration %v: want 100ms to 1h", c.Duration)
	case c.Rounds < 1 || c.Rounds > 100:
		return fmt.Errorf("bench: %d rounds: want 1 to 100", c.Rounds)
	case c.Timeout <= 0:
		return errors.New("bench: the timeout must be positive")
	case c.Keys < 1 || c.Keys > 1_000_000:
		return fmt.Errorf("bench: %d keys: want 1 to 1,000,000", c.Keys)
	}
	return nil
}

// FloodPhase is one measurement.
type FloodPhase struct {
	// Offered and Answered count the normal clients' requests, and Late
	// their answers that came after Timeout (not in Answered); Refused
	// their ERROR answers.
	Offered, Answered, Late, Refused uint64
	// Rate is Answered per second of Duration: the clients' served rate.
	Rate float64
	// FlooderSent and FlooderAnswered count the flooder's requests (zero
	// without a flood).
	FlooderSent, FlooderAnswered uint64
	// RateLimited is how many requests the node dropped for their
	// source's rate limit during the measurement.
	RateLimited uint64
}

// FloodRound is one round's three measurements.
type FloodRound struct {
	Round int
	// Baseline: the clients alone; Flooded: with the flooder; Unlimited:
	// with the flooder, against a node with no rate limit.
	Baseline, Flooded, Unlimited FloodPhase
}

// FloodReport is what RunFlood measured.
type FloodReport struct {
	Config FloodConfig
	Rounds []FloodRound
	// The medians over rounds of the clients' served rate, in requests
	// per second, and of the flooder's answered requests.
	BaselineRate, FloodedRate, UnlimitedRate  float64
	FlooderAnswered, FlooderAnsweredUnlimited float64
	// FloodSentRate is the median rate the flooder achieved, in requests
	// per second (below Factor x RateLimit when one sending goroutine
	// cannot keep up); FloodSentRateUnlimited the same in the control.
	FloodSentRate, FloodSentRateUnlimited float64
	// Ratio is FloodedRate / BaselineRate; UnlimitedRatio the same for
	// the control.
	Ratio, UnlimitedRatio float64
}

// floodPeer is one source of requests to the node (a client or the
// flooder) on any transport: it sends request i with txid i+1 and counts
// each answer once.
type floodPeer struct {
	tr      transport.Transport
	clk     clock.Clock
	server  netip.AddrPort
	self    id.ID
	keys    []id.ID
	timeout time.Duration
	buf     []byte
	pkt     [1]transport.Packet

	mu                      sync.Mutex
	sentAt                  []int64 // Unix nanoseconds of request i's send; 0 not sent, -1 answered
	msg                     wire.Message
	answered, late, refused uint64
	sent                    uint64
	strays                  uint64 // datagrams that answer nothing of ours
}

func newFloodPeer(tr transport.Transport, clk clock.Clock, server netip.AddrPort, self id.ID, keys []id.ID, n int, timeout time.Duration) (*floodPeer, error) {
	p := &floodPeer{tr: tr, clk: clk, server: server, self: self, keys: keys, timeout: timeout, sentAt: make([]int64, n), buf: make([]byte, 0, wire.MaxPacket)}
	if err := tr.Start(p); err != nil {
		return nil, err
	}
	return p, nil
}

// send sends request i: a FIND_NODE for an even i, a GET of one of the
// keys for an odd one, READ_ONLY (clients, not nodes: the node keeps
// them out of its table) and padded as the protocol asks, so that the
// answer is not cut by the amplification limit.
func (p *floodPeer) send(i int) error {
	m := wire.Message{Network: 0, TxID: uint64(i + 1), Sender: p.self, Flags: wire.FlagReadOnly}
	pad := wire.MinFindNodeLen
	if i%2 == 0 {
		m.Type = wire.FindNode
		m.Target = p.keys[(i/2*7919)%len(p.keys)]
		m.Target[19] ^= 0x5a // near a key, not one
	} else {
		m.Type, pad = wire.Get, wire.MinFindValueLen
		m.Target = p.keys[(i/2)%len(p.keys)]
	}
	b, err := m.Append(p.buf[:0])
	if err != nil {
		return err
	}
	b = wire.Pad(b, 0, pad)
	p.mu.Lock()
	p.sentAt[i] = p.clk.Now().UnixNano()
	p.sent++
	p.mu.Unlock()
	p.pkt[0] = transport.Packet{Addr: p.server, Data: b}
	return p.tr.Send(p.pkt[:])
}

// HandlePacket implements transport.Handler: an answer, counted once.
func (p *floodPeer) HandlePacket(data []byte, from netip.AddrPort, _ transport.Writer) {
	now := p.clk.Now().UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	if from != p.server || wire.PeekHeader(data, &p.msg) != nil || p.msg.Type.IsRequest() {
		p.strays++
		return
	}
	i := p.msg.TxID - 1
	if i >= uint64(len(p.sentAt)) || p.sentAt[i] <= 0 {
		p.strays++ // not ours, or a duplicate
		return
	}
	at := p.sentAt[i]
	p.sentAt[i] = -1
	switch {
	case p.msg.Type == wire.Error:
		p.refused++
	case now-at > int64(p.timeout):
		p.late++
	default:
		p.answered++
	}
}

func (p *floodPeer) counts() (sent, answered, late, refused uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, p.answered, p.late, p.refused
}

// floodNode starts the node under test on tr, holding keys, with the
// given limit (negative: none), limiting loopback sources as it would
// remote ones.
func floodNode(tr transport.Transport, clk clock.Clock, keys []id.ID, limit float64, seed uint64) (*dht.Node, error) {
	st := store.NewMemory(store.Limits{MaxValues: max(len(keys), store.DefaultMaxValues)})
	now := clk.Now()
	for i, k := range keys {
		v := make([]byte, 100)
		v[0], v[1] = byte(i), byte(i>>8)
		if err := st.Put(k, store.Value{Publisher: sha1.Sum(v), Expires: now.Add(24 * time.Hour), Data: v}, netip.Addr{}, now); err != nil {
			return nil, fmt.Errorf("bench: filling the node's store: %w", err)
		}
	}
	cfg := dht.DefaultConfig()
	cfg.Transport, cfg.Clock, cfg.Store = tr, clk, st
	cfg.RateLimit, cfg.RateLimitLoopback = limit, true
	cfg.Rand = rand.New(rand.NewPCG(seed, 0x666c6f6f64))
	return dht.New(cfg)
}

// floodAddr is the loopback address of client i (i < 254), and of the
// flooder for i = -1: each its own source host.
func floodAddr(i int) netip.Addr {
	if i < 0 {
		return netip.AddrFrom4([4]byte{127, 78, 0, 1})
	}
	return netip.AddrFrom4([4]byte{127, 77, 0, byte(1 + i)})
}

// RunFlood runs the flood benchmark over real UDP on the loopback
// interface (it binds 127.77.0.x and 127.78.0.1, which Linux routes to
// it). It stops early, with an error, when ctx ends.
func RunFlood(ctx context.Context, cfg FloodConfig) (*FloodReport, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	keys, _ := makeKeys("flood", cfg.Seed, cfg.Keys, 1)
	rep := &FloodReport{Config: cfg}
	nodes := make([]*dht.Node, 2)
	for i, limit := range []float64{float64(cfg.RateLimit), -1} {
		tr, err := udp.Listen(udp.Config{Addr: "127.0.0.1:0", ReadBuffer: 4 << 20})
		if err != nil {
			return nil, fmt.Errorf("bench: the node's socket: %w", err)
		}
		n, err := floodNode(tr, clock.Real{}, keys, limit, cfg.Seed+uint64(i))
		if err != nil {
			tr.Close()
			for _, m := range nodes[:i] {
				m.Close()
			}
			return nil, err
		}
		nodes[i] = n
	}
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	ids := rand.New(rand.NewPCG(cfg.Seed, 0x6964))
	for r := range cfg.Rounds {
		round := FloodRound{Round: r + 1}
		for _, ph := range []struct {
			name  string
			node  *dht.Node
			flood bool
			out   *FloodPhase
		}{
			{"baseline", nodes[0], false, &round.Baseline},
			{"flooded", nodes[0], true, &round.Flooded},
			{"unlimited", nodes[1], true, &round.Unlimited},
		} {
			p, err := floodPhase(ctx, &cfg, ph.node, keys, ids, ph.flood)
			if err != nil {
				return nil, err
			}
			*ph.out = p
			if cfg.Progress != nil {
				fmt.Fprintf(cfg.Progress, "round %d %-9s clients answered %d of %d (%.1f/s, %d late), flooder %d of %d answered, %d rate-limited\n",
					r+1, ph.name, p.Answered, p.Offered, p.Rate, p.Late, p.FlooderAnswered, p.FlooderSent, p.RateLimited)
			}
		}
		rep.Rounds = append(rep.Rounds, round)
	}
	rep.summarize()
	return rep, nil
}

// floodPhase runs one measurement against node: the clients at their
// rate for Duration, and the flooder with them when flood is set.
func floodPhase(ctx context.Context, cfg *FloodConfig, node *dht.Node, keys []id.ID, ids *rand.Rand, flood bool) (FloodPhase, error) {
	perClient := int(int64(cfg.ClientRate) * int64(cfg.Duration) / int64(time.Second))
	floodN := int(int64(cfg.RateLimit) * int64(cfg.Factor) * int64(cfg.Duration) / int64(time.Second))
	var peers []*floodPeer
	closeAll := func() {
		for _, p := range peers {
			p.tr.Close()
		}
	}
	open := func(a netip.Addr, n int) (*floodPeer, error) {
		tr, err := udp.Listen(udp.Config{Addr: netip.AddrPortFrom(a, 0).String(), ReadBuffer: 1 << 20})
		if err != nil {
			return nil, fmt.Errorf("bench: binding %v (all of 127.0.0.0/8 must be on the loopback interface, as Linux has): %w", a, err)
		}
		p, err := newFloodPeer(tr, clock.Real{}, node.Addr(), id.Random(ids), keys, n, cfg.Timeout)
		if err != nil {
			tr.Close()
			return nil, err
		}
		peers = append(peers, p)
		return p, nil
	}
	for i := range cfg.Clients {
		if _, err := open(floodAddr(i), perClient); err != nil {
			closeAll()
			return FloodPhase{}, err
		}
	}
	var flooder *floodPeer
	if flood {
		var err error
		if flooder, err = open(floodAddr(-1), floodN); err != nil {
			closeAll()
			return FloodPhase{}, err
		}
	}
	before := node.Stats().RateLimited
	start := time.Now().Add(10 * time.Millisecond)
	var wg sync.WaitGroup
	for i, p := range peers {
		rate, n := cfg.ClientRate, perClient
		if p == flooder {
			rate, n = cfg.RateLimit*cfg.Factor, floodN
		}
		// Clients start spread over one interval, not all at once.
		offset := time.Duration(i) * time.Second / time.Duration(cfg.ClientRate*len(peers))
		wg.Go(func() { pace(ctx, p, rate, n, start.Add(offset), start.Add(cfg.Duration)) })
	}
	wg.Wait()
	// The last answers: wait out their timeout.
	if !sleepCtx(ctx, cfg.Timeout) {
		closeAll()
		return FloodPhase{}, ctx.Err()
	}
	var out FloodPhase
	for _, p := range peers {
		sent, answered, late, refused := p.counts()
		if p == flooder {
			out.FlooderSent, out.FlooderAnswered = sent, answered+late
			continue
		}
		out.Offered += sent
		out.Answered += answered
		out.Late += late
		out.Refused += refused
	}
	out.Rate = float64(out.Answered) / cfg.Duration.Seconds()
	out.RateLimited = node.Stats().RateLimited - before
	closeAll()
	return out, ctx.Err()
}

// pace sends p's n requests at rate per second from start, catching up
// in a burst when the scheduler woke it late, so that the offered count
// is the same whatever the machine's timer resolution; it stops at end,
// sent or not, so that a flooder slower than its rate (FloodPhase says
// what it sent) does not outlast the measurement.
func pace(ctx context.Context, p *floodPeer, rate, n int, start, end time.Time) {
	interval := time.Second / time.Duration(rate)
	for i := range n {
		if i%64 == 0 && time.Now().After(end.Add(interval)) {
			return
		}
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			if !sleepCtx(ctx, d) {
				return
			}
		}
		if p.send(i) != nil {
			return
		}
	}
}

func (r *FloodReport) summarize() {
	var base, flooded, unlimited, fa, fu, sa, su []float64
	for _, x := range r.Rounds {
		base = append(base, x.Baseline.Rate)
		flooded = append(flooded, x.Flooded.Rate)
		unlimited = append(unlimited, x.Unlimited.Rate)
		fa = append(fa, float64(x.Flooded.FlooderAnswered))
		fu = append(fu, float64(x.Unlimited.FlooderAnswered))
		sa = append(sa, float64(x.Flooded.FlooderSent)/r.Config.Duration.Seconds())
		su = append(su, float64(x.Unlimited.FlooderSent)/r.Config.Duration.Seconds())
	}
	r.BaselineRate, r.FloodedRate, r.UnlimitedRate = median(base), median(flooded), median(unlimited)
	r.FlooderAnswered, r.FlooderAnsweredUnlimited = median(fa), median(fu)
	r.FloodSentRate, r.FloodSentRateUnlimited = median(sa), median(su)
	if r.BaselineRate > 0 {
		r.Ratio = r.FloodedRate / r.BaselineRate
		r.UnlimitedRatio = r.UnlimitedRate / r.BaselineRate
	}
}

// WriteText writes the report for people.
func (r *FloodReport) WriteText(w io.Writer) error {
	c := r.Config
	_, err := fmt.Fprintf(w, `flood: %d clients x %d req/s (FIND_NODE and GET), one flooder at %d x the %d req/s limit (%d req/s), %v per measurement, %d rounds (medians)
clients served without a flood: %8.1f req/s
clients served with the flood:  %8.1f req/s  (%.3f of normal; the flooder sent %.0f req/s, %.0f answered)
control, the limit off:         %8.1f req/s  (%.3f of normal; the flooder sent %.0f req/s, %.0f answered)
`, c.Clients, c.ClientRate, c.Factor, c.RateLimit, c.RateLimit*c.Factor, c.Duration, c.Rounds,
		r.BaselineRate, r.FloodedRate, r.Ratio, r.FloodSentRate, r.FlooderAnswered,
		r.UnlimitedRate, r.UnlimitedRatio, r.FloodSentRateUnlimited, r.FlooderAnsweredUnlimited)
	return err
}

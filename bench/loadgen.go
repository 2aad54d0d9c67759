package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/transport/udp"
	"github.com/dhtkit/dht/wire"
)

// The load generator speaks the wire protocol directly: a closed loop of
// FIND_VALUE requests spread over a few UDP sockets, each a udp.Transport
// (recvmmsg/sendmmsg), whose reader goroutine checks an answer and writes the
// next request into the same batch it replies with. Nothing is allocated per
// request, so that on a 2-core machine the load generator leaves as much CPU
// as it can to the server it measures.

// reqLen is the size of a FIND_VALUE request: header and key.
const reqLen = wire.HeaderLen + id.Len

// Offsets of the fields the load generator patches into its request
// template, as docs/protocol.md lays out the header.
const (
	offTxID   = 8
	offTarget = wire.HeaderLen
)

// checkMode says what a correct answer is.
type checkMode int

const (
	// checkValues expects a node's VALUES message carrying exactly the
	// key's value.
	checkValues checkMode = iota
	// checkEcho expects the request itself, zero-padded to respLen bytes.
	checkEcho
)

// loadConfig describes one load generator run.
type loadConfig struct {
	server      netip.AddrPort
	serverID    id.ID // checkValues: the Sender answers must carry; zero accepts any
	network     uint32
	mode        checkMode
	keys        []id.ID
	values      [][]byte // checkValues: values[i] is the only value under keys[i]
	respLen     int      // checkEcho: the length of a reply
	clients     int
	concurrency int
	timeout     time.Duration // an unanswered request is given up on and sent again
	readOnly    bool          // set READ_ONLY in requests
	seed        uint64
	label       string // pprof label of the client goroutines
}

// Counts are the outcomes a load generator saw. In a timed run only what
// happened inside the measured window counts. The zero value is no
// outcomes; it is plain data.
type Counts struct {
	// Sent counts requests sent, resends after a timeout included.
	Sent uint64 `json:"sent"`
	// OK counts correct answers.
	OK uint64 `json:"ok"`
	// BadTxID counts answers whose transaction ID matched no request in
	// flight (nor one given up on): forged, corrupted or duplicated.
	BadTxID uint64 `json:"bad_txid"`
	// BadType counts answers that matched a request but did not decode, or
	// had the wrong type, network or sender.
	BadType uint64 `json:"bad_type"`
	// BadValue counts well-formed answers with the wrong content: not
	// exactly the key's value (or, from an echo server, not the request).
	BadValue uint64 `json:"bad_value"`
	// BadSource counts datagrams from an address other than the server's.
	BadSource uint64 `json:"bad_source"`
	// Late counts answers to requests already given up on.
	Late uint64 `json:"late"`
	// Lost counts requests given up on after the timeout (and sent again).
	Lost uint64 `json:"lost"`
}

// Bad returns the number of wrong answers of every kind.
func (c Counts) Bad() uint64 { return c.BadTxID + c.BadType + c.BadValue + c.BadSource }

func (c *Counts) add(o Counts) {
	c.Sent += o.Sent
	c.OK += o.OK
	c.BadTxID += o.BadTxID
	c.BadType += o.BadType
	c.BadValue += o.BadValue
	c.BadSource += o.BadSource
	c.Late += o.Late
	c.Lost += o.Lost
}

// Phases of a run: the load runs in all but phaseStop; outcomes count only
// in phaseMeasure.
const (
	phaseWarm int32 = iota
	phaseMeasure
	phaseStop
)

// loadGen is one run of the load generator against one server.
type loadGen struct {
	cfg     loadConfig
	clients []*client
	base    time.Time // latencies are measured on its monotonic clock

	phase atomic.Int32
	// Count mode: budget is the number of requests still to start and
	// remaining the number still to finish; done closes when it reaches 0.
	limited   bool
	budget    atomic.Int64
	remaining atomic.Int64
	done      chan struct{}

	stopTick chan struct{}
	tickDone chan struct{}
}

// client is one socket of the load generator and the requests in flight on
// it. Its reader goroutine (the transport's) and the timeout ticker share
// it under mu.
type client struct {
	lg   *loadGen
	tr   *udp.Transport
	tag  uint64 // high 32 bits of every txid of this client, never zero
	self id.ID

	mu     sync.Mutex
	slots  []slot
	rng    *rand.Rand
	msg    wire.Message
	req    [reqLen]byte // the request template; txid and key patched in
	hist   Histogram
	counts Counts
	resend transport.Batch
}

// slot is one request in flight. A slot's txid is tag | seq<<16 | index,
// so an answer finds its slot without a map.
type slot struct {
	txid   uint64
	key    int32
	seq    uint16
	busy   bool
	sent   time.Duration // on lg.base's clock
	gaveUp [2]uint64     // txids given up on, newest first: their answers are late, not forged
}

// maxSlotsPerClient is the number of slots 16 bits of txid can address.
const maxSlotsPerClient = 1 << 16

// newLoadGen opens the clients' sockets. Close them with stop (run and
// runCount do).
func newLoadGen(cfg loadConfig) (*loadGen, error) {
	switch {
	case cfg.clients < 1:
		return nil, fmt.Errorf("bench: %d clients: need at least 1", cfg.clients)
	case cfg.concurrency < cfg.clients:
		return nil, fmt.Errorf("bench: concurrency %d is below the %d clients: each client needs a request in flight", cfg.concurrency, cfg.clients)
	case (cfg.concurrency+cfg.clients-1)/cfg.clients > maxSlotsPerClient:
		return nil, fmt.Errorf("bench: concurrency %d over %d clients: at most %d per client", cfg.concurrency, cfg.clients, maxSlotsPerClient)
	case len(cfg.keys) == 0:
		return nil, errors.New("bench: no keys to ask for")
	case cfg.mode == checkValues && len(cfg.values) != len(cfg.keys):
		return nil, errors.New("bench: one value per key is needed")
	case cfg.timeout <= 0:
		return nil, errors.New("bench: the request timeout must be positive")
	}
	lg := &loadGen{cfg: cfg, base: time.Now(), done: make(chan struct{})}
	seeds := rand.New(rand.NewPCG(cfg.seed, 0x6c6f616467656e))
	per := cfg.concurrency / cfg.clients
	for i := range cfg.clients {
		n := per
		if i < cfg.concurrency%cfg.clients {
			n++
		}
		tr, err := udp.Listen(udp.Config{Addr: "127.0.0.1:0", Batch: min(udp.MaxBatch, max(udp.DefaultBatch, n))})
		if err != nil {
			lg.closeClients()
			return nil, fmt.Errorf("bench: opening load generator socket %d: %w", i+1, err)
		}
		c := &client{
			lg:    lg,
			tr:    tr,
			tag:   uint64(seeds.Uint32()|1) << 32,
			self:  id.Random(seeds),
			slots: make([]slot, n),
			rng:   rand.New(rand.NewPCG(seeds.Uint64(), seeds.Uint64())),
		}
		m := wire.Message{Type: wire.FindValue, Network: cfg.network, Sender: c.self}
		if cfg.readOnly {
			m.Flags = wire.FlagReadOnly
		}
		b, err := m.Append(c.req[:0])
		if err != nil || len(b) != reqLen {
			tr.Close()
			lg.closeClients()
			return nil, fmt.Errorf("bench: encoding the request template: %v (%d bytes)", err, len(b))
		}
		lg.clients = append(lg.clients, c)
	}
	return lg, nil
}

func (lg *loadGen) closeClients() {
	for _, c := range lg.clients {
		c.tr.Close()
	}
}

// now is the time since the run's base on the monotonic clock.
func (lg *loadGen) now() time.Duration { return time.Since(lg.base) }

// start starts the clients' readers and the timeout ticker, and sends each
// slot's first request.
func (lg *loadGen) start() error {
	var err error
	pprof.Do(context.Background(), pprof.Labels("role", lg.cfg.label), func(context.Context) {
		for _, c := range lg.clients {
			if err = c.tr.Start(c); err != nil {
				return
			}
		}
		lg.stopTick = make(chan struct{})
		lg.tickDone = make(chan struct{})
		go lg.tick()
	})
	if err != nil {
		return err
	}
	for _, c := range lg.clients {
		c.mu.Lock()
		now := lg.now()
		for i := range c.slots {
			c.issue(i, now, &c.resend, true)
		}
		err := c.flush()
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// flush sends what the ticker or start queued. Callers hold c.mu.
func (c *client) flush() error {
	if c.resend.Len() == 0 {
		return nil
	}
	err := c.tr.Send(c.resend.Packets())
	c.resend.Reset()
	return err
}

// stop ends the run: no new requests, then the ticker and the sockets are
// closed, which waits for the readers.
func (lg *loadGen) stop() {
	lg.phase.Store(phaseStop)
	if lg.stopTick != nil {
		close(lg.stopTick)
		<-lg.tickDone
	}
	lg.closeClients()
}

// tick gives up on requests unanswered for longer than the timeout and
// sends each slot a new one, so that a lost datagram costs one timeout, not
// a slot for the rest of the run.
func (lg *loadGen) tick() {
	defer close(lg.tickDone)
	every := max(lg.cfg.timeout/4, time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-lg.stopTick:
			return
		case <-t.C:
		}
		measuring := lg.phase.Load() == phaseMeasure
		for _, c := range lg.clients {
			c.mu.Lock()
			now := lg.now()
			for i := range c.slots {
				s := &c.slots[i]
				if !s.busy || now-s.sent < lg.cfg.timeout {
					continue
				}
				s.gaveUp[1], s.gaveUp[0] = s.gaveUp[0], s.txid
				s.busy = false
				if measuring {
					c.counts.Lost++
				}
				c.issue(i, now, &c.resend, false)
			}
			_ = c.flush() // fails only once the run is stopping
			c.mu.Unlock()
		}
	}
}

// issue sends slot i a new request, unless the run is stopping or, for a
// fresh request in count mode, the budget is spent. Callers hold c.mu.
func (c *client) issue(i int, now time.Duration, w transport.Writer, fresh bool) {
	lg := c.lg
	ph := lg.phase.Load()
	if ph == phaseStop {
		return
	}
	if fresh && lg.limited && lg.budget.Add(-1) < 0 {
		return
	}
	s := &c.slots[i]
	s.seq++
	s.txid = c.tag | uint64(s.seq)<<16 | uint64(i)
	s.key = int32(c.rng.IntN(len(lg.cfg.keys)))
	s.sent = now
	s.busy = true
	binary.BigEndian.PutUint64(c.req[offTxID:], s.txid)
	copy(c.req[offTarget:], lg.cfg.keys[s.key][:])
	w.WriteTo(c.req[:], lg.cfg.server)
	if ph == phaseMeasure {
		c.counts.Sent++
	}
}

// outcome of checking one answer.
type outcome int

const (
	outOK outcome = iota
	outBadType
	outBadValue
)

// HandlePacket checks one answer and sends the slot's next request.
func (c *client) HandlePacket(data []byte, from netip.AddrPort, w transport.Writer) {
	lg := c.lg
	now := lg.now()
	measuring := lg.phase.Load() == phaseMeasure
	c.mu.Lock()
	defer c.mu.Unlock()
	if from != lg.cfg.server {
		if measuring {
			c.counts.BadSource++
		}
		return
	}
	if len(data) < wire.HeaderLen {
		if measuring {
			c.counts.BadTxID++ // no txid to match it with
		}
		return
	}
	txid := binary.BigEndian.Uint64(data[offTxID:])
	i := int(txid & 0xffff)
	if txid&^0xffffffff != c.tag || i >= len(c.slots) || !c.slots[i].busy || c.slots[i].txid != txid {
		late := false
		if i < len(c.slots) && txid != 0 {
			s := &c.slots[i]
			for j, g := range s.gaveUp {
				if g == txid {
					s.gaveUp[j] = 0 // a second copy is a duplicate, not late
					late = true
				}
			}
		}
		if measuring {
			if late {
				c.counts.Late++
			} else {
				c.counts.BadTxID++
			}
		}
		return
	}
	s := &c.slots[i]
	out := c.check(data, s)
	s.busy = false
	if measuring {
		switch out {
		case outOK:
			c.counts.OK++
			c.hist.Record(now - s.sent)
		case outBadType:
			c.counts.BadType++
		case outBadValue:
			c.counts.BadValue++
		}
	}
	if lg.limited && lg.remaining.Add(-1) == 0 {
		close(lg.done)
	}
	c.issue(i, now, w, true)
}

// check judges an answer whose txid matched slot s. Callers hold c.mu.
func (c *client) check(data []byte, s *slot) outcome {
	cfg := &c.lg.cfg
	key := cfg.keys[s.key]
	if cfg.mode == checkEcho {
		if len(data) != cfg.respLen {
			return outBadValue
		}
		// The answer must be this very request (cut to respLen if that is
		// shorter): rebuild it in the template and compare.
		binary.BigEndian.PutUint64(c.req[offTxID:], s.txid)
		copy(c.req[offTarget:], key[:])
		n := min(len(data), reqLen)
		if !bytes.Equal(data[:n], c.req[:n]) {
			return outBadValue
		}
		return outOK
	}
	m := &c.msg
	if err := wire.Decode(data, m); err != nil {
		return outBadType
	}
	if m.Type != wire.Values || m.Network != cfg.network || (!cfg.serverID.IsZero() && m.Sender != cfg.serverID) {
		return outBadType
	}
	if len(m.Values) != 1 || m.More || !bytes.Equal(m.Values[0].Data, cfg.values[s.key]) {
		return outBadValue
	}
	return outOK
}

// loadResult is what a run measured.
type loadResult struct {
	Counts
	hist    Histogram
	elapsed time.Duration // the measured window
}

func (lg *loadGen) collect(elapsed time.Duration) loadResult {
	r := loadResult{elapsed: elapsed}
	for _, c := range lg.clients {
		c.mu.Lock()
		r.Counts.add(c.counts)
		r.hist.Merge(&c.hist)
		c.mu.Unlock()
	}
	return r
}

// run loads the server for warmup, then measures for duration (less if ctx
// ends first), and stops.
func (lg *loadGen) run(ctx context.Context, warmup, duration time.Duration) (loadResult, error) {
	if err := lg.start(); err != nil {
		lg.stop()
		return loadResult{}, err
	}
	if warmup > 0 && !sleepCtx(ctx, warmup) {
		lg.stop()
		return loadResult{}, ctx.Err()
	}
	lg.phase.Store(phaseMeasure)
	t0 := time.Now()
	sleepCtx(ctx, duration)
	lg.phase.Store(phaseStop)
	elapsed := time.Since(t0)
	lg.stop()
	return lg.collect(elapsed), nil
}

// runCount sends n requests in all, with the configured concurrency, and
// returns once each has been answered (or ctx ends). Everything counts:
// there is no warm-up.
func (lg *loadGen) runCount(ctx context.Context, n int) (loadResult, error) {
	if n < 1 {
		return loadResult{}, errors.New("bench: need at least one request")
	}
	lg.limited = true
	lg.budget.Store(int64(n))
	lg.remaining.Store(int64(n))
	lg.phase.Store(phaseMeasure)
	t0 := time.Now()
	if err := lg.start(); err != nil {
		lg.stop()
		return loadResult{}, err
	}
	var err error
	select {
	case <-lg.done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	elapsed := time.Since(t0)
	lg.stop()
	return lg.collect(elapsed), err
}

// sleepCtx waits for d or until ctx ends, and reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

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
	"github.com/dhtkit/dht/store"
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
//
// That is the best case for a node: a few senders, each heard from many
// times a second. With senders set, each client has its share of that many
// sockets, each bound to its own loopback address (127.x.y.z) and carrying
// its own sender ID, so that the server sees as many distinct contacts as a
// busy node on a real network. A client's senders take turns: one sends as
// many requests in a row as the client has in flight, then the next one
// takes over, and so on round the ring. So nearly all of a client's answers
// arrive at one socket at a time, and the load generator still reads and
// writes in batches: sending each request from another socket would cost it
// a system call or two per datagram, the CPU the servers need on a small
// machine. Each sender is heard from a few times a second, a burst at a
// time.

// reqLen is the size of a FIND_VALUE request: header and key.
const reqLen = wire.HeaderLen + id.Len

// maxReqLen is the size of the largest request the load generator sends, a
// GET (header, key and the cursor: a flag, a version and a publisher),
// padded as nodes pad theirs to wire.MinFindValueLen, so that the answer
// may carry a record's bytes within the amplification limit (a RECORDS
// answer is larger than a VALUES one: a signed record even more so).
const maxReqLen = wire.MinFindValueLen

// requestLen is the size of a request of type t (FIND_VALUE or GET).
func requestLen(t wire.Type) int {
	if t == wire.Get {
		return maxReqLen
	}
	return reqLen
}

// Offsets of the fields the load generator patches into its request
// template, as docs/protocol.md lays out the header.
const (
	offTxID   = 8
	offSender = 16
	offTarget = wire.HeaderLen
)

// MaxSenders bounds loadConfig.senders (and ServeConfig.Senders): each is a
// socket, a reader goroutine and about 30 KiB of buffers and stack.
const MaxSenders = 16_384

// manyBatch is the receive batch of each sender of many.
const manyBatch = 8

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
	server   netip.AddrPort
	serverID id.ID // checkValues: the Sender answers must carry; zero accepts any
	network  uint32
	mode     checkMode
	keys     []id.ID
	values   [][]byte // checkValues: values[i] is the only value under keys[i]
	// request is the request sent: FIND_VALUE (the zero value too), or GET,
	// whose answer is a RECORDS message holding records[i] under keys[i]
	// (checkValues: its data, envelope flag, publisher and version).
	request     wire.Type
	records     []store.Value
	respLen     int // checkEcho: the length of a reply
	clients     int
	concurrency int
	timeout     time.Duration // an unanswered request is given up on and sent again
	readOnly    bool          // set READ_ONLY in requests
	seed        uint64
	label       string // pprof label of the client goroutines

	// senders is the number of sockets, each with its own sender ID and
	// loopback address, that the clients' requests take turns over; at
	// least clients. 0 is the best case: one socket per client, all on 127.0.0.1.
	senders int
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
	// Requests counts requests the server sent the load generator's
	// sockets, such as a node's liveness pings of contacts it took from
	// them. They are not answered, and are neither correct nor bad.
	Requests uint64 `json:"requests"`
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
	c.Requests += o.Requests
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

// client is a share of the requests in flight and the sockets (senders)
// they go out from: one in the best case. Its senders' reader goroutines
// (their transports') and the timeout ticker share it under mu.
type client struct {
	lg      *loadGen
	tag     uint64    // high 32 bits of every txid of this client, never zero
	senders []*sender // at least one

	mu     sync.Mutex
	cur    *sender // the sender requests leave from now
	left   int     // how many more cur sends before the next one takes over
	slots  []slot
	rng    *rand.Rand
	msg    wire.Message
	req    [maxReqLen]byte // the request template; txid, sender and key patched in
	reqN   int             // its length
	hist   Histogram
	counts Counts
	resend transport.Batch // a single sender's requests from start and the ticker
}

// sender is one socket of the load generator, with its own sender ID, and
// its own address when there are many. Its transport's reader hands it the
// answers to the requests it sent.
type sender struct {
	c    *client
	idx  int32 // in c.senders
	tr   *udp.Transport
	self id.ID

	// fwd holds the next requests, for the answers of one read, that leave
	// from the sender whose turn it is when that is another. Only this
	// sender's reader uses it.
	fwd transport.Batch

	// mu guards pkt and buf: requests sent one at a time from this socket
	// (the ticker's resends) by goroutines other than its reader.
	mu  sync.Mutex
	pkt [1]transport.Packet
	buf [maxReqLen]byte
}

// HandlePacket implements transport.Handler: an answer to this sender.
func (s *sender) HandlePacket(data []byte, from netip.AddrPort, w transport.Writer) {
	s.c.handle(s, data, from, w)
}

// turnSender is the handler of a sender of many: it takes a whole read at
// once, so that the requests it sends on leave in one write, from the
// sender whose turn it is.
type turnSender struct{ *sender }

// HandleBatch implements transport.BatchHandler.
func (t turnSender) HandleBatch(pkts []transport.Packet, w transport.Writer) {
	at, c := t.sender, t.c
	now := c.lg.now()
	c.mu.Lock()
	next := c.turn()
	out := w // the reader's own batch, written after this call
	if next != at {
		out = &at.fwd
	}
	for i := range pkts {
		if c.accept(at, pkts[i].Data, pkts[i].Addr, now, next) {
			out.WriteTo(c.req[:c.reqN], c.lg.cfg.server)
		}
	}
	c.mu.Unlock()
	if at.fwd.Len() > 0 {
		_ = next.tr.Send(at.fwd.Packets()) // fails only once the run is stopping
		at.fwd.Reset()
	}
}

// turn returns the sender whose turn it is, moving the turn on to the next
// one in the ring once the current one has sent as many requests as the
// client has in flight. Callers hold c.mu.
func (c *client) turn() *sender {
	if c.left <= 0 {
		i := int(c.cur.idx) + 1
		if i == len(c.senders) {
			i = 0
		}
		c.cur, c.left = c.senders[i], len(c.slots)
	}
	return c.cur
}

// send sends req from this sender's socket. It allocates nothing.
func (s *sender) send(req []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := copy(s.buf[:], req)
	s.pkt[0] = transport.Packet{Addr: s.c.lg.cfg.server, Data: s.buf[:n]}
	return s.tr.Send(s.pkt[:])
}

// senderAddr is the loopback address of sender j of many: 127.b.c.d with
// b = 1 + j%254, so that the first 254 are in distinct /16s and every one
// up to MaxSenders in its own /24, none of them 127.0.0.1. Linux routes all
// of 127.0.0.0/8 to the loopback interface.
func senderAddr(j int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, byte(1 + j%254), byte(j / 254 % 256), byte(1 + j/(254*256)%254)})
}

// slot is one request in flight. A slot's txid is tag | seq<<16 | index,
// so an answer finds its slot without a map.
type slot struct {
	txid   uint64
	key    int32
	snd    int32 // the sender, in the client's senders, it went out from
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
	case cfg.senders != 0 && (cfg.senders < cfg.clients || cfg.senders > MaxSenders):
		return nil, fmt.Errorf("bench: %d senders: want 0 (one per client) or from the %d clients to %d", cfg.senders, cfg.clients, MaxSenders)
	case len(cfg.keys) == 0:
		return nil, errors.New("bench: no keys to ask for")
	case cfg.mode == checkValues && len(cfg.values) != len(cfg.keys):
		return nil, errors.New("bench: one value per key is needed")
	case cfg.request == wire.Get && cfg.mode == checkValues && len(cfg.records) != len(cfg.keys):
		return nil, errors.New("bench: one record per key is needed")
	case cfg.request != 0 && cfg.request != wire.FindValue && cfg.request != wire.Get:
		return nil, fmt.Errorf("bench: request %v: want FIND_VALUE or GET", cfg.request)
	case cfg.timeout <= 0:
		return nil, errors.New("bench: the request timeout must be positive")
	}
	lg := &loadGen{cfg: cfg, base: time.Now(), done: make(chan struct{})}
	seeds := rand.New(rand.NewPCG(cfg.seed, 0x6c6f616467656e))
	// The senders past each client's first take their IDs from a stream of
	// their own, so that the best case draws exactly what it always did.
	more := rand.New(rand.NewPCG(cfg.seed, 0x73656e64657273))
	many := cfg.senders != 0
	senders := cfg.clients
	if many {
		senders = cfg.senders
	}
	per := cfg.concurrency / cfg.clients
	for i := range cfg.clients {
		n := per
		if i < cfg.concurrency%cfg.clients {
			n++
		}
		c := &client{
			lg:    lg,
			tag:   uint64(seeds.Uint32()|1) << 32,
			slots: make([]slot, n),
			left:  n,
		}
		self := id.Random(seeds)
		c.rng = rand.New(rand.NewPCG(seeds.Uint64(), seeds.Uint64()))
		lg.clients = append(lg.clients, c)
		m := wire.Message{Type: wire.FindValue, Network: cfg.network, Sender: self}
		if cfg.request == wire.Get {
			m.Type = wire.Get
		}
		if cfg.readOnly {
			m.Flags = wire.FlagReadOnly
		}
		b, err := m.Append(c.req[:0])
		if m.Type == wire.Get {
			b = wire.Pad(b, 0, maxReqLen)
		}
		c.reqN = len(b)
		if err != nil || len(b) != requestLen(m.Type) {
			lg.closeClients()
			return nil, fmt.Errorf("bench: encoding the request template: %v (%d bytes)", err, len(b))
		}
		// Client i has senders i, i+clients, i+2*clients, ...
		ns := senders / cfg.clients
		if i < senders%cfg.clients {
			ns++
		}
		addr, batch := "127.0.0.1:0", min(udp.MaxBatch, max(udp.DefaultBatch, n))
		if many {
			// All of the client's answers may arrive at once, but a
			// read returns about 7 on average: thousands of sockets
			// holding more 2 KiB buffers each would cost memory for
			// little gain.
			batch = min(manyBatch, n)
		}
		for k := range ns {
			j := i + k*cfg.clients
			if many {
				addr = netip.AddrPortFrom(senderAddr(j), 0).String()
			}
			tr, err := udp.Listen(udp.Config{Addr: addr, Batch: batch})
			if err != nil {
				lg.closeClients()
				if many {
					err = fmt.Errorf("%w (each sender binds its own loopback address, which needs all of 127.0.0.0/8 on the loopback interface, as Linux has)", err)
				}
				return nil, fmt.Errorf("bench: opening load generator socket %d of %d: %w", j+1, senders, err)
			}
			s := &sender{c: c, idx: int32(k), tr: tr, self: self}
			if k > 0 {
				s.self = id.Random(more)
			}
			c.senders = append(c.senders, s)
		}
		c.cur = c.senders[0]
	}
	return lg, nil
}

func (lg *loadGen) closeClients() {
	for _, c := range lg.clients {
		for _, s := range c.senders {
			s.tr.Close()
		}
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
			for _, s := range c.senders {
				var h transport.Handler = s
				if len(c.senders) > 1 {
					h = turnSender{s}
				}
				if err = s.tr.Start(h); err != nil {
					return
				}
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
		// The first sender's turn: it sends them all.
		for i := range c.slots {
			if c.issue(i, now, true, c.turn()) {
				c.resend.WriteTo(c.req[:c.reqN], lg.cfg.server)
			}
		}
		err := c.flush()
		c.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// queue sends the request issue prepared from s, or, with a single sender,
// queues it for flush to send with the others in one batch. Callers hold
// c.mu.
func (c *client) queue(s *sender) {
	if len(c.senders) == 1 {
		c.resend.WriteTo(c.req[:c.reqN], c.lg.cfg.server)
		return
	}
	_ = s.send(c.req[:c.reqN]) // fails only once the run is stopping
}

// flush sends what the ticker or start queued. Callers hold c.mu.
func (c *client) flush() error {
	if c.resend.Len() == 0 {
		return nil
	}
	err := c.senders[0].tr.Send(c.resend.Packets())
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
				if snd := c.turn(); c.issue(i, now, false, snd) {
					c.queue(snd)
				}
			}
			_ = c.flush() // fails only once the run is stopping
			c.mu.Unlock()
		}
	}
}

// issue prepares slot i's new request from sender snd in c.req, unless
// the run is stopping or, for a fresh request in count mode, the budget is
// spent; it reports whether it did. The request counts as sent: the caller
// sends it from snd. Callers hold c.mu.
func (c *client) issue(i int, now time.Duration, fresh bool, snd *sender) bool {
	lg := c.lg
	ph := lg.phase.Load()
	if ph == phaseStop {
		return false
	}
	if fresh && lg.limited && lg.budget.Add(-1) < 0 {
		return false
	}
	c.left--
	s := &c.slots[i]
	s.seq++
	s.txid = c.tag | uint64(s.seq)<<16 | uint64(i)
	s.key = int32(c.rng.IntN(len(lg.cfg.keys)))
	s.snd = snd.idx
	s.sent = now
	s.busy = true
	c.patch(s)
	if ph == phaseMeasure {
		c.counts.Sent++
	}
	return true
}

// patch writes slot s's request into c.req. Callers hold c.mu.
func (c *client) patch(s *slot) {
	binary.BigEndian.PutUint64(c.req[offTxID:], s.txid)
	copy(c.req[offSender:], c.senders[s.snd].self[:])
	copy(c.req[offTarget:], c.lg.cfg.keys[s.key][:])
}

// outcome of checking one answer.
type outcome int

const (
	outOK outcome = iota
	outBadType
	outBadValue
)

// handle checks one answer that sender at received and sends the slot's
// next request from the sender whose turn it is: into w, the batch at's
// reader replies with, when that is at (always so with one sender per
// client), else from that sender's socket once c.mu is released.
func (c *client) handle(at *sender, data []byte, from netip.AddrPort, w transport.Writer) {
	now := c.lg.now()
	var req [maxReqLen]byte
	c.mu.Lock()
	next := c.turn()
	sent := c.accept(at, data, from, now, next)
	if sent && next == at {
		w.WriteTo(c.req[:c.reqN], c.lg.cfg.server)
		sent = false
	} else if sent {
		req = c.req
	}
	c.mu.Unlock()
	if sent {
		_ = next.send(req[:c.reqN]) // fails only once the run is stopping
	}
}

// accept counts one datagram that sender at received and, if it answered a
// request in flight, issues the slot's next request from sender next and
// reports whether it did. Callers hold c.mu.
func (c *client) accept(at *sender, data []byte, from netip.AddrPort, now time.Duration, next *sender) bool {
	lg := c.lg
	measuring := lg.phase.Load() == phaseMeasure
	if from != lg.cfg.server {
		if measuring {
			c.counts.BadSource++
		}
		return false
	}
	if len(data) < wire.HeaderLen {
		if measuring {
			c.counts.BadTxID++ // no txid to match it with
		}
		return false
	}
	txid := binary.BigEndian.Uint64(data[offTxID:])
	i := int(txid & 0xffff)
	if txid&^0xffffffff != c.tag || i >= len(c.slots) || !c.slots[i].busy || c.slots[i].txid != txid || c.slots[i].snd != at.idx {
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
		// An echo is a request by its type byte; a node's own request
		// (a liveness ping of a sender it added) matches nothing.
		request := lg.cfg.mode == checkValues && wire.Type(data[2]).IsRequest()
		if measuring {
			switch {
			case late:
				c.counts.Late++
			case request:
				c.counts.Requests++
			default:
				c.counts.BadTxID++
			}
		}
		return false
	}
	s := &c.slots[i]
	out := c.judge(data, s)
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
	return c.issue(i, now, true, next)
}

// judge judges an answer whose txid matched slot s. Callers hold c.mu.
func (c *client) judge(data []byte, s *slot) outcome {
	cfg := &c.lg.cfg
	if cfg.mode == checkEcho {
		if len(data) != cfg.respLen {
			return outBadValue
		}
		// The answer must be this very request (cut to respLen if that is
		// shorter): rebuild it in the template and compare.
		c.patch(s)
		n := min(len(data), c.reqN)
		if !bytes.Equal(data[:n], c.req[:n]) {
			return outBadValue
		}
		return outOK
	}
	m := &c.msg
	if err := wire.Decode(data, m); err != nil {
		return outBadType
	}
	if cfg.request == wire.Get {
		if m.Type != wire.Records || m.Network != cfg.network || (!cfg.serverID.IsZero() && m.Sender != cfg.serverID) {
			return outBadType
		}
		want := &cfg.records[s.key]
		if len(m.Records) != 1 || m.More {
			return outBadValue
		}
		if r := &m.Records[0]; r.Envelope != want.Envelope || r.Deleted || r.Publisher != want.Publisher || r.Version != want.Version || !bytes.Equal(r.Data, want.Data) {
			return outBadValue
		}
		return outOK
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

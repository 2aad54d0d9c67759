package sealed

import (
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/transport"
)

// MaxPlain is the largest plain datagram Transport seals: one more is
// dropped (Counts.TooLarge), since its sealed form would pass
// transport.MaxDatagram. Nodes send at most 1400 bytes, far below it.
const MaxPlain = transport.MaxDatagram - Overhead

// Config configures a Transport. Secret is required; zero fields of the rest
// take their defaults.
type Config struct {
	// Secret is the pre-shared secret, at least MinSecret bytes. The
	// Transport keeps only the key derived from it.
	Secret []byte
	// Network is the network ID the key is bound to and the prefix names.
	Network uint32
	// Clock gives the counters a sender puts in its nonces and the time a
	// receiver checks them against; default the wall clock.
	Clock clock.Clock
	// Freshness is how far a counter may be from the receiver's clock, in
	// either direction; default DefaultFreshness (30s). It must cover the
	// clock skew between members plus the network's delay.
	Freshness time.Duration
	// MaxSources bounds the replay table (sender instances); default
	// DefaultMaxSources.
	MaxSources int
	// Rand supplies the instance ID and the seeds of the nonces' random
	// bytes; default crypto/rand. Tests pass a fixed one.
	Rand io.Reader
}

// Counts are a Transport's counters: datagrams dropped by reason, plus the
// replay table's evictions. Each is read atomically; the set is not one
// snapshot.
type Counts struct {
	Malformed, Plain, WrongNetwork, BadTag, Stale, Replay uint64
	// TooLarge counts outgoing datagrams over MaxPlain, dropped.
	TooLarge uint64
	// Evicted counts sender instances the replay table forgot to make
	// room; EvictedFresh those heard from within the freshness window.
	Evicted, EvictedFresh uint64
}

// Transport seals what it sends and opens what it receives over another
// Transport. It is safe for concurrent use. Make it with New; the zero value
// is not usable.
type Transport struct {
	inner transport.Transport
	key   *Key
	clk   clock.Clock
	fresh time.Duration
	// Two instances, so that each stream of counters leaves in the order
	// it was drawn (the receiver's window tolerates little reordering):
	// sent is Send's, which draws counters and sends under sendMu;
	// replies is the handler Writer's, whose datagrams each inner reader
	// flushes in order after its handler call.
	sent, replies uint64
	last          atomic.Uint64 // the last counter sealed, of either
	sendMu        sync.Mutex

	mu     sync.Mutex // guards replay
	replay *Replay

	drops    [numReasons]atomic.Uint64
	tooLarge atomic.Uint64

	seedMu sync.Mutex
	seed   *rand.ChaCha8 // seeds each pooled state's nonce stream
	states sync.Pool
}

// New wraps inner. The Transport owns inner from now on: Close closes it.
func New(inner transport.Transport, cfg Config) (*Transport, error) {
	key, err := NewKey(cfg.Secret, cfg.Network)
	if err != nil {
		return nil, err
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real{}
	}
	if cfg.Freshness < 0 || cfg.MaxSources < 0 {
		return nil, fmt.Errorf("sealed: Freshness %v and MaxSources %d must not be negative", cfg.Freshness, cfg.MaxSources)
	}
	if cfg.Freshness == 0 {
		cfg.Freshness = DefaultFreshness
	}
	if cfg.MaxSources == 0 {
		cfg.MaxSources = DefaultMaxSources
	}
	if cfg.Rand == nil {
		cfg.Rand = crand.Reader
	}
	var b [48]byte
	if _, err := io.ReadFull(cfg.Rand, b[:]); err != nil {
		return nil, fmt.Errorf("sealed: reading randomness: %w", err)
	}
	t := &Transport{
		inner: inner, key: key, clk: cfg.Clock, fresh: cfg.Freshness,
		sent: binary.BigEndian.Uint64(b[:8]), replies: binary.BigEndian.Uint64(b[8:16]),
		replay: NewReplay(cfg.MaxSources),
		seed:   rand.NewChaCha8([32]byte(b[16:])),
	}
	t.states.New = func() any { return t.newState() }
	return t, nil
}

// state is the scratch space of one Send or handler call: calls run
// concurrently (several sockets), and a pooled state costs nothing per call
// once the pool is warm.
type state struct {
	t     *Transport
	rng   *rand.ChaCha8 // the nonces' last 8 bytes
	nonce [NonceSize]byte
	now   int64
	buf   []byte // opened or sealed datagrams of the call
	pkts  []transport.Packet
	meta  []meta
	w     sealWriter
}

// meta is what opening one datagram of a batch told.
type meta struct {
	counter, instance uint64
}

func (t *Transport) newState() *state {
	var seed [32]byte
	t.seedMu.Lock()
	binary.LittleEndian.PutUint64(seed[0:], t.seed.Uint64())
	binary.LittleEndian.PutUint64(seed[8:], t.seed.Uint64())
	binary.LittleEndian.PutUint64(seed[16:], t.seed.Uint64())
	binary.LittleEndian.PutUint64(seed[24:], t.seed.Uint64())
	t.seedMu.Unlock()
	st := &state{t: t, rng: rand.NewChaCha8(seed)}
	st.w = sealWriter{st: st, scratch: make([]byte, 0, transport.MaxDatagram)}
	return st
}

func (t *Transport) get() *state {
	st := t.states.Get().(*state)
	st.now = t.clk.Now().UnixNano()
	return st
}

func (t *Transport) put(st *state) {
	clear(st.pkts)
	st.pkts, st.meta, st.buf = st.pkts[:0], st.meta[:0], st.buf[:0]
	st.w.w = nil
	t.states.Put(st)
}

// counter returns the next nonce counter: the clock in nanoseconds, or one
// more than the last if the clock has not passed it, so that no two
// datagrams of this instance share one.
func (t *Transport) counter(now int64) uint64 {
	for {
		l := t.last.Load()
		c := max(l+1, uint64(now))
		if t.last.CompareAndSwap(l, c) {
			return c
		}
	}
}

// seal appends the sealed form of plain to dst, as instance.
func (st *state) seal(dst, plain []byte, instance uint64) []byte {
	t := st.t
	binary.BigEndian.PutUint64(st.nonce[0:], t.counter(st.now))
	binary.BigEndian.PutUint64(st.nonce[8:], instance)
	binary.BigEndian.PutUint64(st.nonce[16:], st.rng.Uint64())
	return t.key.Seal(dst, &st.nonce, plain)
}

// sealWriter is the Writer a wrapped handler gets: it seals each datagram
// into its scratch buffer and passes it on to the inner Writer, which
// copies it.
type sealWriter struct {
	st      *state
	w       transport.Writer
	scratch []byte
}

// WriteTo seals b and writes it to the inner Writer.
func (sw *sealWriter) WriteTo(b []byte, to netip.AddrPort) {
	if len(b) > MaxPlain {
		sw.st.t.tooLarge.Add(1)
		return
	}
	sw.scratch = sw.st.seal(sw.scratch[:0], b, sw.st.t.replies)
	sw.w.WriteTo(sw.scratch, to)
}

// Send seals the datagrams and sends them with one Send of the inner
// transport. Sends are serialized from the counters they draw to the
// inner Send, so that a sender's datagrams leave in counter order: were
// one to wait between the two while others went ahead, a receiver that
// had since taken Window later ones would refuse it as a replay.
func (t *Transport) Send(pkts []transport.Packet) error {
	st := t.get()
	defer t.put(st)
	t.sendMu.Lock()
	defer t.sendMu.Unlock()
	st.now = t.clk.Now().UnixNano()
	for _, p := range pkts {
		if len(p.Data) > MaxPlain {
			t.tooLarge.Add(1)
			continue
		}
		if cap(st.buf)-len(st.buf) < len(p.Data)+Overhead {
			// Earlier datagrams keep the old buffer alive; it is reused
			// whole next time.
			st.buf = make([]byte, 0, max(2*cap(st.buf), len(pkts)*(len(p.Data)+Overhead), 2*transport.MaxDatagram))
		}
		start := len(st.buf)
		st.buf = st.seal(st.buf, p.Data, t.sent)
		st.pkts = append(st.pkts, transport.Packet{Addr: p.Addr, Data: st.buf[start:len(st.buf):len(st.buf)]})
	}
	if len(st.pkts) == 0 {
		return nil
	}
	return t.inner.Send(st.pkts)
}

// open opens data into st.buf and returns the plain datagram's place in it,
// or the reason it refused. Freshness and replay are checked apart, under
// the lock.
func (st *state) open(data []byte) (start int, m meta, r Reason) {
	start = len(st.buf)
	if cap(st.buf)-start < len(data) {
		st.buf = make([]byte, 0, max(2*cap(st.buf), 2*transport.MaxDatagram))
		start = 0
	}
	st.buf, m.counter, m.instance, r = st.t.key.Open(st.buf, data)
	return start, m, r
}

// fresh checks counter against the receiver's clock now; the difference is
// taken modulo 2^64, so that clocks far from 1970 (a simulator's) work too.
func (t *Transport) isFresh(counter uint64, now int64) bool {
	d := int64(counter - uint64(now))
	return d <= int64(t.fresh) && d >= -int64(t.fresh)
}

// admit applies the freshness and replay checks to an opened datagram.
// The caller holds t.mu.
func (t *Transport) admit(m meta, now int64) Reason {
	if !t.isFresh(m.counter, now) {
		return Stale
	}
	if !t.replay.Check(m.instance, m.counter, now, t.fresh) {
		return Replayed
	}
	return Accepted
}

func (t *Transport) drop(r Reason) { t.drops[r].Add(1) }

// Start starts the inner transport with a handler that opens every
// datagram and passes those that pass every check to h. h keeps receiving
// whole batches if it is a BatchHandler.
func (t *Transport) Start(h transport.Handler) error {
	o := opener{t: t, h: h}
	if bh, ok := h.(transport.BatchHandler); ok {
		return t.inner.Start(&batchOpener{opener: o, bh: bh})
	}
	return t.inner.Start(&o)
}

// opener is the handler the inner transport calls.
type opener struct {
	t *Transport
	h transport.Handler
}

// batchOpener is opener for a BatchHandler.
type batchOpener struct {
	opener
	bh transport.BatchHandler
}

// HandlePacket opens one datagram and passes it on if it is admitted.
func (o *opener) HandlePacket(data []byte, from netip.AddrPort, w transport.Writer) {
	t := o.t
	st := t.get()
	defer t.put(st)
	start, m, r := st.open(data)
	if r == Accepted {
		t.mu.Lock()
		r = t.admit(m, st.now)
		t.mu.Unlock()
	}
	if r != Accepted {
		t.drop(r)
		return
	}
	st.w.w = w
	o.h.HandlePacket(st.buf[start:], from, &st.w)
}

// HandleBatch opens a batch, takes the lock once for the freshness and
// replay checks of all of it, and passes what is admitted on as one batch.
func (o *batchOpener) HandleBatch(pkts []transport.Packet, w transport.Writer) {
	t := o.t
	st := t.get()
	defer t.put(st)
	for _, p := range pkts {
		start, m, r := st.open(p.Data)
		if r != Accepted {
			t.drop(r)
			continue
		}
		st.pkts = append(st.pkts, transport.Packet{Addr: p.Addr, Data: st.buf[start:len(st.buf):len(st.buf)]})
		st.meta = append(st.meta, m)
	}
	n := 0
	t.mu.Lock()
	for i, p := range st.pkts {
		if r := t.admit(st.meta[i], st.now); r != Accepted {
			t.drop(r)
			continue
		}
		st.pkts[n] = p
		n++
	}
	t.mu.Unlock()
	if n == 0 {
		return
	}
	st.w.w = w
	o.bh.HandleBatch(st.pkts[:n], &st.w)
}

// LocalAddr returns the inner transport's address.
func (t *Transport) LocalAddr() netip.AddrPort { return t.inner.LocalAddr() }

// LocalAddrs returns every address of the inner transport (a
// transport.Group's endpoints), or its one address.
func (t *Transport) LocalAddrs() []netip.AddrPort {
	if m, ok := t.inner.(interface{ LocalAddrs() []netip.AddrPort }); ok {
		return m.LocalAddrs()
	}
	return []netip.AddrPort{t.inner.LocalAddr()}
}

// Unwrap returns the inner transport, so that its own counters stay
// reachable.
func (t *Transport) Unwrap() transport.Transport { return t.inner }

// Close closes the inner transport.
func (t *Transport) Close() error { return t.inner.Close() }

// Stats returns the counters.
func (t *Transport) Stats() Counts {
	t.mu.Lock()
	ev, evf := t.replay.Evicted, t.replay.EvictedFresh
	t.mu.Unlock()
	return Counts{
		Malformed: t.drops[Malformed].Load(), Plain: t.drops[Plain].Load(),
		WrongNetwork: t.drops[WrongNetwork].Load(), BadTag: t.drops[BadTag].Load(),
		Stale: t.drops[Stale].Load(), Replay: t.drops[Replayed].Load(),
		TooLarge: t.tooLarge.Load(), Evicted: ev, EvictedFresh: evf,
	}
}

// DropCounts returns the dropped datagrams by reason, keyed by the names of
// ReasonNames plus "too_large" for outgoing ones, every reason present.
func (t *Transport) DropCounts() map[string]uint64 {
	m := make(map[string]uint64, numReasons)
	for r := Malformed; r < numReasons; r++ {
		m[ReasonNames[r]] = t.drops[r].Load()
	}
	m["too_large"] = t.tooLarge.Load()
	return m
}

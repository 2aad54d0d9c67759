package core

import (
	"crypto/sha1"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/lookup"
	"github.com/dhtkit/dht/routing"
	"github.com/dhtkit/dht/rpc"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Errors reported to operation callbacks.
var (
	ErrClosed   = errors.New("node closed")
	ErrNotFound = errors.New("not found")
	ErrNoPeers  = errors.New("no peers to ask")
	ErrCanceled = errors.New("operation canceled")
	ErrTimeout  = errors.New("no answer")
)

// Node is one Kademlia node. All its methods are safe for concurrent use; its
// state is guarded by one mutex, held only for routing-table, request-table
// and lookup bookkeeping, never across I/O or callbacks.
type Node struct {
	cfg   Config
	self  id.ID
	v4    bool // the transport can reach IPv4 addresses
	v6    bool // and IPv6 ones
	clock clock.Clock
	tr    transport.Transport
	store store.Store
	log   *slog.Logger
	stats stats

	mu        sync.Mutex
	closed    bool
	rng       *rand.Rand
	table     *routing.Table
	rpc       *rpc.Tracker[pending]
	rttAll    rpc.RTT               // round trips of every answer, for contacts with no estimate (rtt.go)
	ops       map[*opState]struct{} // operations with a caller waiting, failed on Close
	deferred  []func()              // callbacks to run once the lock is released
	seeds     []netip.AddrPort      // bootstrapped through last; asked again when the table empties
	queue     []queued              // requests waiting for a free slot in rpc, from queueHead on
	queueHead int
	// rejoinStreak counts rejoin attempts since the table last held a
	// contact, and sets the backoff (rejoin.go).
	rejoinStreak int
	// skippedRefresh has bit i set when bucket i's last refresh was
	// skipped (refresh.go): the next one asks the network.
	skippedRefresh [(id.Bits + 63) / 64]uint64
	encBuf         []byte
	lastVersion    uint64                    // the last version a put without one got (see nextVersion)
	parts          reassembly                // values arriving in parts
	listeners      []listener                // other nodes' subscriptions to keys held here
	listenLoad     listenLoad                // listen traffic in the request table (listen.go)
	subs           map[id.ID][]*subscription // this node's own subscriptions
	late           *scratch                  // for answers sent after a store's sync
	keep           keepAlives                // values republished for this node's program (republish.go)
	cache          cacheCounts               // path caching (cache.go)
	rpcTimer       timerSlot
	mntTimer       timerSlot
	repl           replState  // replication and hand-over (replicate.go, handover.go)
	limits         rateLimits // per-source request rate limits (ratelimit.go)
	ident          identState // node identity (ident.go)
	tok            tokens     // write tokens made and held (token.go)
}

// timerSlot is one armed clock timer. The generation tells a callback that
// fired late, after the slot was re-armed, that it is stale.
type timerSlot struct {
	t   clock.Timer
	at  time.Time
	gen uint64
}

// scratch is what decoding and answering one datagram needs, reused so the
// serving path does not allocate.
type scratch struct {
	msg      wire.Message
	out      wire.Message
	buf      []byte
	contacts []id.Contact
	values   []store.Value
	wvalues  []wire.Value
	records  []store.Value
	wrecords []wire.Record
	text     [wire.MaxErrorText]byte
	limit    int  // the most bytes the answer to the current request may take
	prove    bool // the answer carries an identity proof (ident.go)
	// tokenFor is the request whose answer carries token (token.go);
	// proven is set when that request is a write with a valid token.
	tokenFor *wire.Message
	token    wire.Token
	proven   bool
}

// New makes a node and starts receiving on cfg.Transport. It validates cfg
// (see Config.Validate).
func New(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:   cfg,
		self:  cfg.ID,
		clock: cfg.Clock,
		tr:    cfg.Transport,
		store: cfg.Store,
		log:   cfg.Logger,
		rng:   cfg.Rand,
		table: routing.New(cfg.ID, routing.Config{K: cfg.K, ReplacementCache: cfg.ReplacementCache, MaxFailures: cfg.MaxFailures, Diversity: cfg.Diversity}),
		rpc:   rpc.NewTracker[pending](cfg.MaxInFlight),
		ops:   map[*opState]struct{}{},
		subs:  map[id.ID][]*subscription{},
	}
	n.limits = newRateLimits(&cfg)
	n.ident.key = cfg.Key
	n.initTokens()
	n.rememberSeeds(cfg.Seeds)
	for _, a := range n.Addrs() {
		ip := a.Addr()
		n.v4 = n.v4 || ip.Is4() || ip.Is4In6() || (ip.Is6() && ip.IsUnspecified()) // [::] is dual-stack
		n.v6 = n.v6 || (ip.Is6() && !ip.Is4In6())
	}
	if err := n.tr.Start(n); err != nil {
		return nil, err
	}
	if !cfg.ReadOnly {
		n.mu.Lock()
		n.armMaintenance(n.clock.Now())
		n.startReplication(n.clock.Now())
		n.mu.Unlock()
	}
	return n, nil
}

// ID is the node's ID.
func (n *Node) ID() id.ID { return n.self }

// Addr is the address the node receives on (the first, when it has several).
func (n *Node) Addr() netip.AddrPort { return n.tr.LocalAddr() }

// Addrs lists every address the node receives on.
func (n *Node) Addrs() []netip.AddrPort {
	if m, ok := n.tr.(interface{ LocalAddrs() []netip.AddrPort }); ok {
		return m.LocalAddrs()
	}
	return []netip.AddrPort{n.tr.LocalAddr()}
}

// reachable reports whether the node has a socket of a's address family: a
// contact it cannot send to is not worth a request.
func (n *Node) reachable(a netip.AddrPort) bool {
	if a.Addr().Is4() {
		return n.v4
	}
	return n.v6
}

// Config returns the node's configuration with defaults filled in.
func (n *Node) Config() Config { return n.cfg }

// Store is the node's record store.
func (n *Node) Store() store.Store { return n.store }

// Close stops the node: operations in progress report ErrClosed, timers are
// stopped, and the transport is closed; once Close returns, no new datagram
// is handled (a handler call already running finishes on its own, and finds
// the node closed). It may be called from an operation's callback. It is
// idempotent.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.keep.timer.stop()
	n.rpcTimer.stop()
	n.mntTimer.stop()
	n.stopReplication()
	for o := range n.ops {
		n.failOp(o, ErrClosed)
	}
	n.unlock()
	return n.tr.Close()
}

func (s *timerSlot) stop() {
	if s.t != nil {
		s.t.Stop()
		s.t = nil
	}
	s.gen++
}

// unlock releases the mutex and then runs the callbacks queued while it was
// held, so that callers' code never runs under the node's lock.
func (n *Node) unlock() {
	d := n.deferred
	n.deferred = nil
	n.mu.Unlock()
	for _, f := range d {
		f()
	}
}

// scratchPool is shared by every node of the process: a simulation of
// 100,000 nodes would otherwise keep a 16 KiB scratch per node.
var scratchPool = sync.Pool{New: func() any { return newScratch() }}

func newScratch() *scratch {
	return &scratch{
		buf:      make([]byte, 0, wire.MaxPacket),
		contacts: make([]id.Contact, 0, wire.MaxContacts+1),
		values:   make([]store.Value, 0, wire.MaxValues),
		wvalues:  make([]wire.Value, 0, wire.MaxValues),
		records:  make([]store.Value, 0, wire.MaxRecords),
		wrecords: make([]wire.Record, 0, wire.MaxRecords),
	}
}

var batchPool = sync.Pool{New: func() any { return new(transport.Batch) }}

// run executes f under the lock with a batch for the datagrams it sends, then
// sends them and runs queued callbacks. It is how API calls and timers enter
// the node; received datagrams enter through HandlePacket.
func (n *Node) run(f func(now time.Time, w transport.Writer)) {
	b := batchPool.Get().(*transport.Batch)
	n.mu.Lock()
	now := n.clock.Now()
	f(now, b)
	n.drainIfRoom(now, b)
	d := n.deferred
	n.deferred = nil
	n.mu.Unlock()
	if b.Len() > 0 {
		_ = n.tr.Send(b.Packets())
	}
	b.Reset()
	batchPool.Put(b)
	for _, f := range d {
		f()
	}
}

// drainIfRoom sends queued requests when slots have freed up. Every way into
// the node (run, HandlePacket, HandleBatch) calls it on its way out, so the
// many places that free slots (answers, timeouts, operations that end and
// forget their requests) need not drain themselves.
func (n *Node) drainIfRoom(now time.Time, w transport.Writer) {
	if n.queueHead < len(n.queue) && n.rpc.Len() < n.rpc.Cap() {
		n.drain(now, w)
	}
}

// later queues f to run after the lock is released. Callers hold the lock.
func (n *Node) later(f func()) { n.deferred = append(n.deferred, f) }

// usableAddr rejects addresses no node can be reached at: a contact with one
// is never stored or handed on. The rule is the lookup's.
func usableAddr(a netip.AddrPort) bool { return lookup.ValidAddr(a) }

// HandlePacket is the transport's entry point for a received datagram.
func (n *Node) HandlePacket(data []byte, from netip.AddrPort, w transport.Writer) {
	s := scratchPool.Get().(*scratch)
	n.mu.Lock()
	if !n.closed {
		now := n.clock.Now()
		n.handle(s, data, from, now, w)
		n.drainIfRoom(now, w)
	}
	n.unlock()
	scratchPool.Put(s)
}

// HandleBatch is HandlePacket for a batch of datagrams read at once: the
// node takes its lock and reads the clock once for all of them.
func (n *Node) HandleBatch(pkts []transport.Packet, w transport.Writer) {
	s := scratchPool.Get().(*scratch)
	n.mu.Lock()
	if !n.closed {
		now := n.clock.Now()
		for i := range pkts {
			n.handle(s, pkts[i].Data, pkts[i].Addr, now, w)
		}
		n.drainIfRoom(now, w)
	}
	n.unlock()
	scratchPool.Put(s)
}

// handle decodes one datagram and serves it, or hands it to the request it
// answers. The lock is held.
func (n *Node) handle(s *scratch, data []byte, from netip.AddrPort, now time.Time, w transport.Writer) {
	n.stats.packetsIn++
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	s.tokenFor = nil // set for a request that earns a token (token.go)
	m := &s.msg
	s.prove = false
	if wire.PeekHeader(data, m) == nil && m.Type.IsRequest() && m.Network == n.cfg.Network && !n.limits.allow(from.Addr(), now) {
		return // over its source's rate limit, before any work (ratelimit.go)
	}
	if err := wire.Decode(data, m); err != nil {
		n.stats.malformed++
		// A well-formed header with a request type we do not know gets an
		// answer, so that newer peers learn we speak an older version.
		if errors.Is(err, wire.ErrUnknownType) && m.Type.IsRequest() && m.Network == n.cfg.Network && !n.cfg.ReadOnly {
			n.stats.served[0]++
			s.limit = wire.AmplificationFactor * len(data) // at least 108: the text below fits
			n.reply(s, m, from, w, wire.Error, func(o *wire.Message) {
				o.Code = wire.CodeUnknownType
				o.Text = append(s.text[:0], "unknown request type"...)
			})
		}
		return
	}
	if m.Network != n.cfg.Network {
		n.stats.wrongNetwork++
		return
	}
	if m.Type.IsRequest() {
		// Every answer is held to a multiple of its request, verified sender
		// or not: a sender's ID and address are no secret (NODES answers
		// hand them out), so a forged request can name any of them.
		s.limit = min(wire.MaxPacket, wire.AmplificationFactor*len(data))
		n.proveBudget(s, m) // the proof trailer comes out of the budget (ident.go)
		n.serve(s, m, from, now, w)
		return
	}
	n.handleResponse(m, from, now, w)
}

// reply encodes a response to request m, with the body filled by fill, and
// writes it to w.
func (n *Node) reply(s *scratch, m *wire.Message, to netip.AddrPort, w transport.Writer, typ wire.Type, fill func(o *wire.Message)) {
	o := &s.out
	o.Reset() // not a zero-value assignment: that would clear 4 KiB of arrays per reply
	o.Type, o.Network, o.TxID, o.Sender = typ, n.cfg.Network, m.TxID, n.self
	fill(o)
	if s.tokenFor == m {
		o.Flags |= wire.FlagToken // its 8 bytes are off s.limit already (token.go)
		o.Token = s.token
	}
	if typ == wire.Error {
		n.noteError(m.Type, o) // obs: by code and store refusal reason (stats.go)
		// An ERROR's text is the one part that can be cut to keep within
		// the amplification limit.
		o.Text = cutText(o.Text, s.limit-(wire.HeaderLen+3))
	}
	n.attachProof(s, o) // ident.go
	b, err := o.Append(s.buf[:0])
	if err != nil {
		n.log.Error("encoding a response failed", "type", typ, "err", err)
		return
	}
	w.WriteTo(b, to)
	n.stats.packetsOut++
}

// serve answers one request. The lock is held.
func (n *Node) serve(s *scratch, m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) {
	if m.Type == wire.Notify {
		// A read-only node takes its own subscriptions' notifications...
		n.stats.served[m.Type]++
		n.serveNotify(s, m, from, now, w)
		return
	}
	if n.cfg.ReadOnly && m.Type == wire.Ping && len(n.subs) > 0 {
		// ...and, while it listens, the PINGs that check its address
		// before notifications are sent there.
		n.stats.served[m.Type]++
		n.reply(s, m, from, w, wire.Pong, func(o *wire.Message) { o.Observed = from })
		return
	}
	if n.cfg.ReadOnly {
		// obs: a drop (stats.go)
		n.stats.readOnlyDropped++
		return // read-only nodes are in nobody's table; a request is a mistake or a probe
	}
	n.stats.served[m.Type]++
	if !n.tokenGate(s, m, from, now, w) {
		return // a write without a valid token (token.go)
	}
	if m.Flags&wire.FlagReadOnly == 0 {
		if ping, ok := n.observe(id.Contact{ID: m.Sender, Addr: from}, false, s.limit-answerReserve(m.Type, n.cfg.Attempts), now, w); ok && ping.Addr == from {
			// The ping the request made us send goes to its claimed source
			// too: it counts against the answer's budget.
			s.limit -= n.pingCost(ping)
		}
	}
	switch m.Type {
	case wire.Ping:
		n.reply(s, m, from, w, wire.Pong, func(o *wire.Message) { o.Observed = from })
	case wire.FindNode:
		s.contacts = fitContacts(n.closestExcept(m.Target, m.Sender, from, s.contacts[:0]), s.limit-(wire.HeaderLen+1))
		n.reply(s, m, from, w, wire.Nodes, func(o *wire.Message) { o.Contacts = s.contacts })
	case wire.FindValue:
		s.values = n.store.Get(m.Target, now, s.values[:0])
		if len(s.values) == 0 {
			s.contacts = fitContacts(n.closestExcept(m.Target, m.Sender, from, s.contacts[:0]), s.limit-(wire.HeaderLen+3))
		}
		n.reply(s, m, from, w, wire.Values, func(o *wire.Message) {
			if len(s.values) == 0 {
				o.Contacts = s.contacts
				return
			}
			size := wire.HeaderLen + 3
			s.wvalues = s.wvalues[:0]
			for _, v := range s.values {
				if len(v.Data) > wire.MaxValueSize || v.Envelope {
					// Too large for this message, or an envelope that a
					// VALUES cannot mark as one: a GET reads it.
					continue
				}
				size += wire.ValueLen(len(v.Data))
				if size > s.limit || len(s.wvalues) == wire.MaxValues {
					o.More = true
					break
				}
				s.wvalues = append(s.wvalues, wire.Value{TTL: ttlSeconds(v.Expires.Sub(now)), Data: v.Data})
			}
			o.Values = s.wvalues
		})
	case wire.Store:
		n.serveStore(s, m, from, now, w)
		n.noteWrite(m, sha1.Sum(m.Value), now)
	case wire.Put:
		n.servePut(s, m, from, now, w)
		n.noteWrite(m, m.Publisher, now)
	case wire.Get:
		n.serveGet(s, m, from, now, w)
	case wire.Fetch:
		n.serveFetch(s, m, from, now, w)
	case wire.Delete:
		n.serveDelete(s, m, from, now, w)
		n.noteWrite(m, m.Publisher, now)
	case wire.Offer:
		n.serveOffer(s, m, from, now, w)
	case wire.Listen:
		n.serveListen(s, m, from, now, w)
	}
}

// answerReserve is the least part of a request's answer budget its answer
// needs: a PONG's observed address, a LISTENING and the PING that checks
// the listener's address; other answers shrink to fit what is left.
func answerReserve(t wire.Type, attempts int) int {
	const least = wire.HeaderLen + 19 // a header and an IPv6 address
	if t == wire.Listen {
		return least + attempts*wire.HeaderLen
	}
	return least
}

// closestExcept appends the K contacts closest to target for the requester
// at from, leaving out the requester, who knows itself, contacts that failed
// our last request to them (a dead contact handed out costs every asker a
// timeout), and contacts the requester may not use (see inScope).
func (n *Node) closestExcept(target, requester id.ID, from netip.AddrPort, dst []id.Contact) []id.Contact {
	start := len(dst)
	dst = n.table.ClosestResponsive(target, n.cfg.K+1, dst)
	// Leave out the requester, and contacts narrower in scope than the
	// requester's address, which it would refuse (and should not learn).
	fs := scopeOf(from.Addr())
	usable := func(c id.Contact) bool {
		return c.ID != requester && (n.cfg.AnyScope || scopeOf(c.Addr.Addr()) <= fs)
	}
	keep, narrower := dst[:start], false
	for _, c := range dst[start:] {
		if usable(c) {
			keep = append(keep, c)
		} else {
			narrower = narrower || c.ID != requester
		}
	}
	if narrower && len(keep)-start < n.cfg.K {
		// Contacts it may not use took places: look farther, through a
		// stack buffer so that serving stays allocation-free.
		var buf [2 * wire.MaxContacts]id.Contact
		keep = dst[:start]
		for _, c := range n.table.ClosestResponsive(target, len(buf), buf[:0]) {
			if usable(c) && len(keep)-start < n.cfg.K {
				keep = append(keep, c)
			}
		}
	}
	if len(keep)-start > n.cfg.K {
		keep = keep[:start+n.cfg.K]
	}
	return keep
}

// cutText shortens an ERROR text to at most n bytes without splitting a
// UTF-8 sequence.
func cutText(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	n = max(n, 0)
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return b[:n]
}

// fitContacts keeps the closest contacts of cs whose encoding fits in room
// bytes (the contacts' count byte included).
func fitContacts(cs []id.Contact, room int) []id.Contact {
	size := 0
	for i, c := range cs {
		if size += wire.ContactLen(c); size > room {
			return cs[:i]
		}
	}
	return cs
}

// ttlSeconds rounds a remaining lifetime up to whole seconds for the wire.
func ttlSeconds(d time.Duration) uint32 {
	if d <= 0 {
		return 0
	}
	s := (d + time.Second - 1) / time.Second
	if s > 1<<32-1 {
		return 1<<32 - 1
	}
	return uint32(s)
}

// serveStore takes a legacy STORE: an anonymous value, whose publisher is
// the SHA-1 of its bytes, at version 0.
func (n *Node) serveStore(s *scratch, m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) {
	if m.TTL == 0 {
		n.refuse(s, m, from, w, wire.CodeBadTTL, "ttl must be at least 1 second")
		return
	}
	if len(m.Value) == 0 {
		n.refuse(s, m, from, w, wire.CodeGeneric, "empty value")
		return
	}
	if n.cfg.RecordPolicy.RefusePlain {
		n.refuse(s, m, from, w, wire.CodeInvalid, refusePlain)
		return
	}
	ttl := n.grantTTL(m.TTL)
	v := store.Value{Publisher: sha1.Sum(m.Value), Expires: now.Add(ttl), Data: m.Value}
	refresh := n.refreshOnly(m.Target, v, now)
	if err := n.store.Put(m.Target, v, from.Addr(), now); err != nil {
		code, text := refusal(err)
		n.refuse(s, m, from, w, code, text)
		return
	}
	n.stats.storesAccepted++
	if !refresh {
		n.changed(m.Target, v, now, w)
	}
	n.ack(s, m, from, w, wire.Stored, func(o *wire.Message) { o.TTL = ttlSeconds(ttl) })
}

// observe offers a contact that just spoke to us to the routing table, and
// sends the ping the table asks for: of a full bucket's least-recently-seen
// contact (Kademlia keeps old contacts that still answer in preference to
// new ones), or of an address a contact is claimed to have moved to or from.
// verified says the contact answered a request of ours at c.Addr, which
// proves the address; a request received proves nothing, since its source
// may be forged.
//
// room, when not negative, is what a ping of c's own address may cost (a
// request's answer budget, less what its answer needs at least): a ping
// that does not fit is not sent, so that a request never draws more than
// its amplification limit.
func (n *Node) observe(c id.Contact, verified bool, room int, now time.Time, w transport.Writer) (pinged id.Contact, ok bool) {
	if !usableAddr(c.Addr) {
		return id.Contact{}, false
	}
	if n.cfg.RequireIdentity && !n.identKnown(c) {
		// Not proven at this address: it stays out of the table, and a
		// request of its sets off a proof request instead (ident.go).
		if !verified && n.probeIdentity(c, room, now, w) {
			return c, true
		}
		return id.Contact{}, false
	}
	var ping id.Contact
	var need bool
	var res routing.Result
	if verified {
		res, ping, need = n.table.Verified(c, now)
	} else {
		res, ping, need = n.table.Seen(c, now)
	}
	if res == routing.Added {
		n.noteNewcomer(c, now) // hand-over (handover.go)
	}
	if !need {
		return id.Contact{}, false
	}
	if room >= 0 && ping.Addr == c.Addr && room < n.pingCost(ping) {
		n.table.CancelPing(ping.ID)
		return id.Contact{}, false
	}
	if !n.send(ping, wire.Ping, id.ID{}, livenessCheck{}, now, w) {
		// No room to ask: let the bucket try again with the next newcomer.
		n.table.CancelPing(ping.ID)
		return id.Contact{}, false
	}
	return ping, true
}

// handleResponse matches a response to the request it answers and hands it to
// the operation that sent it.
func (n *Node) handleResponse(m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) {
	p, ok := n.rpc.Match(m.TxID, from)
	if !ok {
		n.stats.unmatched++
		return
	}
	n.stats.responses++
	if m.Flags&wire.FlagToken != 0 {
		n.tok.remember(from, m.Token, now) // token.go
	}
	n.noteAnswer(&p, m, now) // obs: outcome, round trip, debug line (stats.go)
	n.done(&p)
	if !n.identityAnswer(&p, m, from) {
		// No proof, or a wrong one: as good as no answer (ident.go).
		if !p.to.ID.IsZero() {
			n.table.FailedAt(p.to, now)
			n.noteFailed(p.to, now)
		}
		p.op.failure(n, &p, now, w)
		return
	}
	if !p.to.ID.IsZero() && p.to.ID != m.Sender {
		// Someone else answers at that address now (a restart with a new ID):
		// the contact we asked for is gone.
		n.table.FailedAt(p.to, now)
		n.noteFailed(p.to, now) // re-replication (handover.go)
		n.observe(id.Contact{ID: m.Sender, Addr: from}, true, -1, now, w)
		p.op.failure(n, &p, now, w)
		return
	}
	if po, check := p.op.(*pingOp); p.typ != wire.Notify && !(check && po.quiet) {
		// A listener may be a read-only client: it answers our NOTIFY and
		// the PING that checks its address, but belongs in nobody's table.
		n.observe(id.Contact{ID: m.Sender, Addr: from}, true, -1, now, w)
	}
	// After observe, so that a contact the answer just added gets its
	// first sample (rtt.go).
	n.sampleRTT(&p, id.Contact{ID: m.Sender, Addr: from}, now)
	p.to.ID = m.Sender
	if n.retryWithToken(&p, m, now, w) {
		return // token.go
	}
	p.op.response(n, &p, m, now, w)
}

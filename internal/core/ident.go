package core

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/ident"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Node identity (docs/protocol.md, "Node identity"). A node with a key
// answers every request that carries wire.FlagProve with a proof trailer. A
// node with Config.RequireIdentity asks for one from every contact whose
// (ID, address) it has not verified, keeps the verified pairs in a bounded
// cache, and lets nothing else into its routing table or count as an answer:
// a response to a PROVE request without a valid proof is a failed request.
// After first contact a pair is in the cache and requests to it go without
// the flag, so identity costs nothing per packet.

// DefaultVerifiedCache is Config.VerifiedCache's default: the (ID, address)
// pairs a node remembers as proven, far more than a routing table holds.
const DefaultVerifiedCache = 16384

// maxProbing bounds the identity pings in flight that requests from unknown
// senders set off: a flood of requests from new IDs costs at most this many
// pings at a time, the rest are not sent and counted.
const maxProbing = 256

// identState is the node's identity: its key, and what it verified of others.
type identState struct {
	key ed25519.PrivateKey // nil: this node cannot prove who it is
	// known holds the proven (ID, address) pairs and their keys. One ID
	// may be proven at several addresses (a dual-stack node), an address
	// names one ID at a time: the last proven there.
	known   map[id.Contact][ident.PublicKeyLen]byte
	byAddr  map[netip.AddrPort]id.ID // known's pairs by address, for requests to an address (a seed)
	ring    []id.Contact             // the cache's pairs in the order they came; the oldest goes first
	next    int                      // where ring's oldest is, once it is full
	probing map[netip.AddrPort]struct{}
	proof   [wire.ProofLen]byte // scratch for the trailer of the answer being sent

	proveSent     uint64 // requests sent with FlagProve
	proofsSent    uint64 // answers sent with a proof
	verified      uint64 // proofs that checked
	failed        uint64 // answers to PROVE requests without a valid proof
	probes        uint64 // identity pings of senders of requests
	probesDropped uint64 // identity pings not sent: maxProbing in flight
}

// IdentityCounts describes the node's identity checks (Stats.Identity).
type IdentityCounts struct {
	ProveSent     uint64 // requests sent asking for a proof (one per new contact: first contact only)
	ProofsSent    uint64 // answers this node sent with a proof
	Verified      uint64 // proofs of other nodes that checked
	Failed        uint64 // answers to a proof request with no proof or a wrong one: failed requests
	Probes        uint64 // identity pings sent to unverified senders of requests (RequireIdentity)
	ProbesDropped uint64 // identity pings not sent because too many were in flight
	Known         int    // now: (ID, address) pairs in the verified cache
}

func (n *Node) identityStats() IdentityCounts {
	s := &n.ident
	return IdentityCounts{ProveSent: s.proveSent, ProofsSent: s.proofsSent, Verified: s.verified,
		Failed: s.failed, Probes: s.probes, ProbesDropped: s.probesDropped, Known: len(s.known)}
}

// PublicKey returns the node's identity key, or nil for a node without one
// (an explicit Config.ID and no Config.Key).
func (n *Node) PublicKey() ed25519.PublicKey {
	if n.ident.key == nil {
		return nil
	}
	return n.ident.key.Public().(ed25519.PublicKey)
}

// IdentityVerified reports whether c.ID proved its key at exactly c.Addr.
func (n *Node) IdentityVerified(c id.Contact) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.identKnown(c)
}

// validateIdentity checks Key, Difficulty and RequireIdentity, fills ID from
// Key, and generates a key when identity is required (or GenerateKey) and
// neither is set:
// from Rand when the caller gave one (reproducible runs), else from
// crypto/rand. It runs after Rand is set up and before a zero ID is drawn.
func (c *Config) validateIdentity(callerRand bool) error {
	if err := ident.CheckDifficulty(c.Difficulty); err != nil {
		return fmt.Errorf("core: Difficulty: %w", err)
	}
	if c.VerifiedCache == 0 {
		c.VerifiedCache = DefaultVerifiedCache
	}
	if c.VerifiedCache < 1 || c.VerifiedCache > 1<<22 {
		return fmt.Errorf("core: VerifiedCache = %d: must be between 1 and %d", c.VerifiedCache, 1<<22)
	}
	if c.Key == nil && (c.RequireIdentity || (c.GenerateKey && c.ID.IsZero())) && !c.ReadOnly {
		if !c.ID.IsZero() {
			return errors.New("core: RequireIdentity with an explicit ID: the ID must be derived from a key (set Key, or leave ID zero)")
		}
		seed := rand.Read
		if callerRand {
			seed = randSeed(c.Rand)
		}
		k, _, err := ident.Generate(func(b []byte) error { _, err := seed(b); return err }, c.Difficulty)
		if err != nil {
			return fmt.Errorf("core: generating the identity key: %w", err)
		}
		c.Key = k
	}
	if c.Key == nil {
		return nil
	}
	if len(c.Key) != ed25519.PrivateKeySize {
		return fmt.Errorf("core: Key is %d bytes: must be an ed25519 private key (%d)", len(c.Key), ed25519.PrivateKeySize)
	}
	derived := ident.ID(c.Key)
	if !c.ID.IsZero() && c.ID != derived {
		return fmt.Errorf("core: ID %v is not the ID of Key (%v): leave ID zero, it is derived", c.ID.Short(), derived.Short())
	}
	if !ident.Meets(derived, c.Difficulty) {
		return fmt.Errorf("core: Key's ID %v carries %d bits of work, the network's Difficulty is %d: generate a key for it", derived.Short(), ident.Work(derived), c.Difficulty)
	}
	c.ID = derived
	return nil
}

// randSeed reads key seeds from r.
func randSeed(r *mrand.Rand) func([]byte) (int, error) {
	return func(b []byte) (int, error) {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return len(b), nil
	}
}

// identKnown reports whether c proved its ID at c.Addr. The lock is held.
func (n *Node) identKnown(c id.Contact) bool {
	_, ok := n.ident.known[c]
	return ok
}

// wantProof reports whether a request to c asks for a proof: not when c,
// or for a request to an address alone (zero c.ID), whoever proved an ID
// there, is known. The lock is held.
func (n *Node) wantProof(c id.Contact) bool {
	if !n.cfg.RequireIdentity {
		return false
	}
	if c.ID.IsZero() {
		x, ok := n.ident.byAddr[c.Addr]
		return !ok || !n.identKnown(id.Contact{ID: x, Addr: c.Addr})
	}
	return !n.identKnown(c)
}

// learnIdentity records that x proved its key pub at addr, evicting the
// oldest pair when the cache is full, and forgetting the ID proven at addr
// before, if another. The lock is held.
func (n *Node) learnIdentity(x id.ID, addr netip.AddrPort, pub [ident.PublicKeyLen]byte) {
	s := &n.ident
	if s.known == nil {
		s.known = make(map[id.Contact][ident.PublicKeyLen]byte)
		s.byAddr = make(map[netip.AddrPort]id.ID)
	}
	if prev, ok := s.byAddr[addr]; ok && prev != x {
		// Its ring slot stays until it comes round: the ring only sets
		// the order of eviction.
		delete(s.known, id.Contact{ID: prev, Addr: addr})
	}
	c := id.Contact{ID: x, Addr: addr}
	if _, ok := s.known[c]; !ok {
		if len(s.ring) < n.cfg.VerifiedCache {
			s.ring = append(s.ring, c)
		} else {
			gone := s.ring[s.next]
			delete(s.known, gone)
			if s.byAddr[gone.Addr] == gone.ID {
				delete(s.byAddr, gone.Addr)
			}
			s.ring[s.next] = c
			s.next = (s.next + 1) % len(s.ring)
		}
	}
	s.known[c] = pub
	s.byAddr[addr] = x
}

// checkProof decides the answer m from `from` to request p, which asked for
// a proof: it reports whether the proof checks, and learns the pair if so.
// The lock is held.
func (n *Node) checkProof(p *pending, m *wire.Message, from netip.AddrPort) bool {
	if m.Flags&wire.FlagProof == 0 {
		n.ident.failed++
		return false
	}
	pub, err := ident.Check(m.Proof, n.cfg.Network, p.txid, m.Sender, uint8(m.Type), n.cfg.Difficulty)
	if err != nil {
		n.ident.failed++
		n.log.Debug("identity proof refused", "from", from, "id", m.Sender.Short(), "err", err)
		return false
	}
	n.ident.verified++
	n.learnIdentity(m.Sender, from, pub)
	return true
}

// identityAnswer reports whether answer m to request p counts: always,
// unless the node requires identity; then only with a valid proof when p
// asked for one, and otherwise only from a sender proven at from (the one p
// went to, or one that took its address and proved it). The lock is held.
func (n *Node) identityAnswer(p *pending, m *wire.Message, from netip.AddrPort) bool {
	switch {
	case !n.cfg.RequireIdentity, listenerRequest(p):
		return true
	case p.prove:
		return n.checkProof(p, m, from)
	case n.identKnown(id.Contact{ID: m.Sender, Addr: from}):
		return true
	}
	n.ident.failed++
	return false
}

// listenerRequest reports whether p goes to a listener (a NOTIFY, or the
// ping that checks its address): a listener may be a read-only client,
// which has no key and stays out of routing tables, so identity is not
// asked of it; the answer is never offered to the table either.
func listenerRequest(p *pending) bool {
	po, ok := p.op.(*pingOp)
	return p.typ == wire.Notify || (ok && po.quiet)
}

// proveBudget decides whether the answer to request m, whose budget is
// s.limit, carries a proof, and takes the trailer out of the budget. A
// requester that did not pad its request for the trailer (wire.ProvePad)
// gets no proof when what is left would not hold the smallest answer.
func (n *Node) proveBudget(s *scratch, m *wire.Message) {
	s.prove = false
	if m.Flags&wire.FlagProve == 0 || n.ident.key == nil {
		return
	}
	if s.limit-wire.ProofLen < answerReserve(m.Type, n.cfg.Attempts) {
		return
	}
	s.limit -= wire.ProofLen
	s.prove = true
}

// attachProof adds the trailer to answer o when proveBudget said so. The
// lock is held.
func (n *Node) attachProof(s *scratch, o *wire.Message) {
	if !s.prove {
		return
	}
	ident.Prove(&n.ident.proof, n.ident.key, n.cfg.Network, o.TxID, n.self, uint8(o.Type))
	o.Flags |= wire.FlagProof
	o.Proof = n.ident.proof[:]
	n.ident.proofsSent++
}

// probeIdentity sends a PING with FlagProve to c, a sender of a request
// that has not proven its ID at its address, so that it can enter the
// routing table when it answers (as a liveness ping does for a full
// bucket's oldest). room is as for observe. It reports whether it sent one.
// The lock is held.
func (n *Node) probeIdentity(c id.Contact, room int, now time.Time, w transport.Writer) bool {
	if _, ok := n.ident.probing[c.Addr]; ok {
		return false // one in flight already
	}
	if room >= 0 && room < n.cfg.Attempts*(wire.HeaderLen+wire.ProvePad) {
		return false
	}
	if len(n.ident.probing) >= maxProbing {
		n.ident.probesDropped++
		return false
	}
	if !n.send(c, wire.Ping, id.ID{}, identityProbe{}, now, w) {
		return false
	}
	if n.ident.probing == nil {
		n.ident.probing = make(map[netip.AddrPort]struct{})
	}
	n.ident.probing[c.Addr] = struct{}{}
	n.ident.probes++
	return true
}

// identityProbe is the op of probeIdentity's ping. The routing table learns
// the outcome on the common paths (an answer with a valid proof is
// verified, a timeout failed), so it only ends the probe.
type identityProbe struct{}

func (identityProbe) response(n *Node, p *pending, _ *wire.Message, _ time.Time, _ transport.Writer) {
	delete(n.ident.probing, p.to.Addr)
}

func (identityProbe) failure(n *Node, p *pending, _ time.Time, _ transport.Writer) {
	delete(n.ident.probing, p.to.Addr)
}

// pingCost is what a liveness or identity ping of c costs its address, all
// attempts counted: the amplification budget of the request that set it off
// pays for it.
func (n *Node) pingCost(c id.Contact) int {
	size := wire.HeaderLen
	if n.wantProof(c) {
		size += wire.ProvePad
	}
	return n.cfg.Attempts * size
}

package core

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Write tokens (docs/protocol.md, "Write tokens"). As a storing node, a node
// hands every requester that asks a token: the first 8 bytes of an
// HMAC-SHA256, under a secret only it knows, of the rotation period and the
// requester's address as the node sees it. Checking one needs nothing but
// the secret, so nothing grows with the senders. As a writer, a node keeps
// the tokens it was handed in a bounded table and sends them with its
// writes; a write refused for its token (code 14) carries a fresh one, and
// is sent again once with it (see retryWithToken).

// tokenCacheSize bounds the tokens a node keeps as a writer: one per address
// it wrote to (or looked up) within tokenReuse, far more than the K closest
// of the keys a busy node puts, republishes and replicates in that time.
const tokenCacheSize = 16384

// tokenReuse is how long a writer uses a token it was handed. A token is
// good for at least wire.TokenRotation after it was made; the minute's
// margin covers the clock rates of the two nodes and the datagrams' travel.
const tokenReuse = wire.TokenRotation - time.Minute

// tokens is a node's token state: the secret it makes them with, and the
// tokens other nodes handed it. Guarded by the node's lock.
type tokens struct {
	mac hash.Hash // HMAC-SHA256 keyed by the node's secret; nil until first used
	key [32]byte
	in  [8 + 16 + 2]byte
	sum [sha256.Size]byte

	held map[netip.AddrPort]heldToken
	// order is held's addresses in the order they were added, from head
	// on, so that a full table drops the oldest entry.
	order []netip.AddrPort
	head  int
}

type heldToken struct {
	tok wire.Token
	at  time.Time // when it was received
}

// initTokens draws the node's secret from the system's random source
// (seedSource), not from the node's own stream: drawing from that would
// shift every later transaction ID and jitter of a seeded simulation, and a
// token's bytes change nothing but themselves, so runs stay reproducible.
func (n *Node) initTokens() {
	if _, err := io.ReadFull(seedSource, n.tok.key[:]); err != nil {
		// The system's random source failing leaves the node's stream,
		// itself a cryptographic generator.
		for i := 0; i < len(n.tok.key); i += 8 {
			binary.BigEndian.PutUint64(n.tok.key[i:], n.rng.Uint64())
		}
	}
}

func tokenEpoch(now time.Time) uint64 {
	return uint64(now.UnixNano() / int64(wire.TokenRotation))
}

// mint is the token of address a in rotation period epoch.
func (t *tokens) mint(a netip.AddrPort, epoch uint64) wire.Token {
	if t.mac == nil {
		t.mac = hmac.New(sha256.New, t.key[:])
	}
	binary.BigEndian.PutUint64(t.in[:8], epoch)
	ip := a.Addr().Unmap().As16()
	copy(t.in[8:24], ip[:])
	binary.BigEndian.PutUint16(t.in[24:], a.Port())
	t.mac.Reset()
	t.mac.Write(t.in[:])
	return wire.Token(t.mac.Sum(t.sum[:0])[:wire.TokenLen])
}

// valid reports whether tok is a token this node made for a within the
// current or the previous rotation period.
func (t *tokens) valid(tok wire.Token, a netip.AddrPort, now time.Time) bool {
	e := tokenEpoch(now)
	cur := t.mint(a, e)
	if hmac.Equal(cur[:], tok[:]) {
		return true
	}
	prev := t.mint(a, e-1)
	return hmac.Equal(prev[:], tok[:])
}

// remember keeps a token the node at a handed us.
func (t *tokens) remember(a netip.AddrPort, tok wire.Token, now time.Time) {
	if t.held == nil {
		t.held = map[netip.AddrPort]heldToken{}
	}
	if _, ok := t.held[a]; !ok {
		if len(t.held) >= tokenCacheSize {
			// Full: drop the oldest address. Order holds each address of
			// held once, so this frees one entry.
			delete(t.held, t.order[t.head])
			t.order[t.head] = netip.AddrPort{}
			t.head++
		}
		if t.head > 0 && t.head >= len(t.order)/2 {
			t.order = t.order[:copy(t.order, t.order[t.head:])]
			t.head = 0
		}
		t.order = append(t.order, a)
	}
	t.held[a] = heldToken{tok: tok, at: now}
}

// fresh returns the token the node at a handed us, if we may still use it.
func (t *tokens) fresh(a netip.AddrPort, now time.Time) (wire.Token, bool) {
	h, ok := t.held[a]
	if !ok || now.Sub(h.at) >= tokenReuse || now.Before(h.at) {
		return wire.Token{}, false
	}
	return h.tok, true
}

// tokenFor says what request p carries: a write carries the token its
// node handed us, when we hold one; a lookup's request or an OFFER asks
// for one when we hold none, so that the writes that follow it (a put's,
// a cache's, a replica's) have it. Only a node that requires tokens asks
// (they are a network's setting): elsewhere every datagram stays as it was
// before tokens, and a write refused for its token still gets one in the
// refusal. The retransmissions of a request are the same bytes, so this
// is decided once, at its first send.
func (n *Node) tokenFor(p *pending, now time.Time) {
	tok, ok := n.tok.fresh(p.to.Addr, now)
	switch {
	case wire.IsWrite(p.typ):
		p.tokFlag, p.tok = ok, tok
	case p.typ == wire.FindNode, p.typ == wire.FindValue, p.typ == wire.Get, p.typ == wire.Offer:
		p.tokFlag = !ok && n.cfg.RequireTokens
	}
}

// haveTokens reports whether each of targets answered the lookup (its
// answer brought a token, if the node hands them out) or handed us a token
// we may still use: the put's beta rule waits for that (see betaTargets).
func (n *Node) haveTokens(targets, responded []id.Contact, now time.Time) bool {
	for _, c := range targets {
		if _, ok := n.tok.fresh(c.Addr, now); ok {
			continue
		}
		if !slices.ContainsFunc(responded, func(x id.Contact) bool { return x.ID == c.ID && x.Addr == c.Addr }) {
			return false
		}
	}
	return true
}

// tokenGate runs before a request is served: it mints the token the answer
// carries (one asked for, or the fresh one a refusal for the token hands
// out), taking its 8 bytes off the answer's budget, and refuses, with code
// 14, a write without a valid token when the node requires them. It
// reports whether the request may be served. A refused write changes
// nothing, and its sender is not offered to the routing table.
func (n *Node) tokenGate(s *scratch, m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) bool {
	s.tokenFor, s.proven = nil, false
	write := wire.IsWrite(m.Type)
	if write && m.Flags&wire.FlagToken != 0 {
		s.proven = n.tok.valid(m.Token, from, now)
	}
	refuse := write && !s.proven && n.cfg.RequireTokens
	if m.Flags&wire.FlagToken != 0 || refuse {
		s.tokenFor, s.token = m, n.tok.mint(from, tokenEpoch(now))
		s.limit -= wire.TokenLen
		n.stats.tokensGiven++
	}
	if !refuse {
		return true
	}
	n.stats.tokenRefused++
	n.reply(s, m, from, w, wire.Error, func(o *wire.Message) {
		o.Code = wire.CodeToken
		if m.Flags&wire.FlagToken != 0 {
			o.Text = append(s.text[:0], "write token stale or not for this address"...)
		} else {
			o.Text = append(s.text[:0], "write token missing"...)
		}
	})
	return false
}

// retryWithToken sends write p again, once, when its answer m refused it
// for its token and carried a fresh one (already remembered): a writer
// whose token was missing or had run out pays one round trip, and the op
// that sent p never sees the refusal. It reports whether it did.
func (n *Node) retryWithToken(p *pending, m *wire.Message, now time.Time, w transport.Writer) bool {
	if m.Type != wire.Error || m.Code != wire.CodeToken || m.Flags&wire.FlagToken == 0 || !wire.IsWrite(p.typ) || p.tokRetried {
		return false
	}
	q := pending{to: p.to, typ: p.typ, key: p.key, op: p.op, slot: p.slot, off: p.off, cursor: p.cursor, tokRetried: true}
	if !n.sendReq(q, now, w) {
		return false // the op takes the refusal
	}
	n.stats.tokenRetries++
	return true
}

// TokenCounts counts write tokens (docs/protocol.md, "Write tokens").
type TokenCounts struct {
	Given   uint64 // tokens this node handed out in its answers
	Refused uint64 // writes this node refused for a missing or invalid token (code 14)
	Retries uint64 // writes this node sent again with the token their refusal carried
}

package core

import (
	"bytes"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// Path caching (paper, section 2.3): after a get found a value, the node
// stores a copy at the closest node on the lookup's path that did not
// return it, so that the next reader from that side of the network finds it
// a hop earlier, and popular keys spread their load.
//
// The copy's TTL shrinks exponentially with how far the cache node is from
// the key, counted in nodes: if d of the nodes the lookup heard from are
// closer to the key than the cache node (the closest one included; d = 0
// when the cache node is itself the closest), the copy lives
//
//	TTL = T / 2^d
//
// where T is the shortest remaining TTL the holders reported, cut to this node's
// MaxTTL. A copy whose TTL would fall under MinTTL is not sent: the cache
// node would raise it to MinTTL, and it would outlive what the formula
// gives it.
//
// A cached copy is an ordinary PUT of the same publisher, version and bytes:
// the cache node applies its store's bounds and version rule to it as to
// any PUT (a newer version it holds refuses the copy as stale, a full store
// refuses it as full), so it can never roll a value back; its expiry travels
// with it, so a re-replication of the copy carries what is left of its TTL,
// never more. Only records at least two hosts returned at the same version
// are cached, so that one hostile holder cannot make this node launder the
// records it invents into other nodes' stores under this node's address;
// only records small enough for one datagram, and at most Config.PathCache
// of them per get.

// cacheCounts are the path cache's counters.
type cacheCounts struct {
	sent, accepted, refused uint64
}

// PathCacheCounts describes the copies this node's gets cached on their
// lookup paths (Stats.PathCache).
type PathCacheCounts struct {
	Sent     uint64 // cache PUTs sent
	Accepted uint64 // of those, stored by their node
	Refused  uint64 // refused (Stats.RequestErrors has the codes) or unanswered
}

func (n *Node) pathCacheStats() PathCacheCounts {
	return PathCacheCounts{Sent: n.cache.sent, Accepted: n.cache.accepted, Refused: n.cache.refused}
}

// cacheCopy is one record to cache at one node.
type cacheCopy struct {
	to       id.Contact
	pub      id.ID
	version  uint64
	ttl      uint32
	envelope bool
	data     []byte
}

// cacheOp sends a get's cache copies; nobody waits for it.
type cacheOp struct {
	copies []cacheCopy
}

func (c *cacheOp) fill(m *wire.Message, p *pending) {
	cp := &c.copies[p.slot]
	m.Publisher, m.Version, m.TTL = cp.pub, cp.version, cp.ttl
	m.Size, m.Offset, m.Value = uint32(len(cp.data)), 0, cp.data
	if cp.envelope {
		m.PutFlags = wire.PutEnvelope
	}
}

func (c *cacheOp) response(n *Node, p *pending, m *wire.Message, now time.Time, w transport.Writer) {
	if m.Type == wire.PutOK && m.Status == wire.StatusStored {
		n.cache.accepted++
	} else {
		n.cache.refused++
	}
}

func (c *cacheOp) failure(n *Node, p *pending, now time.Time, w transport.Writer) {
	n.cache.refused++
}

// cacheOnPath plans the cache copies of a get that found values (lo is its
// lookup, r its result) and sends them once the lock is released. The lock
// is held.
func (n *Node) cacheOnPath(lo *lookupOp, r *LookupResult) {
	if n.cfg.PathCache <= 0 || len(r.Closest) == 0 {
		return
	}
	op := &cacheOp{}
	for _, rec := range r.Records {
		if len(op.copies) == n.cfg.PathCache {
			break
		}
		i := slices.IndexFunc(lo.recs, func(m *mergedRec) bool { return m.pub == rec.Publisher })
		if i < 0 || len(rec.Data) > wire.MaxPart {
			continue
		}
		m := lo.recs[i]
		if m.version != rec.Version || m.deleted || agreeingHosts(m.from) < 2 {
			continue
		}
		// The closest that returned no records: m.from names at most
		// maxSources holders of this one, lo.hosts every host that
		// returned any.
		d := slices.IndexFunc(r.Closest, func(c id.Contact) bool {
			return c.ID != n.self && !slices.ContainsFunc(m.from, func(h id.Contact) bool { return h.ID == c.ID }) &&
				!slices.Contains(lo.hosts, hostOf(c.Addr.Addr()))
		})
		if d < 0 {
			continue // every node it heard from holds it
		}
		ttl := cacheTTL(min(m.shortest, n.cfg.MaxTTL), d)
		if ttl < n.cfg.MinTTL {
			continue
		}
		op.copies = append(op.copies, cacheCopy{to: r.Closest[d], pub: rec.Publisher, version: rec.Version,
			ttl: uint32(ttl / time.Second), envelope: rec.Envelope, data: bytes.Clone(rec.Data)})
	}
	if len(op.copies) == 0 {
		return
	}
	key := lo.target
	n.later(func() {
		n.run(func(now time.Time, w transport.Writer) {
			for i, cp := range op.copies {
				if n.sendReq(pending{to: cp.to, typ: wire.Put, key: key, op: op, slot: int32(i)}, now, w) {
					n.cache.sent++
				}
			}
		})
	})
}

// cacheTTL is the paper's shrinking TTL: base halved for each of the d
// nodes closer to the key than the cache node, in whole seconds.
func cacheTTL(base time.Duration, d int) time.Duration {
	if d >= 63 {
		return 0
	}
	return (base >> max(d, 0)).Truncate(time.Second)
}

// agreeingHosts counts the distinct hosts among a record's holders (this
// node's own copy, the zero Contact, is one of them).
func agreeingHosts(from []id.Contact) int {
	var hosts [maxSources]netip.Addr
	n := 0
	for _, c := range from {
		h := hostOf(c.Addr.Addr())
		if !slices.Contains(hosts[:n], h) {
			hosts[n] = h
			n++
		}
	}
	return n
}

package core

import (
	"encoding/binary"
	"net/netip"
	"time"

	"golang.org/x/time/rate"
)

// Per-source rate limits (docs/security.md, "Rate limits and routing
// diversity").
//
// Every request a node serves costs it time under its one lock, so a flood
// from one host could take the node from everyone else. Each source host
// (an IPv4 address, an IPv6 /64: what one host or one customer line is
// given, the grouping the store's quotas use) has a token bucket of
// Config.RateLimit requests per second and a burst of Config.RateBurst; a
// request over it is dropped right after its header is read, before it is
// decoded, counted (Stats.RateLimited), and never answered: an answer,
// even an ERROR, would be work and traffic the flood buys.
//
// Answers to this node's own requests are not limited: they are matched to
// a request in flight (or dropped as unmatched) at the cost of a map
// lookup, and limiting them would let a flood under a peer's address make
// this node's lookups fail.
//
// The buckets read the node's injected clock, so a simulation on a virtual
// clock limits the same way each run.

// Defaults of the rate limit.
const (
	// DefaultRateLimit is Config.RateLimit's default, in requests per
	// second per source host. A node's own traffic to one peer is its
	// operations' rate times the share of them that peer is on the path
	// of: even a busy client's lookups (a few requests per lookup, spread
	// over the network) and replication (at most 12 requests in flight to
	// one destination, which at an Internet round trip of 60ms or more is
	// under 200/s) stay well below it, while 200/s from one host is about
	// 0.2% of what one core serves (docs/BENCHMARKS.md).
	DefaultRateLimit = 200
	// DefaultRateSources is Config.RateSources's default: how many source
	// hosts have a bucket at once. At about 150 bytes each, 16,384 cost a
	// node about 2.5 MB at most.
	DefaultRateSources = 16384
)

// srcKey is a source host: an IPv4 address or an IPv6 /64.
type srcKey struct {
	bits uint64
	v6   bool
}

func srcKeyOf(a netip.Addr) srcKey {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return srcKey{bits: uint64(binary.BigEndian.Uint32(b[:]))}
	}
	b := a.As16()
	return srcKey{bits: binary.BigEndian.Uint64(b[:8]), v6: true}
}

// limiterPage is how many buckets are allocated at once: entries never move
// once allocated (a rate.Limiter holds a mutex, which must not be copied),
// and a node that hears from few sources pays for few.
const limiterPage = 256

// srcEntry is one source's bucket, on the table's recency list.
type srcEntry struct {
	key        srcKey
	prev, next int32 // neighbours on the recency list, -1 at the ends
	lim        rate.Limiter
}

// rateLimits is the bounded table of buckets. When it is full, a new source
// takes the bucket of the source heard from least recently: a host that
// comes back after that starts again with a full burst. Nothing in it grows
// past Config.RateSources entries, whatever peers send. It is guarded by
// the node's lock.
type rateLimits struct {
	limit      rate.Limit
	burst      int
	max        int
	loopback   bool // limit loopback sources too (Config.RateLimitLoopback)
	idx        map[srcKey]int32
	pages      [][]srcEntry
	n          int32 // entries in use
	head, tail int32 // most and least recently seen, -1 when empty
	dropped    uint64
}

func newRateLimits(c *Config) rateLimits {
	if c.RateLimit < 0 {
		return rateLimits{}
	}
	return rateLimits{limit: rate.Limit(c.RateLimit), burst: c.RateBurst, max: c.RateSources, loopback: c.RateLimitLoopback, head: -1, tail: -1}
}

func (r *rateLimits) at(i int32) *srcEntry { return &r.pages[i/limiterPage][i%limiterPage] }

// allow reports whether a request from a may be served at now, and counts
// it when not.
func (r *rateLimits) allow(a netip.Addr, now time.Time) bool {
	if r.max == 0 || (!r.loopback && a.Unmap().IsLoopback()) {
		return true
	}
	k := srcKeyOf(a)
	i, ok := r.idx[k]
	if ok {
		r.touch(i)
	} else {
		i = r.take(k)
	}
	if r.at(i).lim.AllowN(now, 1) {
		return true
	}
	r.dropped++
	return false
}

// take returns a bucket for the new source k, full, at the front of the
// list: a fresh one while the table has room, else the least recently seen
// source's.
func (r *rateLimits) take(k srcKey) int32 {
	if r.idx == nil {
		r.idx = make(map[srcKey]int32)
	}
	var i int32
	if int(r.n) < r.max {
		i = r.n
		if int(i)%limiterPage == 0 {
			r.pages = append(r.pages, make([]srcEntry, min(limiterPage, r.max-int(i))))
		}
		r.n++
	} else {
		i = r.tail
		r.unlink(i)
		delete(r.idx, r.at(i).key)
	}
	e := r.at(i)
	e.key = k
	// A zero Limiter whose last event is at the zero time refills to its
	// burst on its first use, as a new one starts full.
	e.lim = rate.Limiter{}
	e.lim.SetLimitAt(time.Time{}, r.limit)
	e.lim.SetBurstAt(time.Time{}, r.burst)
	r.idx[k] = i
	r.pushFront(i)
	return i
}

func (r *rateLimits) touch(i int32) {
	if r.head != i {
		r.unlink(i)
		r.pushFront(i)
	}
}

func (r *rateLimits) unlink(i int32) {
	e := r.at(i)
	if e.prev >= 0 {
		r.at(e.prev).next = e.next
	} else {
		r.head = e.next
	}
	if e.next >= 0 {
		r.at(e.next).prev = e.prev
	} else {
		r.tail = e.prev
	}
}

func (r *rateLimits) pushFront(i int32) {
	e := r.at(i)
	e.prev, e.next = -1, r.head
	if r.head >= 0 {
		r.at(r.head).prev = i
	} else {
		r.tail = i
	}
	r.head = i
}

package core

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/wire"
)

// Reassembly of values sent in parts (PUT with size > MaxPart). A partial
// value costs memory from its first part on, so what remote peers can make
// a node hold is bounded three ways: partial values per source host, bytes
// over all partial values, and partial values in all; a partial value no
// part has arrived for in partTimeout is dropped.
const (
	maxPartialsPerHost = 4
	maxPartialBytes    = 1 << 20
	maxPartials        = 64
	partTimeout        = 10 * time.Second
)

var (
	errTooMany  = errors.New("too many values being reassembled here; try again later")
	errBadPart  = errors.New("part does not fit the value: parts are MaxPart bytes at multiples of MaxPart, the last one shorter")
	errMismatch = errors.New("part does not match the value being reassembled (another size, ttl or flags)")
)

// partial is one value being reassembled.
type partial struct {
	host     netip.Addr
	key, pub id.ID
	version  uint64
	size     uint32
	ttl      uint32
	flags    uint8 // the PUT flags every part must carry
	data     []byte
	got      []uint64 // a bit per part
	have     int
	deadline time.Time
}

func (p *partial) is(host netip.Addr, m *wire.Message) bool {
	return p.host == host && p.key == m.Target && p.pub == m.Publisher && p.version == m.Version
}

// reassembly holds the partial values of a node. It is guarded by the
// node's lock.
type reassembly struct {
	list  []*partial
	bytes int
}

// expire drops partial values past their deadline.
func (r *reassembly) expire(now time.Time) {
	keep := r.list[:0]
	for _, p := range r.list {
		if now.Before(p.deadline) {
			keep = append(keep, p)
		} else {
			r.bytes -= int(p.size)
		}
	}
	clear(r.list[len(keep):])
	r.list = keep
}

func (r *reassembly) has(host netip.Addr, m *wire.Message) bool {
	for _, p := range r.list {
		if p.is(host, m) {
			return true
		}
	}
	return false
}

// add takes one part of a value of size m.Size > MaxPart from host. It
// returns the whole value when the part completes it, nil while parts are
// missing, and an error when the part is refused.
func (r *reassembly) add(host netip.Addr, m *wire.Message, now time.Time) ([]byte, error) {
	size := int(m.Size)
	off := int(m.Offset)
	if off%wire.MaxPart != 0 || off >= size || len(m.Value) != min(wire.MaxPart, size-off) {
		return nil, errBadPart
	}
	r.expire(now)
	var p *partial
	perHost := 0
	for _, q := range r.list {
		if q.is(host, m) {
			p = q
			break
		}
		if q.host == host {
			perHost++
		}
	}
	if p == nil {
		if perHost >= maxPartialsPerHost || len(r.list) >= maxPartials || r.bytes+size > maxPartialBytes {
			return nil, errTooMany
		}
		parts := (size + wire.MaxPart - 1) / wire.MaxPart
		p = &partial{
			host: host, key: m.Target, pub: m.Publisher, version: m.Version, size: m.Size, ttl: m.TTL, flags: m.PutFlags,
			data: make([]byte, size), got: make([]uint64, (parts+63)/64),
		}
		r.list = append(r.list, p)
		r.bytes += size
	}
	if p.size != m.Size || p.ttl != m.TTL || p.flags != m.PutFlags {
		return nil, errMismatch
	}
	p.deadline = now.Add(partTimeout)
	i := off / wire.MaxPart
	if p.got[i/64]&(1<<(i%64)) != 0 {
		return nil, nil // a repeat
	}
	p.got[i/64] |= 1 << (i % 64)
	p.have++
	copy(p.data[off:], m.Value)
	if p.have*wire.MaxPart < size {
		return nil, nil
	}
	if j := slices.Index(r.list, p); j >= 0 {
		r.list = slices.Delete(r.list, j, j+1)
	}
	r.bytes -= size
	return p.data, nil
}

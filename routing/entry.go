package routing

import (
	"encoding/binary"
	"math/bits"
	"net/netip"
	"slices"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/rpc"
)

// key is an ID as big-endian machine words, so that XOR distances and
// comparisons inside the table run on words without byte swapping.
type key struct {
	hi, mid uint64
	lo      uint32
}

func load(x id.ID) key {
	return key{
		hi:  binary.BigEndian.Uint64(x[0:8]),
		mid: binary.BigEndian.Uint64(x[8:16]),
		lo:  binary.BigEndian.Uint32(x[16:20]),
	}
}

func (k key) id() id.ID {
	var x id.ID
	binary.BigEndian.PutUint64(x[0:8], k.hi)
	binary.BigEndian.PutUint64(x[8:16], k.mid)
	binary.BigEndian.PutUint32(x[16:20], k.lo)
	return x
}

func (k key) xor(o key) key {
	return key{k.hi ^ o.hi, k.mid ^ o.mid, k.lo ^ o.lo}
}

// cpl returns the common prefix length of a and b (160 when equal).
func cpl(a, b key) int {
	if d := a.hi ^ b.hi; d != 0 {
		return bits.LeadingZeros64(d)
	}
	if d := a.mid ^ b.mid; d != 0 {
		return 64 + bits.LeadingZeros64(d)
	}
	return 128 + bits.LeadingZeros32(a.lo^b.lo)
}

// bit returns bit i (0 = most significant) of k.
func (k key) bit(i int) uint64 {
	switch {
	case i < 64:
		return k.hi >> (63 - i) & 1
	case i < 128:
		return k.mid >> (127 - i) & 1
	}
	return uint64(k.lo>>(159-i)) & 1
}

// closer reports whether a is strictly closer to t than b is.
func closer(t key, a, b *entry) bool {
	if x, y := a.hi^t.hi, b.hi^t.hi; x != y {
		return x < y
	}
	if x, y := a.mid^t.mid, b.mid^t.mid; x != y {
		return x < y
	}
	return a.lo^t.lo < b.lo^t.lo
}

// Address family, verification and zone index packed into entry.flags.
const (
	family4    = 1
	family6    = 2
	familyMask = 3
	// verifiedBit marks an entry whose current address has answered one of
	// our requests. It is not part of the address.
	verifiedBit = 4
	addrMask    = ^uint8(verifiedBit)
	zoneShift   = 3
	// maxZones is how many distinct IPv6 zones (interface names of
	// link-local addresses) one table interns. Zones come from the local
	// kernel, not from peers, so a handful is plenty.
	maxZones = 1<<(8-zoneShift) - 1
)

// entry is one contact as the table stores it: 56 bytes with no pointers.
// The field order keeps it free of padding.
type entry struct {
	hi, mid  uint64
	lo       uint32
	port     uint16
	flags    uint8 // family in the low 2 bits, verifiedBit, zone index (0 = none) above
	failures uint8
	addr     [16]byte // IPv4 in the first 4 bytes
	lastSeen int64    // Unix nanoseconds
	// rtt is the round-trip estimate of requests to this address: reset
	// when the entry changes address, so one host's answers never set
	// another's timeout.
	rtt rpc.RTT
}

func (e *entry) key() key { return key{e.hi, e.mid, e.lo} }

func (e *entry) is(k key) bool { return e.hi == k.hi && e.mid == k.mid && e.lo == k.lo }

func (e *entry) verified() bool { return e.flags&verifiedBit != 0 }

func (e *entry) sameAddr(o *entry) bool {
	return e.addr == o.addr && e.port == o.port && (e.flags^o.flags)&addrMask == 0
}

// setAddr gives e the address of o, verified if o is, and o's round-trip
// estimate (none, unless o was stored at that address).
func (e *entry) setAddr(o *entry) {
	e.addr, e.port, e.flags, e.rtt = o.addr, o.port, o.flags, o.rtt
}

// hasAddr reports whether e's address is a, without interning a's zone.
func (e *entry) hasAddr(a netip.AddrPort, zones []string) bool {
	var o entry
	return packAddr(&o, a, zones) && e.sameAddr(&o)
}

func (e *entry) contact(zones []string) id.Contact {
	var c id.Contact
	e.fill(&c, zones)
	return c
}

// fill writes the contact into c in place: Closest fills its result this
// way rather than copying 56-byte values around.
func (e *entry) fill(c *id.Contact, zones []string) {
	binary.BigEndian.PutUint64(c.ID[0:8], e.hi)
	binary.BigEndian.PutUint64(c.ID[8:16], e.mid)
	binary.BigEndian.PutUint32(c.ID[16:20], e.lo)
	var a netip.Addr
	if e.flags&familyMask == family4 {
		a = netip.AddrFrom4([4]byte(e.addr[:4]))
	} else {
		a = netip.AddrFrom16(e.addr)
		if z := e.flags >> zoneShift; z != 0 {
			a = a.WithZone(zones[z-1])
		}
	}
	c.Addr = netip.AddrPortFrom(a, e.port)
}

func (e *entry) export(zones []string) Entry {
	return Entry{Contact: e.contact(zones), LastSeen: time.Unix(0, e.lastSeen), Failures: int(e.failures), Verified: e.verified(), RTT: e.rtt}
}

// makeEntry packs c, seen at ns. It reports false for an address no peer
// can be reached at, or when the table already interns maxZones other zones.
// An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is stored as the IPv4
// address it maps: the two name one host and one socket (rpc matches
// responses the same way), so they must count as one address, and
// unmapping first also makes ::ffff:0.0.0.0 count as unspecified.
func (t *Table) makeEntry(c id.Contact, ns int64) (entry, bool) {
	e := entry{lastSeen: ns}
	k := load(c.ID)
	e.hi, e.mid, e.lo = k.hi, k.mid, k.lo
	a := c.Addr.Addr().Unmap()
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || c.Addr.Port() == 0 {
		return e, false
	}
	if a.Is4() {
		// The common case, without packAddr's zone lookup.
		e.port, e.flags = c.Addr.Port(), family4
		a4 := a.As4()
		copy(e.addr[:], a4[:])
		return e, true
	}
	if z := a.Zone(); z != "" && t.intern(z) == 0 {
		return e, false
	}
	return e, packAddr(&e, c.Addr, t.zones)
}

// packAddr stores a in e, unmapped as makeEntry does, with its zone as an
// index into zones; it reports false when the zone is not there.
func packAddr(e *entry, a netip.AddrPort, zones []string) bool {
	ip := a.Addr().Unmap()
	e.port = a.Port()
	if ip.Is4() {
		e.flags = family4
		a4 := ip.As4()
		copy(e.addr[:], a4[:])
		return true
	}
	e.flags = family6
	e.addr = ip.As16()
	if z := ip.Zone(); z != "" {
		i := slices.Index(zones, z)
		if i < 0 {
			return false
		}
		e.flags |= uint8(i+1) << zoneShift
	}
	return true
}

// intern returns the 1-based index of zone z, adding it if there is room, or
// 0 when the zone table is full.
func (t *Table) intern(z string) uint8 {
	for i, s := range t.zones {
		if s == z {
			return uint8(i + 1)
		}
	}
	if len(t.zones) == maxZones {
		return 0
	}
	t.zones = append(t.zones, z)
	return uint8(len(t.zones))
}

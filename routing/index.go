package routing

import (
	"encoding/binary"
	"math/bits"
	"math/rand/v2"
)

// addrIndex finds which bucket holds an address, so that the table can keep
// one entry per address without scanning every bucket. It is an open-
// addressing hash table with linear probing of 4-byte slots, one per entry
// in the buckets and replacement caches: with K = 20 in a 100,000-node
// network, 4 KiB.
//
// A slot holds a 24-bit tag taken from the address's hash and the index of
// the bucket whose entries or replacement cache hold the address. Tags can
// collide, so a match only names a bucket to search; the entries themselves
// decide. The tag's low bits are the slot's home position, which lets
// deletion shift later slots back (no tombstones) and growth rehash without
// reading the entries.
type addrIndex struct {
	slots []uint32 // 0 = empty; tag<<8 | bucket
	n     int
	seed  [2]uint64
	// A lookup that found no holder leaves where its probe ended (hint-1,
	// 0 for none) for hintTag: inserting that address next, before any
	// other change, then costs no second probe.
	hint    int
	hintTag uint32
}

const (
	tagBits = 24
	// maxSlots keeps home positions within the tag. Growth stops there,
	// and a table whose buckets and caches would need more than 3/4 of it
	// (over 12 million entries: a ReplacementCache in the tens of
	// thousands) takes no more newcomers.
	maxSlots = 1 << tagBits
	minSlots = 16
	// The index grows past maxLoadNum/maxLoadDen of its slots in use. A
	// lower bound buys speed with memory: for a table of 492 entries (K =
	// 20, 100,000 nodes) 3/8 would mean 2,048 slots instead of 1,024, and
	// a newcomer to a full cache (one address looked up, one inserted, one
	// removed) about 30 ns less, for 4 KiB more per table.
	maxLoadNum = 3
	maxLoadDen = 4
)

// newAddrIndex seeds the hash from the runtime's random source. The seed
// only decides where addresses sit in the slots, never what the table does,
// so tables stay deterministic (as built-in maps do with their own seeds);
// it is random so that a peer cannot choose addresses that pile up on one
// probe sequence.
func newAddrIndex() addrIndex {
	return addrIndex{seed: [2]uint64{rand.Uint64() | 1, rand.Uint64() | 1}}
}

// tag hashes e's address (family, zone, IP and port; not the verified bit).
func (x *addrIndex) tag(e *entry) uint32 {
	a := binary.LittleEndian.Uint64(e.addr[0:8])
	b := binary.LittleEndian.Uint64(e.addr[8:16])
	c := uint64(e.port)<<8 | uint64(e.flags&addrMask)
	hi, lo := bits.Mul64(a^x.seed[0], b^x.seed[1])
	hi, lo = bits.Mul64(hi^lo^c, x.seed[0]^x.seed[1])
	t := uint32(hi^lo) >> (32 - tagBits)
	if t == 0 {
		t = 1
	}
	return t
}

// room reports whether one more address fits.
func (x *addrIndex) room() bool { return x.n < maxSlots/maxLoadDen*maxLoadNum }

func (x *addrIndex) insert(tag uint32, bucket int) {
	if (x.n+1)*maxLoadDen > len(x.slots)*maxLoadNum {
		x.grow()
	}
	var i uint32
	if x.hint != 0 && x.hintTag == tag {
		i = uint32(x.hint - 1)
	} else {
		m := uint32(len(x.slots) - 1)
		i = tag & m
		for x.slots[i] != 0 {
			i = (i + 1) & m
		}
	}
	x.hint = 0
	x.slots[i] = tag<<8 | uint32(bucket)
	x.n++
}

// find returns the position of the slot tag<<8|bucket, or -1.
func (x *addrIndex) find(tag uint32, bucket int) int {
	if len(x.slots) == 0 {
		return -1
	}
	m := uint32(len(x.slots) - 1)
	want := tag<<8 | uint32(bucket)
	for i := tag & m; x.slots[i] != 0; i = (i + 1) & m {
		if x.slots[i] == want {
			return int(i)
		}
	}
	return -1
}

// remove deletes one slot tag<<8|bucket. Two addresses with the same tag in
// the same bucket have identical slots on the same probe sequence, so it
// does not matter which of them is deleted.
func (x *addrIndex) remove(tag uint32, bucket int) {
	x.hint = 0
	p := x.find(tag, bucket)
	if p < 0 {
		return
	}
	m := uint32(len(x.slots) - 1)
	i := uint32(p)
	for j := (i + 1) & m; x.slots[j] != 0; j = (j + 1) & m {
		// The slot at j may move back to i unless its home lies
		// cyclically in (i, j].
		if h := x.slots[j] >> 8 & m; (j-h)&m >= (j-i)&m {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = 0
	x.n--
}

// move records that the address with tag went from bucket from to bucket to.
func (x *addrIndex) move(tag uint32, from, to int) {
	x.hint = 0
	if p := x.find(tag, from); p >= 0 {
		x.slots[p] = tag<<8 | uint32(to)
	}
}

func (x *addrIndex) grow() {
	if len(x.slots) >= maxSlots {
		// Past maxSlots home positions would not fit in the tag. room
		// keeps newcomers out well before the slots run out; an address
		// change, inserted before its old address is removed, may briefly
		// use one more.
		return
	}
	x.hint = 0
	n := max(2*len(x.slots), minSlots)
	old := x.slots
	x.slots = make([]uint32, n)
	m := uint32(n - 1)
	for _, s := range old {
		if s == 0 {
			continue
		}
		i := s >> 8 & m
		for x.slots[i] != 0 {
			i = (i + 1) & m
		}
		x.slots[i] = s
	}
}

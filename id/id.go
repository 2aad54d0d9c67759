// Package id defines the 160-bit identifiers of the Kademlia keyspace, the XOR
// metric over them, and Contact, a node's ID paired with its UDP address.
//
// IDs are plain [20]byte values: comparable, usable as map keys, copied
// without allocation. Distances are computed with math/bits, never big.Int.
package id

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/netip"
)

// Bits is the width of the keyspace.
const Bits = 160

// Len is the size of an ID in bytes.
const Len = Bits / 8

// ID is a point in the 160-bit keyspace, for nodes and keys alike. The zero
// value is the all-zero ID, a valid point that New never returns in practice.
type ID [Len]byte

// Key hashes an arbitrary string key into the keyspace with SHA-1, the
// convention other Go DHTs follow, so that the same string names the same ID.
func Key(s string) ID {
	return ID(sha1.Sum([]byte(s)))
}

// Random returns an ID drawn from r. Pass a seeded source for reproducible
// IDs (tests, the simulator) and a cryptographic one for real nodes.
func Random(r *rand.Rand) ID {
	var x ID
	binary.BigEndian.PutUint64(x[0:8], r.Uint64())
	binary.BigEndian.PutUint64(x[8:16], r.Uint64())
	binary.BigEndian.PutUint32(x[16:20], r.Uint32())
	return x
}

// Parse decodes the 40-digit hexadecimal form that String produces.
func Parse(s string) (ID, error) {
	var x ID
	if len(s) != 2*Len {
		return x, fmt.Errorf("id: %q has %d characters, want %d hexadecimal digits", s, len(s), 2*Len)
	}
	if _, err := hex.Decode(x[:], []byte(s)); err != nil {
		return x, errors.New("id: " + s + " is not hexadecimal")
	}
	return x, nil
}

// String returns the ID as 40 lowercase hexadecimal digits.
func (x ID) String() string { return hex.EncodeToString(x[:]) }

// Short returns the first 8 hexadecimal digits, for logs and tables.
func (x ID) Short() string { return hex.EncodeToString(x[:4]) }

// IsZero reports whether x is the all-zero ID.
func (x ID) IsZero() bool { return x == ID{} }

// words splits an ID into two 64-bit words and one 32-bit word, big-endian,
// so that comparisons and XORs run on machine words.
func (x ID) words() (uint64, uint64, uint32) {
	return binary.BigEndian.Uint64(x[0:8]), binary.BigEndian.Uint64(x[8:16]), binary.BigEndian.Uint32(x[16:20])
}

// Xor returns the XOR distance between x and y as an ID.
func (x ID) Xor(y ID) ID {
	var d ID
	for i := range d {
		d[i] = x[i] ^ y[i]
	}
	return d
}

// CommonPrefixLen returns how many leading bits x and y share: 160 when they
// are equal, 0 when they differ in the first bit.
func (x ID) CommonPrefixLen(y ID) int {
	a0, a1, a2 := x.words()
	b0, b1, b2 := y.words()
	if d := a0 ^ b0; d != 0 {
		return bits.LeadingZeros64(d)
	}
	if d := a1 ^ b1; d != 0 {
		return 64 + bits.LeadingZeros64(d)
	}
	return 128 + bits.LeadingZeros32(a2^b2)
}

// Compare orders IDs as 160-bit unsigned big-endian integers: -1, 0 or +1.
func (x ID) Compare(y ID) int {
	a0, a1, a2 := x.words()
	b0, b1, b2 := y.words()
	switch {
	case a0 != b0:
		return cmp64(a0, b0)
	case a1 != b1:
		return cmp64(a1, b1)
	case a2 < b2:
		return -1
	case a2 > b2:
		return 1
	}
	return 0
}

func cmp64(a, b uint64) int {
	if a < b {
		return -1
	}
	return 1
}

// CloserTo reports whether x is strictly closer to target than y is, in the
// XOR metric. It is the comparison every closest-k selection uses.
func (x ID) CloserTo(target, y ID) bool {
	return CompareDistance(target, x, y) < 0
}

// CompareDistance compares d(a, target) with d(b, target): -1 when a is
// closer, +1 when b is, 0 when a == b.
func CompareDistance(target, a, b ID) int {
	t0, t1, t2 := target.words()
	a0, a1, a2 := a.words()
	b0, b1, b2 := b.words()
	if x, y := a0^t0, b0^t0; x != y {
		return cmp64(x, y)
	}
	if x, y := a1^t1, b1^t1; x != y {
		return cmp64(x, y)
	}
	x, y := a2^t2, b2^t2
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// RandomInBucket returns a random ID that shares exactly cpl leading bits
// with self: a target whose lookup refreshes the bucket at depth cpl.
// cpl must be in [0, Bits); for cpl == Bits it returns self.
func RandomInBucket(r *rand.Rand, self ID, cpl int) ID {
	if cpl >= Bits {
		return self
	}
	x := Random(r)
	// Copy the first cpl bits of self, flip bit cpl, keep the rest random.
	full := cpl / 8
	copy(x[:full], self[:full])
	bit := byte(0x80) >> (cpl % 8)
	keep := ^(bit<<1 - 1) // bits of self's byte before the flipped one
	if cpl%8 == 0 {
		keep = 0
	}
	x[full] = (self[full] & keep) | (^self[full] & bit) | (x[full] & (bit - 1))
	return x
}

// Contact is a node as the network knows it: its ID and the UDP address it
// answers on. The zero value has a zero ID and an invalid address.
type Contact struct {
	ID   ID
	Addr netip.AddrPort
}

// String formats a contact as SHORTID@ADDR.
func (c Contact) String() string { return c.ID.Short() + "@" + c.Addr.String() }

package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
)

// formatVersion is the layout of the records bucket, kept in the meta
// bucket under formatKey. Open refuses a file written in another one rather
// than misread it.
const formatVersion = 1

var (
	bucketMeta    = []byte("meta")
	bucketRecords = []byte("records")
	formatKey     = []byte("format")
)

// A record's bbolt key is its sequence number, 8 bytes big-endian: every
// write appends at the end of the bucket, so that a batch dirties a few
// pages at its right edge instead of one page per record, as keys spread by
// SHA-1 would. The record's key and publisher are in its value.
const seqLen = 8

func seqKey(seq uint64) [seqLen]byte {
	var k [seqLen]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k
}

// rkey names a record: its key then its publisher.
type rkey [2 * id.Len]byte

func recordKey(key, publisher id.ID) rkey {
	var k rkey
	copy(k[:id.Len], key[:])
	copy(k[id.Len:], publisher[:])
	return k
}

func (k rkey) split() (key, publisher id.ID) {
	copy(key[:], k[:id.Len])
	copy(publisher[:], k[id.Len:])
	return key, publisher
}

// Flag bits of a record's first byte.
const (
	flagDeleted = 1 << 0
	srcShift    = 1
	srcMask     = 3 << srcShift // the kind of source address that follows
	// flagEnvelope marks a record envelope (store.Value.Envelope). A bit
	// that files written before it never set, so they open unchanged.
	flagEnvelope = 1 << 3
	flagsKnown   = flagDeleted | srcMask | flagEnvelope

	srcNone = 0 // the node itself: the zero netip.Addr
	src4    = 1 // an IPv4 address, 4 bytes
	src16   = 2 // an IPv6 address (IPv4-mapped ones too), 16 bytes, no zone
)

// recordLen returns the exact length appendRecord will write for v and src.
func recordLen(v *store.Value, src netip.Addr) int {
	var tmp [binary.MaxVarintLen64]byte
	n := len(rkey{}) + 1 + binary.PutUvarint(tmp[:], v.Version)
	n += binary.PutVarint(tmp[:], v.Expires.Unix())
	n += binary.PutUvarint(tmp[:], uint64(v.Expires.Nanosecond()))
	switch {
	case !src.IsValid():
	case src.Is4():
		n += 4
	default:
		n += 16
	}
	return n + len(v.Data)
}

// appendRecord appends the on-disk form of rk's record v, charged to src, to
// dst (see the package comment for the layout).
func appendRecord(dst []byte, rk *rkey, v *store.Value, src netip.Addr) []byte {
	var flags byte
	if v.Deleted {
		flags |= flagDeleted
	}
	if v.Envelope {
		flags |= flagEnvelope
	}
	switch {
	case !src.IsValid():
		flags |= srcNone << srcShift
	case src.Is4():
		flags |= src4 << srcShift
	default:
		flags |= src16 << srcShift
	}
	dst = append(dst, rk[:]...)
	dst = append(dst, flags)
	dst = binary.AppendUvarint(dst, v.Version)
	dst = binary.AppendVarint(dst, v.Expires.Unix())
	dst = binary.AppendUvarint(dst, uint64(v.Expires.Nanosecond()))
	switch {
	case !src.IsValid():
	case src.Is4():
		a := src.As4()
		dst = append(dst, a[:]...)
	default:
		a := src.As16()
		dst = append(dst, a[:]...)
	}
	return append(dst, v.Data...)
}

var errRecord = errors.New("malformed record")

// decodeRecord parses what appendRecord wrote. The returned Data aliases b
// (nil when empty); the caller copies it if b does not outlive it. The
// Publisher is rk's.
func decodeRecord(b []byte) (rkey, store.Value, netip.Addr, error) {
	var rk rkey
	var v store.Value
	var src netip.Addr
	if len(b) < len(rk)+1 {
		return rk, v, src, fmt.Errorf("%w: %d bytes, too short", errRecord, len(b))
	}
	rk = rkey(b[:len(rk)])
	b = b[len(rk):]
	flags := b[0]
	if flags&^flagsKnown != 0 {
		return rk, v, src, fmt.Errorf("%w: unknown flags %#x", errRecord, flags)
	}
	b = b[1:]
	ver, n := binary.Uvarint(b)
	if n <= 0 {
		return rk, v, src, fmt.Errorf("%w: bad version", errRecord)
	}
	b = b[n:]
	sec, n := binary.Varint(b)
	if n <= 0 {
		return rk, v, src, fmt.Errorf("%w: bad expiry seconds", errRecord)
	}
	b = b[n:]
	nsec, n := binary.Uvarint(b)
	if n <= 0 || nsec >= uint64(time.Second) {
		return rk, v, src, fmt.Errorf("%w: bad expiry nanoseconds", errRecord)
	}
	b = b[n:]
	switch (flags & srcMask) >> srcShift {
	case srcNone:
	case src4:
		if len(b) < 4 {
			return rk, v, src, fmt.Errorf("%w: short IPv4 source", errRecord)
		}
		src = netip.AddrFrom4([4]byte(b[:4]))
		b = b[4:]
	case src16:
		if len(b) < 16 {
			return rk, v, src, fmt.Errorf("%w: short IPv6 source", errRecord)
		}
		src = netip.AddrFrom16([16]byte(b[:16]))
		b = b[16:]
	default:
		return rk, v, src, fmt.Errorf("%w: unknown source kind", errRecord)
	}
	_, v.Publisher = rk.split()
	v.Version = ver
	v.Expires = time.Unix(sec, int64(nsec))
	v.Deleted = flags&flagDeleted != 0
	v.Envelope = flags&flagEnvelope != 0
	if v.Deleted && len(b) > 0 {
		return rk, v, src, fmt.Errorf("%w: a tombstone with %d bytes of data", errRecord, len(b))
	}
	if v.Envelope && (v.Deleted || len(b) == 0) {
		return rk, v, src, fmt.Errorf("%w: an envelope that is a tombstone or empty", errRecord)
	}
	if len(b) > 0 {
		v.Data = b
	}
	return rk, v, src, nil
}

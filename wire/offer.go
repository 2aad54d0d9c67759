package wire

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/dhtkit/dht/id"
)

// Replication messages (docs/protocol.md, "Replication: OFFER and WANT").
// A node that holds records for a key offers them to another of the key's
// closest nodes by digest; the other answers which digests it lacks, and
// only those travel, as ordinary PUTs and DELETEs. A steady network so
// exchanges digests, not values.

// MaxOffer bounds the digests in one OFFER, so that a full OFFER fits
// MaxPacket: 36 + 1 + 48 x 28 = 1381 bytes.
const MaxOffer = 48

// DigestLen is the encoded size of one offered digest: the key and the
// record's 8-byte hash.
const DigestLen = id.Len + 8

// Digest names one record offered for replication: the key it lives under
// and the first 8 bytes of RecordDigest of the record.
type Digest struct {
	Key  id.ID
	Hash uint64
}

// RecordDigest is the hash an OFFER carries for a record: the first 8 bytes
// (big-endian) of SHA-256 over key (20 bytes), publisher (20), version (8,
// big-endian) and one byte that is 1 for a tombstone and 0 for a value.
// The data is left out: two records of one publisher and version with other
// bytes cannot both be stored (the version rule refuses the second), so
// key, publisher, version and kind name a record.
func RecordDigest(key, publisher id.ID, version uint64, deleted bool) uint64 {
	var b [id.Len + id.Len + 8 + 1]byte
	copy(b[:], key[:])
	copy(b[id.Len:], publisher[:])
	binary.BigEndian.PutUint64(b[2*id.Len:], version)
	if deleted {
		b[len(b)-1] = 1
	}
	h := sha256.Sum256(b[:])
	return binary.BigEndian.Uint64(h[:8])
}

// OfferLen returns the encoded size of an OFFER with n digests.
func OfferLen(n int) int { return HeaderLen + 1 + n*DigestLen }

// WantLen returns the encoded size of a WANT with n indices.
func WantLen(n int) int { return HeaderLen + 1 + n }

func appendOffer(b []byte, ds []Digest) ([]byte, error) {
	if len(ds) > MaxOffer {
		return b, ErrTooMany
	}
	b = append(b, byte(len(ds)))
	for i := range ds {
		b = append(b, ds[i].Key[:]...)
		b = binary.BigEndian.AppendUint64(b, ds[i].Hash)
	}
	return b, nil
}

// appendWant writes a WANT's indices, which must ascend strictly and lie
// below MaxOffer: then one set of indices has one encoding.
func appendWant(b []byte, ws []uint8) ([]byte, error) {
	if len(ws) > MaxOffer {
		return b, ErrTooMany
	}
	if err := checkWants(ws); err != nil {
		return b, err
	}
	b = append(b, byte(len(ws)))
	return append(b, ws...), nil
}

func checkWants(ws []uint8) error {
	for i, x := range ws {
		if x >= MaxOffer || (i > 0 && x <= ws[i-1]) {
			return ErrInvalid
		}
	}
	return nil
}

func (r *reader) offer(m *Message) error {
	n := int(r.u8())
	if n > MaxOffer {
		return ErrTooMany
	}
	if !r.need(n * DigestLen) {
		return r.err
	}
	ds := m.offers[:n]
	for i := range ds {
		r.id(&ds[i].Key)
		ds[i].Hash = r.u64()
	}
	m.Offers = ds
	return nil
}

func (r *reader) want(m *Message) error {
	n := int(r.u8())
	if n > MaxOffer {
		return ErrTooMany
	}
	if !r.need(n) {
		return r.err
	}
	ws := m.wants[:n]
	copy(ws, r.b[r.off:r.off+n])
	r.off += n
	if err := checkWants(ws); err != nil {
		return err
	}
	m.Wants = ws
	return nil
}

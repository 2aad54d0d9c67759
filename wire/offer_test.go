package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/dhtkit/dht/id"
)

// A full OFFER fits a datagram, and the answer to the smallest OFFER, a
// WANT of every index it could name, is within the amplification factor of
// it: a WANT never draws more than its OFFER allows.
func TestOfferFitsAndWantStaysWithinAmplification(t *testing.T) {
	m := hdr(Offer)
	for i := range MaxOffer {
		m.Offers = append(m.Offers, Digest{Key: id.ID{byte(i)}, Hash: uint64(i)})
	}
	b, err := m.Append(nil)
	if err != nil {
		t.Fatalf("a full OFFER does not encode: %v", err)
	}
	if len(b) != OfferLen(MaxOffer) || len(b) > MaxPacket {
		t.Fatalf("full OFFER is %d bytes, OfferLen says %d, MaxPacket %d", len(b), OfferLen(MaxOffer), MaxPacket)
	}
	m.Offers = append(m.Offers, Digest{})
	if _, err := m.Append(nil); !errors.Is(err, ErrTooMany) {
		t.Fatalf("an OFFER of %d digests encodes: %v", len(m.Offers), err)
	}
	// An OFFER of n digests is answered by at most n indices; even the
	// empty OFFER's answer stays within the factor.
	for n := 0; n <= MaxOffer; n++ {
		if WantLen(n) > AmplificationFactor*OfferLen(n) {
			t.Fatalf("a WANT of %d indices (%d bytes) is over %d x the OFFER (%d bytes)", n, WantLen(n), AmplificationFactor, OfferLen(n))
		}
	}
	w := hdr(Want)
	for i := range MaxOffer {
		w.Wants = append(w.Wants, uint8(i))
	}
	if b, err := w.Append(nil); err != nil || len(b) != WantLen(MaxOffer) {
		t.Fatalf("full WANT: %d bytes, %v; WantLen says %d", len(b), err, WantLen(MaxOffer))
	}
}

// The digest covers key, publisher, version and kind, each of them: a
// change to any one gives another digest (for these examples), and the
// value is pinned so that implementations agree.
func TestRecordDigest(t *testing.T) {
	d := RecordDigest(target, pub, ver, false)
	for name, o := range map[string]uint64{
		"key":       RecordDigest(pub, pub, ver, false),
		"publisher": RecordDigest(target, pub2, ver, false),
		"version":   RecordDigest(target, pub, ver+1, false),
		"kind":      RecordDigest(target, pub, ver, true),
	} {
		if o == d {
			t.Errorf("changing the %s leaves the digest %x", name, d)
		}
	}
	if d != 0xa60a0c0848e193a7 {
		t.Errorf("digest of the example is %#x, docs/protocol.md says 0xa60a0c0848e193a7", d)
	}
	if got := RecordDigest(target, pub, ver, false); got != d {
		t.Fatal("the digest is not a function of its inputs")
	}
}

// FuzzWant feeds arbitrary index lists to WANT: Append accepts exactly the
// strictly ascending lists below MaxOffer, Decode of the same bytes agrees,
// and what is accepted round-trips.
func FuzzWant(f *testing.F) {
	f.Add([]byte{1})
	f.Add([]byte{0, 1, 2, 47})
	f.Add([]byte{2, 1})
	f.Add([]byte{48})
	f.Add([]byte{3, 3})
	f.Add(bytes.Repeat([]byte{7}, 60))
	f.Fuzz(func(t *testing.T, idx []byte) {
		if len(idx) > 255 {
			idx = idx[:255]
		}
		ok := len(idx) <= MaxOffer
		for i, x := range idx {
			if x >= MaxOffer || (i > 0 && x <= idx[i-1]) {
				ok = false
			}
		}
		m := hdr(Want)
		m.Wants = idx
		_, err := m.Append(nil)
		if ok != (err == nil) {
			t.Fatalf("indices %v: valid %v, Append says %v", idx, ok, err)
		}
		raw := []byte{Magic, Version, byte(Want), 0, 0x0a, 0x0b, 0x0c, 0x0d, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}
		raw = append(raw, sender[:]...)
		raw = append(raw, byte(len(idx)))
		raw = append(raw, idx...)
		var back Message
		derr := Decode(raw, &back)
		if ok != (derr == nil) {
			t.Fatalf("indices %v: valid %v, Decode says %v", idx, ok, derr)
		}
		if ok && !equal(&m, &back) {
			t.Fatalf("round trip: %s", describe(&back))
		}
	})
}

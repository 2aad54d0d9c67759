package record

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/dhtkit/dht/id"
)

func addGoldenSeeds(f *testing.F, add func(data []byte)) {
	for _, g := range goldenRecords(f) {
		add(g.data)
	}
	add([]byte{})
	add([]byte{1})
	add([]byte{2, 0})
	add([]byte{3, 1})
}

// FuzzParse: Parse never panics, and for every input it accepts, Append
// reproduces the input byte for byte (the encoding is canonical: one
// envelope, one byte string).
func FuzzParse(f *testing.F) {
	addGoldenSeeds(f, func(d []byte) { f.Add(d) })
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Parse error %T is not *Error", err)
			}
			return
		}
		if got := e.Append(nil); !bytes.Equal(got, data) {
			t.Fatalf("Append(Parse(x)) = %x, want %x", got, data)
		}
		if e.Size() != len(data) {
			t.Fatalf("Size %d, want %d", e.Size(), len(data))
		}
	})
}

// FuzzCheck: Check and Verify never panic, on any envelope, any held
// record and any typed document, and they agree: a typed record Check
// accepts without CAS, Verify accepts too. The document is signed inside
// the target so that the fuzzer reaches the JSON rules, which a random
// envelope never would behind its signature.
func FuzzCheck(f *testing.F) {
	priv := goldenKey()
	addGoldenSeeds(f, func(d []byte) { f.Add(d, []byte(goldenDoc), "alice@id.example.org:address", uint64(1), []byte{}) })
	for _, ex := range examples() {
		f.Add([]byte{}, []byte(ex[1]), ex[0], uint64(3), []byte{})
	}
	f.Add([]byte{1, 'x'}, []byte(`{"type":"identity","revision":9}`), "n", uint64(5), []byte{2})
	var p Policy
	f.Fuzz(func(t *testing.T, data, doc []byte, name string, version uint64, held []byte) {
		if len(data) > 4*MaxSize || len(doc) > MaxSize || len(held) > 4*MaxSize {
			return
		}
		var h *Held
		if len(held) > 0 {
			// A held record of an arbitrary version, enveloped or not.
			hv := version - 1
			if len(held) >= 8 {
				hv = binary.BigEndian.Uint64(held)
			}
			h = &Held{Version: hv, Envelope: held[0]&1 == 1, Data: held}
		}
		// The raw envelope, bound as its own fields say.
		key, pub := bindingOf(data)
		_, _ = p.Check(key, pub, version, true, data, h)
		_, _ = p.Check(key, pub, version, false, data, h)
		_, _ = p.Verify(key, pub, version, data)
		// A typed record of the fuzzed document, correctly signed.
		k, pubID, d, err := NewTyped(priv, name, version, doc)
		if err != nil {
			return
		}
		_, cerr := p.Check(k, pubID, version, true, d, h)
		_, verr := p.Verify(k, pubID, version, d)
		if h == nil && (cerr == nil) != (verr == nil) {
			t.Fatalf("Check says %v, Verify says %v", cerr, verr)
		}
		if h != nil {
			// The held record as the typed one's predecessor (revision rule).
			_, _, hd, err := NewTyped(priv, name, version, held)
			if err == nil {
				_, _ = p.Check(k, pubID, version+1, true, d, &Held{Version: version, Envelope: true, Data: hd})
			}
		}
	})
}

// bindingOf returns the key and publisher an envelope claims, so that
// fuzzed envelopes get past the binding checks to the signature.
func bindingOf(data []byte) (key, publisher id.ID) {
	e, err := Parse(data)
	if err != nil {
		return id.Key(string(data)), id.ID{}
	}
	switch e.Kind {
	case Immutable:
		k := ImmutableKey(e.Value)
		return k, k
	case Signed:
		return MutableKey(e.PublicKey[:], e.Salt), PublisherOf(e.PublicKey[:])
	}
	return TypedKey(string(e.Salt)), PublisherOf(e.PublicKey[:])
}

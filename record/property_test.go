package record

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/dhtkit/dht/id"
)

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randKey(r *rand.Rand) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(randBytes(r, ed25519.SeedSize))
}

// Property: every record NewSigned builds, of any salt, sequence and value,
// is accepted by Check and Verify under its own key, publisher and version,
// and refused under any other.
func TestPropertySignedRecordsBindExactly(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var p Policy
	for i := range 300 {
		priv := randKey(r)
		salt := randBytes(r, r.IntN(MaxSalt+1))
		seq := r.Uint64()
		if i%3 == 0 {
			seq = uint64(r.IntN(3))
		}
		value := randBytes(r, r.IntN(1500))
		k, pubID, d, err := NewSigned(priv, salt, seq, value)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Check(k, pubID, seq, true, d, nil); err != nil {
			t.Fatalf("case %d: valid record refused: %v", i, err)
		}
		e, err := p.Verify(k, pubID, seq, d)
		if err != nil || !bytes.Equal(e.Value, value) || !bytes.Equal(e.Salt, salt) {
			t.Fatalf("case %d: Verify = %v", i, err)
		}
		otherKey, otherPub, otherSeq := id.Random(r), id.Random(r), seq^(1<<uint(r.IntN(64)))
		for _, c := range []struct {
			k, p id.ID
			v    uint64
		}{{otherKey, pubID, seq}, {k, otherPub, seq}, {k, pubID, otherSeq}} {
			if _, err := p.Check(c.k, c.p, c.v, true, d, nil); !errors.Is(err, ErrInvalid) {
				t.Fatalf("case %d: a wrong binding is not refused as invalid: %v", i, err)
			}
		}
	}
}

// Property: without CAS, Check refuses no valid signed record whatever
// the node holds (older, newer, equal, plain, garbage): ordering is the
// store's business, so Check must not pre-empt it.
func TestPropertyCheckRefusesNothingValid(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var p Policy
	priv := randKey(r)
	for i := range 300 {
		seq := r.Uint64N(100)
		_, _, prev := mustSigned(t, priv, "s", r.Uint64N(100), fmt.Sprint(i))
		k, pubID, d := mustSigned(t, priv, "s", seq, fmt.Sprint("v", i))
		held := []*Held{
			nil,
			{Version: r.Uint64(), Envelope: r.IntN(2) == 0, Data: prev},
			{Version: r.Uint64(), Envelope: true, Data: randBytes(r, r.IntN(200))},
		}[r.IntN(3)]
		if _, err := p.Check(k, pubID, seq, true, d, held); err != nil {
			t.Fatalf("case %d: held %+v: %v", i, held, err)
		}
	}
}

// Property: CAS succeeds exactly when the brute-force reading of the rule
// says so: a held enveloped record of sequence cas, or, for cas 0, none.
func TestPropertyCAS(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var p Policy
	k, pubID, d := mustSigned(t, priv1, "", 50, "v")
	for i := range 500 {
		cas := r.Uint64N(4)
		var held *Held
		if r.IntN(3) > 0 {
			held = &Held{Version: r.Uint64N(4), Envelope: r.IntN(2) == 0}
		}
		want := (held == nil || !held.Envelope) && cas == 0 || held != nil && held.Envelope && cas != 0 && held.Version == cas
		cd, _ := WithCAS(d, cas)
		v, err := p.Check(k, pubID, 50, true, cd, held)
		if want != (err == nil) {
			t.Fatalf("case %d: cas %d held %+v: err %v, want ok=%v", i, cas, held, err, want)
		}
		if err == nil && !bytes.Equal(v.Data, d) {
			t.Fatalf("case %d: CAS not removed", i)
		}
		if err != nil && !errors.Is(err, ErrConflict) {
			t.Fatalf("case %d: %v is not a conflict", i, err)
		}
	}
}

// Checking any typed record of up to 1 MiB costs bounded memory: a few
// times its size at most, however it nests or repeats. (Time is linear in
// the same way: the decoder walks each token once; BenchmarkCheckTyped
// measures it.)
func TestCheckBoundedOnLargeDocuments(t *testing.T) {
	reg := Builtin()
	if err := reg.Register(Type{Name: "open", AllowExtra: true, MaxSize: MaxSize}); err != nil {
		t.Fatal(err)
	}
	p := Policy{Types: reg}
	fill := func(prefix, unit, suffix string) string {
		n := (MaxSize - 300 - len(prefix) - len(suffix)) / len(unit)
		return prefix + strings.Repeat(unit, n) + suffix
	}
	docs := map[string]string{
		"deep nesting":      fill(`{"type":"open","x":`, "[", ""),
		"deep objects":      fill(`{"type":"open","x":`, `{"a":`, ""),
		"many items":        fill(`{"type":"open","x":[`, "1,", "1]}"),
		"many nested lists": fill(`{"type":"open","x":{"y":[`, "[[1]],", "1]}}"),
		"one huge string":   fill(`{"type":"open","x":"`, "a", `"}`),
		"escapes":           fill(`{"type":"open","x":"`, `\u00e9`, `"}`),
		"many fields":       fill(`{"type":"open"`, `,"f":1`, "}"),
		"huge address doc":  fill(`{"type":"address","user":"alice","server":"a.example","addresses":[`, `"1.2.3.4:5",`, `"1.2.3.4:5"]}`),
		"whitespace":        fill(`{"type":"open"`, " ", "}"),
		"numbers":           fill(`{"type":"open","x":[`, "123456789e999,", "1]}"),
		"extra big object":  fill(`{"type":"open","x":{`, `"k":[1,2],`, `"z":0}}`),
		"not json":          fill("", "\x00", ""),
	}
	priv := goldenKey()
	for name, doc := range docs {
		k, pubID, d, err := NewTyped(priv, "n", 1, []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err = p.Check(k, pubID, 1, true, d, nil)
		runtime.ReadMemStats(&after)
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16*MaxSize {
			t.Errorf("%s: checking a %d-byte record allocated %d bytes", name, len(d), alloc)
		}
		t.Logf("%s: %d bytes allocated, %v", name, after.TotalAlloc-before.TotalAlloc, err)
	}
}

// A signed record's check does not allocate: a node checks every PUT and
// replica, so garbage per record would be garbage per datagram.
func TestCheckSignedDoesNotAllocate(t *testing.T) {
	var p Policy
	k, pubID, d := mustSigned(t, priv1, "salt", 42, string(make([]byte, 100)))
	if n := testing.AllocsPerRun(50, func() { _, _ = p.Check(k, pubID, 42, true, d, nil) }); n != 0 {
		t.Fatalf("Check allocates %v times per signed record", n)
	}
	_, _, forged := mustSigned(t, priv2, "salt", 42, "x")
	copy(forged[2:34], pub1)
	// ed25519.Verify itself allocates its error on a bad signature.
	if n := testing.AllocsPerRun(50, func() { _, _ = p.Check(k, pubID, 42, true, forged, nil) }); n > 1 {
		t.Fatalf("Check allocates %v times per forged record", n)
	}
}

package ident

import (
	"crypto/ed25519"
	"crypto/sha1"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/dhtkit/dht/id"
)

// seeded returns a seed source drawing from a PCG stream: reproducible keys.
func seeded(s uint64) func([]byte) error {
	r := rand.New(rand.NewPCG(s, s))
	return func(b []byte) error {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return nil
	}
}

// workSlow counts leading zero bits one bit at a time: the brute-force
// reference for Work.
func workSlow(x id.ID) int {
	h := sha1.Sum(x[:])
	for i := range 160 {
		if h[i/8]>>(7-i%8)&1 != 0 {
			return i
		}
	}
	return 160
}

func TestWorkMatchesBitByBit(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		x := id.Random(r)
		if got, want := Work(x), workSlow(x); got != want {
			t.Fatalf("Work(%v) = %d, want %d", x, got, want)
		}
	}
}

func TestGenerateMeetsDifficultyAndDerivesID(t *testing.T) {
	for _, d := range []int{0, 1, 4, 8} {
		priv, tries, err := Generate(seeded(uint64(d)), d)
		if err != nil {
			t.Fatal(err)
		}
		x := ID(priv)
		if x != id.ID(sha1.Sum(priv.Public().(ed25519.PublicKey))) {
			t.Fatalf("d=%d: ID is not SHA-1 of the public key", d)
		}
		if Work(x) < d || !Meets(x, d) {
			t.Fatalf("d=%d: ID %v carries %d bits", d, x, Work(x))
		}
		if tries < 1 {
			t.Fatalf("d=%d: %d tries", d, tries)
		}
	}
	// The same seed stream, the same key.
	a, _, _ := Generate(seeded(7), 4)
	b, _, _ := Generate(seeded(7), 4)
	if !a.Equal(b) {
		t.Fatal("Generate is not reproducible from its seed stream")
	}
}

func TestGenerateRejectsDifficulty(t *testing.T) {
	for _, d := range []int{-1, MaxDifficulty + 1} {
		if _, _, err := Generate(seeded(1), d); err == nil {
			t.Errorf("difficulty %d accepted", d)
		}
	}
	failing := func([]byte) error { return errors.New("no entropy") }
	if _, _, err := Generate(failing, 0); err == nil {
		t.Error("a failing seed source gave a key")
	}
}

func TestProofChecksAndBindsEveryField(t *testing.T) {
	priv, _, _ := Generate(seeded(3), 2)
	self := ID(priv)
	const net, tx, typ = 7, 0x0102030405060708, 0x81
	var p [ProofLen]byte
	Prove(&p, priv, net, tx, self, typ)
	pub, err := Check(p[:], net, tx, self, typ, 2)
	if err != nil {
		t.Fatal(err)
	}
	if Derive(pub[:]) != self {
		t.Fatal("Check returned another key")
	}
	other := self
	other[19] ^= 1
	cases := []struct {
		name string
		err  error
		run  func() error
	}{
		{"other txid (a replay)", ErrSignature, func() error { _, e := Check(p[:], net, tx+1, self, typ, 2); return e }},
		{"other network", ErrSignature, func() error { _, e := Check(p[:], net+1, tx, self, typ, 2); return e }},
		{"other type", ErrSignature, func() error { _, e := Check(p[:], net, tx, self, typ+1, 2); return e }},
		{"other ID", ErrKeyMismatch, func() error { _, e := Check(p[:], net, tx, other, typ, 0); return e }},
		{"short", ErrProofLength, func() error { _, e := Check(p[:ProofLen-1], net, tx, self, typ, 0); return e }},
		{"too little work", ErrDifficulty, func() error { _, e := Check(p[:], net, tx, self, typ, Work(self)+1); return e }},
	}
	for _, c := range cases {
		if err := c.run(); !errors.Is(err, c.err) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.err)
		}
	}
	// Every single-bit change of the proof is caught.
	for i := range ProofLen * 8 {
		q := p
		q[i/8] ^= 1 << (i % 8)
		if _, err := Check(q[:], net, tx, self, typ, 0); err == nil {
			t.Fatalf("bit %d flipped: proof still accepted", i)
		}
	}
}

func TestCheckNeverPanicsOnGarbage(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	for range 2000 {
		b := make([]byte, r.IntN(2*ProofLen))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		if _, err := Check(b, r.Uint32(), r.Uint64(), id.Random(r), uint8(r.Uint32()), r.IntN(4)); err == nil {
			t.Fatal("random bytes accepted as a proof")
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	for _, d := range []int{0, 8, 16} {
		b.Run(map[int]string{0: "d=0", 8: "d=8", 16: "d=16"}[d], func(b *testing.B) {
			src := seeded(uint64(d))
			tries := 0
			for b.Loop() {
				_, n, err := Generate(src, d)
				if err != nil {
					b.Fatal(err)
				}
				tries += n
			}
			b.ReportMetric(float64(tries)/float64(b.N), "keys/op")
		})
	}
}

func BenchmarkCheck(b *testing.B) {
	priv, _, _ := Generate(seeded(5), 0)
	self := ID(priv)
	var p [ProofLen]byte
	Prove(&p, priv, 1, 2, self, 0x81)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Check(p[:], 1, 2, self, 0x81, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProve(b *testing.B) {
	priv, _, _ := Generate(seeded(5), 0)
	self := ID(priv)
	var p [ProofLen]byte
	b.ReportAllocs()
	for b.Loop() {
		Prove(&p, priv, 1, 2, self, 0x81)
	}
}

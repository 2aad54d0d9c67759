package id

import (
	"bytes"
	"math/big"
	"math/rand/v2"
	"testing"
)

func bigOf(x ID) *big.Int { return new(big.Int).SetBytes(x[:]) }

func TestKeyIsSHA1(t *testing.T) {
	// SHA-1("hello"), so keys agree with other DHTs that hash string keys.
	want, err := Parse("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")
	if err != nil {
		t.Fatal(err)
	}
	if got := Key("hello"); got != want {
		t.Fatalf("Key(hello) = %s, want %s", got, want)
	}
}

func TestParseRoundTripAndErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		x := Random(r)
		y, err := Parse(x.String())
		if err != nil || y != x {
			t.Fatalf("Parse(String(%s)) = %s, %v", x, y, err)
		}
	}
	for _, bad := range []string{"", "abc", "zz" + Key("a").String()[2:], Key("a").String() + "00"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted a malformed ID", bad)
		}
	}
}

// The XOR metric's properties from the Kademlia paper (section 2.1): d(x,x)=0,
// symmetry, and the triangle inequality; plus unidirectionality.
func TestXorMetricProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 1000 {
		x, y, z := Random(r), Random(r), Random(r)
		if !x.Xor(x).IsZero() {
			t.Fatal("d(x,x) != 0")
		}
		if x.Xor(y) != y.Xor(x) {
			t.Fatal("d(x,y) != d(y,x)")
		}
		dxy, dyz, dxz := bigOf(x.Xor(y)), bigOf(y.Xor(z)), bigOf(x.Xor(z))
		if new(big.Int).Add(dxy, dyz).Cmp(dxz) < 0 {
			t.Fatal("triangle inequality violated")
		}
	}
}

func TestCommonPrefixLenAgainstBitLoop(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	slow := func(a, b ID) int {
		for i := range Bits {
			if (a[i/8]>>(7-i%8))&1 != (b[i/8]>>(7-i%8))&1 {
				return i
			}
		}
		return Bits
	}
	for range 2000 {
		a := Random(r)
		b := a
		// Flip one bit at a random position so every prefix length is exercised.
		pos := r.IntN(Bits + 1)
		if pos < Bits {
			b[pos/8] ^= 0x80 >> (pos % 8)
		}
		if got, want := a.CommonPrefixLen(b), slow(a, b); got != want {
			t.Fatalf("CommonPrefixLen = %d, want %d", got, want)
		}
		c := Random(r)
		if got, want := a.CommonPrefixLen(c), slow(a, c); got != want {
			t.Fatalf("CommonPrefixLen(random) = %d, want %d", got, want)
		}
	}
}

func TestCompareAndDistanceAgainstBigInt(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 5000 {
		a, b, target := Random(r), Random(r), Random(r)
		if r.IntN(4) == 0 {
			b = a // exercise equality
		}
		if r.IntN(4) == 0 {
			copy(b[:12], a[:12]) // exercise the later words
		}
		if got, want := a.Compare(b), bigOf(a).Cmp(bigOf(b)); got != want {
			t.Fatalf("Compare = %d, want %d", got, want)
		}
		want := bigOf(a.Xor(target)).Cmp(bigOf(b.Xor(target)))
		if got := CompareDistance(target, a, b); got != want {
			t.Fatalf("CompareDistance = %d, want %d", got, want)
		}
		if a.CloserTo(target, b) != (want < 0) {
			t.Fatal("CloserTo disagrees with CompareDistance")
		}
	}
}

func TestRandomInBucketHasExactPrefix(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	self := Random(r)
	for cpl := range Bits {
		for range 20 {
			x := RandomInBucket(r, self, cpl)
			if got := self.CommonPrefixLen(x); got != cpl {
				t.Fatalf("RandomInBucket(cpl=%d) shares %d bits", cpl, got)
			}
		}
	}
	if RandomInBucket(r, self, Bits) != self {
		t.Fatal("RandomInBucket(Bits) != self")
	}
}

func TestRandomIsDeterministicForASeed(t *testing.T) {
	a := Random(rand.New(rand.NewPCG(11, 12)))
	b := Random(rand.New(rand.NewPCG(11, 12)))
	if !bytes.Equal(a[:], b[:]) {
		t.Fatal("same seed, different IDs")
	}
}

func BenchmarkCompareDistance(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	t, x, y := Random(r), Random(r), Random(r)
	n := 0
	for b.Loop() {
		n += CompareDistance(t, x, y)
	}
	_ = n
}

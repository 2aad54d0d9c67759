package record

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/dhtkit/dht/id"
)

// Fixed keys, so that failures and golden files are reproducible.
var (
	seed1 = bytes.Repeat([]byte{0x01}, ed25519.SeedSize)
	seed2 = bytes.Repeat([]byte{0x02}, ed25519.SeedSize)
	priv1 = ed25519.NewKeyFromSeed(seed1)
	priv2 = ed25519.NewKeyFromSeed(seed2)
	pub1  = priv1.Public().(ed25519.PublicKey)
	pub2  = priv2.Public().(ed25519.PublicKey)
)

func mustSigned(t testing.TB, priv ed25519.PrivateKey, salt string, seq uint64, value string) (id.ID, id.ID, []byte) {
	t.Helper()
	k, p, d, err := NewSigned(priv, []byte(salt), seq, []byte(value))
	if err != nil {
		t.Fatal(err)
	}
	return k, p, d
}

func mustTyped(t testing.TB, priv ed25519.PrivateKey, name string, seq uint64, doc string) (id.ID, id.ID, []byte) {
	t.Helper()
	k, p, d, err := NewTyped(priv, name, seq, []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return k, p, d
}

// wantErr fails unless err is an *Error with the reason and field.
func wantErr(t *testing.T, err error, r Reason, field string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v, want an *Error %s on %q", err, r, field)
	}
	if e.Reason != r || e.Field != field {
		t.Fatalf("error %q (reason %s, field %q), want reason %s on field %q", e.Error(), e.Reason, e.Field, r, field)
	}
	if len(e.Error()) > MaxErrorText || !strings.Contains(e.Error(), field) {
		t.Fatalf("error text %q is over 255 bytes or does not name %q", e.Error(), field)
	}
}

func TestSignatureBufferIsBEP44(t *testing.T) {
	// BEP 44's own example: salt "foobar", seq 1, value "Hello World!".
	got := AppendSignatureBuffer(nil, Signed, []byte("foobar"), 1, []byte("Hello World!"))
	if want := "4:salt6:foobar3:seqi1e1:v12:Hello World!"; string(got) != want {
		t.Fatalf("buffer %q, want %q", got, want)
	}
	got = AppendSignatureBuffer(nil, Signed, nil, 1, []byte("Hello World!"))
	if want := "3:seqi1e1:v12:Hello World!"; string(got) != want {
		t.Fatalf("buffer %q, want %q", got, want)
	}
	got = AppendSignatureBuffer(nil, Typed, []byte("n"), 0, nil)
	if want := "dhtkit-typed\x004:salt1:n3:seqi0e1:v0:"; string(got) != want {
		t.Fatalf("buffer %q, want %q", got, want)
	}
}

func TestBEP44TestVector(t *testing.T) {
	// BEP 44's test vector 1: mutable item without salt, its key pair and
	// signature, checks that a Mainline item maps 1:1 onto a signed record.
	pubHex := "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548"
	sigHex := "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"
	var e Envelope
	e.Kind = Signed
	copy(e.PublicKey[:], mustHex(t, pubHex))
	copy(e.Signature[:], mustHex(t, sigHex))
	e.Value = []byte("Hello World!")
	data := e.Append(nil)
	var p Policy
	if _, err := p.Verify(MutableKey(e.PublicKey[:], nil), PublisherOf(e.PublicKey[:]), 1, data); err != nil {
		t.Fatalf("BEP 44 vector refused: %v", err)
	}
	if _, err := p.Verify(MutableKey(e.PublicKey[:], nil), PublisherOf(e.PublicKey[:]), 2, data); err == nil {
		t.Fatal("BEP 44 vector accepted at the wrong sequence")
	}
}

func TestRoundTripEachKind(t *testing.T) {
	_, _, s := mustSigned(t, priv1, "salt", 7, "hello")
	_, _, w := mustSigned(t, priv1, "", 8, "")
	_, _, ty := mustTyped(t, priv1, "alice@example.org:address", 1, `{"type":"address","user":"alice","server":"example.org","addresses":["203.0.113.7:4000"]}`)
	_, im := NewImmutable([]byte("content"))
	cas, err := WithCAS(s, 6)
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string][]byte{"signed": s, "withdrawal": w, "typed": ty, "immutable": im, "cas": cas} {
		e, err := Parse(d)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := e.Append(nil); !bytes.Equal(got, d) {
			t.Fatalf("%s: Append(Parse(x)) = %x, want %x", name, got, d)
		}
		if e.Size() != len(d) {
			t.Fatalf("%s: Size %d, want %d", name, e.Size(), len(d))
		}
		if e.Withdrawn() != (name == "withdrawal") {
			t.Fatalf("%s: Withdrawn() = %v", name, e.Withdrawn())
		}
	}
}

func TestParseRefusesMalformed(t *testing.T) {
	_, _, s := mustSigned(t, priv1, "salt", 7, "hello")
	withFlags := bytes.Clone(s)
	withFlags[1] = 0x02
	longSalt := bytes.Clone(s[:headerSize])
	longSalt[98] = 65
	longSalt = append(longSalt, make([]byte, 65)...)
	typedNoName := bytes.Clone(s[:headerSize])
	typedNoName[0], typedNoName[98] = byte(Typed), 0
	typedBadName := append(bytes.Clone(s[:headerSize]), 0xff)
	typedBadName[0], typedBadName[98] = byte(Typed), 1
	casShort := bytes.Clone(s[:headerSize])
	casShort[1], casShort[98] = flagCAS, 0
	casShort = append(casShort, 1, 2, 3)
	cases := []struct {
		name  string
		data  []byte
		field string
	}{
		{"empty", nil, "kind"},
		{"kind 0", []byte{0, 1}, "kind"},
		{"kind 4", []byte{4, 1}, "kind"},
		{"immutable empty", []byte{1}, "value"},
		{"signed short", s[:headerSize-1], "envelope"},
		{"unknown flag", withFlags, "flags"},
		{"salt over 64", longSalt, "salt"},
		{"salt past end", s[:headerSize+2], "salt"},
		{"typed empty name", typedNoName, "name"},
		{"typed name not UTF-8", typedBadName, "name"},
		{"cas past end", casShort, "cas"},
		{"over 1 MiB", append([]byte{1}, make([]byte, MaxSize)...), "envelope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse(c.data)
			wantErr(t, err, Invalid, c.field)
		})
	}
}

func TestParseDoesNotAllocate(t *testing.T) {
	_, _, s := mustSigned(t, priv1, "salt", 7, "hello")
	bad := bytes.Clone(s)
	bad[1] = 0x80
	for _, d := range [][]byte{s, bad, nil, {9}} {
		if n := testing.AllocsPerRun(100, func() { _, _ = Parse(d) }); n != 0 {
			t.Fatalf("Parse(%x...) allocates %v times", d[:min(len(d), 4)], n)
		}
	}
}

func TestCheckImmutable(t *testing.T) {
	var p Policy
	k, d := NewImmutable([]byte("content"))
	v, err := p.Check(k, k, 0, true, d, nil)
	if err != nil || v.Kind != Immutable || !bytes.Equal(v.Data, d) {
		t.Fatalf("Check = %+v, %v", v, err)
	}
	other := id.Key("other")
	_, err = p.Check(other, other, 0, true, d, nil)
	wantErr(t, err, Invalid, "key")
	_, err = p.Check(k, other, 0, true, d, nil)
	wantErr(t, err, Invalid, "publisher")
	_, err = p.Check(k, k, 1, true, d, nil)
	wantErr(t, err, Invalid, "version")
}

func TestCheckSignedBinding(t *testing.T) {
	var p Policy
	k, pubID, d := mustSigned(t, priv1, "salt", 7, "hello")
	if k != MutableKey(pub1, []byte("salt")) || pubID != PublisherOf(pub1) {
		t.Fatal("NewSigned's key or publisher is not the documented hash")
	}
	if _, err := p.Check(k, pubID, 7, true, d, nil); err != nil {
		t.Fatalf("a valid signed record is refused: %v", err)
	}
	cases := []struct {
		name       string
		key, pubID id.ID
		version    uint64
		field      string
	}{
		{"wrong key (other salt)", MutableKey(pub1, []byte("salu")), pubID, 7, "key"},
		{"key of another signer", MutableKey(pub2, []byte("salt")), pubID, 7, "key"},
		{"wrong publisher", k, PublisherOf(pub2), 7, "publisher"},
		{"publisher = key", k, k, 7, "publisher"},
		{"older version", k, pubID, 6, "signature"},
		{"newer version", k, pubID, 8, "signature"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := p.Check(c.key, c.pubID, c.version, true, d, nil)
			wantErr(t, err, Invalid, c.field)
			_, err = p.Verify(c.key, c.pubID, c.version, d)
			wantErr(t, err, Invalid, c.field)
		})
	}
}

// Every single-byte change of a signed or typed envelope (each byte flipped
// in turn) is refused: there is no byte a holder may alter unnoticed, save
// the CAS field, which is not signed and which Verify refuses outright.
func TestAlteredEnvelopeRefused(t *testing.T) {
	var p Policy
	sk, sp, s := mustSigned(t, priv1, "salt", 7, "hello")
	tk, tp, ty := mustTyped(t, priv1, "alice@example.org:address", 1, `{"type":"address","user":"alice","server":"example.org","addresses":["203.0.113.7:4000"]}`)
	ik, im := NewImmutable([]byte("content"))
	for _, c := range []struct {
		name       string
		key, pubID id.ID
		version    uint64
		data       []byte
	}{{"signed", sk, sp, 7, s}, {"typed", tk, tp, 1, ty}, {"immutable", ik, ik, 0, im}} {
		for i := range c.data {
			for _, mask := range []byte{0x01, 0x80, 0xff} {
				d := bytes.Clone(c.data)
				d[i] ^= mask
				if _, err := p.Check(c.key, c.pubID, c.version, true, d, nil); err == nil {
					t.Fatalf("%s: byte %d ^ %#x accepted by Check", c.name, i, mask)
				}
				if _, err := p.Verify(c.key, c.pubID, c.version, d); err == nil {
					t.Fatalf("%s: byte %d ^ %#x accepted by Verify", c.name, i, mask)
				}
			}
		}
		// Truncation and extension too.
		for n := 0; n < len(c.data); n++ {
			if _, err := p.Verify(c.key, c.pubID, c.version, c.data[:n]); err == nil {
				t.Fatalf("%s: truncated to %d bytes accepted", c.name, n)
			}
		}
		if _, err := p.Verify(c.key, c.pubID, c.version, append(bytes.Clone(c.data), 'x')); err == nil {
			t.Fatalf("%s: extended by a byte accepted", c.name)
		}
	}
}

func TestForgedSignatureRefused(t *testing.T) {
	// A record signed by another key but claiming pub1's identity: the
	// holder rewrites the public key field to pub1's.
	var p Policy
	k, pubID, _ := mustSigned(t, priv1, "", 9, "real")
	_, _, forged := mustSigned(t, priv2, "", 9, "forged")
	copy(forged[2:34], pub1)
	_, err := p.Check(k, pubID, 9, true, forged, nil)
	wantErr(t, err, Invalid, "signature")
}

func TestWithdrawal(t *testing.T) {
	var p Policy
	k, pubID, w := mustSigned(t, priv1, "s", 10, "")
	v, err := p.Check(k, pubID, 10, true, w, &Held{Version: 9, Envelope: true})
	if err != nil || v.Kind != Signed {
		t.Fatalf("owner's withdrawal refused: %v", err)
	}
	e, err := p.Verify(k, pubID, 10, w)
	if err != nil || !e.Withdrawn() {
		t.Fatalf("Verify(withdrawal) = %v, withdrawn %v", err, e.Withdrawn())
	}
	// Another key signs a withdrawal and puts it under pub1's key and
	// publisher: the public key field must then be pub1's, and the
	// signature does not verify.
	_, _, w2 := mustSigned(t, priv2, "s", 10, "")
	copy(w2[2:34], pub1)
	_, err = p.Check(k, pubID, 10, true, w2, nil)
	wantErr(t, err, Invalid, "signature")
	// Left with its own key, it names another publisher and key.
	_, _, w3 := mustSigned(t, priv2, "s", 10, "")
	_, err = p.Check(k, pubID, 10, true, w3, nil)
	wantErr(t, err, Invalid, "key")
	// A typed withdrawal needs no document, only the owner's signature.
	tk, tp, tw := mustTyped(t, priv1, "alice@example.org:address", 3, "")
	if _, err := p.Check(tk, tp, 3, true, tw, nil); err != nil {
		t.Fatalf("typed withdrawal refused: %v", err)
	}
}

func TestCAS(t *testing.T) {
	var p Policy
	k, pubID, d := mustSigned(t, priv1, "", 5, "v5")
	signedHeld := &Held{Version: 4, Envelope: true}
	cases := []struct {
		name string
		cas  uint64
		held *Held
		ok   bool
	}{
		{"none held, cas 0", 0, nil, true},
		{"none held, cas 4", 4, nil, false},
		{"held 4, cas 4", 4, signedHeld, true},
		{"held 4, cas 3", 3, signedHeld, false},
		{"held 4, cas 0", 0, signedHeld, false},
		{"held plain counts as none, cas 0", 0, &Held{Version: 99}, true},
		{"held plain counts as none, cas 99", 99, &Held{Version: 99}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cd, err := WithCAS(d, c.cas)
			if err != nil {
				t.Fatal(err)
			}
			v, err := p.Check(k, pubID, 5, true, cd, c.held)
			if !c.ok {
				wantErr(t, err, Conflict, "cas")
				if !errors.Is(err, ErrConflict) || errors.Is(err, ErrInvalid) {
					t.Fatal("errors.Is does not match the Conflict sentinel alone")
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if !bytes.Equal(v.Data, d) {
				t.Fatalf("stored data %x, want the envelope without CAS %x", v.Data, d)
			}
			if _, err := p.Verify(k, pubID, 5, v.Data); err != nil {
				t.Fatalf("a reader refuses what the node stored: %v", err)
			}
		})
	}
	// A reader refuses a record still carrying CAS: nodes remove it.
	cd, _ := WithCAS(d, 0)
	_, err := p.Verify(k, pubID, 5, cd)
	wantErr(t, err, Invalid, "cas")
	// Immutable records take no CAS.
	_, im := NewImmutable([]byte("x"))
	if _, err := WithCAS(im, 0); err == nil {
		t.Fatal("WithCAS accepted an immutable record")
	}
}

// Check judges the record, not the order: a valid record older than the
// held one is accepted by Check (the store then refuses it as stale), so
// that Check never refuses what the ordering rule would take.
func TestCheckLeavesOrderingToTheStore(t *testing.T) {
	var p Policy
	k, pubID, d := mustSigned(t, priv1, "", 5, "v5")
	for _, h := range []*Held{{Version: 9, Envelope: true}, {Version: 5, Envelope: true, Data: d}, {Version: 1}} {
		if _, err := p.Check(k, pubID, 5, true, d, h); err != nil {
			t.Fatalf("held %+v: %v", *h, err)
		}
	}
}

func TestPlainPolicy(t *testing.T) {
	var zero Policy
	v, err := zero.Check(id.Key("k"), id.Key("p"), 3, false, []byte("x"), nil)
	if err != nil || v.Kind != Plain || string(v.Data) != "x" {
		t.Fatalf("zero policy: %+v %v", v, err)
	}
	strict := Policy{RefusePlain: true}
	_, err = strict.Check(id.Key("k"), id.Key("p"), 3, false, []byte("x"), nil)
	wantErr(t, err, Refused, "envelope")
	var nilPolicy *Policy
	if _, err := nilPolicy.Check(id.Key("k"), id.Key("p"), 3, false, []byte("x"), nil); err != nil {
		t.Fatalf("nil policy: %v", err)
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Reason: Invalid, Field: "addresses", Msg: strings.Repeat("é", 300)}
	s := e.Error()
	if len(s) > MaxErrorText || !strings.HasPrefix(s, "record: invalid addresses: ") {
		t.Fatalf("Error() = %q (%d bytes)", s[:40], len(s))
	}
	if !strings.HasSuffix(s, "é") {
		t.Fatal("Error() cut inside a character")
	}
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

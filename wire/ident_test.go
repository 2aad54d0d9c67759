package wire

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"testing"

	"github.com/dhtkit/dht/ident"
)

// identKey is the key of the identity examples: the seed is 32 bytes of 2.
func identKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
}

// identGolden adds the examples of docs/protocol.md "Node identity": a PONG
// that proves its sender's identity (the answer to ping_prove_padded).
func identGolden(ms map[string]*Message) {
	priv := identKey()
	m := hdr(Pong)
	m.Sender = ident.ID(priv)
	m.Observed = netip.MustParseAddrPort("203.0.113.7:4000")
	m.Flags = FlagProof
	var p [ProofLen]byte
	ident.Prove(&p, priv, m.Network, m.TxID, m.Sender, uint8(m.Type))
	m.Proof = p[:]
	ms["pong_proof"] = &m
}

// identPadded is a PING asking for a proof, padded as a node sends it: the
// header and ProvePad zero bytes.
func identPadded() struct {
	m *Message
	n int
} {
	m := hdr(Ping)
	m.Flags = FlagProve
	return struct {
		m *Message
		n int
	}{&m, HeaderLen + ProvePad}
}

func TestProofLenIsIdent(t *testing.T) {
	if ProofLen != ident.ProofLen {
		t.Fatalf("wire.ProofLen = %d, ident.ProofLen = %d", ProofLen, ident.ProofLen)
	}
	// Three times the padding pays for the trailer.
	if AmplificationFactor*ProvePad < ProofLen {
		t.Fatalf("ProvePad %d does not pay for a %d-byte trailer", ProvePad, ProofLen)
	}
}

// goldenProof returns the bytes of pong_proof.hex and their decoding.
func goldenProof(t testing.TB) ([]byte, Message) {
	t.Helper()
	b, err := readGolden("pong_proof")
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	if err := Decode(b, &m); err != nil {
		t.Fatal(err)
	}
	return b, m
}

// The golden PONG's trailer verifies, and the body decodes as a PONG
// without the flag does: the trailer sits after the body, where a node that
// predates it ignores bytes.
func TestProofTrailerIsAfterTheBody(t *testing.T) {
	b, m := goldenProof(t)
	if _, err := ident.Check(m.Proof, m.Network, m.TxID, m.Sender, uint8(m.Type), 0); err != nil {
		t.Fatalf("golden proof: %v", err)
	}
	// An old parser: no flag known, trailing bytes ignored.
	old := bytes.Clone(b)
	old[3] &^= byte(FlagProof)
	var o Message
	if err := Decode(old, &o); err != nil {
		t.Fatal(err)
	}
	if o.Observed != m.Observed || o.Proof != nil {
		t.Fatalf("without the flag the body reads %v, proof %x", o.Observed, o.Proof)
	}
	// A flag without room for the trailer is a truncated message.
	if err := Decode(b[:HeaderLen+ProofLen-1], &m); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short trailer: err = %v", err)
	}
	// A trailer of the wrong length does not encode.
	if err := Decode(b, &m); err != nil {
		t.Fatal(err)
	}
	m.Proof = m.Proof[:ProofLen-1]
	if _, err := m.Append(nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short proof encoded: err = %v", err)
	}
}

// A proof with the most bytes still fits MaxPacket: the answer's body
// budget leaves room for it (core subtracts ProofLen).
func TestProofCountsAgainstMaxPacket(t *testing.T) {
	m := hdr(Part)
	m.Flags = FlagProof
	m.Proof = make([]byte, ProofLen)
	m.Size = MaxPart
	m.Value = make([]byte, MaxPart) // 36 + 10 + 1200 + 96 = 1342: fits
	if _, err := m.Append(nil); err != nil {
		t.Fatal(err)
	}
	m.Type, m.Value, m.Size = Error, nil, 0
	m.Text = make([]byte, MaxErrorText)
	if _, err := m.Append(nil); err != nil {
		t.Fatal(err)
	}
}

// FuzzProof drives the trailer's parse and its verification with arbitrary
// datagrams: neither may panic, and a proof that verifies must be the
// golden one for the golden header (the signature binds the network, the
// transaction ID, the sender and the type: change any, and it fails).
func FuzzProof(f *testing.F) {
	gold, want := goldenProof(f)
	wantProof := bytes.Clone(want.Proof)
	f.Add(gold)
	for _, i := range []int{2, 5, 9, 16, 40, len(gold) - 1, len(gold) - ProofLen} {
		b := bytes.Clone(gold)
		b[i] ^= 1
		f.Add(b)
	}
	f.Add(gold[:len(gold)-1])
	f.Add(append(bytes.Clone(gold), 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := Decode(data, &m); err != nil || m.Flags&FlagProof == 0 {
			return
		}
		if len(m.Proof) != ProofLen {
			t.Fatalf("FlagProof message decoded with a %d-byte proof", len(m.Proof))
		}
		if _, err := ident.Check(m.Proof, m.Network, m.TxID, m.Sender, uint8(m.Type), 0); err != nil {
			return
		}
		if m.Network != want.Network || m.TxID != want.TxID || m.Sender != want.Sender || m.Type != want.Type || !bytes.Equal(m.Proof, wantProof) {
			t.Fatalf("a proof verified for another header: %s", describe(&m))
		}
	})
}

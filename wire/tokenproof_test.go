package wire

import (
	"bytes"
	"testing"

	"github.com/dhtkit/dht/ident"
)

// An answer may carry a fresh token and an identity proof at once: the
// token right after the body, the proof as the datagram's last ProofLen
// bytes. Both decode, the proof still verifies, and a parser that knows
// neither flag reads the body as before.
func TestTokenAndProofTogether(t *testing.T) {
	_, m := goldenProof(t)
	m.Flags |= FlagToken
	m.Token = Token{1, 2, 3, 4, 5, 6, 7, 8}
	proof := bytes.Clone(m.Proof)
	m.Proof = proof
	b, err := m.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[len(b)-ProofLen:], proof) {
		t.Fatal("the proof is not the datagram's last bytes")
	}
	var d Message
	if err := Decode(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.Token != m.Token || !bytes.Equal(d.Proof, proof) || d.Observed != m.Observed {
		t.Fatalf("decoded token %x, proof %x, observed %v; sent %x, %x, %v", d.Token, d.Proof, d.Observed, m.Token, proof, m.Observed)
	}
	if _, err := ident.Check(d.Proof, d.Network, d.TxID, d.Sender, uint8(d.Type), 0); err != nil {
		t.Fatalf("the proof beside a token: %v", err)
	}
	old := bytes.Clone(b)
	old[3] &^= byte(FlagProof | FlagToken)
	var o Message
	if err := Decode(old, &o); err != nil || o.Observed != m.Observed {
		t.Fatalf("an older parser: %v, observed %v", err, o.Observed)
	}
}

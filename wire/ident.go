package wire

// Node identity (docs/protocol.md, "Node identity"): a requester that has
// not verified who answers at an address sets FlagProve; the responder
// answers with FlagProof and ends its response with a proof trailer, its
// ed25519 public key and its signature of the request's transaction ID
// (package ident builds and checks both). The trailer is the last ProofLen
// bytes of the datagram, after the body, so a node that predates it reads
// the body as before and ignores the rest.
const (
	// FlagProve marks a request whose sender wants an identity proof in
	// the answer.
	FlagProve Flags = 1 << 1
	// FlagProof marks a message whose last ProofLen bytes are a proof
	// trailer.
	FlagProof Flags = 1 << 2

	// ProofLen is the size of a proof trailer: a 32-byte public key and a
	// 64-byte signature.
	ProofLen = 96
	// ProvePad is how many zero bytes more than it otherwise would a
	// request with FlagProve carries after its body: three times it (the
	// amplification factor) pays for the trailer of the answer, so that
	// the proof takes nothing from the answer's own budget.
	ProvePad = (ProofLen + AmplificationFactor - 1) / AmplificationFactor
)

// CodeIdentity refuses a request for identity reasons: the sender is not
// one the node accepts without a proof it cannot give, or its proof was
// wrong.
const CodeIdentity ErrorCode = 13

// splitProof separates a FlagProof message's trailer from the rest of b.
func splitProof(b []byte, m *Message) ([]byte, error) {
	m.Proof = nil
	if m.Flags&FlagProof == 0 {
		return b, nil
	}
	if len(b) < HeaderLen+ProofLen {
		return b, ErrTruncated
	}
	cut := len(b) - ProofLen
	m.Proof = b[cut:len(b):len(b)]
	return b[:cut:cut], nil
}

// appendProof writes m's trailer when FlagProof is set: exactly ProofLen
// bytes, or the message does not encode.
func appendProof(b []byte, m *Message) ([]byte, error) {
	if m.Flags&FlagProof == 0 {
		return b, nil
	}
	if len(m.Proof) != ProofLen {
		return b, ErrInvalid
	}
	return append(b, m.Proof...), nil
}

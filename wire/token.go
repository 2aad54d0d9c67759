package wire

import "time"

// Write tokens (docs/protocol.md, "Write tokens"). A storing node hands a
// requester a token bound to the requester's address; the writes (STORE,
// PUT, DELETE, LISTEN) carry it back, which proves that the writer receives
// at the address it writes from. The header flag TOKEN says where one is:
//
//   - in a write request, the token follows the body (a PUT then always
//     carries its flags byte, so that the token's place is fixed);
//   - in any response, the token follows the body;
//   - every request with TOKEN, a write included, asks for a fresh token in
//     its answer; other requests carry none.
const (
	// FlagToken is header bit 3.
	FlagToken Flags = 1 << 3
	// TokenLen is the size of a token on the wire.
	TokenLen = 8
	// TokenRotation is how often a node changes the secret its tokens are
	// made with. It accepts tokens of the current and the previous
	// secret, so a token is good for at least TokenRotation after it was
	// handed out and at most twice that.
	TokenRotation = 10 * time.Minute
)

// CodeToken refuses a write without a valid token. The ERROR carries a
// fresh token for the requester's address (flag TOKEN), with which the
// requester may send the write again once.
const CodeToken ErrorCode = 14

// Token is a write token, opaque to everyone but the node that made it.
type Token [TokenLen]byte

// CarriesToken reports whether a message of type t with flag TOKEN has a
// token after its body: every response, and the write requests.
func CarriesToken(t Type) bool {
	return !t.IsRequest() || IsWrite(t)
}

// IsWrite reports whether t is a request that needs a token at a node that
// requires them: the requests that change what a node holds or whom it
// notifies.
func IsWrite(t Type) bool {
	switch t {
	case Store, Put, Delete, Listen:
		return true
	}
	return false
}

// appendToken writes m's token after its body when m carries one.
func appendToken(b []byte, m *Message) []byte {
	if m.Flags&FlagToken != 0 && CarriesToken(m.Type) {
		b = append(b, m.Token[:]...)
	}
	return b
}

// token reads the token after a body, when m carries one: a message whose
// flag says so and that ends early is truncated, hence malformed.
func (r *reader) token(m *Message) {
	if m.Flags&FlagToken == 0 || !CarriesToken(m.Type) || !r.need(TokenLen) {
		return
	}
	copy(m.Token[:], r.b[r.off:r.off+TokenLen])
	r.off += TokenLen
}

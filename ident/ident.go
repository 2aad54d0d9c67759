// Package ident binds a node's ID to an ed25519 key pair, as
// docs/protocol.md ("Node identity") specifies: the ID is SHA-1 of the public
// key, a network may require a proof of work on top (S/Kademlia's static
// puzzle), and a node proves it holds the key by signing a fresh challenge,
// the transaction ID of a request it answers.
//
// Everything here is a pure function of its arguments, safe for concurrent
// use; no input makes it panic.
package ident

import (
	"crypto/ed25519"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"

	"github.com/dhtkit/dht/id"
)

// Sizes of a proof: the responder's public key, then its signature.
const (
	PublicKeyLen = ed25519.PublicKeySize // 32
	SignatureLen = ed25519.SignatureSize // 64
	ProofLen     = PublicKeyLen + SignatureLen
)

// MaxDifficulty bounds a network's difficulty: each bit doubles the
// expected cost of a new ID (2^d key generations), and 2^32 of them take
// hours of a core, more than any node should pay to start.
const MaxDifficulty = 32

// Domain starts every signed buffer, so that a proof can never be taken for
// a signature of anything else made with the same key (a record's, say).
const Domain = "dhtkit node identity v1\x00"

// SignedLen is the length of the buffer a proof signs.
const SignedLen = len(Domain) + 4 + 8 + id.Len + 1

// Errors of Check. Each names the rule the proof breaks.
var (
	ErrProofLength = errors.New("ident: a proof is 96 bytes")
	ErrKeyMismatch = errors.New("ident: the sender ID is not SHA-1 of the public key")
	ErrDifficulty  = errors.New("ident: the ID does not meet the network's difficulty")
	ErrSignature   = errors.New("ident: bad signature")
)

// Derive returns the ID that the public key pub owns: SHA-1(pub).
func Derive(pub ed25519.PublicKey) id.ID { return id.ID(sha1.Sum(pub)) }

// Work returns the number of leading zero bits of SHA-1(x): the proof of
// work that ID x carries.
func Work(x id.ID) int {
	h := sha1.Sum(x[:])
	n := 0
	for _, b := range h {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// Meets reports whether x carries at least d bits of work. Every ID meets
// difficulty 0 (or less).
func Meets(x id.ID, d int) bool { return d <= 0 || Work(x) >= d }

// CheckDifficulty rejects a difficulty outside [0, MaxDifficulty].
func CheckDifficulty(d int) error {
	if d < 0 || d > MaxDifficulty {
		return fmt.Errorf("ident: difficulty %d: must be between 0 and %d bits", d, MaxDifficulty)
	}
	return nil
}

// Generate returns a key pair whose ID meets difficulty d, drawing each
// candidate's 32-byte seed with seed (crypto/rand's Read for real nodes; a
// seeded stream in tests and simulations, which makes the key
// reproducible). It tries 2^d seeds on average, and reports how many.
func Generate(seed func([]byte) error, d int) (ed25519.PrivateKey, int, error) {
	if err := CheckDifficulty(d); err != nil {
		return nil, 0, err
	}
	var s [ed25519.SeedSize]byte
	for tries := 1; ; tries++ {
		if err := seed(s[:]); err != nil {
			return nil, tries, fmt.Errorf("ident: drawing a key seed: %w", err)
		}
		priv := ed25519.NewKeyFromSeed(s[:])
		if Meets(Derive(priv.Public().(ed25519.PublicKey)), d) {
			return priv, tries, nil
		}
	}
}

// ID returns the ID that priv's public key owns.
func ID(priv ed25519.PrivateKey) id.ID {
	return Derive(priv.Public().(ed25519.PublicKey))
}

// Signed appends to b the buffer a proof signs: Domain, then the network
// ID (4 bytes, big-endian), the request's transaction ID (8), the
// responder's ID (20) and the response's type byte (1).
func Signed(b []byte, network uint32, txid uint64, responder id.ID, typ uint8) []byte {
	b = append(b, Domain...)
	b = binary.BigEndian.AppendUint32(b, network)
	b = binary.BigEndian.AppendUint64(b, txid)
	b = append(b, responder[:]...)
	return append(b, typ)
}

// Prove writes into dst the proof that priv's owner answers request txid
// with a response of type typ: its public key and its signature of Signed.
// responder is priv's ID (the caller has it already; recomputing it would
// cost a hash per answer).
func Prove(dst *[ProofLen]byte, priv ed25519.PrivateKey, network uint32, txid uint64, responder id.ID, typ uint8) {
	var buf [SignedLen]byte
	msg := Signed(buf[:0], network, txid, responder, typ)
	copy(dst[:PublicKeyLen], priv[ed25519.SeedSize:]) // a private key's second half is its public key
	copy(dst[PublicKeyLen:], ed25519.Sign(priv, msg))
}

// Check verifies proof, the trailer of a response of type typ to request
// txid sent by responder on network: the key must own responder's ID, the
// ID must meet difficulty d, and the signature must check. It returns the
// public key. The cheap checks go first, so a proof for the wrong ID costs
// a hash, not a signature verification.
func Check(proof []byte, network uint32, txid uint64, responder id.ID, typ uint8, d int) (pub [PublicKeyLen]byte, err error) {
	if len(proof) != ProofLen {
		return pub, ErrProofLength
	}
	copy(pub[:], proof[:PublicKeyLen])
	if Derive(pub[:]) != responder {
		return pub, ErrKeyMismatch
	}
	if !Meets(responder, d) {
		return pub, ErrDifficulty
	}
	var buf [SignedLen]byte
	if !ed25519.Verify(pub[:], Signed(buf[:0], network, txid, responder, typ), proof[PublicKeyLen:]) {
		return pub, ErrSignature
	}
	return pub, nil
}

// Package sealed makes a private network: it wraps a transport.Transport so
// that every datagram leaves authenticated and encrypted under a key shared
// by the network's members, and every datagram that arrives without a valid
// tag, from another network, too old or seen before is dropped and counted
// before the node parses a byte of it.
//
// The format (docs/protocol.md, "Private networks") is a cleartext prefix
// of 8 bytes (magic 0xD7, version 1, marker 0xFF, suite 1, network ID), a
// 24-byte nonce and the XChaCha20-Poly1305 ciphertext of the whole plain
// datagram with its 16-byte tag; the prefix is the AEAD's additional data.
// The key is HKDF-SHA256 of the secret, bound to the network ID. The nonce
// starts with the sender's counter (its clock in nanoseconds, strictly
// increasing), then the sender's instance (8 random bytes drawn at start; a
// Transport has two, see Send), then 8 fresh random bytes. A receiver takes a counter only within a freshness
// window around its own clock and only once per instance (see Replay).
//
// Sealing and opening allocate nothing per datagram: the wrapper reuses
// pooled buffers, and batched reads and writes stay batched.
package sealed

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// Sizes of the sealed format.
const (
	PrefixSize = 8  // magic, version, marker, suite, network ID: the additional data
	NonceSize  = 24 // counter u64, instance u64, random u64
	TagSize    = 16 // Poly1305
	// Overhead is what sealing adds to a plain datagram: 48 bytes, so the
	// largest sealed datagram a node sends is 1448 bytes.
	Overhead = PrefixSize + NonceSize + TagSize
	// HeaderSize is where the ciphertext starts.
	HeaderSize = PrefixSize + NonceSize
)

// Header bytes of a sealed datagram.
const (
	Magic   = 0xD7 // as in every plain datagram
	Version = 0x01 // the protocol version, as in every plain datagram
	// Marker sits where a plain datagram has its type. It is a response
	// type (high bit set) that no message will ever take, so a node outside
	// the private network drops a sealed datagram as a response of an
	// unknown type, without answering.
	Marker = 0xFF
	// Suite names the AEAD and key derivation: 1 is XChaCha20-Poly1305
	// with HKDF-SHA256. Receivers drop other suites as malformed.
	Suite = 0x01
)

// MinSecret is the shortest secret accepted: 16 bytes (128 bits).
const MinSecret = 16

// kdfSalt and kdfInfo fix the key derivation: key = HKDF-SHA256(secret,
// salt, info || network ID as u32), 32 bytes.
const (
	kdfSalt = "dhtkit private network"
	kdfInfo = "dhtkit sealed v1 network "
)

// Reason says why a datagram was dropped; Accepted means it was not.
type Reason uint8

// The reasons, in the order the receiver checks them.
const (
	Accepted     Reason = iota
	Malformed           // shorter than the overhead, or bad magic, version or suite
	Plain               // a plain (unsealed) message: from a node without the secret
	WrongNetwork        // another network's ID in the prefix
	BadTag              // the tag does not verify: another secret, or altered on the way
	Stale               // the counter is outside the freshness window of the receiver's clock
	Replayed            // this instance's counter was seen before, or is older than its window
	numReasons
)

// ReasonNames are the metric labels of the drop reasons, by Reason.
var ReasonNames = [numReasons]string{"", "malformed", "plain", "wrong_network", "bad_tag", "stale", "replay"}

func (r Reason) String() string {
	if r < numReasons && r != Accepted {
		return ReasonNames[r]
	}
	if r == Accepted {
		return "accepted"
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// Key seals and opens the datagrams of one private network. It is safe for
// concurrent use. Make it with NewKey; the zero value is not usable.
type Key struct {
	aead    cipher.AEAD
	network uint32
	prefix  [PrefixSize]byte
}

// ErrShortSecret is returned for a secret under MinSecret bytes.
var ErrShortSecret = errors.New("sealed: the secret is too short")

// DeriveKey returns the 32-byte AEAD key of secret for network.
func DeriveKey(secret []byte, network uint32) ([]byte, error) {
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("%w: %d bytes, want at least %d", ErrShortSecret, len(secret), MinSecret)
	}
	info := binary.BigEndian.AppendUint32([]byte(kdfInfo), network)
	return hkdf.Key(sha256.New, secret, []byte(kdfSalt), string(info), chacha20poly1305.KeySize)
}

// NewKey derives the key of secret (at least MinSecret bytes) for network.
func NewKey(secret []byte, network uint32) (*Key, error) {
	k, err := DeriveKey(secret, network)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(k)
	if err != nil {
		return nil, fmt.Errorf("sealed: %w", err)
	}
	key := &Key{aead: aead, network: network}
	key.prefix = [PrefixSize]byte{Magic, Version, Marker, Suite}
	binary.BigEndian.PutUint32(key.prefix[4:], network)
	return key, nil
}

// Network returns the network ID the key is bound to.
func (k *Key) Network() uint32 { return k.network }

// Seal appends the sealed form of plain under nonce to dst and returns the
// result, len(plain)+Overhead bytes longer. A nonce must never be used twice
// with one key: Transport builds them so.
func (k *Key) Seal(dst []byte, nonce *[NonceSize]byte, plain []byte) []byte {
	dst = append(dst, k.prefix[:]...)
	dst = append(dst, nonce[:]...)
	ad := dst[len(dst)-HeaderSize : len(dst)-NonceSize]
	return k.aead.Seal(dst, nonce[:], plain, ad)
}

// Open checks sealed and, if its tag verifies, appends the plain datagram
// to dst. It returns the result, the nonce's counter and instance, and
// Accepted; or dst unchanged and why it refused. It checks only the format
// and the tag: freshness and replay are Replay's. Open never panics,
// whatever the input.
func (k *Key) Open(dst, sealed []byte) (out []byte, counter, instance uint64, r Reason) {
	if len(sealed) < 3 || sealed[0] != Magic || sealed[1] != Version {
		return dst, 0, 0, Malformed
	}
	if sealed[2] != Marker {
		return dst, 0, 0, Plain
	}
	if len(sealed) < Overhead || sealed[3] != Suite {
		return dst, 0, 0, Malformed
	}
	if binary.BigEndian.Uint32(sealed[4:8]) != k.network {
		return dst, 0, 0, WrongNetwork
	}
	nonce := sealed[PrefixSize:HeaderSize]
	out, err := k.aead.Open(dst, nonce, sealed[HeaderSize:], sealed[:PrefixSize])
	if err != nil {
		return dst, 0, 0, BadTag
	}
	return out, binary.BigEndian.Uint64(nonce[0:8]), binary.BigEndian.Uint64(nonce[8:16]), Accepted
}

// Package record defines the record kinds of the DHT: immutable
// (content-addressed), signed (ed25519, mutable by sequence) and typed
// (signed JSON documents checked against a registered type's rules).
//
// A kind lives inside a record's value bytes as an "envelope", flagged by
// one bit on the wire and in the store; the record itself is still (key,
// publisher, version, expiry, tombstone, data). Storing nodes call
// Policy.Check on every enveloped record they are asked to store, readers
// call Policy.Verify on every one they receive. docs/protocol.md ("Record
// kinds") specifies the bytes and docs/records.md the built-in types.
//
// Everything here is a pure function of its arguments: no I/O, no clock.
package record

import (
	"crypto/ed25519"
	"crypto/sha1"
	"encoding/binary"
	"unicode/utf8"

	"github.com/dhtkit/dht/id"
)

// Kind is what an envelope's first byte says the record is.
type Kind uint8

// The kinds. Plain is a record without an envelope; it never appears in an
// envelope's first byte.
const (
	Plain     Kind = 0
	Immutable Kind = 1
	Signed    Kind = 2
	Typed     Kind = 3
)

// String names the kind in lower case, as errors and logs show it.
func (k Kind) String() string {
	switch k {
	case Plain:
		return "plain"
	case Immutable:
		return "immutable"
	case Signed:
		return "signed"
	case Typed:
		return "typed"
	}
	return "invalid"
}

// Sizes of the envelope format.
const (
	// MaxSize is the largest envelope, the largest value a record carries
	// (1 MiB, the wire's cap on a value's size).
	MaxSize = 1 << 20
	// MaxSalt is the longest salt of a signed record (BEP 44's bound).
	MaxSalt = 64
	// MaxName is the longest name of a typed record, in bytes.
	MaxName = 255
	// headerSize is a signed or typed envelope's fixed part: kind, flags,
	// public key, signature and the salt/name length byte.
	headerSize = 1 + 1 + ed25519.PublicKeySize + ed25519.SignatureSize + 1
)

// flagCAS is the envelope flag saying a cas u64 follows the salt or name.
const flagCAS = 0x01

// Envelope is a decoded record envelope. Parse fills it without copying:
// Salt and Value alias the parsed bytes, so they are valid only as long as
// those are not modified. The zero value is an invalid envelope (kind Plain).
type Envelope struct {
	Kind      Kind
	PublicKey [32]byte // Signed, Typed: the signer's ed25519 public key
	Signature [64]byte // Signed, Typed: ed25519 over SignatureBuffer
	Salt      []byte   // Signed: the salt (may be empty); Typed: the name's bytes
	CAS       uint64   // with HasCAS: the sequence the publisher expects the node to hold
	HasCAS    bool
	Value     []byte // Immutable: at least 1 byte; Signed, Typed: empty = withdrawal
}

// Pre-built parse errors, so that Parse never allocates, even when it fails.
// They are shared: callers must not modify them.
var (
	errEmpty     = newErr(Invalid, "kind", "the envelope is empty")
	errTooLarge  = newErr(Invalid, "envelope", "the envelope is over 1 MiB")
	errKind      = newErr(Invalid, "kind", "unknown record kind (want 1 immutable, 2 signed or 3 typed)")
	errImmEmpty  = newErr(Invalid, "value", "an immutable record's value is empty")
	errShort     = newErr(Invalid, "envelope", "the envelope is shorter than its header")
	errFlags     = newErr(Invalid, "flags", "unknown envelope flag bits are set")
	errSaltLong  = newErr(Invalid, "salt", "the salt is over 64 bytes")
	errSaltShort = newErr(Invalid, "salt", "the envelope ends inside the salt or name")
	errNameEmpty = newErr(Invalid, "name", "a typed record's name is empty")
	errNameUTF8  = newErr(Invalid, "name", "a typed record's name is not UTF-8")
	errCASShort  = newErr(Invalid, "cas", "the envelope ends inside the cas field")
)

// Parse decodes an envelope. It checks the structure only (kind, flags,
// lengths, the name's UTF-8), not the signature or the bindings to a key:
// Policy.Check and Policy.Verify do that. It never allocates, on success or
// failure, and never panics; its errors are *Error with Reason Invalid.
func Parse(data []byte) (Envelope, error) {
	var e Envelope
	if len(data) == 0 {
		return e, errEmpty
	}
	if len(data) > MaxSize {
		return e, errTooLarge
	}
	switch Kind(data[0]) {
	case Immutable:
		if len(data) < 2 {
			return e, errImmEmpty
		}
		e.Kind = Immutable
		e.Value = data[1:]
		return e, nil
	case Signed, Typed:
	default:
		return e, errKind
	}
	if len(data) < headerSize {
		return e, errShort
	}
	kind := Kind(data[0])
	flags := data[1]
	if flags&^flagCAS != 0 {
		return e, errFlags
	}
	copy(e.PublicKey[:], data[2:34])
	copy(e.Signature[:], data[34:98])
	n := int(data[98])
	rest := data[headerSize:]
	if kind == Signed && n > MaxSalt {
		return e, errSaltLong
	}
	if n > len(rest) {
		return e, errSaltShort
	}
	salt := rest[:n:n]
	rest = rest[n:]
	if kind == Typed {
		if n == 0 {
			return e, errNameEmpty
		}
		if !utf8.Valid(salt) {
			return e, errNameUTF8
		}
	}
	if flags&flagCAS != 0 {
		if len(rest) < 8 {
			return e, errCASShort
		}
		e.CAS = binary.BigEndian.Uint64(rest)
		e.HasCAS = true
		rest = rest[8:]
	}
	e.Kind = kind
	e.Salt = salt
	e.Value = rest
	return e, nil
}

// Append appends the envelope's bytes to dst and returns the result. For an
// envelope Parse accepted, Append reproduces the parsed bytes exactly. It
// encodes what it is given: an Envelope built by hand that breaks a rule
// (a salt over 64 bytes, say) encodes to bytes Parse refuses.
func (e *Envelope) Append(dst []byte) []byte {
	if e.Kind == Immutable {
		dst = append(dst, byte(Immutable))
		return append(dst, e.Value...)
	}
	var flags byte
	if e.HasCAS {
		flags |= flagCAS
	}
	dst = append(dst, byte(e.Kind), flags)
	dst = append(dst, e.PublicKey[:]...)
	dst = append(dst, e.Signature[:]...)
	dst = append(dst, byte(len(e.Salt)))
	dst = append(dst, e.Salt...)
	if e.HasCAS {
		dst = binary.BigEndian.AppendUint64(dst, e.CAS)
	}
	return append(dst, e.Value...)
}

// Size is the length of the envelope's encoding, what Append adds.
func (e *Envelope) Size() int {
	if e.Kind == Immutable {
		return 1 + len(e.Value)
	}
	n := headerSize + len(e.Salt) + len(e.Value)
	if e.HasCAS {
		n += 8
	}
	return n
}

// Withdrawn reports whether the envelope is a signed withdrawal: a signed
// or typed record with an empty value, which readers treat as a tombstone.
func (e *Envelope) Withdrawn() bool {
	return (e.Kind == Signed || e.Kind == Typed) && len(e.Value) == 0
}

// Name returns a typed record's name (its Salt as a string), "" for other kinds.
func (e *Envelope) Name() string {
	if e.Kind != Typed {
		return ""
	}
	return string(e.Salt)
}

// PublisherOf is the publisher ID of every signed or typed record signed
// with pub: SHA-1 of the 32-byte public key.
func PublisherOf(pub ed25519.PublicKey) id.ID {
	return id.ID(sha1.Sum(pub))
}

// MutableKey is the key of a signed record: SHA-1(public key || salt), the
// BEP 44 target of a mutable item.
func MutableKey(pub ed25519.PublicKey, salt []byte) id.ID {
	if len(pub) == ed25519.PublicKeySize && len(salt) <= MaxSalt {
		// The common case hashes from the stack, without allocating.
		var buf [ed25519.PublicKeySize + MaxSalt]byte
		n := copy(buf[:], pub)
		n += copy(buf[n:], salt)
		return id.ID(sha1.Sum(buf[:n]))
	}
	h := sha1.New()
	h.Write(pub)
	h.Write(salt)
	var k id.ID
	h.Sum(k[:0])
	return k
}

// ImmutableKey is the key (and publisher) of an immutable record: SHA-1 of
// its value.
func ImmutableKey(value []byte) id.ID {
	return id.ID(sha1.Sum(value))
}

// TypedKey is the key of a typed record named name: SHA-1(name), the same
// as id.Key(name), so that a typed record lives where the name says.
func TypedKey(name string) id.ID {
	return id.Key(name)
}

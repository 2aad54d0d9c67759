package record

import (
	"crypto/ed25519"
	"errors"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/dhtkit/dht/id"
)

// typedPrefix starts a typed record's signature buffer, so that a typed
// record's signature can never be replayed as a signed record's (or a
// Mainline mutable item's), nor the other way round.
const typedPrefix = "dhtkit-typed\x00"

// AppendSignatureBuffer appends the bytes a signed or typed record's
// ed25519 signature covers. For Signed they are BEP 44's, so that a
// Mainline mutable item with a string value maps 1:1:
//
//	[4:salt<len>:<salt>] 3:seqi<seq>e 1:v<len>:<value>
//
// (the salt part only for a non-empty salt; numbers in decimal ASCII). For
// Typed they are "dhtkit-typed\x00" then the same with salt = the name.
func AppendSignatureBuffer(dst []byte, kind Kind, salt []byte, seq uint64, value []byte) []byte {
	if kind == Typed {
		dst = append(dst, typedPrefix...)
	}
	if len(salt) > 0 {
		dst = append(dst, "4:salt"...)
		dst = strconv.AppendInt(dst, int64(len(salt)), 10)
		dst = append(dst, ':')
		dst = append(dst, salt...)
	}
	dst = append(dst, "3:seqi"...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, "e1:v"...)
	dst = strconv.AppendInt(dst, int64(len(value)), 10)
	dst = append(dst, ':')
	return append(dst, value...)
}

// sigBufs recycles signature buffers, so that checking a record of a few
// kilobytes does not allocate; buffers over poolMax are left to the GC,
// so that one large record does not pin a megabyte per pooled buffer.
var sigBufs = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

const poolMax = 64 << 10

// verifySignature checks e's signature for sequence seq.
func verifySignature(e *Envelope, seq uint64) bool {
	bp := sigBufs.Get().(*[]byte)
	buf := AppendSignatureBuffer((*bp)[:0], e.Kind, e.Salt, seq, e.Value)
	ok := ed25519.Verify(e.PublicKey[:], buf, e.Signature[:])
	if cap(buf) <= poolMax {
		*bp = buf[:0]
		sigBufs.Put(bp)
	}
	return ok
}

var errPrivateKey = errors.New("record: the private key is not an ed25519 private key of 64 bytes")

// NewImmutable builds an immutable record of value: its key (also its
// publisher; its version is 0) and its envelope bytes. value must not be
// empty (Policy.Check refuses an empty immutable record).
func NewImmutable(value []byte) (key id.ID, data []byte) {
	data = make([]byte, 0, 1+len(value))
	data = append(data, byte(Immutable))
	data = append(data, value...)
	return ImmutableKey(value), data
}

// NewSigned builds a signed record of value under salt at sequence seq (its
// version): its key, SHA-1(public key || salt), its publisher, SHA-1(public
// key), and its envelope bytes. An empty value is a withdrawal. The salt is
// at most 64 bytes, the envelope at most MaxSize.
func NewSigned(priv ed25519.PrivateKey, salt []byte, seq uint64, value []byte) (key, publisher id.ID, data []byte, err error) {
	if len(salt) > MaxSalt {
		return key, publisher, nil, newErr(Invalid, "salt", "the salt has "+strconv.Itoa(len(salt))+" bytes, over 64")
	}
	e, err := sign(priv, Signed, salt, seq, value)
	if err != nil {
		return key, publisher, nil, err
	}
	return MutableKey(e.PublicKey[:], salt), PublisherOf(e.PublicKey[:]), e.Append(make([]byte, 0, e.Size())), nil
}

// NewTyped builds a typed record named name at sequence seq from doc, a
// JSON document whose "type" names a registered type (an empty doc is a
// withdrawal): its key, SHA-1(name), its publisher and its envelope bytes.
// NewTyped does not check doc against a type; Registry.CheckDocument does.
func NewTyped(priv ed25519.PrivateKey, name string, seq uint64, doc []byte) (key, publisher id.ID, data []byte, err error) {
	if len(name) == 0 || len(name) > MaxName {
		return key, publisher, nil, newErr(Invalid, "name", "the name has "+strconv.Itoa(len(name))+" bytes, want 1 to 255")
	}
	if !utf8.ValidString(name) {
		return key, publisher, nil, newErr(Invalid, "name", "the name is not UTF-8")
	}
	e, err := sign(priv, Typed, []byte(name), seq, doc)
	if err != nil {
		return key, publisher, nil, err
	}
	return TypedKey(name), PublisherOf(e.PublicKey[:]), e.Append(make([]byte, 0, e.Size())), nil
}

func sign(priv ed25519.PrivateKey, kind Kind, salt []byte, seq uint64, value []byte) (Envelope, error) {
	var e Envelope
	if len(priv) != ed25519.PrivateKeySize {
		return e, errPrivateKey
	}
	e.Kind = kind
	e.Salt = salt
	e.Value = value
	copy(e.PublicKey[:], priv.Public().(ed25519.PublicKey))
	if e.Size() > MaxSize {
		return e, newErr(Invalid, "value", "the envelope would have "+strconv.Itoa(e.Size())+" bytes, over 1 MiB")
	}
	copy(e.Signature[:], ed25519.Sign(priv, AppendSignatureBuffer(nil, kind, salt, seq, value)))
	return e, nil
}

// WithCAS returns a copy of a signed or typed envelope with compare-and-swap
// set: "store this only if you hold my record at sequence cas" (cas 0: only
// if you hold none of mine). CAS is not signed; the storing node removes it.
func WithCAS(data []byte, cas uint64) ([]byte, error) {
	e, err := Parse(data)
	if err != nil {
		return nil, err
	}
	if e.Kind != Signed && e.Kind != Typed {
		return nil, newErr(Invalid, "cas", "only signed and typed records take a cas")
	}
	e.CAS, e.HasCAS = cas, true
	if e.Size() > MaxSize {
		return nil, errTooLarge
	}
	return e.Append(make([]byte, 0, e.Size())), nil
}

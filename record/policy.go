package record

import (
	"bytes"
	"crypto/sha1"
	"strconv"
	"time"

	"github.com/dhtkit/dht/id"
)

// Held is the record of the same publisher a storing node holds under the
// key (unexpired), passed to Check so that it can judge compare-and-swap
// and a typed record's revision rule. Data aliases the store's bytes and is
// only read.
type Held struct {
	Version  uint64
	Envelope bool
	Data     []byte
}

// Verdict is what Check decided a node should store.
type Verdict struct {
	Kind Kind
	// Data is what to store: the checked bytes, with the CAS flag and
	// field removed (a copy then), so that replicas never carry it.
	Data []byte
	// MinTTL and MaxTTL are the kind's or type's bounds on the record's
	// life; 0 means the node's own. A node clamps the asked ttl into its
	// own bounds and then into these.
	MinTTL, MaxTTL time.Duration
}

// Policy is what a node accepts. The zero value accepts plain records and
// the built-in types. A Policy is read-only once in use, and then safe for
// concurrent use (its Registry locks itself).
type Policy struct {
	// RefusePlain makes Check refuse records without an envelope (Reason
	// Refused), for a network that stores only signed or immutable ones.
	RefusePlain bool
	// Types are the typed-record types the node accepts; nil is Builtin().
	Types *Registry
}

func (p *Policy) types() *Registry {
	if p == nil || p.Types == nil {
		return builtin()
	}
	return p.Types
}

// Check is a storing node's decision on a complete record it is asked to
// store (a PUT, a replica). envelope says whether data is an envelope (the
// wire's ENVELOPE flag); held is the record of the same publisher the node
// holds under key, or nil.
//
// Check judges the record itself: its structure, the binding of key,
// publisher and version to the envelope, the signature, a typed record's
// type rules, compare-and-swap against held, and the revision rule against
// a held typed record. It does not apply the ordering rule (which version
// wins): the store does, after Check, so that a record Check accepts may
// still be refused as stale. Its errors are *Error.
func (p *Policy) Check(key, publisher id.ID, version uint64, envelope bool, data []byte, held *Held) (Verdict, error) {
	if !envelope {
		if p != nil && p.RefusePlain {
			return Verdict{}, newErr(Refused, "envelope", "this network stores only enveloped (immutable, signed or typed) records")
		}
		return Verdict{Kind: Plain, Data: data}, nil
	}
	e, err := Parse(data)
	if err != nil {
		return Verdict{}, err
	}
	reg := p.types()
	t, doc, err := reg.verify(key, publisher, version, &e)
	if err != nil {
		return Verdict{}, err
	}
	v := Verdict{Kind: e.Kind, Data: data}
	if t != nil {
		v.MinTTL, v.MaxTTL = t.MinTTL, t.MaxTTL
	}
	if e.HasCAS {
		if err := checkCAS(e.CAS, held); err != nil {
			return Verdict{}, err
		}
		e.HasCAS, e.CAS = false, 0
		v.Data = e.Append(make([]byte, 0, e.Size()))
	}
	if t != nil && t.Revision && held != nil && held.Envelope && version > held.Version {
		if err := checkRevision(&e, doc, held); err != nil {
			return Verdict{}, err
		}
	}
	return v, nil
}

// checkCAS compares the publisher's expected sequence with the held record.
// A held plain record counts as none: an enveloped record replaces it
// whatever its version, so a plain record naming the same publisher ID
// cannot make an owner's "cas 0" fail.
func checkCAS(cas uint64, held *Held) error {
	if held == nil || !held.Envelope {
		if cas == 0 {
			return nil
		}
		return newErr(Conflict, "cas", "expected sequence "+strconv.FormatUint(cas, 10)+", but no record of this publisher is held")
	}
	if cas == 0 {
		return newErr(Conflict, "cas", "expected no record, but sequence "+strconv.FormatUint(held.Version, 10)+" is held")
	}
	if held.Version != cas {
		return newErr(Conflict, "cas", "expected sequence "+strconv.FormatUint(cas, 10)+", but "+strconv.FormatUint(held.Version, 10)+" is held")
	}
	return nil
}

// checkRevision applies a type's revision rule: the new document's
// "revision" must not be lower than the held one's, when the held record is
// a live typed record of the same owner (public key) and name. A held record
// that does not parse, or has no revision, constrains nothing: it was
// checked when stored, and a node must not refuse an owner's repair.
func checkRevision(e *Envelope, doc *Document, held *Held) error {
	if doc == nil {
		return nil // a withdrawal is always allowed
	}
	h, err := Parse(held.Data)
	if err != nil || h.Kind != Typed || h.Withdrawn() || h.PublicKey != e.PublicKey || !bytes.Equal(h.Salt, e.Salt) {
		return nil
	}
	hdoc, err := parseDocument(h.Value, MaxSize)
	if err != nil {
		return nil
	}
	old, ok1 := hdoc.Uint("revision")
	cur, ok2 := doc.Uint("revision")
	if ok1 && ok2 && cur < old {
		return newErr(Invalid, "revision", "revision "+strconv.FormatUint(cur, 10)+" is lower than the held record's "+strconv.FormatUint(old, 10))
	}
	return nil
}

// Verify is a reader's check of an enveloped record it received: its
// structure, the binding of key, publisher and version, the signature, and
// a typed record's type rules. A received record must not carry CAS (nodes
// remove it). Plain records are not Verify's business: a reader takes them
// or not by its own choice. The returned Envelope aliases data.
func (p *Policy) Verify(key, publisher id.ID, version uint64, data []byte) (Envelope, error) {
	e, err := Parse(data)
	if err != nil {
		return Envelope{}, err
	}
	if e.HasCAS {
		return Envelope{}, newErr(Invalid, "cas", "a stored record carries a cas field; nodes remove it before storing")
	}
	if _, _, err := p.types().verify(key, publisher, version, &e); err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// Pre-built binding errors: forged records are the common refusal, so they
// cost no allocation.
var (
	errImmKey       = newErr(Invalid, "key", "an immutable record's key is not the SHA-1 of its value")
	errImmPublisher = newErr(Invalid, "publisher", "an immutable record's publisher is not its key")
	errImmVersion   = newErr(Invalid, "version", "an immutable record's version is not 0")
	errMutKey       = newErr(Invalid, "key", "a signed record's key is not SHA-1(public key || salt)")
	errTypedKey     = newErr(Invalid, "key", "a typed record's key is not SHA-1(name)")
	errPublisher    = newErr(Invalid, "publisher", "the publisher is not SHA-1(public key)")
	errSignature    = newErr(Invalid, "signature", "the ed25519 signature does not verify for this sequence (version)")
)

// verify checks e's binding to key, publisher and version, its signature and
// (typed, not withdrawn) its document. It returns the type and the parsed
// document of a typed record that is not a withdrawal.
func (r *Registry) verify(key, publisher id.ID, version uint64, e *Envelope) (*Type, *Document, error) {
	switch e.Kind {
	case Immutable:
		if key != ImmutableKey(e.Value) {
			return nil, nil, errImmKey
		}
		if publisher != key {
			return nil, nil, errImmPublisher
		}
		if version != 0 {
			return nil, nil, errImmVersion
		}
		return nil, nil, nil
	case Signed:
		if key != MutableKey(e.PublicKey[:], e.Salt) {
			return nil, nil, errMutKey
		}
	case Typed:
		if key != id.ID(sha1.Sum(e.Salt)) {
			return nil, nil, errTypedKey
		}
	}
	if publisher != PublisherOf(e.PublicKey[:]) {
		return nil, nil, errPublisher
	}
	if !verifySignature(e, version) {
		return nil, nil, errSignature
	}
	if e.Kind != Typed || e.Withdrawn() {
		return nil, nil, nil
	}
	return r.checkTyped(e)
}

package dht

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/record"
	"github.com/dhtkit/dht/wire"
)

// This file is the public face of record kinds (package record, and
// docs/protocol.md "Record kinds"): signed mutable records, content-addressed
// immutable ones, and typed ones. The envelope is built and signed here, on
// the publisher's side; the private key never leaves this process. The
// storing nodes check each envelope by its kind before they store it, and
// readers verify each one before they return it.

// Errors of the record kinds, possibly wrapped: test with errors.Is.
var (
	// ErrConflict: a put with WithCAS found that the nodes hold another
	// sequence than the one expected (ERROR code 12 from every node that
	// answered).
	ErrConflict = errors.New("dht: compare-and-swap conflict")
	// ErrInvalid: the nodes refused the record as breaking its kind's
	// rules (ERROR code 11 from every node that answered); the receipts
	// name the field.
	ErrInvalid = errors.New("dht: record refused as invalid")
)

// WithCAS makes a PutSigned, PutTyped or WithdrawSigned a compare-and-swap:
// each node stores the record only if the sequence of the record of that
// key and owner it holds is seq (0: only if it holds none), and refuses it
// otherwise with a CONFLICT receipt. The put then fails with ErrConflict
// when every node that answered refused it so. The condition is not
// signed: nodes store the record without it, so replicas never carry it.
func WithCAS(seq uint64) PutOption {
	return func(o *putOptions) { o.cas, o.hasCAS = seq, true }
}

// SignedRecord is a signed (mutable) or typed record as a reader found it,
// its signature verified.
type SignedRecord struct {
	// Seq is the record's sequence, its version.
	Seq uint64
	// Value is the signed value (a typed record's JSON document); empty
	// when Withdrawn.
	Value []byte
	// Withdrawn is set when the newest record is the owner's signed
	// withdrawal.
	Withdrawn bool
	// TTL is the longest time a holder of this sequence said it keeps it.
	TTL time.Duration
	// Holders counts the nodes whose records were merged; Incomplete says
	// why the answer may miss a newer sequence, as GetResult's does.
	Holders    int
	Incomplete string
}

// PutSigned stores value as the signed record of priv's public key and salt
// (at most 64 bytes; nil for none), under the key SHA-1(public key || salt)
// (record.MutableKey), as BEP 44's mutable items do. Its sequence is
// WithVersion's, by default the clock in microseconds (always past the last
// one this node handed out), as Put's versions are: a node keeps the highest
// sequence it has seen, and a plain Put or Delete naming the same publisher
// never replaces it. WithCAS makes it a compare-and-swap; WithTTL and
// WithQuorum apply as to Put. WithPublisher, Anonymous and KeepAlive do not
// apply (the publisher is the key's hash) and fail the call.
//
// A node that refuses the record says why in its receipt (a bad
// signature, a stale sequence, a broken rule and its field, a value too
// large, a CAS conflict). When every node that answered refused it, the put
// fails with ErrRejected, wrapped with ErrConflict or ErrInvalid when every
// refusal was of that kind.
func (n *Node) PutSigned(ctx context.Context, priv ed25519.PrivateKey, salt []byte, value []byte, opts ...PutOption) (PutResult, error) {
	o := options(opts)
	if err := o.signedOnly(); err != nil {
		return PutResult{}, err
	}
	seq := n.sequence(o)
	key, pub, data, err := record.NewSigned(priv, salt, seq, value)
	if err != nil {
		return PutResult{}, fmt.Errorf("dht: put signed: %w", err)
	}
	return n.putEnvelope(ctx, key, pub, seq, data, o)
}

// WithdrawSigned withdraws the signed record of priv's public key and salt:
// it stores the owner's signed withdrawal (an empty signed value) at a newer
// sequence, which readers take as a deletion and which only the owner can
// sign. Options are PutSigned's.
func (n *Node) WithdrawSigned(ctx context.Context, priv ed25519.PrivateKey, salt []byte, opts ...PutOption) (PutResult, error) {
	return n.PutSigned(ctx, priv, salt, nil, opts...)
}

// GetMutable returns the newest signed record of pub and salt that the
// nodes asked hold, its signature verified (forged copies are dropped and
// counted in Stats.ForgedRecords). A withdrawn record is returned with
// Withdrawn set. It fails with ErrNotFound when no node holds one.
func (n *Node) GetMutable(ctx context.Context, pub ed25519.PublicKey, salt []byte) (SignedRecord, error) {
	if len(pub) != ed25519.PublicKeySize {
		return SignedRecord{}, fmt.Errorf("dht: get mutable: public key of %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	return n.getSigned(ctx, record.MutableKey(pub, salt), record.PublisherOf(pub), record.Signed)
}

// PutTyped stores doc, a JSON object whose "type" names a type of the
// nodes' registry (record.Builtin by default: identity, address, incoming,
// suppliers, relation, nickname), as the typed record of priv's public key
// under the key Key(name). Storing nodes check the type's rules, and refuse
// a document that breaks one with a receipt naming the field. Options and
// errors are PutSigned's; an empty doc is the owner's withdrawal.
func (n *Node) PutTyped(ctx context.Context, priv ed25519.PrivateKey, name string, doc []byte, opts ...PutOption) (PutResult, error) {
	o := options(opts)
	if err := o.signedOnly(); err != nil {
		return PutResult{}, err
	}
	seq := n.sequence(o)
	key, pub, data, err := record.NewTyped(priv, name, seq, doc)
	if err != nil {
		return PutResult{}, fmt.Errorf("dht: put typed %q: %w", name, err)
	}
	return n.putEnvelope(ctx, key, pub, seq, data, o)
}

// GetTyped returns owner's newest typed record under Key(name), verified as
// GetMutable's is (its signature, and that it was signed for that name).
func (n *Node) GetTyped(ctx context.Context, name string, owner ed25519.PublicKey) (SignedRecord, error) {
	if len(owner) != ed25519.PublicKeySize {
		return SignedRecord{}, fmt.Errorf("dht: get typed: public key of %d bytes, want %d", len(owner), ed25519.PublicKeySize)
	}
	return n.getSigned(ctx, Key(name), record.PublisherOf(owner), record.Typed)
}

// PutImmutable stores value as a content-addressed record under its key,
// SHA-1(value), which it returns: anyone can put the same bytes, and no one
// can put other bytes under that key. WithTTL and WithQuorum apply.
func (n *Node) PutImmutable(ctx context.Context, value []byte, opts ...PutOption) (ID, PutResult, error) {
	o := options(opts)
	if err := o.signedOnly(); err != nil {
		return ID{}, PutResult{}, err
	}
	if o.hasCAS || o.version != 0 {
		return ID{}, PutResult{}, errors.New("dht: put immutable: WithCAS and WithVersion do not apply (its version is 0)")
	}
	key, data := record.NewImmutable(value)
	r, err := n.putEnvelope(ctx, key, key, 0, data, o)
	return key, r, err
}

// GetImmutable returns the value stored under key by PutImmutable, checked
// against the key (a holder cannot serve other bytes). It fails with
// ErrNotFound when no node holds it.
func (n *Node) GetImmutable(ctx context.Context, key ID) ([]byte, error) {
	r, err := n.get(ctx, key)
	if r == nil {
		return nil, fmt.Errorf("dht: get immutable %s: %w", key.Short(), err)
	}
	for _, rec := range r.Records {
		if rec.Publisher != key || !rec.Envelope {
			continue
		}
		if e, perr := record.Parse(rec.Data); perr == nil && e.Kind == record.Immutable {
			return e.Value, nil
		}
	}
	if err == nil {
		err = ErrNotFound
	}
	return nil, fmt.Errorf("dht: get immutable %s: %w", key.Short(), err)
}

// PutEnvelope stores data, an envelope built and signed elsewhere
// (record.NewSigned, NewTyped or NewImmutable, with record.WithCAS for a
// compare-and-swap), as it is, under key at version (the sequence it was
// signed for; 0 for an immutable record). It is how a node stores records
// for a publisher whose private key it never sees, such as `dht put --sign`
// through the HTTP API. The publisher is the envelope's (SHA-1 of its public
// key, or an immutable record's key). Before anything is sent the node runs
// its RecordPolicy.Check on the record (CAS aside, which only the storing
// nodes can judge): a record that would be refused fails at once, wrapped
// with ErrInvalid, its *record.Error naming the field. Options and errors
// are PutSigned's; WithVersion does not apply (version is the signed one).
func (n *Node) PutEnvelope(ctx context.Context, key ID, version uint64, data []byte, opts ...PutOption) (PutResult, error) {
	o := options(opts)
	if err := o.signedOnly(); err != nil {
		return PutResult{}, err
	}
	if o.version != 0 {
		return PutResult{}, errors.New("dht: put envelope: WithVersion does not apply: version is the one the envelope was signed for")
	}
	e, err := record.Parse(data)
	if err != nil {
		return PutResult{}, fmt.Errorf("dht: put envelope %s: %w: %w", key.Short(), ErrInvalid, err)
	}
	pub := key
	if e.Kind != record.Immutable {
		pub = record.PublisherOf(e.PublicKey[:])
	}
	check := data
	if e.HasCAS { // only a storing node knows what it holds
		e.HasCAS, e.CAS = false, 0
		check = e.Append(make([]byte, 0, e.Size()))
	}
	policy := n.c.Config().RecordPolicy
	if _, err := policy.Check(key, pub, version, true, check, nil); err != nil {
		return PutResult{}, fmt.Errorf("dht: put envelope %s: %w: %w", key.Short(), ErrInvalid, err)
	}
	return n.putEnvelope(ctx, key, pub, version, data, o)
}

// signedOnly refuses the options that a record kind decides itself.
func (o *putOptions) signedOnly() error {
	switch {
	case o.keepAlive:
		// A keep-alive is saved as a plain put (KeepAliveStore), and a
		// CAS would fail its own republish.
		return errors.New("dht: KeepAlive does not apply to signed, typed or immutable records")
	case o.anonymous || !o.publisher.IsZero():
		return errors.New("dht: WithPublisher and Anonymous do not apply: the record's kind names its publisher")
	}
	return nil
}

// sequence is a signed put's sequence: WithVersion's, or the next version
// by the library's rule.
func (n *Node) sequence(o putOptions) uint64 {
	if o.version != 0 {
		return o.version
	}
	return n.c.NextVersion()
}

// putEnvelope puts an envelope (the CAS field added when asked) and turns a
// rejection whose refusals are all of one kind into that kind's error.
func (n *Node) putEnvelope(ctx context.Context, key, pub ID, seq uint64, data []byte, o putOptions) (PutResult, error) {
	if o.hasCAS {
		var err error
		if data, err = record.WithCAS(data, o.cas); err != nil {
			return PutResult{}, fmt.Errorf("dht: put %s: %w", key.Short(), err)
		}
	}
	req := core.PutRequest{Key: key, Value: data, TTL: o.ttl, Publisher: pub, Version: seq, Quorum: o.quorum, Envelope: true}
	out, err := n.putRequest(ctx, req)
	if errors.Is(err, ErrRejected) {
		switch allRefused(out) {
		case wire.CodeConflict:
			err = fmt.Errorf("%w: %w", ErrConflict, err)
		case wire.CodeInvalid:
			err = fmt.Errorf("%w: %w", ErrInvalid, err)
		}
	}
	return out, err
}

// allRefused returns the code every refusal among r's receipts carries, or
// 0 when they differ or there are none.
func allRefused(r PutResult) wire.ErrorCode {
	var code wire.ErrorCode
	for _, x := range r.Receipts {
		if x.Outcome != Refused {
			continue
		}
		if code != 0 && x.Code != code {
			return 0
		}
		code = x.Code
	}
	return code
}

// getSigned reads the record of publisher under key and returns it when it
// is a verified envelope of kind k (core verified it; this parses it).
func (n *Node) getSigned(ctx context.Context, key, publisher ID, k record.Kind) (SignedRecord, error) {
	r, err := n.get(ctx, key)
	if r == nil {
		return SignedRecord{}, fmt.Errorf("dht: get %s: %w", key.Short(), err)
	}
	out := SignedRecord{Holders: r.Holders, Incomplete: r.Incomplete}
	for _, set := range [][]core.Record{r.Records, r.Withdrawals} {
		for _, rec := range set {
			if rec.Publisher != publisher || !rec.Envelope {
				continue
			}
			e, perr := record.Parse(rec.Data)
			if perr != nil || e.Kind != k {
				continue
			}
			out.Seq, out.TTL, out.Withdrawn = rec.Version, rec.TTL, e.Withdrawn()
			if !out.Withdrawn {
				out.Value = e.Value
			}
			return out, nil
		}
	}
	if err == nil {
		err = ErrNotFound // values of other publishers only
	}
	return out, fmt.Errorf("dht: get %s: %w", key.Short(), err)
}

// get runs a value lookup and returns its result even when it found no
// value (a withdrawal is not a value), with the lookup's error.
func (n *Node) get(ctx context.Context, key ID) (*core.LookupResult, error) {
	return wait(ctx, func(cb func(*core.LookupResult, error)) func() { return n.c.Get(key, cb) })
}

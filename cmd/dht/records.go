package main

// Record kinds on the command line: dht put/get/del with -sign, -type,
// -immutable and -mutable. The CLI builds and signs each envelope itself,
// with the key file's private key, and checks it as the storing nodes will
// (package record); the node it talks to (a running one through its API, or
// a short-lived one) only stores the bytes (api.PutOptions.Envelope). The
// private key never leaves this process. What a get returns it verifies
// again, so that a node that lies about a record cannot make it print one.

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dhtkit/dht/api"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/record"
)

// Usage texts of the record flags, the same in every command that has them.
const (
	signUsage = "sign the record with the ed25519 key in `KEYFILE` (from dht keygen): put stores a signed record, or with -type a typed one; del withdraws it"
	saltUsage = "the `SALT` of a signed record (at most 64 bytes; default none): one key pair owns one record per salt; with -sign (put, del) or -mutable (get)"
	seqUsage  = "the signed record's sequence, `N|auto`: a node keeps the highest it has seen; auto is the clock in microseconds; with -sign"
	casUsage  = "compare-and-swap: store only where the node holds sequence `N` of this record (0: where it holds none); with -sign"
	typeUsage = "`TYPE`: lookup looks for node (the closest nodes) or value (the key's values); put, get and del: a typed record's type, such as identity, address, incoming, suppliers, relation or nickname"
	immUsage  = "a content-addressed record: put stores VALUE under its SHA-1 (and prints that key); get KEY (40 hex digits) returns the value only if it hashes to KEY"
)

// recordFlags are the record-kind flags of put, get and del.
type recordFlags struct {
	sign      string
	salt      string
	seq       optUint
	cas       optUint
	typ       string
	immutable bool
	mutable   pubKeyFlag
	owner     pubKeyFlag
}

// register adds the flags that cmd ("put", "get" or "del") takes; lookup
// has its own -type, with the same usage text (one text per flag name).
func (r *recordFlags) register(f *cliFlags, cmd string) {
	fs := f.fs
	fs.StringVar(&r.salt, "salt", "", saltUsage)
	fs.StringVar(&r.typ, "type", "", typeUsage)
	if cmd == "put" || cmd == "get" {
		fs.BoolVar(&r.immutable, "immutable", false, immUsage)
	}
	if cmd == "put" || cmd == "del" {
		r.seq = optUint{unset: "auto", want: "auto or a whole number from 0 to 18446744073709551615"}
		r.cas = optUint{want: "a whole number from 0 to 18446744073709551615 (the sequence expected; 0: none held)"}
		fs.StringVar(&r.sign, "sign", "", signUsage)
		fs.Var(&r.seq, "seq", seqUsage)
		fs.Var(&r.cas, "cas", casUsage)
	}
	if cmd == "get" {
		fs.Var(&r.mutable, "mutable", "get the signed record of the public key `PUBKEY` (64 hex digits, from dht keygen) and -salt")
		fs.Var(&r.owner, "owner", "with -type: only the typed records signed by the public key `PUBKEY` (64 hex digits)")
	}
}

// optUint is an optional whole-number flag: -seq (whose word "auto" is
// unset) and -cas.
type optUint struct {
	v     uint64
	set   bool
	unset string // the word that means unset ("" for none)
	want  string // what the error says is allowed
}

func (o *optUint) String() string {
	if !o.set {
		return o.unset
	}
	return strconv.FormatUint(o.v, 10)
}

func (o *optUint) Set(v string) error {
	if o.unset != "" && v == o.unset {
		o.v, o.set = 0, false
		return nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return errors.New("must be " + o.want)
	}
	o.v, o.set = n, true
	return nil
}

// sequence is the sequence to sign: -seq's, or the clock in microseconds
// (as the library's own puts pick versions), so that each auto put is
// newer than the last one made from this machine.
func (r *recordFlags) sequence() uint64 {
	if r.seq.set {
		return r.seq.v
	}
	return uint64(time.Now().UnixMicro())
}

// pubKeyFlag is a public key in hex.
type pubKeyFlag struct{ v ed25519.PublicKey }

func (p *pubKeyFlag) String() string {
	if p.v == nil {
		return ""
	}
	return record.FormatPublicKey(p.v)
}

func (p *pubKeyFlag) Set(s string) error {
	k, err := record.ParsePublicKey(s)
	if err != nil {
		return errors.New("must be a public key: 64 hex digits (dht keygen prints it)")
	}
	p.v = k
	return nil
}

// given reports which flags are on the command line.
func given(f *cliFlags) map[string]bool {
	g := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { g[fl.Name] = true })
	return g
}

// mode names the record kind the flags ask for ("" for a plain value), or
// reports the flags that do not go together.
func (r *recordFlags) mode(f *cliFlags, cmd string) (string, bool) {
	g := given(f)
	need := func(name, with string) bool {
		if g[name] {
			f.usage("-%s applies only with %s", name, with)
			return false
		}
		return true
	}
	var m string
	switch {
	case g["immutable"] && (g["sign"] || g["type"] || g["mutable"]):
		f.usage("-immutable is a content-addressed record: it takes neither -sign, -type nor -mutable")
		return "", false
	case g["mutable"] && g["type"]:
		f.usage("give -mutable (a signed record) or -type (a typed one), not both")
		return "", false
	case g["immutable"]:
		m = "immutable"
	case g["type"] && cmd == "get":
		m = "typed"
	case g["type"] && !g["sign"]:
		f.usage("-type needs -sign KEYFILE: typed records are signed")
		return "", false
	case g["type"]:
		m = "typed"
	case g["sign"] || g["mutable"]:
		m = "signed"
	}
	switch m {
	case "":
		with := "-sign KEYFILE"
		if cmd == "get" {
			with = "-mutable PUBKEY"
		}
		return "", need("salt", with) && need("seq", "-sign KEYFILE") && need("cas", "-sign KEYFILE") && need("owner", "-type TYPE")
	case "immutable":
		return m, need("salt", "-sign KEYFILE") && need("seq", "-sign KEYFILE") && need("cas", "-sign KEYFILE") && need("owner", "-type TYPE") && notPlain(f, g)
	case "typed":
		return m, need("salt", "a signed record (-sign without -type, or -mutable): a typed record is named by NAME") && need("mutable", "a signed record") && notPlain(f, g)
	}
	return m, need("owner", "-type TYPE") && notPlain(f, g)
}

// notPlain refuses the plain-value flags that a record kind decides itself.
func notPlain(f *cliFlags, g map[string]bool) bool {
	for _, name := range []string{"publisher", "keep", "hex"} {
		if g[name] {
			why := map[string]string{
				"publisher": "the record's kind names its publisher (its public key's hash, or an immutable record's key)",
				"keep":      "only the key's owner can renew a signed record: put it again",
				"hex":       "the key is derived from the record",
			}[name]
			f.usage("-%s does not apply to signed, typed or immutable records: %s", name, why)
			return false
		}
	}
	return true
}

// nargs checks the number of arguments, naming what is missing.
func (f *cliFlags) nargs(lo, hi int, what string) bool {
	switch n := f.fs.NArg(); {
	case n > hi:
		f.usage("unexpected argument %q", trimArg(f.fs.Arg(hi)))
		return false
	case n < lo:
		f.usage("missing %s", what)
		return false
	}
	return true
}

// loadKey reads -sign's key file, reporting a failure as a usage error.
func (f *cliFlags) loadKey(path string) (ed25519.PrivateKey, bool) {
	priv, err := record.LoadKeyFile(path)
	if err != nil {
		f.usage("-sign: %s", strings.TrimPrefix(err.Error(), "record: "))
		return nil, false
	}
	return priv, true
}

// envelope is a built record, ready to put.
type envelope struct {
	key, publisher id.ID
	seq            uint64
	data           []byte
	kind           record.Kind
}

// check runs the storing nodes' check on e (CAS aside), so that the user
// sees the refusal and the field before anything is sent.
func (e *envelope) check() error {
	var p record.Policy
	_, err := p.Check(e.key, e.publisher, e.seq, true, e.data, nil)
	return err
}

// buildRecord builds the envelope put or del asks for.
func (f *cliFlags) buildRecord(r *recordFlags, mode string, value []byte, name string) (*envelope, bool) {
	if mode == "immutable" {
		if len(value) == 0 {
			f.usage("an immutable record's value is empty")
			return nil, false
		}
		key, data := record.NewImmutable(value)
		return &envelope{key: key, publisher: key, data: data, kind: record.Immutable}, true
	}
	priv, ok := f.loadKey(r.sign)
	if !ok {
		return nil, false
	}
	seq := r.sequence()
	e := &envelope{seq: seq, kind: record.Signed}
	var err error
	if mode == "typed" {
		if len(value) > 0 && !typeMatches(f, r.typ, value) {
			return nil, false
		}
		e.kind = record.Typed
		e.key, e.publisher, e.data, err = record.NewTyped(priv, name, seq, value)
	} else {
		e.key, e.publisher, e.data, err = record.NewSigned(priv, []byte(r.salt), seq, value)
	}
	if err != nil {
		f.usage("%s", strings.TrimPrefix(err.Error(), "record: "))
		return nil, false
	}
	if err := e.check(); err != nil {
		fmt.Fprintf(f.stderr, "%s: the nodes would refuse this record, so it was not sent: %s\n", f.fs.Name(), strings.TrimPrefix(err.Error(), "record: "))
		return nil, false
	}
	if r.cas.set {
		if e.data, err = record.WithCAS(e.data, r.cas.v); err != nil {
			f.usage("-cas: %s", strings.TrimPrefix(err.Error(), "record: "))
			return nil, false
		}
	}
	return e, true
}

// typeMatches checks that a typed document's "type" is -type's.
func typeMatches(f *cliFlags, want string, doc []byte) bool {
	var d struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		fmt.Fprintf(f.stderr, "%s: the nodes would refuse this record, so it was not sent: the document is not a JSON object: %v\n", f.fs.Name(), err)
		return false
	}
	switch {
	case d.Type == nil:
		fmt.Fprintf(f.stderr, "%s: the document has no \"type\" field: add \"type\": %q\n", f.fs.Name(), want)
		return false
	case *d.Type != want:
		f.usage("-type is %q, but the document's \"type\" is %q", trimArg(want), trimArg(*d.Type))
		return false
	}
	return true
}

// putRecord is dht put with -sign, -type or -immutable.
func putRecord(f *cliFlags, r *recordFlags, mode, file string, ttl time.Duration, quorum int) int {
	var name string
	var arg *string
	switch mode {
	case "typed":
		lo := 2
		if file != "" {
			lo = 1
		}
		if !f.nargs(lo, lo, "NAME JSON (or NAME with -file F): the typed record's name and document") {
			return exitUsage
		}
		name = f.fs.Arg(0)
		if f.fs.NArg() == 2 {
			v := f.fs.Arg(1)
			arg = &v
		}
	default:
		lo := 1
		if file != "" {
			lo = 0
		}
		if !f.nargs(lo, lo, "VALUE (- reads standard input; or -file F): with -sign or -immutable the key is derived from the record, not given") {
			return exitUsage
		}
		if f.fs.NArg() == 1 {
			v := f.fs.Arg(0)
			arg = &v
		}
	}
	value, err := readValue(arg, file, stdin)
	if err != nil {
		return f.usage("%v", err)
	}
	if len(value) == 0 && mode != "immutable" {
		return f.usage("the value is empty: an empty signed value is a withdrawal, which dht del -sign makes")
	}
	e, ok := f.buildRecord(r, mode, value, name)
	if !ok {
		return exitUsage
	}
	return f.sendRecord(e, api.PutOptions{TTL: ttl, Quorum: quorum}, "stored on")
}

// delRecord is dht del -sign: the owner's signed withdrawal.
func delRecord(f *cliFlags, r *recordFlags, mode string) int {
	var name string
	if r.typ != "" {
		if !f.nargs(1, 1, "NAME: the typed record to withdraw") {
			return exitUsage
		}
		name, mode = f.fs.Arg(0), "typed"
	} else if !f.nargs(0, 0, "") {
		return exitUsage
	}
	e, ok := f.buildRecord(r, mode, nil, name)
	if !ok {
		return exitUsage
	}
	return f.sendRecord(e, api.PutOptions{}, "withdrawn from")
}

// sendRecord puts a built envelope through the node and prints the key,
// the sequence and the receipts.
func (f *cliFlags) sendRecord(e *envelope, o api.PutOptions, verb string) int {
	return f.withNode(func(ctx context.Context, t *target) int { return f.putRecord(ctx, t, e, o, verb) })
}

func (f *cliFlags) putRecord(ctx context.Context, t *target, e *envelope, o api.PutOptions, verb string) int {
	o.Envelope, o.Version = true, e.seq
	stop := f.progress("storing…")
	res, err := t.Put(ctx, e.key, e.data, o)
	stop()
	if f.json && (err == nil || len(res.Receipts) > 0) {
		f.printJSON(res)
	} else if !f.json {
		fmt.Fprintf(f.stdout, "key %s\n", e.key)
		if e.kind != record.Immutable {
			fmt.Fprintf(f.stdout, "seq %d\n", e.seq)
		}
		if err == nil || len(res.Receipts) > 0 {
			printReceipts(f.stdout, verb, res.Receipts, res.Asked)
		}
	}
	if err != nil {
		if errors.Is(err, api.ErrQuorum) {
			fmt.Fprintf(f.stderr, "%s: quorum not reached: %d node(s) accepted the record, -quorum is %d\n", f.fs.Name(), res.Stored, o.Quorum)
			return exitNetwork
		}
		return f.fail(err)
	}
	return exitOK
}

// getRecord is dht get with -mutable, -type or -immutable: it prints each
// record that verifies, and leaves out (and counts) those that do not.
func getRecord(f *cliFlags, r *recordFlags, mode string, raw bool) int {
	var key, publisher id.ID
	switch mode {
	case "signed":
		if !f.nargs(0, 0, "") {
			return exitUsage
		}
		key, publisher = record.MutableKey(r.mutable.v, []byte(r.salt)), record.PublisherOf(r.mutable.v)
	case "typed":
		if !f.nargs(1, 1, "NAME: the typed record's name") {
			return exitUsage
		}
		key = record.TypedKey(f.fs.Arg(0))
		if r.owner.v != nil {
			publisher = record.PublisherOf(r.owner.v)
		}
	case "immutable":
		if !f.nargs(1, 1, "KEY: the immutable record's key, 40 hex digits") {
			return exitUsage
		}
		k, err := api.ParseID(f.fs.Arg(0))
		if err != nil {
			return f.usage("bad KEY %q for -immutable: %v", trimArg(f.fs.Arg(0)), err)
		}
		key, publisher = k, k
	}
	return f.withNode(func(ctx context.Context, t *target) int {
		return f.printRecords(ctx, t, key, publisher, mode, r.typ, raw)
	})
}

// printRecords gets key's values and prints the verified records asked for.
func (f *cliFlags) printRecords(ctx context.Context, t *target, key, publisher id.ID, mode, typ string, raw bool) int {
	res, err := f.get(ctx, t, key)
	if (err != nil && !errors.Is(err, api.ErrNotFound)) || errors.Is(err, api.ErrNoPeers) {
		return f.fail(err)
	}
	found, forged := verifiedRecords(res.Values, key, publisher, mode, typ)
	if forged > 0 {
		fmt.Fprintf(f.stderr, "%s: %d record(s) under the key failed verification and were left out\n", f.fs.Name(), forged)
	}
	if len(found) == 0 {
		fmt.Fprintln(f.stderr, "not found")
		return exitNotFound
	}
	if res.Incomplete != "" {
		fmt.Fprintf(f.stderr, "%s: the answer may be incomplete: %s\n", f.fs.Name(), res.Incomplete)
	}
	switch {
	case f.json:
		out := make([]recordJSON, len(found))
		for i, v := range found {
			out[i] = v.json(key)
		}
		f.printJSON(out)
	case raw:
		f.stdout.Write(found[0].value)
		if len(found) > 1 {
			fmt.Fprintf(f.stderr, "%s: %d other record(s) not written (see -json)\n", f.fs.Name(), len(found)-1)
		}
	default:
		for _, v := range found {
			fmt.Fprintln(f.stdout, printable(v.value))
			if v.kind != record.Immutable {
				fmt.Fprintf(f.stdout, "  seq %d, signed by %s, verified\n", v.seq, record.FormatPublicKey(v.pub[:]))
			}
		}
	}
	return exitOK
}

// verified is a record a get verified.
type verified struct {
	kind  record.Kind
	seq   uint64
	pub   [32]byte
	value []byte
	ttl   time.Duration
}

// recordJSON is what get -json prints for each verified record.
type recordJSON struct {
	Key       string  `json:"key"`
	Kind      string  `json:"kind"`
	PublicKey string  `json:"public_key,omitempty"`
	Seq       uint64  `json:"seq"`
	Value     []byte  `json:"value"`
	Text      *string `json:"text,omitempty"`
	TTL       float64 `json:"ttl_seconds"`
}

func (v verified) json(key id.ID) recordJSON {
	out := recordJSON{Key: key.String(), Kind: v.kind.String(), Seq: v.seq, Value: v.value, TTL: v.ttl.Seconds()}
	if v.kind != record.Immutable {
		out.PublicKey = record.FormatPublicKey(v.pub[:])
	}
	if api.IsText(v.value) {
		s := string(v.value)
		out.Text = &s
	}
	return out
}

// verifiedRecords picks, among a key's values, the records of the kind
// asked for (of publisher, unless it is zero; of document type typ for a
// typed one) that verify, newest first as the node listed them; forged
// counts the ones flagged as envelopes that did not verify. A value not
// flagged is tried too, quietly: a node older than the flag does not set it.
func verifiedRecords(vs []api.Value, key, publisher id.ID, mode, typ string) (found []verified, forged int) {
	want := map[string]record.Kind{"signed": record.Signed, "typed": record.Typed, "immutable": record.Immutable}[mode]
	var p record.Policy
	for _, v := range vs {
		if !publisher.IsZero() && v.Publisher != publisher {
			continue
		}
		e, err := p.Verify(key, v.Publisher, v.Version, v.Data)
		if err != nil {
			if v.Envelope {
				forged++
			}
			continue
		}
		if e.Kind != want || e.Withdrawn() {
			continue
		}
		if want == record.Typed && typ != "" && docType(e.Value) != typ {
			continue
		}
		found = append(found, verified{kind: e.Kind, seq: v.Version, pub: e.PublicKey, value: e.Value, ttl: v.TTL})
	}
	return found, forged
}

// docType is a typed document's "type" (Verify has checked it parses).
func docType(doc []byte) string {
	var d struct {
		Type string `json:"type"`
	}
	json.Unmarshal(doc, &d)
	return d.Type
}

package record

import (
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Format is what a document field's value (or each item of a list) must
// look like.
type Format uint8

// The formats.
const (
	// Text: a JSON string of UTF-8 text without control characters.
	Text Format = iota + 1
	// Token: a JSON string of ASCII letters, digits, '.', '_' and '-'.
	Token
	// Host: a JSON string holding a DNS name (labels of letters, digits
	// and '-', dot-separated) or an IP address, without a port.
	Host
	// HostPort: a JSON string "host:port" ("[v6]:port" for IPv6), host as
	// Host, port a decimal 1 to 65535.
	HostPort
	// URL: a JSON string holding an absolute http or https URL with a host,
	// no user information and no fragment.
	URL
	// Decimal: a JSON number that is a non-negative integer in canonical
	// form (digits only, no leading zero, no fraction or exponent).
	Decimal
	// PublicKey: a JSON string of 64 lowercase hex digits that must equal
	// the record's signing key, binding the document to its signer.
	PublicKey
)

func (f Format) String() string {
	switch f {
	case Text:
		return "text"
	case Token:
		return "token"
	case Host:
		return "host"
	case HostPort:
		return "host:port"
	case URL:
		return "URL"
	case Decimal:
		return "decimal integer"
	case PublicKey:
		return "public key"
	}
	return "unknown format"
}

// Field is the rule for one top-level field of a typed document.
type Field struct {
	Name     string
	Format   Format
	List     bool   // a JSON array of values of Format
	Required bool   // the field must be present
	Exact    string // not "": the (scalar) value must be exactly this text
	// MinLen and MaxLen bound a string's bytes (each item's, for a list).
	// MaxLen 0 is 256, or 1024 for URL.
	MinLen, MaxLen int
	// MinItems and MaxItems bound a list's length; MaxItems 0 is 64.
	MinItems, MaxItems int
	// Max bounds a Decimal; 0 is no bound below 2^64.
	Max uint64
}

func (f *Field) maxLen() int {
	if f.MaxLen > 0 {
		return f.MaxLen
	}
	if f.Format == URL {
		return 1024
	}
	return 256
}

func (f *Field) maxItems() int {
	if f.MaxItems > 0 {
		return f.MaxItems
	}
	return 64
}

// Type is a typed-record type: the rules a document whose "type" field is
// Name must pass. Register copies it; changing a Type after Register has
// no effect on the registered one.
type Type struct {
	// Name is the value of the document's "type" field: 1 to 64 bytes of
	// Token characters. The "type" field is implicit (required, exactly
	// Name); Fields must not list it.
	Name string
	// Fields are the rules for the document's other fields.
	Fields []Field
	// AllowExtra accepts fields Fields does not list (otherwise refused).
	AllowExtra bool
	// NameRule is a template the record's name must equal once each
	// "{field}" in it is replaced by that field's value, e.g.
	// "{user}@{server}:address". A referenced field must be a required
	// scalar. "" accepts any name.
	NameRule string
	// MinTTL and MaxTTL bound the record's life (0: the node's own).
	MinTTL, MaxTTL time.Duration
	// Revision enables the revision rule: a new version of a record must
	// not lower the document's "revision" (a Decimal field the type must
	// define) compared with the held record of the same owner.
	Revision bool
	// MaxSize bounds the document's bytes; 0 is 16 KiB, at most MaxSize.
	MaxSize int
	// Check, if set, is a further rule run after all others; its error is
	// wrapped in an *Error with Reason Invalid (an *Error is kept as is).
	Check func(name string, doc *Document) error

	nameParts []namePart // compiled NameRule
}

// namePart is a literal piece of a name template, or a reference to a field.
type namePart struct {
	text  string
	field bool
}

func (t *Type) maxSize() int {
	if t.MaxSize > 0 {
		return t.MaxSize
	}
	return defaultMaxDoc
}

// Registry holds the typed-record types a node accepts. The zero value is
// not usable; use NewRegistry or Builtin. It is safe for concurrent use.
type Registry struct {
	mu     sync.RWMutex
	types  map[string]*Type
	maxDoc int // the largest MaxSize of the registered types
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{types: map[string]*Type{}}
}

// ErrExists is returned (wrapped) by Register for a name already registered.
var ErrExists = errors.New("record: type already registered")

// Register adds a type after checking that its rules make sense (names,
// formats, bounds, the name template's fields).
func (r *Registry) Register(t Type) error {
	c, err := compileType(t)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.types == nil {
		r.types = map[string]*Type{}
	}
	if _, ok := r.types[c.Name]; ok {
		return errors.Join(ErrExists, errors.New("record: type "+strconv.Quote(c.Name)+" is already registered"))
	}
	r.types[c.Name] = c
	r.maxDoc = max(r.maxDoc, c.maxSize())
	return nil
}

// Lookup returns the registered type named name.
func (r *Registry) Lookup(name string) (Type, bool) {
	t := r.lookup(name)
	if t == nil {
		return Type{}, false
	}
	return *t, true
}

func (r *Registry) lookup(name string) *Type {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.types[name]
}

// Names returns the registered types' names, sorted.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.types))
	for n := range r.types {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func typeErr(t *Type, msg string) error {
	return errors.New("record: type " + strconv.Quote(t.Name) + ": " + msg)
}

// compileType validates t and returns a private copy with its name
// template compiled.
func compileType(t Type) (*Type, error) {
	if t.Name == "" || len(t.Name) > 64 || !isToken(t.Name) {
		return nil, typeErr(&t, "the name must be 1 to 64 letters, digits, '.', '_' or '-'")
	}
	if t.MinTTL < 0 || t.MaxTTL < 0 || (t.MaxTTL > 0 && t.MinTTL > t.MaxTTL) {
		return nil, typeErr(&t, "MinTTL and MaxTTL must be >= 0 and MinTTL <= MaxTTL")
	}
	if t.MaxSize < 0 || t.MaxSize > MaxSize {
		return nil, typeErr(&t, "MaxSize must be 0 to 1 MiB")
	}
	t.Fields = slices.Clone(t.Fields)
	if len(t.Fields) >= MaxFields {
		return nil, typeErr(&t, "more than "+strconv.Itoa(MaxFields-1)+" fields")
	}
	for i, f := range t.Fields {
		if f.Name == "" || f.Name == "type" {
			return nil, typeErr(&t, "a field has no name or is named \"type\" (implicit)")
		}
		if slices.IndexFunc(t.Fields[:i], func(g Field) bool { return g.Name == f.Name }) >= 0 {
			return nil, typeErr(&t, "field "+strconv.Quote(f.Name)+" is defined twice")
		}
		if f.Format < Text || f.Format > PublicKey {
			return nil, typeErr(&t, "field "+strconv.Quote(f.Name)+" has no valid Format")
		}
		if f.MinLen < 0 || f.MaxLen < 0 || f.MinLen > f.maxLen() || f.MinItems < 0 || f.MaxItems < 0 ||
			f.MaxItems > MaxItems || f.MinItems > f.maxItems() {
			return nil, typeErr(&t, "field "+strconv.Quote(f.Name)+" has inconsistent length bounds")
		}
		if f.Exact != "" && f.List {
			return nil, typeErr(&t, "field "+strconv.Quote(f.Name)+": Exact applies to scalars only")
		}
	}
	if t.Revision {
		i := slices.IndexFunc(t.Fields, func(f Field) bool { return f.Name == "revision" })
		if i < 0 || t.Fields[i].Format != Decimal || t.Fields[i].List {
			return nil, typeErr(&t, "the revision rule needs a scalar Decimal field \"revision\"")
		}
	}
	parts, err := compileNameRule(&t)
	if err != nil {
		return nil, err
	}
	t.nameParts = parts
	return &t, nil
}

func compileNameRule(t *Type) ([]namePart, error) {
	var parts []namePart
	s := t.NameRule
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			parts = append(parts, namePart{text: s})
			break
		}
		if i > 0 {
			parts = append(parts, namePart{text: s[:i]})
		}
		j := strings.IndexByte(s[i:], '}')
		if j < 0 {
			return nil, typeErr(t, "NameRule has an unclosed '{'")
		}
		name := s[i+1 : i+j]
		k := slices.IndexFunc(t.Fields, func(f Field) bool { return f.Name == name })
		if k < 0 || !t.Fields[k].Required || t.Fields[k].List {
			return nil, typeErr(t, "NameRule refers to "+strconv.Quote(name)+", which is not a required scalar field")
		}
		parts = append(parts, namePart{text: name, field: true})
		s = s[i+j+1:]
	}
	return parts, nil
}

// CheckDocument checks a typed record's document against the registered
// type it names, as a storing node would (without the revision rule): a
// publisher's check before it signs. pub is the signing key.
func (r *Registry) CheckDocument(name string, pub ed25519.PublicKey, doc []byte) error {
	e := Envelope{Kind: Typed, Salt: []byte(name), Value: doc}
	copy(e.PublicKey[:], pub)
	if len(doc) == 0 {
		return nil // a withdrawal
	}
	_, _, err := r.checkTyped(&e)
	return err
}

// checkTyped checks a typed, non-withdrawal envelope's document.
func (r *Registry) checkTyped(e *Envelope) (*Type, *Document, error) {
	// No type takes a document over the largest MaxSize, so a larger one
	// is refused before any JSON is decoded.
	r.mu.RLock()
	limit := r.maxDoc
	r.mu.RUnlock()
	doc, err := parseDocument(e.Value, limit)
	if err != nil {
		return nil, nil, err
	}
	tf := doc.field("type")
	if tf == nil {
		return nil, nil, newErr(Invalid, "type", "the document has no \"type\" field")
	}
	if tf.kind != kString {
		return nil, nil, newErr(Invalid, "type", "\"type\" is not a string")
	}
	t := r.lookup(tf.str)
	if t == nil {
		return nil, nil, newErr(Invalid, "type", "unknown type "+strconv.Quote(clip(tf.str, 64)))
	}
	if len(e.Value) > t.maxSize() {
		return nil, nil, docErr("the " + t.Name + " document has " + strconv.Itoa(len(e.Value)) + " bytes, over " + strconv.Itoa(t.maxSize()))
	}
	if err := t.checkFields(doc, e.PublicKey[:]); err != nil {
		return nil, nil, err
	}
	if err := t.checkName(e.Name(), doc); err != nil {
		return nil, nil, err
	}
	if t.Check != nil {
		if err := t.Check(e.Name(), doc); err != nil {
			var re *Error
			if errors.As(err, &re) {
				return nil, nil, re
			}
			return nil, nil, newErr(Invalid, "value", clip(err.Error(), 200))
		}
	}
	return t, doc, nil
}

func (t *Type) checkFields(doc *Document, pub []byte) error {
	for i := range doc.fields {
		f := &doc.fields[i]
		if f.name != "type" && !t.AllowExtra && slices.IndexFunc(t.Fields, func(r Field) bool { return r.Name == f.name }) < 0 {
			return newErr(Invalid, clip(f.name, 64), "the "+t.Name+" type has no such field")
		}
	}
	for i := range t.Fields {
		rule := &t.Fields[i]
		f := doc.field(rule.Name)
		if f == nil {
			if rule.Required {
				return newErr(Invalid, rule.Name, "the field is required")
			}
			continue
		}
		if err := rule.check(f, pub); err != nil {
			return err
		}
	}
	return nil
}

func (rule *Field) check(f *docField, pub []byte) error {
	if rule.List {
		if f.kind != kList {
			return newErr(Invalid, rule.Name, "want a list of "+rule.Format.String()+", have "+f.kind.String())
		}
		n := len(f.list)
		if n < rule.MinItems || n > rule.maxItems() {
			return newErr(Invalid, rule.Name, "the list has "+strconv.Itoa(n)+" items, want "+strconv.Itoa(rule.MinItems)+" to "+strconv.Itoa(rule.maxItems()))
		}
		if rule.Format == Decimal && f.strItems || rule.Format != Decimal && f.numItems {
			return newErr(Invalid, rule.Name, "want a list of "+rule.Format.String()+", have items of another JSON type")
		}
		for i, item := range f.list {
			if msg := rule.checkValue(item, pub); msg != "" {
				return newErr(Invalid, rule.Name, "item "+strconv.Itoa(i)+": "+msg)
			}
		}
		return nil
	}
	want := kString
	if rule.Format == Decimal {
		want = kNumber
	}
	if f.kind != want {
		return newErr(Invalid, rule.Name, "want "+want.String()+" ("+rule.Format.String()+"), have "+f.kind.String())
	}
	if msg := rule.checkValue(f.str, pub); msg != "" {
		return newErr(Invalid, rule.Name, msg)
	}
	if rule.Exact != "" && f.str != rule.Exact {
		return newErr(Invalid, rule.Name, "the value must be "+strconv.Quote(clip(rule.Exact, 64)))
	}
	return nil
}

// checkValue checks one value's text against the rule's format and length
// bounds, returning what is wrong ("" for nothing).
func (rule *Field) checkValue(s string, pub []byte) string {
	if rule.Format != Decimal && (len(s) < rule.MinLen || len(s) > rule.maxLen()) {
		return "has " + strconv.Itoa(len(s)) + " bytes, want " + strconv.Itoa(rule.MinLen) + " to " + strconv.Itoa(rule.maxLen())
	}
	switch rule.Format {
	case Text:
		for _, c := range s {
			if c < 0x20 || c == 0x7f {
				return "contains a control character"
			}
		}
	case Token:
		if !isToken(s) {
			return "is not a token (letters, digits, '.', '_', '-')"
		}
	case Host:
		if !isHost(s) {
			return "is not a host name or IP address"
		}
	case HostPort:
		if !isHostPort(s) {
			return "is not host:port (port 1 to 65535)"
		}
	case URL:
		if !isURL(s) {
			return "is not an absolute http or https URL"
		}
	case Decimal:
		n, err := parseDecimal(s)
		if err != nil {
			return "is not a non-negative decimal integer"
		}
		if rule.Max > 0 && n > rule.Max {
			return "is over " + strconv.FormatUint(rule.Max, 10)
		}
	case PublicKey:
		var k [32]byte
		if len(s) != 64 || strings.ToLower(s) != s {
			return "is not 64 lowercase hex digits"
		}
		if _, err := hex.Decode(k[:], []byte(s)); err != nil {
			return "is not 64 lowercase hex digits"
		}
		if string(k[:]) != string(pub) {
			return "is not the record's signing key"
		}
	}
	return ""
}

func (t *Type) checkName(name string, doc *Document) error {
	if t.nameParts == nil {
		return nil
	}
	rest, ok := name, true
	for _, p := range t.nameParts {
		text := p.text
		if p.field {
			text, _ = doc.String(p.text)
		}
		if rest, ok = strings.CutPrefix(rest, text); !ok {
			break
		}
	}
	if !ok || rest != "" {
		return newErr(Invalid, "name", "the name "+strconv.Quote(clip(name, 80))+" does not match "+strconv.Quote(clip(t.NameRule, 80))+" for this document")
	}
	return nil
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func isHost(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return !strings.Contains(s, "%") // no IPv6 zone: meaningless to others
	}
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(s, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func isHostPort(s string) bool {
	host, port, err := net.SplitHostPort(s)
	if err != nil || !isHost(host) {
		return false
	}
	if strings.Contains(host, ":") != strings.HasPrefix(s, "[") {
		return false // an IPv6 address must be bracketed, nothing else may be
	}
	n, err := parseDecimal(port)
	return err == nil && n >= 1 && n <= 65535
}

func isURL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return false
		}
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return false
	}
	host := u.Hostname()
	if !isHost(host) {
		return false
	}
	if p := u.Port(); p != "" {
		n, err := parseDecimal(p)
		if err != nil || n < 1 || n > 65535 {
			return false
		}
	}
	return true
}

// clip cuts s to at most n bytes, so that error texts stay under 255 bytes
// whatever a document holds.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

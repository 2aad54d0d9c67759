package record

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"unicode/utf8"
)

// Bounds on any typed document, whatever its type says, so that checking
// one costs time and memory linear in its size (at most MaxSize) and never
// more: the decoder walks tokens once, keeps only top-level scalars and
// lists of scalars, and refuses deep nesting before descending into it.
const (
	// MaxFields is the most top-level fields a document may have.
	MaxFields = 64
	// MaxItems is the most items any top-level list may have.
	MaxItems = 1024
	// MaxDepth is the deepest nesting of objects and arrays, the document
	// itself counting as 1. Built-in types use only depth 2 (lists).
	MaxDepth = 8
)

// defaultMaxDoc is a type's document size bound when it sets none.
const defaultMaxDoc = 16 << 10

type valueKind uint8

const (
	kString valueKind = iota + 1
	kNumber           // json.Number text
	kList             // a list of strings and numbers
	kOther            // true, false, null, an object, a list holding those
)

func (k valueKind) String() string {
	switch k {
	case kString:
		return "a string"
	case kNumber:
		return "a number"
	case kList:
		return "a list"
	}
	return "an object, boolean, null or nested list"
}

type docField struct {
	name string
	kind valueKind
	str  string   // kString, kNumber
	list []string // kList: each item's text
	// kList: whether any item is a string, any a number (a list's items
	// keep only their text, so these keep their JSON types apart).
	strItems, numItems bool
}

// Document is a typed record's JSON document as the checker decoded it:
// its top-level fields, in order. A Type's Check function reads it. Only
// strings, numbers and lists of those keep their values.
type Document struct {
	fields []docField
}

func (d *Document) field(name string) *docField {
	for i := range d.fields {
		if d.fields[i].name == name {
			return &d.fields[i]
		}
	}
	return nil
}

// Has reports whether the document has the top-level field name.
func (d *Document) Has(name string) bool { return d.field(name) != nil }

// String returns a string field's value, or a number field's text.
func (d *Document) String(name string) (string, bool) {
	f := d.field(name)
	if f == nil || (f.kind != kString && f.kind != kNumber) {
		return "", false
	}
	return f.str, true
}

// Uint returns a field holding a non-negative decimal integer.
func (d *Document) Uint(name string) (uint64, bool) {
	f := d.field(name)
	if f == nil || f.kind != kNumber {
		return 0, false
	}
	n, err := parseDecimal(f.str)
	return n, err == nil
}

// List returns a list field's items (strings, or numbers' text).
func (d *Document) List(name string) ([]string, bool) {
	f := d.field(name)
	if f == nil || f.kind != kList {
		return nil, false
	}
	return f.list, true
}

// Fields returns the names of the document's top-level fields, in order.
func (d *Document) Fields() []string {
	names := make([]string, len(d.fields))
	for i, f := range d.fields {
		names[i] = f.name
	}
	return names
}

func docErr(msg string) *Error { return newErr(Invalid, "value", msg) }

// parseDocument decodes a document of at most max bytes. It refuses what
// is not one JSON object of UTF-8 text, duplicate top-level fields, more
// than MaxFields fields, lists over MaxItems and nesting over MaxDepth.
func parseDocument(b []byte, max int) (*Document, error) {
	if len(b) > max {
		return nil, docErr("the document has " + strconv.Itoa(len(b)) + " bytes, over the bound of " + strconv.Itoa(max))
	}
	if !utf8.Valid(b) {
		return nil, docErr("the document is not UTF-8")
	}
	if !depthWithin(b, MaxDepth) {
		return nil, docErr("the document nests deeper than " + strconv.Itoa(MaxDepth) + " levels")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, docErr("the document is not a JSON object")
	}
	d := &Document{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonErr(err)
		}
		name, ok := tok.(string)
		if !ok {
			return nil, docErr("the document is not a JSON object")
		}
		if d.field(name) != nil {
			return nil, newErr(Invalid, name, "the field appears twice")
		}
		if len(d.fields) == MaxFields {
			return nil, docErr("the document has over " + strconv.Itoa(MaxFields) + " fields")
		}
		f := docField{name: name}
		if err := decodeValue(dec, &f); err != nil {
			return nil, err
		}
		d.fields = append(d.fields, f)
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, docErr("the document is not a JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, docErr("bytes follow the document's JSON object")
	}
	return d, nil
}

func jsonErr(err error) *Error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return docErr("the document is not valid JSON at byte " + strconv.FormatInt(se.Offset, 10))
	}
	return docErr("the document is not valid JSON")
}

// decodeValue reads one top-level field's value into f.
func decodeValue(dec *json.Decoder, f *docField) error {
	tok, err := dec.Token()
	if err != nil {
		return jsonErr(err)
	}
	switch v := tok.(type) {
	case string:
		f.kind, f.str = kString, v
	case json.Number:
		f.kind, f.str = kNumber, string(v)
	case json.Delim:
		if v == '{' {
			f.kind = kOther
			return skip(dec, '{')
		}
		f.kind = kList
		for dec.More() {
			if len(f.list) == MaxItems {
				return newErr(Invalid, f.name, "the list has over "+strconv.Itoa(MaxItems)+" items")
			}
			tok, err := dec.Token()
			if err != nil {
				return jsonErr(err)
			}
			switch v := tok.(type) {
			case string:
				f.list = append(f.list, v)
				f.strItems = true
			case json.Number:
				f.list = append(f.list, string(v))
				f.numItems = true
			case json.Delim:
				f.kind = kOther
				if err := skip(dec, v); err != nil {
					return err
				}
			default:
				f.kind = kOther
			}
		}
		if _, err := dec.Token(); err != nil { // the closing ']'
			return jsonErr(err)
		}
		if f.kind != kList {
			f.list = nil
		}
	default: // bool, nil
		f.kind = kOther
	}
	return nil
}

// skip consumes the rest of an object or array just opened. The caller has
// checked the nesting depth (depthWithin); the value is decoded in one go,
// not token by token, so that skipping costs one copy of its bytes rather
// than an allocation per token.
func skip(dec *json.Decoder, open json.Delim) error {
	var raw json.RawMessage
	// The decoder has consumed the opening delimiter: decode the elements
	// up to the closing one.
	for dec.More() {
		if open == '{' {
			if _, err := dec.Token(); err != nil { // a key
				return jsonErr(err)
			}
		}
		if err := dec.Decode(&raw); err != nil {
			return jsonErr(err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return jsonErr(err)
	}
	return nil
}

// depthWithin reports whether no object or array in b nests deeper than
// max (the outermost counting 1), by one scan over the bytes that skips
// strings; it allocates nothing. Malformed JSON is the decoder's to refuse.
func depthWithin(b []byte, max int) bool {
	depth, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case inString:
			if escaped {
				escaped = false
			} else if c == '\\' {
				escaped = true
			} else if c == '"' {
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return false
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return true
}

var errDecimal = errors.New("not a decimal integer")

// parseDecimal accepts a canonical non-negative decimal integer: digits
// only, no sign, fraction, exponent or leading zero, at most 2^64-1.
func parseDecimal(s string) (uint64, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, errDecimal
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errDecimal
		}
	}
	return strconv.ParseUint(s, 10, 64)
}

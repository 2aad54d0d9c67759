package record

import "unicode/utf8"

// Reason is why a record was refused; a node maps it to an ERROR code.
type Reason uint8

// The reasons. The zero Reason is not used, so that an Error built by hand
// without one is not mistaken for any of them.
const (
	// Invalid: the record breaks its kind's rules (structure, signature,
	// key/publisher/version binding, a typed rule). ERROR code 11 INVALID.
	Invalid Reason = 1
	// Conflict: compare-and-swap failed; the node does not hold the
	// sequence the publisher expected. ERROR code 12 CONFLICT.
	Conflict Reason = 2
	// Refused: the node's policy refuses the record (a plain record on a
	// network that stores only enveloped ones). ERROR code 11 INVALID too.
	Refused Reason = 3
)

// String names the reason in lower case.
func (r Reason) String() string {
	switch r {
	case Invalid:
		return "invalid"
	case Conflict:
		return "conflict"
	case Refused:
		return "refused"
	}
	return "unknown reason"
}

// MaxErrorText is the longest text Error.Error returns: the wire's ERROR
// text bound, so a node can send it to the publisher unchanged.
const MaxErrorText = 255

// Error is a refusal of a record. Field names the part of the record at
// fault ("signature", "key", "version", "cas", a typed document's field
// such as "addresses"...), Msg says what is wrong with it.
type Error struct {
	Reason Reason
	Field  string
	Msg    string
}

// Sentinels for errors.Is: errors.Is(err, ErrConflict) holds for every
// *Error with Reason Conflict, whatever its field and text.
var (
	ErrInvalid  = &Error{Reason: Invalid}
	ErrConflict = &Error{Reason: Conflict}
	ErrRefused  = &Error{Reason: Refused}
)

func newErr(r Reason, field, msg string) *Error {
	return &Error{Reason: r, Field: field, Msg: msg}
}

// Error returns "record: <reason> <field>: <msg>", cut to at most 255
// bytes on a UTF-8 boundary.
func (e *Error) Error() string {
	s := "record: " + e.Reason.String() + " " + e.Field + ": " + e.Msg
	if len(s) <= MaxErrorText {
		return s
	}
	n := MaxErrorText
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Is makes errors.Is match a sentinel (an Error with neither field nor
// text) by reason.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Field == "" && t.Msg == "" && t.Reason == e.Reason
}

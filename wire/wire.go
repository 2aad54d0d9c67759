// Package wire is the protocol's only codec: every datagram a node sends or
// accepts is encoded and decoded here, as docs/protocol.md specifies.
//
// Encoding appends to a caller's buffer. Decoding fills a caller's Message
// without allocating: its slices point into the Message's own fixed arrays and
// into the datagram, so a decoded Message is valid only while both are. Decode
// never panics, whatever the input; every count and length is checked against
// a hard cap before it is used.
package wire

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/dhtkit/dht/id"
)

// Protocol constants. Changing any of them makes a different protocol.
const (
	// Magic is the first byte of every datagram.
	Magic = 0xD7
	// Version is the protocol version this package speaks, the second byte.
	Version = 1
	// HeaderLen is the size of the fixed header that starts every message.
	HeaderLen = 36
	// MaxPacket bounds an encoded message, so that it crosses the common
	// 1500-byte MTU without fragmentation on IPv4 and IPv6.
	MaxPacket = 1400
	// MaxContacts bounds the contacts in one message.
	MaxContacts = 32
	// MaxValues bounds the values in one VALUES message.
	MaxValues = 64
	// MaxValueSize bounds one value.
	MaxValueSize = 1000
	// MaxErrorText bounds the reason carried by an ERROR message.
	MaxErrorText = 255
)

// Amplification limits. A node answers a requester whose address it has not
// verified (one that never answered a request of ours from that address)
// with at most AmplificationFactor times the request's size, so that a
// forged source address gains an attacker little. Requesters pad their
// FIND_NODE and FIND_VALUE requests with zero bytes after the body (which
// receivers ignore) to the lengths below, which earn a full answer anyway:
// 300 bytes cover a NODES of K = 20 contacts of any family (37 + 20 x 39 =
// 817 <= 900; larger K needs FIND_VALUE's length), 467 bytes any datagram
// (3 x 467 >= MaxPacket).
const (
	AmplificationFactor = 3
	MinFindNodeLen      = 300
	MinFindValueLen     = 467
)

// Pad extends the message that starts at b[start:] with zero bytes until it
// is n bytes long, and returns b. A longer message is left as it is.
func Pad(b []byte, start, n int) []byte {
	if k := n - (len(b) - start); k > 0 {
		b = append(b, make([]byte, k)...) // compiled to a grow and a clear, no allocation
	}
	return b
}

// Type identifies a message. Requests have the high bit clear, responses set.
// Numbers are only ever appended, never reused.
type Type uint8

// Message types.
const (
	Ping      Type = 0x01 // request: are you alive?
	FindNode  Type = 0x02 // request: your closest contacts to Target
	FindValue Type = 0x03 // request: values under Target, or your closest contacts
	Store     Type = 0x04 // request: keep Value under Target for TTL seconds

	Error  Type = 0x80 // response to any request: it was refused, and why
	Pong   Type = 0x81 // response to Ping
	Nodes  Type = 0x82 // response to FindNode
	Values Type = 0x83 // response to FindValue
	Stored Type = 0x84 // response to Store: accepted
)

// IsRequest reports whether t is a request type (known or not).
func (t Type) IsRequest() bool { return t&0x80 == 0 }

// Known reports whether this version of the protocol defines t.
func (t Type) Known() bool {
	switch t {
	case Ping, FindNode, FindValue, Store, Error, Pong, Nodes, Values, Stored:
		return true
	}
	return false
}

// String names the type as docs/protocol.md does.
func (t Type) String() string {
	switch t {
	case Ping:
		return "PING"
	case FindNode:
		return "FIND_NODE"
	case FindValue:
		return "FIND_VALUE"
	case Store:
		return "STORE"
	case Error:
		return "ERROR"
	case Pong:
		return "PONG"
	case Nodes:
		return "NODES"
	case Values:
		return "VALUES"
	case Stored:
		return "STORED"
	}
	return "TYPE_0x" + string(hexDigit(byte(t)>>4)) + string(hexDigit(byte(t)&15))
}

func hexDigit(b byte) byte { return "0123456789abcdef"[b&15] }

// Flags are header bits that qualify the sender.
type Flags uint8

// Header flags. Unknown bits are ignored on receipt and sent as zero.
const (
	// FlagReadOnly marks a sender that is a short-lived client: answer it,
	// but do not add it to routing tables (like BEP 43's read-only nodes).
	FlagReadOnly Flags = 1 << 0
	flagsKnown         = FlagReadOnly
)

// ErrorCode says why a request was refused.
type ErrorCode uint16

// Error codes carried by ERROR messages. Numbers are only ever appended.
const (
	CodeGeneric     ErrorCode = 1 // refused; the text says why
	CodeMalformed   ErrorCode = 2 // the request did not decode
	CodeUnknownType ErrorCode = 3 // the request type is not one this node knows
	CodeTooLarge    ErrorCode = 4 // the value is over a size limit
	CodeFull        ErrorCode = 5 // the node's store has no room
	CodeBadTTL      ErrorCode = 6 // the TTL is zero or over the node's maximum
	CodeBusy        ErrorCode = 7 // the node is overloaded; try another
)

// Value is one stored value as carried by a VALUES message.
type Value struct {
	// TTL is how many more seconds the answering node keeps the value.
	TTL uint32
	// Data aliases the decoded datagram.
	Data []byte
}

// Message is any protocol message. Which body fields are meaningful depends
// on Type; the others are ignored by Append and zeroed by Decode.
//
// The zero value is an invalid message (type 0). A Message is not safe for
// concurrent use; reuse one per goroutine so that Decode does not allocate.
type Message struct {
	Type    Type
	Flags   Flags
	Network uint32 // network ID; nodes drop messages from other networks
	TxID    uint64 // transaction ID, echoed by the response
	Sender  id.ID  // ID of the node that sent the message

	Target   id.ID          // FIND_NODE target; FIND_VALUE and STORE key
	TTL      uint32         // STORE: seconds to keep Value; STORED: seconds the node will keep it
	Value    []byte         // STORE
	Values   []Value        // VALUES: values found
	More     bool           // VALUES: the node holds more values than fit
	Contacts []id.Contact   // NODES; VALUES: closer contacts
	Observed netip.AddrPort // PONG: the requester's address as the responder saw it
	Code     ErrorCode      // ERROR
	Text     []byte         // ERROR: reason, at most MaxErrorText bytes

	contacts [MaxContacts]id.Contact
	values   [MaxValues]Value
}

// Reset clears every field but leaves the internal arrays alone, which makes
// it far cheaper than assigning a zero Message when a Message is reused.
func (m *Message) Reset() {
	m.Type, m.Flags, m.Network, m.TxID, m.Sender = 0, 0, 0, 0, id.ID{}
	m.Target, m.TTL, m.Value, m.Values, m.More = id.ID{}, 0, nil, nil, false
	m.Contacts, m.Observed, m.Code, m.Text = nil, netip.AddrPort{}, 0, nil
}

// Decoding errors. Each is a sentinel: decoding never allocates an error.
var (
	ErrShort       = errors.New("wire: shorter than the header")
	ErrMagic       = errors.New("wire: bad magic byte")
	ErrVersion     = errors.New("wire: unsupported protocol version")
	ErrUnknownType = errors.New("wire: unknown message type")
	ErrTruncated   = errors.New("wire: body truncated")
	ErrAddress     = errors.New("wire: bad address")
	ErrTooMany     = errors.New("wire: too many items")
	ErrTooLarge    = errors.New("wire: over a size limit")
)

// ContactLen returns the encoded size of c: 27 bytes for IPv4, 39 for IPv6.
func ContactLen(c id.Contact) int {
	if c.Addr.Addr().Unmap().Is4() {
		return id.Len + 1 + 4 + 2
	}
	return id.Len + 1 + 16 + 2
}

// ValueLen returns the encoded size of a value with n bytes of data.
func ValueLen(n int) int { return 4 + 2 + n }

// Append encodes m onto b and returns the extended buffer. It fails, leaving
// b's contents unchanged, when a field is over its cap or the message would be
// longer than MaxPacket.
func (m *Message) Append(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, Magic, Version, byte(m.Type), byte(m.Flags&flagsKnown))
	b = binary.BigEndian.AppendUint32(b, m.Network)
	b = binary.BigEndian.AppendUint64(b, m.TxID)
	b = append(b, m.Sender[:]...)
	var err error
	switch m.Type {
	case Ping:
	case Stored:
		b = binary.BigEndian.AppendUint32(b, m.TTL)
	case Pong:
		b, err = appendAddr(b, m.Observed)
	case FindNode, FindValue:
		b = append(b, m.Target[:]...)
	case Store:
		if len(m.Value) > MaxValueSize {
			return b[:start], ErrTooLarge
		}
		b = append(b, m.Target[:]...)
		b = binary.BigEndian.AppendUint32(b, m.TTL)
		b = binary.BigEndian.AppendUint16(b, uint16(len(m.Value)))
		b = append(b, m.Value...)
	case Nodes:
		b, err = appendContacts(b, m.Contacts)
	case Values:
		if len(m.Values) > MaxValues {
			return b[:start], ErrTooMany
		}
		more := byte(0)
		if m.More {
			more = 1
		}
		b = append(b, more, byte(len(m.Values)))
		for _, v := range m.Values {
			if len(v.Data) > MaxValueSize {
				return b[:start], ErrTooLarge
			}
			b = binary.BigEndian.AppendUint32(b, v.TTL)
			b = binary.BigEndian.AppendUint16(b, uint16(len(v.Data)))
			b = append(b, v.Data...)
		}
		b, err = appendContacts(b, m.Contacts)
	case Error:
		if len(m.Text) > MaxErrorText {
			return b[:start], ErrTooLarge
		}
		b = binary.BigEndian.AppendUint16(b, uint16(m.Code))
		b = append(b, byte(len(m.Text)))
		b = append(b, m.Text...)
	default:
		return b[:start], ErrUnknownType
	}
	if err != nil {
		return b[:start], err
	}
	if len(b)-start > MaxPacket {
		return b[:start], ErrTooLarge
	}
	return b, nil
}

func appendContacts(b []byte, cs []id.Contact) ([]byte, error) {
	if len(cs) > MaxContacts {
		return b, ErrTooMany
	}
	b = append(b, byte(len(cs)))
	var err error
	for _, c := range cs {
		b = append(b, c.ID[:]...)
		if b, err = appendAddr(b, c.Addr); err != nil {
			return b, err
		}
	}
	return b, nil
}

// appendAddr writes family (4 or 6), address and port. IPv4-mapped IPv6
// addresses travel as IPv4, so one node is one address however it was seen.
func appendAddr(b []byte, ap netip.AddrPort) ([]byte, error) {
	a := ap.Addr().Unmap()
	switch {
	case a.Is4():
		b = append(b, 4)
		a4 := a.As4()
		b = append(b, a4[:]...)
	case a.Is6():
		b = append(b, 6)
		a16 := a.As16()
		b = append(b, a16[:]...)
	default:
		return b, ErrAddress
	}
	return binary.BigEndian.AppendUint16(b, ap.Port()), nil
}

// PeekHeader decodes only the fixed header: enough to drop a datagram from
// another network, or to answer an unknown request type with an ERROR.
func PeekHeader(b []byte, m *Message) error {
	if len(b) < HeaderLen {
		return ErrShort
	}
	if b[0] != Magic {
		return ErrMagic
	}
	if b[1] != Version {
		return ErrVersion
	}
	m.Type = Type(b[2])
	m.Flags = Flags(b[3]) & flagsKnown
	m.Network = binary.BigEndian.Uint32(b[4:8])
	m.TxID = binary.BigEndian.Uint64(b[8:16])
	copy(m.Sender[:], b[16:36])
	return nil
}

// Decode parses the datagram b into m, replacing all of m's fields. Bytes
// after the body are ignored, so later versions can append fields. On error,
// m's header fields may be set (as PeekHeader sets them) but its body is not
// meaningful.
func Decode(b []byte, m *Message) error {
	if err := PeekHeader(b, m); err != nil {
		return err
	}
	m.Target = id.ID{}
	m.TTL = 0
	m.Value = nil
	m.Values = m.values[:0]
	m.More = false
	m.Contacts = m.contacts[:0]
	m.Observed = netip.AddrPort{}
	m.Code = 0
	m.Text = nil
	r := reader{b: b, off: HeaderLen}
	switch m.Type {
	case Ping:
	case Stored:
		m.TTL = r.u32()
	case Pong:
		m.Observed = r.addr()
	case FindNode, FindValue:
		r.id(&m.Target)
	case Store:
		r.id(&m.Target)
		m.TTL = r.u32()
		n := int(r.u16())
		if n > MaxValueSize {
			return ErrTooLarge
		}
		m.Value = r.bytes(n)
	case Nodes:
		m.Contacts = r.contacts(m.contacts[:0])
	case Values:
		m.More = r.u8()&1 != 0
		n := int(r.u8())
		if n > MaxValues {
			return ErrTooMany
		}
		for range n {
			ttl := r.u32()
			size := int(r.u16())
			if size > MaxValueSize {
				return ErrTooLarge
			}
			data := r.bytes(size)
			if r.err != nil {
				break
			}
			m.Values = append(m.Values, Value{TTL: ttl, Data: data})
		}
		m.Contacts = r.contacts(m.contacts[:0])
	case Error:
		m.Code = ErrorCode(r.u16())
		m.Text = r.bytes(int(r.u8()))
	default:
		return ErrUnknownType
	}
	return r.err
}

// reader walks a datagram; the first failure sticks in err and every later
// read returns zero values, so decoders check once at the end.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if n > len(r.b)-r.off {
		r.err = ErrTruncated
		return false
	}
	return true
}

func (r *reader) u8() uint8 {
	if !r.need(1) {
		return 0
	}
	v := r.b[r.off]
	r.off++
	return v
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(r.b[r.off:])
	r.off += 2
	return v
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(r.b[r.off:])
	r.off += 4
	return v
}

func (r *reader) id(x *id.ID) {
	if !r.need(id.Len) {
		return
	}
	copy(x[:], r.b[r.off:])
	r.off += id.Len
}

// bytes returns n bytes aliasing the datagram, capacity clipped so that an
// append by the caller can never write into the rest of the datagram.
func (r *reader) bytes(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return v
}

func (r *reader) addr() netip.AddrPort {
	switch r.u8() {
	case 4:
		if !r.need(4 + 2) {
			return netip.AddrPort{}
		}
		a := netip.AddrFrom4([4]byte(r.b[r.off : r.off+4]))
		r.off += 4
		return netip.AddrPortFrom(a, r.u16())
	case 6:
		if !r.need(16 + 2) {
			return netip.AddrPort{}
		}
		// Unmap so that an IPv4 node is one address however a peer wrote it.
		a := netip.AddrFrom16([16]byte(r.b[r.off : r.off+16])).Unmap()
		r.off += 16
		return netip.AddrPortFrom(a, r.u16())
	}
	if r.err == nil {
		r.err = ErrAddress
	}
	return netip.AddrPort{}
}

func (r *reader) contacts(dst []id.Contact) []id.Contact {
	n := int(r.u8())
	if n > MaxContacts {
		if r.err == nil {
			r.err = ErrTooMany
		}
		return dst
	}
	// Decode straight into dst's backing array (MaxContacts long) rather than
	// through a temporary, which halves the cost of a NODES message.
	dst = dst[:n]
	for i := range dst {
		c := &dst[i]
		if !r.need(id.Len + 1) {
			return dst[:i]
		}
		c.ID = id.ID(r.b[r.off : r.off+id.Len])
		r.off += id.Len
		c.Addr = r.addr()
		if r.err != nil {
			return dst[:i]
		}
	}
	return dst
}

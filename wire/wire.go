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
	// MaxPart bounds the data in one PUT or PART, and the data a Record
	// carries inline: small enough that every message carrying one fits
	// MaxPacket. A value over MaxPart travels as several parts.
	MaxPart = 1200
	// MaxRecords bounds the records in one RECORDS message.
	MaxRecords = 64
	// MaxRecordSize bounds a record's whole value, all parts together.
	MaxRecordSize = 1 << 20
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
	Put       Type = 0x05 // request: one part of Publisher's value under Target
	Get       Type = 0x06 // request: records under Target, from a cursor
	Fetch     Type = 0x07 // request: bytes of a record from Offset on
	Delete    Type = 0x08 // request: withdraw Publisher's value under Target
	Listen    Type = 0x09 // request: notify me of changes under Target for TTL seconds
	Notify    Type = 0x0A // request: Record changed under Target (to a listener)
	Offer     Type = 0x0B // request: digests of records the sender can replicate to you

	Error  Type = 0x80 // response to any request: it was refused, and why
	Pong   Type = 0x81 // response to Ping
	Nodes  Type = 0x82 // response to FindNode
	Values Type = 0x83 // response to FindValue
	Stored Type = 0x84 // response to Store: accepted

	PutOK     Type = 0x85 // response to Put: stored, or part kept
	Records   Type = 0x86 // response to Get
	Part      Type = 0x87 // response to Fetch
	Deleted   Type = 0x88 // response to Delete: tombstone stored
	Listening Type = 0x89 // response to Listen: registered (or cancelled)
	Notified  Type = 0x8A // response to Notify
	Want      Type = 0x8B // response to Offer: which of the offered records are lacking
)

// IsRequest reports whether t is a request type (known or not).
func (t Type) IsRequest() bool { return t&0x80 == 0 }

// Known reports whether this version of the protocol defines t.
func (t Type) Known() bool {
	switch t {
	case Ping, FindNode, FindValue, Store, Put, Get, Fetch, Delete, Listen, Notify, Offer,
		Error, Pong, Nodes, Values, Stored, PutOK, Records, Part, Deleted, Listening, Notified, Want:
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
	case Put:
		return "PUT"
	case Get:
		return "GET"
	case Fetch:
		return "FETCH"
	case Delete:
		return "DELETE"
	case Listen:
		return "LISTEN"
	case Notify:
		return "NOTIFY"
	case PutOK:
		return "PUT_OK"
	case Records:
		return "RECORDS"
	case Part:
		return "PART"
	case Deleted:
		return "DELETED"
	case Listening:
		return "LISTENING"
	case Notified:
		return "NOTIFIED"
	case Offer:
		return "OFFER"
	case Want:
		return "WANT"
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
	flagsKnown         = FlagReadOnly | FlagProve | FlagProof | FlagToken // FlagProve, FlagProof: ident.go; FlagToken: token.go
)

// ErrorCode says why a request was refused.
type ErrorCode uint16

// Error codes carried by ERROR messages. Numbers are only ever appended.
const (
	CodeGeneric     ErrorCode = 1  // refused; the text says why
	CodeMalformed   ErrorCode = 2  // the request did not decode
	CodeUnknownType ErrorCode = 3  // the request type is not one this node knows
	CodeTooLarge    ErrorCode = 4  // the value is over a size limit
	CodeFull        ErrorCode = 5  // the node's store has no room
	CodeBadTTL      ErrorCode = 6  // the TTL is zero or over the node's maximum
	CodeBusy        ErrorCode = 7  // the node is overloaded; try another
	CodeNotFound    ErrorCode = 8  // FETCH: the node holds no such record (or not that version)
	CodeStale       ErrorCode = 9  // STORE, PUT, DELETE: not newer than the record the node holds
	CodeTooMany     ErrorCode = 10 // reassembly or listener table full; try later
	CodeInvalid     ErrorCode = 11 // the record breaks its kind's rules (see docs/protocol.md "Record kinds"); the text names the field
	CodeConflict    ErrorCode = 12 // PUT with compare-and-swap: the held sequence is not the expected one
	// 13 is CodeIdentity (ident.go).
)

// PUT flags, the optional byte after a PUT's data. A PUT without it has
// flags 0, which is how a node that predates the byte sends it.
const (
	// PutEnvelope: the value is a record envelope (docs/protocol.md,
	// "Record kinds"), checked by its kind before it is stored.
	PutEnvelope   uint8 = 1 << 0
	putFlagsKnown       = PutEnvelope
)

// PUT_OK statuses.
const (
	// StatusStored: the whole value is stored; TTL is the time granted.
	StatusStored uint8 = 0
	// StatusPart: this part is kept and more are awaited; TTL is 0.
	StatusPart uint8 = 1
)

// Value is one stored value as carried by a VALUES message.
type Value struct {
	// TTL is how many more seconds the answering node keeps the value.
	TTL uint32
	// Data aliases the decoded datagram.
	Data []byte
}

// Record is one stored value or tombstone as carried by RECORDS and NOTIFY.
// Its value is inline when len(Data) == Size; a record with Size > 0 and no
// Data is fetch-only: its bytes are read with FETCH. Any other combination
// does not encode, nor does a Deleted record with Size > 0.
type Record struct {
	Publisher id.ID  // who put the value: with the key, it names the record
	Version   uint64 // publisher-assigned; higher wins
	TTL       uint32 // seconds the sending node still keeps the record
	Deleted   bool   // a tombstone: the publisher withdrew its value
	Envelope  bool   // the value is a record envelope (never with Deleted, never empty)
	Size      uint32 // the whole value's length, at most MaxRecordSize
	Data      []byte // the value inline (Size bytes, at most MaxPart), or empty; aliases the datagram
}

// The bits of a record's flags byte. Unknown bits are ignored on receipt.
const (
	recordDeleted  = 1 << 0
	recordEnvelope = 1 << 1
)

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

	Target   id.ID          // FIND_NODE target; the key of FIND_VALUE, STORE, PUT, GET, FETCH, DELETE, LISTEN, NOTIFY
	TTL      uint32         // seconds: asked by STORE, PUT, DELETE, LISTEN; granted by STORED, PUT_OK, DELETED, LISTENING
	Value    []byte         // STORE: the value; PUT, PART: this part's data
	Values   []Value        // VALUES: values found
	More     bool           // VALUES, RECORDS: the node holds more than fit
	Contacts []id.Contact   // NODES; VALUES, RECORDS: closer contacts
	Observed netip.AddrPort // PONG: the requester's address as the responder saw it
	Code     ErrorCode      // ERROR
	Text     []byte         // ERROR: reason, at most MaxErrorText bytes

	Publisher      id.ID    // PUT, FETCH, DELETE: whose record
	PutFlags       uint8    // PUT: PutEnvelope; unknown bits are dropped on decode
	Version        uint64   // PUT, FETCH, DELETE: which version of it
	Size           uint32   // PUT, PART: the whole value's length
	Offset         uint32   // PUT, PART: where this part's data starts; FETCH: where to start
	Status         uint8    // PUT_OK: StatusStored or StatusPart
	Found          bool     // DELETED: a live value of that publisher was withdrawn
	Records        []Record // RECORDS: newest first
	Record         Record   // NOTIFY: the record as it now is
	Cursor         bool     // GET: start after AfterVersion and AfterPublisher
	AfterVersion   uint64   // GET with Cursor: the last record of the previous answer
	AfterPublisher id.ID    // GET with Cursor

	Offers []Digest // OFFER: the records offered, at most MaxOffer
	Wants  []uint8  // WANT: indices into the OFFER's Offers, ascending

	// Proof is the identity trailer of a message with FlagProof:
	// ProofLen bytes (ident.go); decoded, it aliases the datagram.
	Proof []byte
	Token Token // with FlagToken: a write's token, or a response's fresh one (token.go)

	contacts [MaxContacts]id.Contact
	values   [MaxValues]Value
	records  [MaxRecords]Record
	offers   [MaxOffer]Digest
	wants    [MaxOffer]uint8
}

// Reset clears every field but leaves the internal arrays alone, which makes
// it far cheaper than assigning a zero Message when a Message is reused.
func (m *Message) Reset() {
	m.Type, m.Flags, m.Network, m.TxID, m.Sender = 0, 0, 0, 0, id.ID{}
	m.Target, m.TTL, m.Value, m.Values, m.More = id.ID{}, 0, nil, nil, false
	m.Contacts, m.Observed, m.Code, m.Text = nil, netip.AddrPort{}, 0, nil
	m.resetNew(nil)
	m.Offers = nil
	m.Wants = nil
	m.Proof = nil
	m.Token = Token{}
}

// resetNew clears the fields of the storage messages, setting Records to rs.
// One assignment a field: a tuple assignment goes through temporaries,
// whose overlapping copies more than doubled the cost of decoding a
// FIND_VALUE.
func (m *Message) resetNew(rs []Record) {
	m.Publisher = id.ID{}
	m.PutFlags = 0
	m.Version = 0
	m.Size = 0
	m.Offset = 0
	m.Status = 0
	m.Found = false
	m.Records = rs
	m.Record = Record{}
	m.Cursor = false
	m.AfterVersion = 0
	m.AfterPublisher = id.ID{}
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
	ErrInvalid     = errors.New("wire: inconsistent or out-of-range field")
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

// RecordLen returns the encoded size of a record carrying n bytes inline
// (n = 0 for a fetch-only record or a tombstone): 39 + n.
func RecordLen(n int) int { return id.Len + 8 + 4 + 1 + 4 + 2 + n }

// EmptyRecordsLen is the size of a RECORDS message without records or
// contacts: the header, the count, more and the contacts' count. A RECORDS
// is EmptyRecordsLen plus RecordLen of each record plus ContactLen of each
// contact, which is how a node fits its answer into a byte budget.
const EmptyRecordsLen = HeaderLen + 3

// PartLen returns the encoded size of a PART message with n bytes of data.
func PartLen(n int) int { return HeaderLen + 4 + 4 + 2 + n }

// checkRecord applies the rules of a Record's lengths: the value inline
// (n == size) or fetch-only (n == 0), never more than MaxPart inline, a
// tombstone without bytes, and an envelope neither a tombstone nor empty
// (an envelope has at least its kind byte; a signed withdrawal is an
// envelope with an empty value, not a tombstone).
func checkRecord(deleted, envelope bool, size uint32, n int) error {
	switch {
	case size > MaxRecordSize || n > MaxPart:
		return ErrTooLarge
	case deleted && size != 0, n != 0 && n != int(size), envelope && (deleted || size == 0):
		return ErrInvalid
	}
	return nil
}

// checkPart applies the rules of a PART's lengths: n bytes from offset lie
// within a value of size bytes. Sums are taken in 64 bits: no overflow.
func checkPart(size, offset uint32, n int) error {
	switch {
	case size > MaxRecordSize || n > MaxPart:
		return ErrTooLarge
	case uint64(offset)+uint64(n) > uint64(size):
		return ErrInvalid
	}
	return nil
}

// checkPut applies checkPart and the rule that makes parts canonical: a
// value travels as its consecutive MaxPart-sized slices, so a PUT's part
// starts at a multiple of MaxPart and runs to the next one or to the end.
// Then parts cannot overlap, and a receiver keeps one bit per part.
func checkPut(size, offset uint32, n int) error {
	if err := checkPart(size, offset, n); err != nil {
		return err
	}
	if offset%MaxPart != 0 || n != int(min(MaxPart, size-offset)) || (n == 0 && size != 0) {
		return ErrInvalid
	}
	return nil
}

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
	case Put:
		if err := checkPut(m.Size, m.Offset, len(m.Value)); err != nil {
			return b[:start], err
		}
		if m.PutFlags&PutEnvelope != 0 && m.Size == 0 {
			return b[:start], ErrInvalid
		}
		b = append(b, m.Target[:]...)
		b = append(b, m.Publisher[:]...)
		b = binary.BigEndian.AppendUint64(b, m.Version)
		b = binary.BigEndian.AppendUint32(b, m.TTL)
		b = binary.BigEndian.AppendUint32(b, m.Size)
		b = appendPart(b, m.Offset, m.Value)
		// The flags byte goes only when a flag is set: a plain PUT keeps
		// the bytes it had before the byte existed, so one message has one
		// encoding and old nodes read it as before.
		// A token follows the flags byte, which is then always sent.
		if f := m.PutFlags & putFlagsKnown; f != 0 || m.Flags&FlagToken != 0 {
			b = append(b, f)
		}
	case PutOK:
		if m.Status > StatusPart {
			return b[:start], ErrInvalid
		}
		b = append(b, m.Status)
		b = binary.BigEndian.AppendUint32(b, m.TTL)
	case Get:
		b = append(b, m.Target[:]...)
		if !m.Cursor {
			// The cursor's fields are meaningless without the flag: send
			// zeros, so that one message has one encoding.
			b = append(b, make([]byte, 1+8+id.Len)...)
			break
		}
		b = append(b, 1)
		b = binary.BigEndian.AppendUint64(b, m.AfterVersion)
		b = append(b, m.AfterPublisher[:]...)
	case Records:
		if len(m.Records) > MaxRecords {
			return b[:start], ErrTooMany
		}
		b = append(b, byte(len(m.Records)))
		for i := range m.Records {
			if b, err = appendRecord(b, &m.Records[i]); err != nil {
				return b[:start], err
			}
		}
		more := byte(0)
		if m.More {
			more = 1
		}
		b = append(b, more)
		b, err = appendContacts(b, m.Contacts)
	case Fetch:
		b = append(b, m.Target[:]...)
		b = append(b, m.Publisher[:]...)
		b = binary.BigEndian.AppendUint64(b, m.Version)
		b = binary.BigEndian.AppendUint32(b, m.Offset)
	case Part:
		if err := checkPart(m.Size, m.Offset, len(m.Value)); err != nil {
			return b[:start], err
		}
		b = binary.BigEndian.AppendUint32(b, m.Size)
		b = appendPart(b, m.Offset, m.Value)
	case Delete:
		b = append(b, m.Target[:]...)
		b = append(b, m.Publisher[:]...)
		b = binary.BigEndian.AppendUint64(b, m.Version)
		b = binary.BigEndian.AppendUint32(b, m.TTL)
	case Deleted:
		found := byte(0)
		if m.Found {
			found = 1
		}
		b = append(b, found)
		b = binary.BigEndian.AppendUint32(b, m.TTL)
	case Listen:
		b = append(b, m.Target[:]...)
		b = binary.BigEndian.AppendUint32(b, m.TTL)
	case Listening:
		b = binary.BigEndian.AppendUint32(b, m.TTL)
	case Notify:
		b = append(b, m.Target[:]...)
		b, err = appendRecord(b, &m.Record)
	case Notified:
	case Offer:
		b, err = appendOffer(b, m.Offers)
	case Want:
		b, err = appendWant(b, m.Wants)
	default:
		return b[:start], ErrUnknownType
	}
	// The token comes right after the body, then the identity proof,
	// which is always the datagram's last ProofLen bytes.
	if err == nil {
		b = appendToken(b, m)
		b, err = appendProof(b, m)
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

// appendPart writes a part's offset, length and data, once checked.
func appendPart(b []byte, offset uint32, data []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, offset)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	return append(b, data...)
}

func appendRecord(b []byte, r *Record) ([]byte, error) {
	if err := checkRecord(r.Deleted, r.Envelope, r.Size, len(r.Data)); err != nil {
		return b, err
	}
	b = append(b, r.Publisher[:]...)
	b = binary.BigEndian.AppendUint64(b, r.Version)
	b = binary.BigEndian.AppendUint32(b, r.TTL)
	flags := byte(0)
	if r.Deleted {
		flags |= recordDeleted
	}
	if r.Envelope {
		flags |= recordEnvelope
	}
	b = append(b, flags)
	b = binary.BigEndian.AppendUint32(b, r.Size)
	b = binary.BigEndian.AppendUint16(b, uint16(len(r.Data)))
	return append(b, r.Data...), nil
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
	b, err := splitProof(b, m) // the body ends where the trailer starts (ident.go)
	if err != nil {
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
	m.resetNew(m.records[:0])
	m.Offers = m.offers[:0]
	m.Wants = m.wants[:0]
	m.Token = Token{}
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
	case Put:
		r.id(&m.Target)
		r.id(&m.Publisher)
		m.Version = r.u64()
		m.TTL = r.u32()
		m.Size = r.u32()
		m.Offset = r.u32()
		n := int(r.u16())
		if r.err == nil {
			if err := checkPut(m.Size, m.Offset, n); err != nil {
				return err
			}
		}
		m.Value = r.bytes(n)
		// The optional flags byte: absent (an older sender) reads as 0.
		if r.err == nil && r.off < len(r.b) {
			m.PutFlags = r.b[r.off] & putFlagsKnown
			r.off++
		}
		if r.err == nil && m.PutFlags&PutEnvelope != 0 && m.Size == 0 {
			return ErrInvalid // an envelope has at least its kind byte
		}
	case PutOK:
		m.Status = r.u8()
		m.TTL = r.u32()
		if r.err == nil && m.Status > StatusPart {
			return ErrInvalid
		}
	case Get:
		r.id(&m.Target)
		m.Cursor = r.u8()&1 != 0
		v := r.u64()
		var p id.ID
		r.id(&p)
		if m.Cursor {
			m.AfterVersion, m.AfterPublisher = v, p
		}
	case Records:
		n := int(r.u8())
		if n > MaxRecords {
			return ErrTooMany
		}
		// Decode straight into the fixed array, as contacts are.
		rs := m.records[:n]
		for i := range rs {
			if err := r.record(&rs[i]); err != nil {
				return err
			}
			if r.err != nil {
				return r.err
			}
		}
		m.Records = rs
		m.More = r.u8()&1 != 0
		m.Contacts = r.contacts(m.contacts[:0])
	case Fetch:
		r.id(&m.Target)
		r.id(&m.Publisher)
		m.Version = r.u64()
		m.Offset = r.u32()
	case Part:
		m.Size = r.u32()
		m.Offset = r.u32()
		n := int(r.u16())
		if r.err == nil {
			if err := checkPart(m.Size, m.Offset, n); err != nil {
				return err
			}
		}
		m.Value = r.bytes(n)
	case Delete:
		r.id(&m.Target)
		r.id(&m.Publisher)
		m.Version = r.u64()
		m.TTL = r.u32()
	case Deleted:
		found := r.u8()
		m.TTL = r.u32()
		if r.err == nil && found > 1 {
			return ErrInvalid
		}
		m.Found = found == 1
	case Listen:
		r.id(&m.Target)
		m.TTL = r.u32()
	case Listening:
		m.TTL = r.u32()
	case Notify:
		r.id(&m.Target)
		if err := r.record(&m.Record); err != nil {
			return err
		}
	case Notified:
	case Offer:
		if err := r.offer(m); err != nil {
			return err
		}
	case Want:
		if err := r.want(m); err != nil {
			return err
		}
	default:
		return ErrUnknownType
	}
	r.token(m)
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

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(r.b[r.off:])
	r.off += 8
	return v
}

// record decodes one Record into x, returning the rule it breaks, if any;
// a truncation sticks in r.err as for any other read.
func (r *reader) record(x *Record) error {
	r.id(&x.Publisher)
	x.Version = r.u64()
	x.TTL = r.u32()
	flags := r.u8()
	x.Deleted = flags&recordDeleted != 0
	x.Envelope = flags&recordEnvelope != 0
	x.Size = r.u32()
	n := int(r.u16())
	if r.err != nil {
		return nil
	}
	if err := checkRecord(x.Deleted, x.Envelope, x.Size, n); err != nil {
		return err
	}
	x.Data = r.bytes(n)
	return nil
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

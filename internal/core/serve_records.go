package core

import (
	"bytes"
	"errors"
	"net/netip"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/record"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// This file serves the record messages: PUT, GET, FETCH and DELETE.

// grantTTL clamps a requested TTL in seconds to the node's bounds.
func (n *Node) grantTTL(secs uint32) time.Duration {
	return min(max(time.Duration(secs)*time.Second, n.cfg.MinTTL), n.cfg.MaxTTL)
}

// refusal maps a store's error to the ERROR code and text a publisher gets.
func refusal(err error) (wire.ErrorCode, string) {
	code := wire.CodeGeneric
	switch {
	case errors.Is(err, store.ErrTooLarge):
		code = wire.CodeTooLarge
	case errors.Is(err, store.ErrFull), errors.Is(err, store.ErrKeyFull), errors.Is(err, store.ErrQuota):
		code = wire.CodeFull
	case errors.Is(err, store.ErrExpired):
		code = wire.CodeBadTTL
	case errors.Is(err, store.ErrStale):
		code = wire.CodeStale
	case errors.Is(err, store.ErrBusy):
		code = wire.CodeBusy
	}
	return code, err.Error()
}

// admit is a storing node's check of a complete record v under key before
// it goes to the store: an enveloped record (and, where plain records are
// refused, a plain one) must pass the record policy, which sees the record
// of v's publisher held here. On success v.Data becomes what the policy
// says to store (a compare-and-swap's field removed) and the granted ttl
// is clamped into the kind's bounds, within the node's; v.Expires is set
// from it. On refusal it returns the ERROR code (11 INVALID, 12 CONFLICT)
// and the policy's text, which names the field. The lock is held.
func (n *Node) admit(key id.ID, v *store.Value, ttl time.Duration, now time.Time) (time.Duration, wire.ErrorCode, string) {
	v.Expires = now.Add(ttl)
	if !v.Envelope && !n.cfg.RecordPolicy.RefusePlain {
		return ttl, 0, "" // plain records cost no more than they did
	}
	var held *record.Held
	if h, ok := n.store.Lookup(key, v.Publisher, now); ok && !h.Deleted {
		held = &record.Held{Version: h.Version, Envelope: h.Envelope, Data: h.Data}
	}
	verdict, err := n.cfg.RecordPolicy.Check(key, v.Publisher, v.Version, v.Envelope, v.Data, held)
	if err != nil {
		code := wire.CodeInvalid
		var re *record.Error
		if errors.As(err, &re) && re.Reason == record.Conflict {
			code = wire.CodeConflict
		}
		return 0, code, err.Error()
	}
	v.Data = verdict.Data
	if verdict.MinTTL > 0 && ttl < verdict.MinTTL {
		ttl = min(verdict.MinTTL, n.cfg.MaxTTL)
	}
	if verdict.MaxTTL > 0 && ttl > verdict.MaxTTL {
		ttl = max(verdict.MaxTTL, n.cfg.MinTTL)
	}
	v.Expires = now.Add(ttl)
	return ttl, 0, ""
}

// refusePlain is the text of a plain write on a node whose policy refuses
// plain records.
const refusePlain = "this network stores only enveloped records (signed, typed or content-addressed)"

// refuse answers m with an ERROR.
func (n *Node) refuse(s *scratch, m *wire.Message, from netip.AddrPort, w transport.Writer, code wire.ErrorCode, text string) {
	n.stats.storesRefused++
	n.reply(s, m, from, w, wire.Error, func(o *wire.Message) {
		o.Code = code
		o.Text = cutText(append(s.text[:0], text...), wire.MaxErrorText)
	})
}

// servePut takes one part of a value (most values are one part).
func (n *Node) servePut(s *scratch, m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) {
	switch {
	case m.TTL == 0:
		n.refuse(s, m, from, w, wire.CodeBadTTL, "ttl must be at least 1 second")
		return
	case m.Size == 0:
		n.refuse(s, m, from, w, wire.CodeGeneric, "empty value (a withdrawal is a DELETE)")
		return
	case int(m.Size) > n.cfg.MaxValueSize:
		n.refuse(s, m, from, w, wire.CodeTooLarge, "value of "+itoa(int(m.Size))+" bytes is over this node's limit of "+itoa(n.cfg.MaxValueSize))
		return
	}
	data := m.Value
	if int(m.Size) != len(m.Value) {
		if held, ok := n.store.Lookup(m.Target, m.Publisher, now); ok && held.Version == m.Version && !held.Deleted &&
			held.Envelope == (m.PutFlags&wire.PutEnvelope != 0) && m.Offset != 0 && !n.parts.has(hostOf(from.Addr()), m) {
			// A late or repeated part of a value already complete here.
			n.reply(s, m, from, w, wire.PutOK, func(o *wire.Message) {
				o.Status, o.TTL = wire.StatusStored, ttlSeconds(held.Expires.Sub(now))
			})
			return
		}
		whole, err := n.parts.add(hostOf(from.Addr()), m, now)
		if err != nil {
			code := wire.CodeGeneric
			if errors.Is(err, errTooMany) {
				code = wire.CodeTooMany
			}
			n.refuse(s, m, from, w, code, err.Error())
			return
		}
		if whole == nil {
			n.reply(s, m, from, w, wire.PutOK, func(o *wire.Message) { o.Status = wire.StatusPart })
			return
		}
		data = whole
	}
	v := store.Value{Publisher: m.Publisher, Version: m.Version, Envelope: m.PutFlags&wire.PutEnvelope != 0, Data: data}
	ttl, code, text := n.admit(m.Target, &v, n.grantTTL(m.TTL), now)
	if code != 0 {
		n.refuse(s, m, from, w, code, text)
		return
	}
	refresh := n.refreshOnly(m.Target, v, now)
	if err := n.store.Put(m.Target, v, from.Addr(), now); err != nil {
		code, text := refusal(err)
		n.refuse(s, m, from, w, code, text)
		return
	}
	n.stats.storesAccepted++
	if !refresh {
		n.changed(m.Target, v, now, w)
	}
	n.ack(s, m, from, w, wire.PutOK, func(o *wire.Message) { o.Status, o.TTL = wire.StatusStored, ttlSeconds(ttl) })
}

// ack answers a request that changed the store: at once, or, when the
// store writes to disk, once the change is durable, so that an
// acknowledged value survives a crash.
func (n *Node) ack(s *scratch, m *wire.Message, from netip.AddrPort, w transport.Writer, typ wire.Type, fill func(o *wire.Message)) {
	sy, ok := n.store.(store.Syncer)
	if !ok {
		n.reply(s, m, from, w, typ, fill)
		return
	}
	// The request lives in the scratch message, reused by the next
	// datagram: keep what the answer needs.
	req := wire.Message{Type: m.Type, TxID: m.TxID, Flags: m.Flags}
	limit, prove := s.limit, s.prove // the answer's budget is the request's, whenever it goes
	sy.Sync(func(err error) {
		n.run(func(now time.Time, w transport.Writer) {
			if n.closed {
				return
			}
			s := n.lateScratch()
			s.limit, s.prove = limit, prove
			if err != nil {
				n.refuse(s, &req, from, w, wire.CodeBusy, "writing to disk: "+err.Error())
				return
			}
			n.reply(s, &req, from, w, typ, fill)
		})
	})
}

// lateScratch is the scratch for answers sent outside a datagram's
// handling (a durable store's acknowledgements). The lock is held.
func (n *Node) lateScratch() *scratch {
	if n.late == nil {
		n.late = newScratch()
	}
	return n.late
}

// after reports whether v comes after the cursor in the serving order
// (version descending, then publisher ascending).
func after(v *store.Value, c *recordKey) bool {
	return v.Version < c.version || (v.Version == c.version && bytes.Compare(v.Publisher[:], c.publisher[:]) > 0)
}

// recordKey names one version of one publisher's record: a cursor, or a
// record to fetch.
type recordKey struct {
	publisher id.ID
	version   uint64
}

// serveGet answers GET with the key's records (tombstones included, so that
// readers see withdrawals), newest first from the cursor on, or with
// closer contacts when it holds none.
func (n *Node) serveGet(s *scratch, m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) {
	s.records = n.store.Records(m.Target, now, s.records[:0])
	if m.Cursor {
		c := recordKey{publisher: m.AfterPublisher, version: m.AfterVersion}
		i := 0
		for i < len(s.records) && !after(&s.records[i], &c) {
			i++
		}
		s.records = s.records[i:]
	}
	size := wire.HeaderLen + 3 // count, more, contacts count
	if len(s.records) == 0 {
		s.contacts = fitContacts(n.closestExcept(m.Target, m.Sender, from, s.contacts[:0]), s.limit-size)
	}
	n.reply(s, m, from, w, wire.Records, func(o *wire.Message) {
		if len(s.records) == 0 {
			o.Contacts = s.contacts
			return
		}
		s.wrecords = s.wrecords[:0]
		for i := range s.records {
			if len(s.wrecords) == wire.MaxRecords {
				o.More = true
				break
			}
			v := &s.records[i]
			r := wire.Record{Publisher: v.Publisher, Version: v.Version, TTL: ttlSeconds(v.Expires.Sub(now)), Deleted: v.Deleted, Envelope: v.Envelope, Size: uint32(len(v.Data))}
			switch {
			case len(v.Data) <= wire.MaxPart && size+wire.RecordLen(len(v.Data)) <= s.limit:
				r.Data = v.Data
			case size+wire.RecordLen(0) > s.limit:
				o.More = true
			}
			if o.More {
				break
			}
			// A record too big to carry here goes without its bytes: the
			// reader fetches them in parts.
			size += wire.RecordLen(len(r.Data))
			s.wrecords = append(s.wrecords, r)
		}
		o.Records = s.wrecords
	})
}

// serveFetch answers FETCH with one part of a record it holds.
func (n *Node) serveFetch(s *scratch, m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) {
	v, ok := n.store.Lookup(m.Target, m.Publisher, now)
	if !ok || v.Deleted || v.Version != m.Version || int(m.Offset) >= len(v.Data) {
		n.reply(s, m, from, w, wire.Error, func(o *wire.Message) {
			o.Code = wire.CodeNotFound
			o.Text = append(s.text[:0], "no such record part here"...)
		})
		return
	}
	k := min(len(v.Data)-int(m.Offset), wire.MaxPart, s.limit-(wire.HeaderLen+10))
	if k <= 0 {
		return // a budget this small earns no part; the requester pads FETCH
	}
	n.reply(s, m, from, w, wire.Part, func(o *wire.Message) {
		o.Size, o.Offset = uint32(len(v.Data)), m.Offset
		o.Value = v.Data[m.Offset : int(m.Offset)+k]
	})
}

// serveDelete stores a tombstone for the publisher's record. It is kept at
// least as long as the value it replaces, so that no replica that missed
// the withdrawal can bring the value back while it could still be served.
func (n *Node) serveDelete(s *scratch, m *wire.Message, from netip.AddrPort, now time.Time, w transport.Writer) {
	if n.cfg.RecordPolicy.RefusePlain {
		n.refuse(s, m, from, w, wire.CodeInvalid, refusePlain)
		return
	}
	ttl := n.grantTTL(m.TTL)
	expires := now.Add(ttl)
	held, found := n.store.Lookup(m.Target, m.Publisher, now)
	if found && held.Expires.After(expires) {
		expires = held.Expires
	}
	found = found && !held.Deleted
	v := store.Value{Publisher: m.Publisher, Version: m.Version, Expires: expires, Deleted: true}
	if err := n.store.Put(m.Target, v, from.Addr(), now); err != nil {
		code, text := refusal(err)
		n.refuse(s, m, from, w, code, text)
		return
	}
	n.stats.storesAccepted++
	if found {
		n.changed(m.Target, v, now, w)
	}
	secs := ttlSeconds(expires.Sub(now))
	n.ack(s, m, from, w, wire.Deleted, func(o *wire.Message) { o.Found, o.TTL = found, secs })
}

// itoa formats a small non-negative int without fmt (serving stays
// allocation-light).
func itoa(v int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}

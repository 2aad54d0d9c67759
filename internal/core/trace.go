package core

import (
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/wire"
)

// TraceQuery is one request of a traced lookup: whom it asked, when, how
// long the answer took and what it said.
type TraceQuery struct {
	To id.Contact
	// Round is the lookup's hop at which the contact was asked (1: from
	// the routing table), known once it answered; 0 if it never did.
	Round int
	// Sent is when the request went out, from the lookup's start; Took how
	// long its answer took (zero without one).
	Sent, Took time.Duration
	// Outcome is "answered", "refused" (an ERROR or an answer of the wrong
	// type), "timeout" or "pending" (the lookup ended first).
	Outcome string
	// Contacts and Records count what the answer carried; Found lists the
	// contacts.
	Contacts, Records int
	Found             []id.Contact
	// Stalled is set when the lookup moved on before the answer came.
	Stalled bool
}

// maxTrace bounds a trace: a lookup's queries plus its continuations.
const maxTrace = 4*(wire.MaxContacts+8) + maxContinuations

func (o *lookupOp) traceSent(c id.Contact, now time.Time) {
	if o.trace == nil || len(*o.trace) >= maxTrace {
		return
	}
	*o.trace = append(*o.trace, TraceQuery{To: c, Sent: now.Sub(o.started), Outcome: "pending"})
}

// traceQuery returns the latest pending query to c, or nil.
func (o *lookupOp) traceQuery(c id.Contact) *TraceQuery {
	if o.trace == nil {
		return nil
	}
	t := *o.trace
	for i := len(t) - 1; i >= 0; i-- {
		if t[i].To.Addr == c.Addr && t[i].Outcome == "pending" {
			return &t[i]
		}
	}
	return nil
}

// traceAnswer records c's answer; depth is the lookup's for it, or -1 for
// an answer the lookup could not use.
func (o *lookupOp) traceAnswer(c id.Contact, depth int, m *wire.Message, now time.Time) {
	q := o.traceQuery(c)
	if q == nil {
		return
	}
	q.To.ID = c.ID
	q.Round, q.Took, q.Outcome = depth, now.Sub(o.started)-q.Sent, "answered"
	q.Contacts, q.Records = len(m.Contacts), len(m.Records)
	q.Found = append([]id.Contact(nil), m.Contacts...) // m's contacts alias the datagram
	if depth < 0 {                                     // an ERROR, or an answer of another type
		q.Round, q.Outcome = 0, "refused"
	}
}

func (o *lookupOp) traceFailed(c id.Contact) {
	if q := o.traceQuery(c); q != nil {
		q.Outcome = "timeout"
	}
}

func (o *lookupOp) traceStalled(c id.Contact) {
	if q := o.traceQuery(c); q != nil {
		q.Stalled = true
	}
}

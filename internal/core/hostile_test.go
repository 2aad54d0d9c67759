package core

import (
	"net/netip"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/transport"
	"github.com/dhtkit/dht/wire"
)

// peer is a scripted endpoint on the test network: it answers each request
// with whatever its script returns (nil: stays silent), and counts what it
// received. It speaks the wire format directly, so it can say things no
// honest node would.
type peer struct {
	ep       transport.Transport
	id       id.ID
	received int
	sizes    []int // of each datagram received, in order
	script   func(req *wire.Message, from netip.AddrPort) *wire.Message
}

// listenPeer opens a scripted peer at addr (an unused address).
func (tn *testNet) listenPeer(addr netip.AddrPort, pid id.ID, script func(req *wire.Message, from netip.AddrPort) *wire.Message) *peer {
	tn.t.Helper()
	ep, err := tn.net.Listen(addr)
	if err != nil {
		tn.t.Fatal(err)
	}
	p := &peer{ep: ep, id: pid, script: script}
	var m wire.Message
	buf := make([]byte, 0, wire.MaxPacket)
	err = ep.Start(transport.HandlerFunc(func(data []byte, from netip.AddrPort, w transport.Writer) {
		if wire.Decode(data, &m) != nil {
			return
		}
		p.received++
		p.sizes = append(p.sizes, len(data))
		if p.script == nil {
			return
		}
		out := p.script(&m, from)
		if out == nil {
			return
		}
		out.TxID, out.Network = m.TxID, m.Network
		if out.Sender.IsZero() {
			out.Sender = p.id // the script may claim another ID
		}
		b, err := out.Append(buf[:0])
		if err != nil {
			tn.t.Errorf("scripted peer: encoding %v: %v", out.Type, err)
			return
		}
		w.WriteTo(b, from)
	}))
	if err != nil {
		tn.t.Fatal(err)
	}
	tn.t.Cleanup(func() { ep.Close() })
	return p
}

// answer builds the honest reply type for req from from, carrying contacts.
func answer(req *wire.Message, from netip.AddrPort, contacts []id.Contact) *wire.Message {
	switch req.Type {
	case wire.Ping:
		return &wire.Message{Type: wire.Pong, Observed: from}
	case wire.FindNode:
		return &wire.Message{Type: wire.Nodes, Contacts: contacts}
	case wire.FindValue:
		return &wire.Message{Type: wire.Values, Contacts: contacts}
	case wire.Store:
		return &wire.Message{Type: wire.Stored, TTL: req.TTL}
	case wire.Get:
		return &wire.Message{Type: wire.Records, Contacts: contacts}
	case wire.Put:
		if req.Offset+uint32(len(req.Value)) < req.Size {
			return &wire.Message{Type: wire.PutOK, Status: wire.StatusPart}
		}
		return &wire.Message{Type: wire.PutOK, Status: wire.StatusStored, TTL: req.TTL}
	case wire.Delete:
		return &wire.Message{Type: wire.Deleted, TTL: req.TTL}
	case wire.Listen:
		return &wire.Message{Type: wire.Listening, TTL: req.TTL}
	}
	return nil
}

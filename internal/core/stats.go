package core

import (
	"sync/atomic"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/routing"
	"github.com/dhtkit/dht/wire"
)

// stats are the node's counters, updated with atomics so that reading them
// never takes the node's lock.
type stats struct {
	packetsIn, packetsOut         atomic.Uint64
	malformed, wrongNetwork       atomic.Uint64
	unmatched, responses          atomic.Uint64
	requests, retries, timeouts   atomic.Uint64
	stalls                        atomic.Uint64
	rpcFull                       atomic.Uint64
	storesAccepted, storesRefused atomic.Uint64
	expired, refreshes            atomic.Uint64
	served                        [5]atomic.Uint64 // by request type; index 0 counts unknown types
}

// Stats is a snapshot of a node's counters since it started.
type Stats struct {
	PacketsIn      uint64 // datagrams received
	PacketsOut     uint64 // datagrams sent
	Malformed      uint64 // datagrams dropped because they did not decode
	WrongNetwork   uint64 // datagrams dropped because they came from another network
	Unmatched      uint64 // responses that matched no request in flight (late, duplicate or forged)
	Responses      uint64 // responses matched to a request
	Requests       uint64 // requests sent, retries included
	Retries        uint64 // requests sent again after a timeout
	Timeouts       uint64 // requests that got no answer after every retry
	Stalls         uint64 // lookup requests slow enough that the lookup moved on without them
	RPCFull        uint64 // requests not sent because too many were in flight
	StoresAccepted uint64 // STORE requests accepted
	StoresRefused  uint64 // STORE requests refused
	Expired        uint64 // values removed by expiry sweeps
	Refreshes      uint64 // bucket refresh lookups started
	Served         map[string]uint64
	InFlight       int // requests in flight now
	TableSize      int // contacts in the routing table now
	Buckets        int
	StoredValues   int
}

// Stats returns a snapshot of the node's counters.
func (n *Node) Stats() Stats {
	s := &n.stats
	st := Stats{
		PacketsIn: s.packetsIn.Load(), PacketsOut: s.packetsOut.Load(),
		Malformed: s.malformed.Load(), WrongNetwork: s.wrongNetwork.Load(),
		Unmatched: s.unmatched.Load(), Responses: s.responses.Load(),
		Requests: s.requests.Load(), Retries: s.retries.Load(), Timeouts: s.timeouts.Load(), Stalls: s.stalls.Load(),
		RPCFull:        s.rpcFull.Load(),
		StoresAccepted: s.storesAccepted.Load(), StoresRefused: s.storesRefused.Load(),
		Expired: s.expired.Load(), Refreshes: s.refreshes.Load(),
		Served: map[string]uint64{},
	}
	for t := wire.Ping; t <= wire.Store; t++ {
		st.Served[t.String()] = s.served[t].Load()
	}
	n.mu.Lock()
	st.InFlight = n.rpc.Len()
	st.TableSize = n.table.Len()
	st.Buckets = n.table.Buckets()
	n.mu.Unlock()
	st.StoredValues = n.store.Len()
	return st
}

// Contacts returns the routing table's entries, bucket by bucket.
func (n *Node) Contacts() []routing.Entry {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []routing.Entry
	n.table.ForEach(func(_ int, e routing.Entry) { out = append(out, e) })
	return out
}

// Closest returns up to k contacts from the routing table closest to target,
// without asking the network.
func (n *Node) Closest(target id.ID, k int) []id.Contact {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.table.Closest(target, k, nil)
}

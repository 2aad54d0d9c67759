package core

import (
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/routing"
	"github.com/dhtkit/dht/wire"
)

// stats are the node's counters. Every update happens under the node's lock
// (which every path that counts already holds), so they are plain integers:
// atomics would add a locked instruction per counter per datagram for
// nothing.
type stats struct {
	packetsIn, packetsOut         uint64
	malformed, wrongNetwork       uint64
	unmatched, responses          uint64
	requests, retries, timeouts   uint64
	stalls                        uint64
	rpcFull, rpcQueued            uint64
	storesAccepted, storesRefused uint64
	expired, refreshes            uint64
	rejoins                       uint64
	served                        [16]uint64 // by request type; index 0 counts unknown types
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
	RPCFull        uint64 // requests not sent because too many were in flight and the queue was full
	RPCQueued      uint64 // requests that waited for a free slot before going out
	StoresAccepted uint64 // STORE requests accepted
	StoresRefused  uint64 // STORE requests refused
	Expired        uint64 // values removed by expiry sweeps
	Refreshes      uint64 // bucket refresh lookups started
	Rejoins        uint64 // bootstraps through Config.Seeds started because the routing table was empty
	Served         map[string]uint64
	InFlight       int // requests in flight now
	TableSize      int // contacts in the routing table now
	Buckets        int
	StoredValues   int
}

// Stats returns a snapshot of the node's counters.
func (n *Node) Stats() Stats {
	n.mu.Lock()
	s := &n.stats
	st := Stats{
		PacketsIn: s.packetsIn, PacketsOut: s.packetsOut,
		Malformed: s.malformed, WrongNetwork: s.wrongNetwork,
		Unmatched: s.unmatched, Responses: s.responses,
		Requests: s.requests, Retries: s.retries, Timeouts: s.timeouts, Stalls: s.stalls,
		RPCFull: s.rpcFull, RPCQueued: s.rpcQueued,
		StoresAccepted: s.storesAccepted, StoresRefused: s.storesRefused,
		Expired: s.expired, Refreshes: s.refreshes, Rejoins: s.rejoins,
		Served:    map[string]uint64{},
		InFlight:  n.rpc.Len(),
		TableSize: n.table.Len(),
		Buckets:   n.table.Buckets(),
	}
	for t := wire.Ping; t <= wire.Notify; t++ {
		st.Served[t.String()] = s.served[t]
	}
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

// BucketInfo is one k-bucket as the routing table holds it.
type BucketInfo struct {
	// Index is the bucket's number: its contacts share Index leading bits
	// with the node's ID (the last bucket: at least Index), so their XOR
	// distance from it lies in [2^(159-Index), 2^(160-Index)).
	Index int
	// Contacts are the bucket's entries, least recently seen first.
	Contacts []routing.Entry
	// Replacements counts the contacts waiting for a place.
	Replacements int
	// Touched is when the node last looked up an ID in the bucket's range.
	Touched time.Time
}

// Table returns the routing table bucket by bucket, and K.
func (n *Node) Table() ([]BucketInfo, int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]BucketInfo, n.table.Buckets())
	for i := range out {
		out[i] = BucketInfo{Index: i, Replacements: len(n.table.Replacements(i)), Touched: n.table.Touched(i)}
	}
	n.table.ForEach(func(b int, e routing.Entry) { out[b].Contacts = append(out[b].Contacts, e) })
	return out, n.cfg.K
}

// Closest returns up to k contacts from the routing table closest to target,
// without asking the network.
func (n *Node) Closest(target id.ID, k int) []id.Contact {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.table.Closest(target, k, nil)
}

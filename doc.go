// Package dht is a Kademlia distributed hash table: a library that any Go
// program embeds to join a decentralized network of nodes and keep small
// records in it.
//
// Each node has a 160-bit ID; a value stored under a key lives on the K nodes
// whose IDs are closest to the key in the XOR metric. Nodes join through a few
// known seed addresses and find each other with iterative lookups. The wire
// protocol is specified in docs/protocol.md.
//
// A minimal node:
//
//	n, err := dht.New(dht.DefaultConfig())
//	if err != nil { ... }
//	defer n.Close()
//	err = n.Bootstrap(ctx, "seed.example.org:4000")
//	put, err := n.Put(ctx, dht.Key("alice@example.org:address"), []byte("203.0.113.7:4000"), time.Hour)
//	// put.Stored nodes accepted it; put.Refused says who refused and why
//	got, err := n.Get(ctx, dht.Key("alice@example.org:address"))
//	// got.Values merges what several of the key's closest nodes hold
//
// Every call that goes to the network takes a context and returns when the
// operation ends or the context is done. A Node is safe for concurrent use.
package dht

// Package routing is the Kademlia routing table: k-buckets ordered by when
// each contact was last heard from, a bounded replacement cache per bucket,
// and closest-k selection by XOR distance.
//
// # Pure data
//
// The table runs no goroutines, takes no locks, reads no clock and does no
// I/O. Every method that needs the time takes a `now time.Time`; when the
// table wants a liveness ping sent, Seen or Verified returns the contact to
// ping and the caller sends it and later reports the outcome with Verified
// (it answered) or FailedAt (it did not). Times are kept as int64 Unix nanoseconds, so they must
// lie between the years 1678 and 2262. A Table is not safe for concurrent
// use: its owner (the node) guards it with its own mutex.
//
// # Buckets and splitting
//
// Buckets are indexed by the length of the prefix a contact's ID shares with
// the table's own ID (cpl, "common prefix length"). The list of buckets grows
// the way the Kademlia paper's tree does when it only splits the bucket whose
// range holds its own ID:
//
//   - bucket i, for every i below the last index, holds contacts with cpl == i;
//   - the last bucket holds every contact with cpl >= its index.
//
// A new table has one bucket (index 0) that covers the whole keyspace. When
// the last bucket is full and a contact that belongs in it arrives, the last
// bucket splits: it keeps the contacts with cpl == its index and a new last
// bucket takes those with a longer shared prefix; this repeats while the
// newcomer's bucket is the last one and is still full, up to MaxBuckets
// buckets. Only the last bucket ever splits, so a node in a network of N
// nodes ends up with about log2(N/K)+1 buckets: a handful in small networks,
// about 14 for 100,000 nodes with K = 20.
//
// A full bucket that is not the last one does not split. A newcomer for it is
// kept in the bucket's replacement cache and the bucket's least-recently-seen
// contact is pinged (at most one ping in flight per bucket), or its failing
// contact if it has one. A contact that answers stays, following the
// paper's preference for long-lived contacts (§2.2): a flood of new IDs can
// never push out live ones, and no newcomer takes a slot without a ping. A
// contact that has answered us goes after MaxFailures failures in a row; one
// that never has goes at its first failure when a replacement waits. The
// replacement that takes the slot is the most recent one that has answered
// us, else the most recent. For the same reason a full replacement cache
// makes room by dropping its oldest unverified replacement, and an
// unverified newcomer never displaces a verified one.
//
// # Addresses and proof
//
// A table holds at most one entry per address (IP, port, IPv6 zone),
// replacement caches included, so one host cannot take more than one slot
// however many IDs it sends under. An IPv4-mapped IPv6 address is the same
// address as the IPv4 one it maps, and is stored and returned unmapped. The table tells sightings apart: Seen is
// a request, whose source address anyone can forge; Verified is a response,
// which the node matched on its transaction ID and source address, so that
// address is proved. An unverified sighting never moves an entry to another
// address, nor takes an address another ID holds; at most it asks for a ping
// that will settle the question. An entry moves only once its stored
// address has failed (FailedAt) and the new one has answered (Verified); an
// answer under a new ID from a held address (a restart) replaces the old ID.
// Entry.Verified and Proven report whether an entry's address has answered
// us, for limits on how much the node sends to an address it has not
// proved.
//
// # Memory
//
// A simulator runs 100,000 tables in one process, so entries are compact
// (48 bytes, no pointers, so the garbage collector never scans them): IDs as
// machine words, addresses as 16 bytes plus port, times as int64 nanoseconds.
// A table fed 100,000 random IDs with K = 20 (14 buckets, 270 contacts, 222
// replacements) retains about 31 KiB of heap including its replacement
// caches and its address index (4 KiB: 4 bytes a slot, at most 3/4 of them
// in use).
package routing

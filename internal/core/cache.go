package core

// cacheCounts are the path cache's counters.
type cacheCounts struct {
	sent, accepted, refused uint64
}

// PathCacheCounts describes the copies this node's gets cached on their
// lookup paths (Stats.PathCache).
type PathCacheCounts struct {
	Sent     uint64 // cache PUTs sent
	Accepted uint64 // of those, stored by their node
	Refused  uint64 // refused (Stats.RequestErrors has the codes) or unanswered
}

func (n *Node) pathCacheStats() PathCacheCounts {
	return PathCacheCounts{Sent: n.cache.sent, Accepted: n.cache.accepted, Refused: n.cache.refused}
}

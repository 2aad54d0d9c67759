package core

import "net/netip"

// scope is how far an address reaches: a peer may only point us at addresses
// no narrower than its own. Otherwise a public peer could steer our requests
// to our own loopback services or to hosts on our private network.
type scope uint8

const (
	scopePublic   scope = iota
	scopePrivate        // RFC 1918, RFC 4193 unique local, link-local
	scopeLoopback       // 127.0.0.0/8, ::1
)

// Ranges that are not the public Internet although netip does not call
// them private: RFC 6598 shared address space (carrier-grade NAT, overlay
// networks, some cloud metadata services) and the reserved 240.0.0.0/4,
// which includes the limited broadcast address.
var (
	sharedSpace = netip.MustParsePrefix("100.64.0.0/10")
	reserved4   = netip.MustParsePrefix("240.0.0.0/4")
)

func scopeOf(a netip.Addr) scope {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return scopeLoopback
	case a.IsPrivate() || a.IsLinkLocalUnicast() || sharedSpace.Contains(a) || reserved4.Contains(a):
		return scopePrivate
	}
	return scopePublic
}

// inScope reports whether a contact at c, learned from a peer at from, may be
// used: loopback contacts only from loopback peers, private ones only from
// private or loopback peers, public ones from anyone. Config.AnyScope turns
// the rule off.
func (n *Node) inScope(c, from netip.Addr) bool {
	return n.cfg.AnyScope || scopeOf(c) <= scopeOf(from)
}

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

func scopeOf(a netip.Addr) scope {
	a = a.Unmap()
	switch {
	case a.IsLoopback():
		return scopeLoopback
	case a.IsPrivate() || a.IsLinkLocalUnicast():
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

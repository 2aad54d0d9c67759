package core

import (
	"context"
	"log/slog"
	"time"

	"github.com/dhtkit/dht/wire"
)

// Logging of what the node does, through Config.Logger:
//   - at debug, one line per request this node sent, when it ends (answered,
//     refused or timed out), at most traceLinesPerSecond lines a second per
//     node; the first line after a suppressed stretch says how many lines
//     were dropped (attribute "suppressed");
//   - at info, a summary of the stores this node refused, once per
//     maintenance round that saw some (not one line per refusal, which a
//     flood of stores would turn into a flood of lines).
//
// The debug lines cost a node that logs at info one Enabled call per
// request outcome and nothing else.

// traceLinesPerSecond bounds a node's debug lines about requests.
const traceLinesPerSecond = 50

// traceLimit is the debug lines' rate limit: a fixed one-second window on
// the node's clock, so it needs no goroutine or timer.
type traceLimit struct {
	window          time.Time // start of the current window
	lines           int       // lines written in it
	suppressed      uint64    // lines dropped since the last line written
	suppressedTotal uint64
}

// allow reports whether a line may be written at now and, if so, how many
// were dropped before it.
func (l *traceLimit) allow(now time.Time) (ok bool, dropped uint64) {
	if now.Sub(l.window) >= time.Second || now.Before(l.window) {
		l.window, l.lines = now, 0
	}
	if l.lines >= traceLinesPerSecond {
		l.suppressed++
		l.suppressedTotal++
		return false, 0
	}
	l.lines++
	dropped, l.suppressed = l.suppressed, 0
	return true, dropped
}

// debugging reports whether the node's logger takes debug lines.
func (n *Node) debugging() bool { return n.log.Enabled(context.Background(), slog.LevelDebug) }

// traceRequest writes one debug line about request p, with the attributes
// every such line has, unless the rate limit drops it. The lock is held.
func (n *Node) traceRequest(now time.Time, msg string, p *pending, attrs ...slog.Attr) {
	ok, dropped := n.stats.trace.allow(now)
	if !ok {
		return
	}
	all := make([]slog.Attr, 0, 4+len(attrs))
	all = append(all, slog.String("type", p.typ.String()), slog.String("peer", p.to.Addr.String()))
	if !p.to.ID.IsZero() {
		all = append(all, slog.String("id", p.to.ID.Short()))
	}
	all = append(all, attrs...)
	if dropped > 0 {
		all = append(all, slog.Uint64("suppressed", dropped))
	}
	n.log.LogAttrs(context.Background(), slog.LevelDebug, msg, all...)
}

func (n *Node) traceAnswer(p *pending, m *wire.Message, rtt time.Duration, now time.Time) {
	if m.Type == wire.Error {
		n.traceRequest(now, "request refused", p, slog.Duration("rtt", rtt),
			slog.String("code", CodeName(m.Code)), slog.String("reason", string(m.Text)))
		return
	}
	n.traceRequest(now, "request answered", p, slog.Duration("rtt", rtt),
		slog.String("answer", m.Type.String()), slog.Int("attempts", p.tries))
}

func (n *Node) traceTimeout(p *pending, now time.Time) {
	n.traceRequest(now, "request timed out", p, slog.Int("attempts", p.tries))
}

// summarizeRefusals logs, at info, the stores refused since the last
// summary, by reason; nothing when there were none. The maintenance round
// calls it. The lock is held.
func (n *Node) summarizeRefusals(now time.Time) {
	s := &n.stats
	var total uint64
	for i := range s.storeRefusals {
		total += s.storeRefusals[i] - s.refusalsLogged[i]
	}
	since := s.summaryAt
	s.summaryAt = now
	if total == 0 {
		return
	}
	attrs := make([]slog.Attr, 0, 2+numReasons)
	attrs = append(attrs, slog.Uint64("refused", total))
	if !since.IsZero() {
		attrs = append(attrs, slog.Duration("over", now.Sub(since)))
	}
	for i, r := range RefusalReasons {
		if d := s.storeRefusals[i] - s.refusalsLogged[i]; d > 0 {
			attrs = append(attrs, slog.Uint64(r, d))
		}
	}
	s.refusalsLogged = s.storeRefusals
	n.log.LogAttrs(context.Background(), slog.LevelInfo, "refused stores", attrs...)
}

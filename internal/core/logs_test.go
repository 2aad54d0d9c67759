package core

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/transport/memnet"
	"github.com/dhtkit/dht/wire"
)

// recorder is a slog.Handler that keeps every record at or above its level.
type recorder struct {
	level slog.Level
	mu    sync.Mutex
	lines []line
}

type line struct {
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= r.level }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler           { return r }
func (r *recorder) WithGroup(string) slog.Handler                { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	l := line{level: rec.Level, msg: rec.Message, attrs: map[string]slog.Value{}}
	rec.Attrs(func(a slog.Attr) bool { l.attrs[a.Key] = a.Value; return true })
	r.mu.Lock()
	r.lines = append(r.lines, l)
	r.mu.Unlock()
	return nil
}

// find returns the lines with message msg.
func (r *recorder) find(msg string) []line {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []line
	for _, l := range r.lines {
		if l.msg == msg {
			out = append(out, l)
		}
	}
	return out
}

func logTo(r *recorder) func(*Config) {
	return func(c *Config) { c.Logger = slog.New(r) }
}

func TestDebugLinesSayEachRequestsOutcomeAtDebugOnly(t *testing.T) {
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo} {
		t.Run(level.String(), func(t *testing.T) {
			tn := newTestNet(t, 21, memnet.Config{Latency: memnet.Fixed(10 * time.Millisecond)})
			rec := &recorder{level: level}
			a, b := tn.add(logTo(rec)), tn.add(nil)
			silent := netip.MustParseAddrPort("127.9.9.9:4000")
			pending := 2
			a.Ping(b.Addr(), func(id.Contact, error) { pending-- })
			a.Ping(silent, func(id.Contact, error) { pending-- })
			tn.await(&pending, time.Minute)
			answered, timedOut := rec.find("request answered"), rec.find("request timed out")
			if level > slog.LevelDebug {
				if len(answered)+len(timedOut) != 0 {
					t.Fatalf("debug lines at %v: %v %v", level, answered, timedOut)
				}
				return
			}
			if len(answered) != 1 || len(timedOut) != 1 {
				t.Fatalf("%d answered and %d timed-out lines, want 1 and 1", len(answered), len(timedOut))
			}
			l := answered[0]
			if l.level != slog.LevelDebug || l.attrs["type"].String() != "PING" || l.attrs["peer"].String() != b.Addr().String() ||
				l.attrs["rtt"].Duration() != 20*time.Millisecond || l.attrs["answer"].String() != "PONG" {
				t.Fatalf("answered line: %+v", l)
			}
			if l := timedOut[0]; l.attrs["peer"].String() != silent.String() || l.attrs["attempts"].Int64() != 2 {
				t.Fatalf("timed-out line: %+v", l)
			}
		})
	}
}

func TestDebugLinesSayTheErrorCodeOfARefusal(t *testing.T) {
	tn := newTestNet(t, 22, memnet.Config{})
	rec := &recorder{level: slog.LevelDebug}
	a, b := tn.add(logTo(rec)), tn.add(nil)
	pending := 1
	a.Bootstrap([]netip.AddrPort{b.Addr()}, func(*BootstrapResult, error) { pending-- })
	tn.await(&pending, time.Minute)
	for _, v := range []uint64{2, 1} {
		pending = 1
		a.PutRecord(PutRequest{Key: id.Key("k"), Value: []byte("x"), TTL: time.Hour, Version: v}, func(*PutResult, error) { pending-- })
		tn.await(&pending, time.Minute)
	}
	refused := rec.find("request refused")
	if len(refused) != 1 || refused[0].attrs["type"].String() != "PUT" || refused[0].attrs["code"].String() != "stale" || refused[0].attrs["reason"].String() == "" {
		t.Fatalf("refused lines: %+v", refused)
	}
}

// Under a flood of requests the debug log writes at most
// traceLinesPerSecond lines a second, and the first line after says how
// many it dropped.
func TestDebugLinesAreRateLimitedUnderAFlood(t *testing.T) {
	tn := newTestNet(t, 23, memnet.Config{Latency: memnet.Fixed(time.Millisecond)})
	rec := &recorder{level: slog.LevelDebug}
	a, b := tn.add(logTo(rec)), tn.add(nil)
	const flood = 1000
	pending := flood
	for range flood {
		a.Ping(b.Addr(), func(id.Contact, error) { pending-- })
	}
	tn.await(&pending, time.Minute) // all answered within the same millisecond or two
	lines := rec.find("request answered")
	if len(lines) != traceLinesPerSecond {
		t.Fatalf("%d debug lines for %d requests answered at once, want the limit %d", len(lines), flood, traceLinesPerSecond)
	}
	st := a.Stats()
	if st.DebugSuppressed != flood-traceLinesPerSecond {
		t.Fatalf("DebugSuppressed = %d, want %d", st.DebugSuppressed, flood-traceLinesPerSecond)
	}
	for _, l := range lines {
		if _, ok := l.attrs["suppressed"]; ok {
			t.Fatal("a line in the first window reports suppressed lines")
		}
	}
	// A second later, the next line reports what was dropped.
	tn.clk.RunFor(time.Second)
	pending = 1
	a.Ping(b.Addr(), func(id.Contact, error) { pending-- })
	tn.await(&pending, time.Minute)
	lines = rec.find("request answered")
	last := lines[len(lines)-1]
	if len(lines) != traceLinesPerSecond+1 || last.attrs["suppressed"].Uint64() != flood-traceLinesPerSecond {
		t.Fatalf("%d lines, last %+v: want one more, reporting %d suppressed", len(lines), last, flood-traceLinesPerSecond)
	}
}

func TestTraceLimitWindows(t *testing.T) {
	var l traceLimit
	now := epoch
	for i := range traceLinesPerSecond {
		if ok, _ := l.allow(now.Add(time.Duration(i) * time.Millisecond)); !ok {
			t.Fatalf("line %d refused within the limit", i)
		}
	}
	if ok, _ := l.allow(now.Add(999 * time.Millisecond)); ok {
		t.Fatal("a line over the limit within the second was allowed")
	}
	if ok, d := l.allow(now.Add(time.Second)); !ok || d != 1 {
		t.Fatalf("the next second: allowed %v, dropped %d; want true, 1", ok, d)
	}
	// A clock that steps back starts a new window rather than muting the log.
	if ok, _ := l.allow(now.Add(-time.Hour)); !ok {
		t.Fatal("a clock that went back muted the log")
	}
}

// Store refusals are summarized at info once per maintenance round, not
// logged one by one.
func TestStoreRefusalsAreSummarizedAtInfoByMaintenance(t *testing.T) {
	tn := newTestNet(t, 24, memnet.Config{})
	rec := &recorder{level: slog.LevelInfo}
	srv := tn.add(func(c *Config) {
		c.Logger = slog.New(rec)
		c.StoreLimits = store.Limits{MaxPerKey: 1}
		c.RefreshInterval = time.Minute
	})
	from := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 4000)
	}
	put := func(p byte, ttl uint32) wire.Message {
		return wire.Message{Type: wire.Put, TxID: rand.Uint64(), Sender: id.ID{0xee, p}, Target: id.Key("k"),
			Publisher: id.ID{p}, Version: 1, TTL: ttl, Size: 1, Value: []byte("v")}
	}
	ask(t, srv, put(1, 60), from(1))
	for i := range 5 {
		ask(t, srv, put(byte(2+i), 60), from(2+i)) // key full
	}
	ask(t, srv, put(9, 0), from(9)) // bad ttl
	if got := rec.find("refused stores"); len(got) != 0 {
		t.Fatalf("refusals logged before the maintenance round: %+v", got)
	}
	tn.clk.RunFor(time.Minute) // a maintenance round every RefreshInterval/4 ±10%
	got := rec.find("refused stores")
	if len(got) != 1 {
		t.Fatalf("%d summaries after a minute of maintenance, want 1: %+v", len(got), got)
	}
	s := got[0]
	if s.level != slog.LevelInfo || s.attrs["refused"].Uint64() != 6 || s.attrs["key_full"].Uint64() != 5 || s.attrs["bad_ttl"].Uint64() != 1 {
		t.Fatalf("summary %+v, want 6 refused: key_full 5, bad_ttl 1", s)
	}
	if _, ok := s.attrs["stale"]; ok {
		t.Fatal("the summary lists a reason with no refusal")
	}
	ask(t, srv, put(10, 0), from(10))
	tn.clk.RunFor(time.Minute)
	got = rec.find("refused stores")
	if len(got) != 2 || got[1].attrs["refused"].Uint64() != 1 || got[1].attrs["over"].Duration() <= 0 {
		t.Fatalf("summaries %+v: want a second one with the one new refusal and its period", got)
	}
}

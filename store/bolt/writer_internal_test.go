package bolt

import (
	"bytes"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
)

// waitFor is how long a test waits for an event the store promised before
// it fails; events normally arrive within milliseconds.
const waitFor = 10 * time.Second

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)

// gate is a commit hook that parks the writer before each commit until the
// test lets it go, and tells the test each time it parks.
type gate struct {
	entered chan int   // the batch length, each time the writer parks
	release chan error // what the parked commit returns before writing (nil: commit)
}

func newGate() *gate {
	return &gate{entered: make(chan int), release: make(chan error)}
}

func (g *gate) hook(n int) error {
	g.entered <- n
	return <-g.release
}

// parked waits until the writer parks on the gate and returns the batch length.
func (g *gate) parked(t *testing.T) int {
	t.Helper()
	select {
	case n := <-g.entered:
		return n
	case <-time.After(waitFor):
		t.Fatal("the writer never started a commit")
		return 0
	}
}

func openGated(t *testing.T, path string, opts Options) (*Store, *gate) {
	t.Helper()
	g := newGate()
	s, err := open(path, store.Limits{}, opts, g.hook)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Let any parked or later commit through so Close can finish.
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-g.entered:
					g.release <- nil
				case g.release <- nil: // a test that failed left it parked
				case <-stop:
					return
				}
			}
		}()
		_ = s.Close()
		close(stop)
	})
	return s, g
}

func val(pub byte, ver uint64, data string) store.Value {
	return store.Value{Publisher: id.ID{pub}, Version: ver, Expires: t0.Add(time.Hour), Data: []byte(data)}
}

// syncCh registers a Sync and returns the channel its result arrives on.
func syncCh(s *Store) chan error {
	ch := make(chan error, 1)
	s.Sync(func(err error) { ch <- err })
	return ch
}

func recv(t *testing.T, ch chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(waitFor):
		t.Fatal("a Sync callback never ran")
		return nil
	}
}

func TestFullQueueRefusesPutAndLeavesMemoryUnchanged(t *testing.T) {
	s, g := openGated(t, filepath.Join(t.TempDir(), "db"), Options{MaxPending: 2})
	key := id.ID{1}
	if err := s.Put(key, val(1, 1, "a"), netip.Addr{}, t0); err != nil {
		t.Fatal(err)
	}
	first := syncCh(s)
	if n := g.parked(t); n != 1 {
		t.Fatalf("first batch has %d changes, want 1", n)
	}
	// The writer is stuck committing the first batch: two more fill the queue.
	for p := byte(2); p <= 3; p++ {
		if err := s.Put(key, val(p, 1, "b"), netip.Addr{}, t0); err != nil {
			t.Fatalf("put %d: %v", p, err)
		}
	}
	err := s.Put(key, val(4, 1, "c"), netip.Addr{}, t0)
	if !errors.Is(err, store.ErrBusy) {
		t.Fatalf("put into a full queue: %v, want ErrBusy", err)
	}
	if _, ok := s.Lookup(key, id.ID{4}, t0); ok {
		t.Fatal("a refused put is visible in memory")
	}
	// A newer version of a queued record is a put too: refused as well.
	if err := s.Put(key, val(2, 2, "b2"), netip.Addr{}, t0); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("replacement into a full queue: %v, want ErrBusy", err)
	}
	if v, _ := s.Lookup(key, id.ID{2}, t0); v.Version != 1 {
		t.Fatalf("a refused replacement changed memory: version %d", v.Version)
	}
	g.release <- nil
	if err := recv(t, first); err != nil {
		t.Fatal(err)
	}
	// The second batch takes the queued two and frees the queue.
	second := syncCh(s)
	if n := g.parked(t); n != 2 {
		t.Fatalf("second batch has %d changes, want 2", n)
	}
	if err := s.Put(key, val(4, 1, "c"), netip.Addr{}, t0); err != nil {
		t.Fatalf("put after the queue drained: %v", err)
	}
	g.release <- nil
	if err := recv(t, second); err != nil {
		t.Fatal(err)
	}
}

func TestFullQueueByBytesRefusesPut(t *testing.T) {
	s, g := openGated(t, filepath.Join(t.TempDir(), "db"), Options{MaxPendingBytes: 70000})
	key := id.ID{1}
	big := string(bytes.Repeat([]byte{'x'}, 40000))
	if err := s.Put(key, val(1, 1, "a"), netip.Addr{}, t0); err != nil {
		t.Fatal(err)
	}
	syncCh(s)
	g.parked(t)
	if err := s.Put(key, val(2, 1, big), netip.Addr{}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(key, val(3, 1, big), netip.Addr{}, t0); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("put past MaxPendingBytes: %v, want ErrBusy", err)
	}
	// A tombstone has no bytes: it still fits.
	tomb := val(2, 2, "")
	tomb.Deleted = true
	if err := s.Put(key, tomb, netip.Addr{}, t0); err != nil {
		t.Fatalf("tombstone: %v", err)
	}
	g.release <- nil
}

func TestSyncWaitsForTheBatchThatCoversIt(t *testing.T) {
	s, g := openGated(t, filepath.Join(t.TempDir(), "db"), Options{})
	key := id.ID{1}
	if err := s.Put(key, val(1, 1, "a"), netip.Addr{}, t0); err != nil {
		t.Fatal(err)
	}
	first := syncCh(s)
	g.parked(t)
	// Made while the first batch commits: only the second batch covers it.
	rides := syncCh(s) // nothing new pending: rides on the first batch
	if err := s.Put(key, val(2, 1, "b"), netip.Addr{}, t0); err != nil {
		t.Fatal(err)
	}
	second := syncCh(s)
	g.release <- nil
	if err := recv(t, first); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, rides); err != nil {
		t.Fatal(err)
	}
	g.parked(t) // the second batch
	select {
	case err := <-second:
		t.Fatalf("Sync returned (%v) before the batch holding the put before it was committed", err)
	default:
	}
	g.release <- nil
	if err := recv(t, second); err != nil {
		t.Fatal(err)
	}
}

func TestSyncWithNothingPendingCallsBackAtOnce(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "db"), store.Limits{}, Options{MaxDelay: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := recv(t, syncCh(s)); err != nil {
		t.Fatal(err)
	}
	// A Sync cuts MaxDelay short: a pending put is committed without waiting an hour.
	if err := s.Put(id.ID{1}, val(1, 1, "a"), netip.Addr{}, t0); err != nil {
		t.Fatal(err)
	}
	if err := recv(t, syncCh(s)); err != nil {
		t.Fatal(err)
	}
}

func TestWriteErrorFailsClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s, g := openGated(t, path, Options{})
	key := id.ID{1}
	if err := s.Put(key, val(1, 1, "kept"), netip.Addr{}, t0); err != nil {
		t.Fatal(err)
	}
	ok := syncCh(s)
	g.parked(t)
	g.release <- nil
	if err := recv(t, ok); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(key, val(2, 1, "lost"), netip.Addr{}, t0); err != nil {
		t.Fatal(err)
	}
	failed := syncCh(s)
	g.parked(t)
	// Queued behind the failing batch: never written, its Sync fails too.
	if err := s.Put(key, val(3, 1, "queued"), netip.Addr{}, t0); err != nil {
		t.Fatal(err)
	}
	queued := syncCh(s)
	diskErr := errors.New("disk on fire")
	g.release <- diskErr
	for _, ch := range []chan error{failed, queued} {
		if err := recv(t, ch); !errors.Is(err, ErrFailed) || !errors.Is(err, diskErr) {
			t.Fatalf("Sync after a failed commit: %v, want ErrFailed wrapping the disk error", err)
		}
	}
	err := s.Put(key, val(4, 1, "refused"), netip.Addr{}, t0)
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("put after a failed commit: %v, want ErrFailed", err)
	}
	if _, ok := s.Lookup(key, id.ID{4}, t0); ok {
		t.Fatal("a put refused after a failed commit is in memory")
	}
	if err := recv(t, syncCh(s)); !errors.Is(err, ErrFailed) {
		t.Fatalf("later Sync: %v, want ErrFailed", err)
	}
	if err := s.Close(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Close: %v, want the write error", err)
	}
	if err := recv(t, syncCh(s)); !errors.Is(err, ErrFailed) {
		t.Fatalf("Sync after Close: %v, want ErrFailed", err)
	}

	// The file holds what was committed before the failure, nothing after.
	r, err := Open(path, store.Limits{}, Options{Now: t0})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := r.Records(key, t0, nil)
	if len(got) != 1 || string(got[0].Data) != "kept" {
		t.Fatalf("after reopen: %v, want only the committed record", got)
	}
}

func TestSyncCallbacksAreBounded(t *testing.T) {
	s, g := openGated(t, filepath.Join(t.TempDir(), "db"), Options{MaxPending: 2})
	if err := s.Put(id.ID{1}, val(1, 1, "a"), netip.Addr{}, t0); err != nil {
		t.Fatal(err)
	}
	first := syncCh(s)
	g.parked(t)
	var held []chan error
	for range 4 { // 2*MaxPending callbacks wait for the batch being committed
		held = append(held, syncCh(s))
	}
	if err := recv(t, syncCh(s)); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("Sync past the bound: %v, want ErrBusy at once", err)
	}
	g.release <- nil
	for _, ch := range append(held, first) {
		if err := recv(t, ch); err != nil {
			t.Fatal(err)
		}
	}
}

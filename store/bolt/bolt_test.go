package bolt_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/store/bolt"
	"github.com/dhtkit/dht/store/storetest"
)

const waitFor = 10 * time.Second

var t0 = time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)

func openT(t *testing.T, path string, l store.Limits, opts bolt.Options) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, l, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// syncNow waits for s.Sync's callback and returns its error.
func syncNow(t *testing.T, s *bolt.Store) {
	t.Helper()
	ch := make(chan error, 1)
	s.Sync(func(err error) { ch <- err })
	select {
	case err := <-ch:
		if err != nil {
			t.Fatalf("Sync: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Sync never called back")
	}
}

func put(t *testing.T, s store.Store, key id.ID, v store.Value, src netip.Addr) {
	t.Helper()
	if err := s.Put(key, v, src, t0); err != nil {
		t.Fatalf("put %s/%s v%d: %v", key.Short(), v.Publisher.Short(), v.Version, err)
	}
}

// describe renders what a store holds, every field that must survive a
// reopen, in a comparable form.
func describe(s store.Store, keys []id.ID, now time.Time) string {
	var b strings.Builder
	for _, k := range keys {
		for _, v := range s.Records(k, now, nil) {
			fmt.Fprintf(&b, "%s %s v%d exp=%s del=%v %q\n", k.Short(), v.Publisher.Short(), v.Version,
				v.Expires.UTC().Format(time.RFC3339Nano), v.Deleted, v.Data)
		}
	}
	next, ok := s.NextExpiry()
	fmt.Fprintf(&b, "len=%d bytes=%d next=%s/%v\n", s.Len(), s.Bytes(), next.UTC().Format(time.RFC3339Nano), ok)
	return b.String()
}

// TestConforms runs the conformance suite on bolt stores, each in a file of
// its own.
func TestConforms(t *testing.T) {
	dir := t.TempDir()
	n := 0
	storetest.Run(t, func(l store.Limits) store.Store {
		n++
		s, err := bolt.Open(filepath.Join(dir, fmt.Sprint(n)), l, bolt.Options{})
		if err != nil {
			panic(err)
		}
		return s
	})
}

func TestReopenKeepsValuesTombstonesExpiriesAndCharges(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	l := store.Limits{MaxPerSource: 2}
	x, y := netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("203.0.113.8")
	v6, mapped := netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("::ffff:198.51.100.1")
	k1, k2 := id.Key("one"), id.Key("two")
	pa, pb, pc, pd, pe := id.ID{0xa}, id.ID{0xb}, id.ID{0xc}, id.ID{0xd}, id.ID{0xe}

	s := openT(t, path, l, bolt.Options{})
	put(t, s, k1, store.Value{Publisher: pa, Version: 5, Expires: t0.Add(time.Hour + 123), Data: []byte("alpha")}, x)
	put(t, s, k1, store.Value{Publisher: pb, Version: 1, Expires: t0.Add(2 * time.Hour), Deleted: true}, v6)
	put(t, s, k2, store.Value{Publisher: pa, Version: 1, Expires: t0.Add(30 * time.Minute), Data: []byte("beta")}, mapped)
	// c's record is charged to x, then to y, its newest writer.
	put(t, s, k2, store.Value{Publisher: pc, Version: 1, Expires: t0.Add(time.Hour), Data: []byte("gamma")}, x)
	put(t, s, k2, store.Value{Publisher: pc, Version: 2, Expires: t0.Add(time.Hour), Data: []byte("gamma2")}, y)
	// d's value is withdrawn: a tombstone that keeps the value's later expiry.
	put(t, s, k2, store.Value{Publisher: pd, Version: 1, Expires: t0.Add(3 * time.Hour), Data: []byte("delta")}, netip.Addr{})
	put(t, s, k2, store.Value{Publisher: pd, Version: 2, Expires: t0.Add(time.Minute), Deleted: true}, netip.Addr{})
	put(t, s, k2, store.Value{Publisher: pe, Version: 9, Expires: t0.Add(time.Hour), Data: []byte{}}, netip.Addr{})
	keys := []id.ID{k1, k2}
	want := describe(s, keys, t0)
	syncNow(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	r := openT(t, path, l, bolt.Options{Now: t0})
	if got := describe(r, keys, t0); got != want {
		t.Fatalf("after reopen the store holds\n%s\nwant\n%s", got, want)
	}
	// The ordering rule runs against the restored versions.
	if err := r.Put(k1, store.Value{Publisher: pa, Version: 4, Expires: t0.Add(time.Hour), Data: []byte("old")}, x, t0); !errors.Is(err, store.ErrStale) {
		t.Fatalf("an older version after reopen: %v, want ErrStale", err)
	}
	if err := r.Put(k1, store.Value{Publisher: pd, Version: 1, Expires: t0.Add(time.Hour), Data: []byte("delta")}, netip.Addr{}, t0); err != nil {
		t.Fatal(err) // k1 never had d: accepted
	}
	if err := r.Put(k2, store.Value{Publisher: pd, Version: 2, Expires: t0.Add(time.Hour), Data: []byte("delta")}, netip.Addr{}, t0); !errors.Is(err, store.ErrStale) {
		t.Fatalf("a value at the version of a restored tombstone: %v, want ErrStale", err)
	}
	// Charges: x holds one record (k1/a; k2/c moved to y), y holds one.
	// With MaxPerSource 2 each has room for exactly one more.
	for _, src := range []netip.Addr{x, y} {
		put(t, r, id.Key("more"), store.Value{Publisher: id.ID{1, src.As4()[3]}, Version: 1, Expires: t0.Add(time.Hour), Data: []byte("m")}, src)
		err := r.Put(id.Key("more"), store.Value{Publisher: id.ID{2, src.As4()[3]}, Version: 1, Expires: t0.Add(time.Hour), Data: []byte("m")}, src, t0)
		if !errors.Is(err, store.ErrQuota) {
			t.Fatalf("third record of %v after reopen: %v, want ErrQuota (charges not restored)", src, err)
		}
	}
}

func TestReopenDeletesExpiredRecordsFromTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, store.Limits{}, bolt.Options{})
	k := id.Key("k")
	put(t, s, k, store.Value{Publisher: id.ID{1}, Version: 1, Expires: t0.Add(time.Minute), Data: []byte("short")}, netip.Addr{})
	put(t, s, k, store.Value{Publisher: id.ID{2}, Version: 1, Expires: t0.Add(time.Hour), Data: []byte("long")}, netip.Addr{})
	put(t, s, k, store.Value{Publisher: id.ID{3}, Version: 1, Expires: t0.Add(time.Minute), Deleted: true}, netip.Addr{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := fileRecords(t, path); n != 3 {
		t.Fatalf("file holds %d records, want 3", n)
	}
	later := t0.Add(2 * time.Minute)
	r := openT(t, path, store.Limits{}, bolt.Options{Now: later})
	got := r.Records(k, later, nil)
	if len(got) != 1 || string(got[0].Data) != "long" || r.Len() != 1 {
		t.Fatalf("after reopen past the short expiry: %v (len %d), want only the long one", got, r.Len())
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if n := fileRecords(t, path); n != 1 {
		t.Fatalf("file still holds %d records, want 1", n)
	}
}

func TestSweepDeletesFromTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, store.Limits{}, bolt.Options{})
	for i := range 10 {
		put(t, s, id.Key("k"), store.Value{Publisher: id.ID{byte(i)}, Version: 1, Expires: t0.Add(time.Duration(i+1) * time.Minute), Data: []byte("v")}, netip.Addr{})
	}
	syncNow(t, s)
	if n := s.Sweep(t0.Add(5 * time.Minute)); n != 5 {
		t.Fatalf("Sweep deleted %d, want 5", n)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := fileRecords(t, path); n != 5 {
		t.Fatalf("file holds %d records after the sweep, want 5", n)
	}
}

func TestFileHoldsEachRecordOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, store.Limits{}, bolt.Options{})
	k, p := id.Key("k"), id.ID{1}
	for ver := uint64(1); ver <= 5; ver++ {
		put(t, s, k, store.Value{Publisher: p, Version: ver, Expires: t0.Add(time.Hour), Data: []byte{byte(ver)}}, netip.Addr{})
		if ver%2 == 0 {
			syncNow(t, s) // some replacements in later batches, some in the same one
		}
	}
	put(t, s, k, store.Value{Publisher: p, Version: 5, Expires: t0.Add(2 * time.Hour), Data: []byte{5}}, netip.Addr{}) // a refresh
	put(t, s, k, store.Value{Publisher: id.ID{2}, Version: 1, Expires: t0.Add(time.Hour), Data: []byte("other")}, netip.Addr{})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := fileRecords(t, path); n != 2 {
		t.Fatalf("file holds %d entries for 2 records", n)
	}
	r := openT(t, path, store.Limits{}, bolt.Options{Now: t0})
	v, ok := r.Lookup(k, p, t0)
	if !ok || v.Version != 5 || !v.Expires.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("after reopen: %+v %v, want v5 expiring at the refreshed time", v, ok)
	}
}

func TestCloseFlushesWhatWasNotSynced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	s := openT(t, path, store.Limits{}, bolt.Options{MaxDelay: time.Hour, MaxBatch: 1 << 20})
	for i := range 100 {
		put(t, s, id.Key(fmt.Sprint(i)), store.Value{Publisher: id.ID{1}, Version: 1, Expires: t0.Add(time.Hour), Data: []byte("v")}, netip.Addr{})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Put(id.Key("late"), store.Value{Publisher: id.ID{1}, Version: 1, Expires: t0.Add(time.Hour)}, netip.Addr{}, t0); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Put after Close: %v, want ErrClosed", err)
	}
	syncNow(t, s) // nothing is pending after Close: called back with nil
	if n := fileRecords(t, path); n != 100 {
		t.Fatalf("file holds %d records, want 100", n)
	}
}

func TestConcurrentPutsAreAllOnDiskAfterTheirSync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	l := store.Limits{MaxPerPublisher: 10000}
	s := openT(t, path, l, bolt.Options{MaxPending: 64})
	const writers, each = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				k := id.Key(fmt.Sprint(w, "/", i))
				v := store.Value{Publisher: id.ID{byte(w)}, Version: uint64(i + 1), Expires: t0.Add(time.Hour), Data: []byte(k.String())}
				for {
					err := s.Put(k, v, netip.Addr{}, t0)
					if err == nil {
						break
					}
					if !errors.Is(err, store.ErrBusy) {
						errs <- err
						return
					}
					// Wait for the queue to drain, as the node does
					// by refusing and letting the publisher retry.
					ch := make(chan error, 1)
					s.Sync(func(err error) { ch <- err })
					<-ch
				}
				if i%10 == 0 {
					ch := make(chan error, 1)
					s.Sync(func(err error) { ch <- err })
					if err := <-ch; err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r := openT(t, path, l, bolt.Options{Now: t0})
	if r.Len() != writers*each {
		t.Fatalf("reopened store holds %d records, want %d", r.Len(), writers*each)
	}
	for w := range writers {
		for i := range each {
			k := id.Key(fmt.Sprint(w, "/", i))
			v, ok := r.Lookup(k, id.ID{byte(w)}, t0)
			if !ok || v.Version != uint64(i+1) || string(v.Data) != k.String() {
				t.Fatalf("record %d/%d after reopen: %+v %v", w, i, v, ok)
			}
		}
	}
}

func TestOpenRefusesWhatItCannotReadFaithfully(t *testing.T) {
	dir := t.TempDir()
	rawDB := func(t *testing.T, name string, fill func(tx *bbolt.Tx) error) string {
		path := filepath.Join(dir, name)
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Update(fill); err != nil {
			t.Fatal(err)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
		return path
	}
	buckets := func(tx *bbolt.Tx, format byte) (*bbolt.Bucket, error) {
		meta, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return nil, err
		}
		if err := meta.Put([]byte("format"), []byte{format}); err != nil {
			return nil, err
		}
		return tx.CreateBucket([]byte("records"))
	}
	cases := map[string]struct {
		path string
		l    store.Limits
		want string
	}{
		"unknown format": {path: rawDB(t, "format", func(tx *bbolt.Tx) error {
			_, err := buckets(tx, 2)
			return err
		}), want: "format"},
		"malformed record": {path: rawDB(t, "malformed", func(tx *bbolt.Tx) error {
			recs, err := buckets(tx, 1)
			if err != nil {
				return err
			}
			return recs.Put([]byte{0, 0, 0, 0, 0, 0, 0, 7}, []byte{0xff})
		}), want: "malformed"},
		"record stored twice": {path: rawDB(t, "twice", func(tx *bbolt.Tx) error {
			recs, err := buckets(tx, 1)
			if err != nil {
				return err
			}
			s := openT(t, filepath.Join(dir, "source"), store.Limits{}, bolt.Options{})
			put(t, s, id.ID{1}, store.Value{Publisher: id.ID{2}, Version: 1, Expires: t0.Add(time.Hour)}, netip.Addr{})
			if err := s.Close(); err != nil {
				return err
			}
			var rec []byte
			src, err := bbolt.Open(filepath.Join(dir, "source"), 0o600, nil)
			if err != nil {
				return err
			}
			defer src.Close()
			if err := src.View(func(tx *bbolt.Tx) error {
				_, v := tx.Bucket([]byte("records")).Cursor().First()
				rec = bytes.Clone(v)
				return nil
			}); err != nil {
				return err
			}
			if err := recs.Put([]byte{0, 0, 0, 0, 0, 0, 0, 1}, rec); err != nil {
				return err
			}
			return recs.Put([]byte{0, 0, 0, 0, 0, 0, 0, 2}, rec)
		}), want: "twice"},
		"foreign bbolt file": {path: rawDB(t, "foreign", func(tx *bbolt.Tx) error {
			_, err := tx.CreateBucket([]byte("records"))
			return err
		}), want: "not a store file"},
	}
	notBolt := filepath.Join(dir, "garbage")
	if err := os.WriteFile(notBolt, bytes.Repeat([]byte("not a database "), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	cases["not a bbolt file"] = struct {
		path string
		l    store.Limits
		want string
	}{path: notBolt, want: "invalid"}

	// More records than lowered limits admit: refused, not silently dropped.
	over := filepath.Join(dir, "over")
	s := openT(t, over, store.Limits{}, bolt.Options{})
	for i := range 5 {
		put(t, s, id.Key(fmt.Sprint(i)), store.Value{Publisher: id.ID{1}, Version: 1, Expires: t0.Add(time.Hour)}, netip.Addr{})
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cases["over the limits"] = struct {
		path string
		l    store.Limits
		want string
	}{path: over, l: store.Limits{MaxValues: 3}, want: "limits"}

	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := bolt.Open(c.path, c.l, bolt.Options{Now: t0})
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v, want an error saying %q", err, c.want)
			}
		})
	}
}

func TestOpenRefusesAFileInUse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	openT(t, path, store.Limits{}, bolt.Options{})
	if s, err := bolt.Open(path, store.Limits{}, bolt.Options{LockTimeout: 10 * time.Millisecond}); err == nil {
		s.Close()
		t.Fatal("a second Open of a file in use succeeded")
	}
}

// fileRecords counts the items of the records bucket of the closed store at path.
func fileRecords(t *testing.T, path string) int {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: waitFor})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bbolt.Tx) error {
		n = tx.Bucket([]byte("records")).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

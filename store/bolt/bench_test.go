package bolt_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/store/bolt"
)

// benchLimits admits everything the benchmarks put: they measure writing,
// not refusing.
func benchLimits() store.Limits {
	return store.Limits{MaxValues: 1 << 26, MaxBytes: 1 << 40, MaxPerPublisher: 1 << 26}
}

var benchNow = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// benchKey returns the i-th key: every Put stores a new record, as a node
// receiving records for many keys does.
func benchKey(i uint64) id.ID {
	var k id.ID
	// Multiplying by an odd constant is a bijection: distinct keys,
	// spread over the keyspace in the random order SHA-1 keys come in.
	binary.BigEndian.PutUint64(k[:], i*0x9e3779b97f4a7c15)
	return k
}

func benchValue(data []byte) store.Value {
	return store.Value{Publisher: id.ID{1}, Version: 1, Expires: benchNow.Add(time.Hour), Data: data}
}

// putAcked puts and, for a Syncer, waits for the Sync that makes the put
// durable, retrying while the queue is full: what a node does before it
// answers a STORE.
func putAcked(s store.Store, k id.ID, v store.Value, done chan error) error {
	sy, _ := s.(store.Syncer)
	for {
		err := s.Put(k, v, netip.Addr{}, benchNow)
		if err == nil || !errors.Is(err, store.ErrBusy) {
			if err == nil && sy != nil {
				sy.Sync(func(err error) { done <- err })
				err = <-done
			}
			return err
		}
		sy.Sync(func(err error) { done <- err })
		if err := <-done; err != nil {
			return err
		}
	}
}

// putQueued puts without waiting for the disk, retrying (after the queue
// drains) while it is full.
func putQueued(s store.Store, k id.ID, v store.Value, done chan error) error {
	for {
		err := s.Put(k, v, netip.Addr{}, benchNow)
		if err == nil || !errors.Is(err, store.ErrBusy) {
			return err
		}
		s.(store.Syncer).Sync(func(err error) { done <- err })
		if err := <-done; err != nil {
			return err
		}
	}
}

func syncAll(b *testing.B, s store.Store) {
	if sy, ok := s.(store.Syncer); ok {
		done := make(chan error, 1)
		sy.Sync(func(err error) { done <- err })
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPut compares the in-memory and the bbolt store in one run.
// "acked" waits for each put to be durable before the next (the memory
// store is durable at once, as far as it ever is); "queued" lets the bbolt
// store batch freely and syncs once at the end (within the timing); the
// parallel variants have 64 or 256 putters each waiting for their own
// acks, as a node answering many STOREs at once does.
func BenchmarkPut(b *testing.B) {
	data := make([]byte, 100)
	stores := []struct {
		name string
		open func(b *testing.B) store.Store
	}{
		{"memory", func(b *testing.B) store.Store { return store.NewMemory(benchLimits()) }},
		{"bolt", func(b *testing.B) store.Store {
			s, err := bolt.Open(filepath.Join(b.TempDir(), "db"), benchLimits(), bolt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	}
	for _, st := range stores {
		b.Run(st.name+"/sequential-acked", func(b *testing.B) {
			s := st.open(b)
			defer s.Close()
			done := make(chan error, 1)
			v := benchValue(data)
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				i++
				if err := putAcked(s, benchKey(i), v, done); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(st.name+"/sequential-queued", func(b *testing.B) {
			s := st.open(b)
			defer s.Close()
			done := make(chan error, 1)
			v := benchValue(data)
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				i++
				if err := putQueued(s, benchKey(i), v, done); err != nil {
					b.Fatal(err)
				}
			}
			syncAll(b, s)
		})
		for _, putters := range []int{64, 256} {
			b.Run(fmt.Sprintf("%s/parallel%d-acked", st.name, putters), func(b *testing.B) {
				s := st.open(b)
				defer s.Close()
				var next atomic.Uint64
				v := benchValue(data)
				b.SetParallelism(putters / runtime.GOMAXPROCS(0))
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					done := make(chan error, 1)
					for pb.Next() {
						if err := putAcked(s, benchKey(next.Add(1)), v, done); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// BenchmarkReplace rewrites records of a store holding 100,000, with 256
// putters waiting for their acks: "republish" rewrites them in the order
// they were written (what periodic republishing does), "random" in random
// order (the worst case for the file, whose old entries are then spread).
func BenchmarkReplace(b *testing.B) {
	const n = 100_000
	data := make([]byte, 100)
	for _, st := range []string{"memory", "bolt"} {
		for _, order := range []string{"republish", "random"} {
			b.Run(st+"/"+order, func(b *testing.B) {
				var s store.Store = store.NewMemory(benchLimits())
				if st == "bolt" {
					bs, err := bolt.Open(filepath.Join(b.TempDir(), "db"), benchLimits(), bolt.Options{})
					if err != nil {
						b.Fatal(err)
					}
					s = bs
				}
				defer s.Close()
				fill(b, s, n, 100)
				var next atomic.Uint64
				b.SetParallelism(256 / runtime.GOMAXPROCS(0))
				b.ReportAllocs()
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					done := make(chan error, 1)
					for pb.Next() {
						i := next.Add(1)
						k := i % n
						if order == "random" {
							k = (i * 0x9e3779b97f4a7c15 >> 1) % n
						}
						v := benchValue(data)
						v.Version = 1 + i // above fill's, and rising
						err := putAcked(s, benchKey(k), v, done)
						if err != nil && !errors.Is(err, store.ErrStale) { // two putters on one record
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}

// fill puts n records of size bytes (tombstones for size -1) into s and
// waits until they are durable.
func fill(b *testing.B, s store.Store, n, size int) {
	done := make(chan error, 1)
	data := make([]byte, max(size, 8))[:max(size, 0)]
	for i := range n {
		binary.BigEndian.PutUint64(data[:8:8], uint64(i)) // distinct bytes, within a value's room
		v := benchValue(data)
		v.Deleted = size < 0
		if err := putQueued(s, benchKey(uint64(i)), v, done); err != nil {
			b.Fatal(err)
		}
	}
	syncAll(b, s)
}

// BenchmarkDiskBytesPerRecord writes 100,000 records of each size (data
// bytes, or tombstones) and reports the file's size per record.
func BenchmarkDiskBytesPerRecord(b *testing.B) {
	const n = 100_000
	for _, size := range []int{-1, 100, 1000} {
		name := fmt.Sprintf("%dB", size)
		if size < 0 {
			name = "tombstone"
		}
		b.Run(name, func(b *testing.B) {
			var perRecord, perRecordPages float64
			for b.Loop() {
				path := filepath.Join(b.TempDir(), "db")
				s, err := bolt.Open(path, benchLimits(), bolt.Options{})
				if err != nil {
					b.Fatal(err)
				}
				fill(b, s, n, size)
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				fi, err := os.Stat(path)
				if err != nil {
					b.Fatal(err)
				}
				perRecord = float64(fi.Size()) / n
				perRecordPages = float64(bucketBytes(b, path)) / n
			}
			// The file grows in steps (16 MiB past the first 16 MiB),
			// so the first figure jumps; the second counts the pages
			// holding records.
			b.ReportMetric(perRecord, "disk-B/record")
			b.ReportMetric(perRecordPages, "pages-B/record")
		})
	}
}

// BenchmarkReopen measures Open (which reads every record back into memory)
// and Close of a store holding 100,000 records of 100 bytes.
func BenchmarkReopen(b *testing.B) {
	const n = 100_000
	path := filepath.Join(b.TempDir(), "db")
	s, err := bolt.Open(path, benchLimits(), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	fill(b, s, n, 100)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := bolt.Open(path, benchLimits(), bolt.Options{Now: benchNow})
		if err != nil {
			b.Fatal(err)
		}
		if s.Len() != n {
			b.Fatalf("reopened store holds %d records, want %d", s.Len(), n)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "records")
}

// bucketBytes returns the bytes of the pages the records bucket of the
// closed store at path occupies.
func bucketBytes(b *testing.B, path string) int {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	n := 0
	err = db.View(func(tx *bbolt.Tx) error {
		st := tx.Bucket([]byte("records")).Stats()
		n = st.BranchAlloc + st.LeafAlloc
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

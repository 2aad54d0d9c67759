// Package bolt is a store.Store that survives restarts: it keeps its records
// in a bbolt file as well as in memory.
//
// The policy (ordering by version, tombstones, limits and quotas) is a
// store.Memory's; this package only makes its changes durable. Memory calls
// an observer for every record it changes, the observer queues the change,
// and one writer goroutine commits the queued changes to bbolt in batches,
// one read-write transaction (and so one fsync) per batch. Sync callbacks run
// after the commit that covers every change made before them, so a node that
// acknowledges a STORE from its Sync callback never acknowledges what a crash
// can take away. Open reads every unexpired record back into memory and
// deletes the expired ones.
//
// The queue is bounded (Options.MaxPending, Options.MaxPendingBytes): when it
// is full Put refuses with an error wrapping store.ErrBusy before Memory sees
// the value, so memory never holds a change the disk will not get. After a
// failed disk write the store fails closed: Sync reports the error and every
// later Put returns an error wrapping ErrFailed, so that memory does not drift
// further from the file.
//
// # File format
//
// A bbolt file with two buckets. "meta" holds "format" → one byte, the
// layout version (1). "records" holds one entry per record, keyed by a
// sequence number (8 bytes, big-endian) that grows with every write: a
// record written again gets a new number and its old entry is deleted in
// the same transaction. Writes thus append at the end of the bucket, which
// keeps a batch to a few dirty pages, where records keyed by their SHA-1
// keys would dirty one page each. Open reads the entries in order and keeps
// the number of each record in a map, so that the writer can find the entry
// to delete. The value of an entry:
//
//	key       20 bytes
//	publisher 20 bytes
//	flags     1 byte: bit 0 deleted (a tombstone); bits 1-2 the source kind,
//	          0 the node itself (no address), 1 IPv4, 2 IPv6; bit 3 the data
//	          is a record envelope (added later: older files have it clear,
//	          and open as they are); other bits zero
//	version   uvarint
//	expiry    varint Unix seconds, then uvarint nanoseconds (< 1e9)
//	source    0, 4 or 16 bytes (IPv4, or IPv6 including IPv4-mapped; no zone)
//	data      the rest of the entry (none for a tombstone)
//
// A 100-byte value published in 2025 with an IPv4 source thus takes 162
// bytes, plus its 8-byte number and bbolt's 16 bytes per entry.
package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
)

// ErrFailed is wrapped by every Put and Sync error of a store whose writer
// stopped after a failed disk write. Reopen the store to recover: the file
// holds every change up to the last successful commit.
var ErrFailed = errors.New("store/bolt: stopped after a failed disk write")

// Defaults of Options, used for zero fields.
const (
	DefaultMaxPending      = 4096
	DefaultMaxPendingBytes = 16 << 20
	DefaultMaxBatch        = 1024
	DefaultMaxDelay        = 10 * time.Millisecond
	DefaultLockTimeout     = time.Second
)

// allocSize is the step the file grows by once past it.
const allocSize = 4 << 20

// Options tunes the writer. A zero or negative field takes its default.
type Options struct {
	// MaxPending bounds the puts applied in memory and not yet taken by the
	// writer; beyond it Put refuses with store.ErrBusy. While one batch is
	// being committed, up to MaxPending more may wait for the next. Default
	// DefaultMaxPending.
	MaxPending int
	// MaxPendingBytes bounds the data bytes of those puts the same way
	// (at least the limits' MaxValueSize, so that any value fits). Default
	// DefaultMaxPendingBytes.
	MaxPendingBytes int
	// MaxBatch is the number of waiting changes at which the writer commits
	// without waiting for MaxDelay. Default DefaultMaxBatch.
	MaxBatch int
	// MaxDelay is how long the writer lets changes gather before it
	// commits them when nobody waits on Sync; a Sync makes it commit as soon
	// as it is free. Default DefaultMaxDelay.
	MaxDelay time.Duration
	// LockTimeout is how long Open waits for another process to release the
	// file. Default DefaultLockTimeout.
	LockTimeout time.Duration
	// Now is the instant Open deems records expired at; zero means
	// time.Now().
	Now time.Time
}

func (o Options) withDefaults(l store.Limits) Options {
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = DefaultMaxPendingBytes
	}
	o.MaxPendingBytes = max(o.MaxPendingBytes, l.WithDefaults().MaxValueSize)
	if o.MaxBatch <= 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = DefaultMaxDelay
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	return o
}

// Store is a store.Store and a store.Syncer backed by a bbolt file. Create it
// with Open; it is safe for concurrent use. Besides its store.Memory it
// keeps one map entry (about 80 bytes) per record in the file, bounded like
// the records by the limits.
type Store struct {
	mem  *store.Memory
	db   *bbolt.DB
	opts Options

	mu       sync.Mutex
	changes  []change        // observed, not yet taken by the writer, in order
	spare    []change        // the previous batch's array, for reuse
	puts     int             // non-deletions among changes
	bytes    int             // their data bytes
	reserved int             // Puts between their check and Memory's answer
	resBytes int             // their data bytes
	waiters  []func(error)   // Syncs the next batch covers
	riding   []func(error)   // Syncs the batch being committed covers (nothing was pending)
	ready    []func(error)   // Syncs with nothing to wait for
	busy     bool            // the writer is committing a batch
	due      bool            // MaxDelay has passed since the writer saw changes
	closing  bool            // Close asked the writer to flush and stop
	exited   bool            // the writer has stopped
	err      error           // the write error that stopped the writer, wrapping ErrFailed
	wake     chan struct{}   // cap 1: something for the writer to look at
	done     chan struct{}   // closed when the writer has stopped
	arena    []byte          // encoded records of the batch being committed
	index    map[rkey]uint64 // the sequence number of each record in the file; the writer\'s
	next     uint64          // the next sequence number; the writer\'s
	hook     func(int) error // tests: called before each commit with the batch length

	closeOnce sync.Once
	closeErr  error
}

// change is one record change, as Memory reported it.
type change struct {
	rk  rkey
	put bool // false: the record was deleted
	v   store.Value
	src netip.Addr
}

var (
	_ store.Store  = (*Store)(nil)
	_ store.Syncer = (*Store)(nil)
)

// Open opens (or creates) the bbolt file at path, loads every record
// unexpired at opts.Now into a store.Memory enforcing l, deletes the expired
// ones from the file, and starts the writer. It fails if the file is not a
// bbolt file, was written in an unknown format, holds a malformed record, or
// holds more than l admits (lowered limits): nothing is dropped silently.
func Open(path string, l store.Limits, opts Options) (*Store, error) {
	return open(path, l, opts, nil)
}

// open is Open with a hook for tests, called by the writer before each
// commit with the batch's length; an error it returns fails the commit.
func open(path string, l store.Limits, opts Options, hook func(int) error) (*Store, error) {
	opts = opts.withDefaults(l)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:      opts.LockTimeout,
		FreelistType: bbolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	// Past 16 MiB bbolt grows the file by AllocSize, 16 MiB by default:
	// a store of 100,000 small records would take twice the room it uses.
	db.AllocSize = allocSize
	s := &Store{
		db:   db,
		opts: opts,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		hook: hook,
	}
	s.mem = store.NewMemoryObserved(l, s.observe)
	if err := s.load(opts.Now); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store/bolt: open %s: %w", path, err)
	}
	go s.run()
	return s, nil
}

// load reads the file into memory and builds the index of sequence
// numbers. Records are restored in one read transaction; only a new file or
// expired records cost a write (and fsync).
func (s *Store) load(now time.Time) error {
	fresh := false
	var expired [][seqLen]byte
	s.index = make(map[rkey]uint64)
	err := s.db.View(func(tx *bbolt.Tx) error {
		meta, recs := tx.Bucket(bucketMeta), tx.Bucket(bucketRecords)
		if meta == nil {
			if recs != nil {
				return errors.New("records without a meta bucket: not a store file")
			}
			fresh = true
			return nil
		}
		if f := meta.Get(formatKey); len(f) != 1 || f[0] != formatVersion {
			return fmt.Errorf("unknown format %x (this version reads %d)", f, formatVersion)
		}
		if recs == nil {
			return errors.New("no records bucket")
		}
		c := recs.Cursor()
		for k, b := c.First(); k != nil; k, b = c.Next() {
			if len(k) != seqLen || b == nil {
				return fmt.Errorf("unexpected item %x in the records bucket", k)
			}
			seq := binary.BigEndian.Uint64(k)
			s.next = seq + 1 // the cursor runs in ascending order
			rk, v, src, err := decodeRecord(b)
			if err != nil {
				return fmt.Errorf("record #%d: %w", seq, err)
			}
			key, pub := rk.split()
			if prev, ok := s.index[rk]; ok {
				// Each commit deletes the record it supersedes.
				return fmt.Errorf("record %s/%s is stored twice (#%d, #%d)", key, pub, prev, seq)
			}
			if !v.Expires.After(now) {
				expired = append(expired, [seqLen]byte(k))
				continue
			}
			// v.Data points into the file's memory map, valid only
			// during this transaction: Restore copies it.
			if err := s.mem.Restore(key, v, src, now); err != nil {
				return fmt.Errorf("record %s/%s does not fit the limits: %w", key, pub, err)
			}
			s.index[rk] = seq
		}
		return nil
	})
	if err != nil || (!fresh && len(expired) == 0) {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		if fresh {
			meta, err := tx.CreateBucket(bucketMeta)
			if err != nil {
				return err
			}
			if err := meta.Put(formatKey, []byte{formatVersion}); err != nil {
				return err
			}
			if _, err := tx.CreateBucket(bucketRecords); err != nil {
				return err
			}
			return nil
		}
		recs := tx.Bucket(bucketRecords)
		for i := range expired {
			if err := recs.Delete(expired[i][:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// Put applies v under key as store.Memory does, then queues the change for
// the disk. It refuses with an error wrapping store.ErrBusy, changing
// nothing, when the queue is full, and with one wrapping ErrFailed after a
// failed disk write. A nil error means the change is in memory; use Sync to
// learn when it is on disk.
func (s *Store) Put(key id.ID, v store.Value, src netip.Addr, now time.Time) error {
	n := len(v.Data)
	s.mu.Lock()
	if s.err != nil {
		err := s.err
		s.mu.Unlock()
		return err
	}
	// Every Put changes at most one record, so a Put admitted here adds at
	// most one change and n bytes: the queue cannot pass its bounds.
	if p := s.puts + s.reserved; p >= s.opts.MaxPending {
		s.mu.Unlock()
		return fmt.Errorf("store/bolt: %d changes wait for the disk (limit %d): %w", p, s.opts.MaxPending, store.ErrBusy)
	}
	if b := s.bytes + s.resBytes; b+n > s.opts.MaxPendingBytes {
		s.mu.Unlock()
		return fmt.Errorf("store/bolt: %d bytes wait for the disk, %d more would pass the limit %d: %w", b, n, s.opts.MaxPendingBytes, store.ErrBusy)
	}
	s.reserved++
	s.resBytes += n
	s.mu.Unlock()

	err := s.mem.Put(key, v, src, now)

	s.mu.Lock()
	s.reserved--
	s.resBytes -= n
	s.mu.Unlock()
	return err
}

// Sync calls fn, on another goroutine and exactly once, when every change
// made before the call is on disk (nil), or with the error that stopped the
// writer. fn runs on the store's writer goroutine: it must not block for
// long, and must not call Close.
//
// The callbacks waiting are bounded (twice MaxPending, room for one per
// queued Put and as many more); past that fn gets an error wrapping
// store.ErrBusy at once.
func (s *Store) Sync(fn func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.exited:
		err := s.err
		go fn(err)
	case len(s.waiters)+len(s.riding)+len(s.ready) >= 2*s.opts.MaxPending:
		err := fmt.Errorf("store/bolt: %d Sync callbacks wait (limit %d): %w",
			len(s.waiters)+len(s.riding)+len(s.ready), 2*s.opts.MaxPending, store.ErrBusy)
		go fn(err)
	case s.err != nil:
		s.ready = append(s.ready, fn)
		s.kick()
	case len(s.changes) > 0:
		s.waiters = append(s.waiters, fn)
		s.kick()
	case s.busy:
		s.riding = append(s.riding, fn)
	default:
		s.ready = append(s.ready, fn)
		s.kick()
	}
}

// kick wakes the writer; s.mu is held.
func (s *Store) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// observe is Memory's observer: it runs under Memory's lock, once per record
// change, in the order the changes happen.
func (s *Store) observe(key, publisher id.ID, v *store.Value, src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return // nothing reaches the disk any more
	}
	c := change{rk: recordKey(key, publisher)}
	if v != nil {
		c.put, c.v, c.src = true, *v, src
		s.puts++
		s.bytes += len(v.Data)
	}
	s.changes = append(s.changes, c)
	if len(s.changes) == 1 || len(s.changes) == s.opts.MaxBatch {
		s.kick()
	}
}

// Get is store.Memory's Get.
func (s *Store) Get(key id.ID, now time.Time, dst []store.Value) []store.Value {
	return s.mem.Get(key, now, dst)
}

// Records is store.Memory's Records.
func (s *Store) Records(key id.ID, now time.Time, dst []store.Value) []store.Value {
	return s.mem.Records(key, now, dst)
}

// Lookup is store.Memory's Lookup.
func (s *Store) Lookup(key, publisher id.ID, now time.Time) (store.Value, bool) {
	return s.mem.Lookup(key, publisher, now)
}

// Sweep deletes the records expired at now, in memory at once and on disk
// with the next batch.
func (s *Store) Sweep(now time.Time) int { return s.mem.Sweep(now) }

// SweepExamined is store.Memory's: the records the last Sweep examined.
func (s *Store) SweepExamined() int { return s.mem.SweepExamined() }

// NextExpiry is store.Memory's NextExpiry.
func (s *Store) NextExpiry() (time.Time, bool) { return s.mem.NextExpiry() }

// Len is store.Memory's Len.
func (s *Store) Len() int { return s.mem.Len() }

// Bytes is store.Memory's Bytes.
func (s *Store) Bytes() int { return s.mem.Bytes() }

// Keys is store.Memory's Keys.
func (s *Store) Keys(fn func(key id.ID) bool) { s.mem.Keys(fn) }

// Ascend is store.Memory's Ascend: the order lives in memory, so the file
// keeps its layout (records keyed by sequence number) unchanged.
func (s *Store) Ascend(from id.ID, fn func(key id.ID) bool) { s.mem.Ascend(from, fn) }

// Close stops Puts, commits every change still queued, runs the pending Sync
// callbacks, and closes the file. It returns the write error that stopped
// the writer, if one did. Calls after the first return nil.
func (s *Store) Close() error {
	first := false
	s.closeOnce.Do(func() {
		first = true
		// Memory changes nothing after its Close, so the writer's last
		// batch holds every change.
		_ = s.mem.Close()
		s.mu.Lock()
		s.closing = true
		s.kick()
		s.mu.Unlock()
		<-s.done
		err := s.db.Close()
		if s.err != nil {
			err = s.err
		}
		s.closeErr = err
	})
	if !first {
		return nil
	}
	return s.closeErr
}

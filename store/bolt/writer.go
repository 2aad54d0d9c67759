package bolt

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
)

// maxArena is the largest encoding buffer the writer keeps between batches;
// a batch of large values gets a buffer of its own, freed after it.
const maxArena = 4 << 20

// run is the writer goroutine: it commits the queued changes in batches and
// runs the Sync callbacks each batch covers, until Close.
func (s *Store) run() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	armed := false
	for {
		s.mu.Lock()
		n := len(s.changes)
		switch {
		case n > 0 && (s.closing || s.due || n >= s.opts.MaxBatch || len(s.waiters) > 0):
			batch, waiters := s.changes, s.waiters
			s.changes, s.spare, s.waiters = s.spare[:0], nil, nil
			s.puts, s.bytes = 0, 0
			s.busy, s.due = true, false
			s.mu.Unlock()
			if armed {
				timer.Stop()
				armed = false
			}
			err := s.commit(batch)
			clear(batch) // drop the references to values' data
			s.mu.Lock()
			s.spare = batch[:0]
			s.busy = false
			waiters = append(waiters, s.riding...)
			s.riding = nil
			if err != nil {
				s.err = fmt.Errorf("%w: %w", ErrFailed, err)
				// What is queued will never be written: its Syncs
				// fail, and later changes are not queued.
				waiters = append(waiters, s.waiters...)
				s.waiters = nil
				clear(s.changes)
				s.changes = s.changes[:0]
				s.puts, s.bytes = 0, 0
			}
			err = s.err
			s.mu.Unlock()
			for _, fn := range waiters {
				fn(err)
			}
			continue
		case len(s.ready) > 0:
			ready, err := s.ready, s.err
			s.ready = nil
			s.mu.Unlock()
			for _, fn := range ready {
				fn(err)
			}
			continue
		case s.closing:
			// Nothing is queued and Memory is closed: nothing more can
			// come. Syncs from now on are answered by Sync itself.
			s.exited = true
			s.mu.Unlock()
			close(s.done)
			return
		}
		if n > 0 && !armed {
			timer.Reset(s.opts.MaxDelay)
			armed = true
		}
		s.mu.Unlock()
		select {
		case <-s.wake:
		case <-timer.C:
			armed = false
			s.mu.Lock()
			s.due = true
			s.mu.Unlock()
		}
	}
}

// commit writes batch in one transaction, in the order observed: a record
// written again gets a new sequence number and its old entry is deleted, so
// that the file holds each record once, at its latest state.
//
// The index is updated as the transaction goes; if the transaction fails
// the index is wrong, but the writer writes nothing after a failure.
func (s *Store) commit(batch []change) error {
	if s.hook != nil {
		if err := s.hook(len(batch)); err != nil {
			return err
		}
	}
	size := 0
	for i := range batch {
		if batch[i].put {
			size += seqLen + recordLen(&batch[i].v, batch[i].src)
		}
	}
	arena := s.arena
	if cap(arena) < size {
		arena = make([]byte, 0, size)
	}
	arena = arena[:0]
	err := s.db.Update(func(tx *bbolt.Tx) error {
		recs := tx.Bucket(bucketRecords)
		// Every insert is at the end: fill the pages, as they will not
		// get inserts in the middle.
		recs.FillPercent = 1
		for i := range batch {
			c := &batch[i]
			if old, ok := s.index[c.rk]; ok {
				k := seqKey(old)
				if err := recs.Delete(k[:]); err != nil {
					return err
				}
				delete(s.index, c.rk)
			}
			if !c.put {
				continue
			}
			// bbolt keeps the key and value slices until the commit:
			// each gets its own stretch of the arena, which never
			// reallocates because it was sized for the whole batch.
			seq := s.next
			s.next++
			start := len(arena)
			arena = binary.BigEndian.AppendUint64(arena, seq)
			mid := len(arena)
			arena = appendRecord(arena, &c.rk, &c.v, c.src)
			if err := recs.Put(arena[start:mid:mid], arena[mid:len(arena):len(arena)]); err != nil {
				return err
			}
			s.index[c.rk] = seq
		}
		return nil
	})
	if cap(arena) <= maxArena {
		s.arena = arena[:0]
	} else {
		s.arena = nil
	}
	return err
}

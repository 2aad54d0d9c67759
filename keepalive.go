package dht

import (
	"fmt"
	"sync"
	"time"

	"github.com/dhtkit/dht/internal/core"
)

// KeepAlive makes the node republish the value before it expires, for as
// long as it runs (and across restarts, with Config.KeepAliveStore), until
// StopKeepAlive, a Delete of the value, or a Put of the same key and
// publisher without KeepAlive. A republish stores the same publisher,
// version and bytes with a fresh TTL, every half of the shortest TTL the
// nodes granted (a grant under Config.MinTTL counts as MinTTL, so that one
// node granting a second cannot set the pace): the nodes that hold the value only extend it, new members
// of the key's K closest get it, and listeners see no change. A republish
// that fails (no node accepted it, or fewer than WithQuorum) is retried
// after 1s, 2s, 4s... up to 5 minutes; one that every node refuses as
// stale (a newer version of the publisher's value was stored since) ends
// the keep-alive. The keep-alive stands even when the first Put fails.
// Stats().KeepAlive counts republishes and failures; KeepAlives lists them.
// A node keeps at most Config.MaxKeepAlives; past it Put fails with
// ErrKeepAliveLimit and stores nothing.
func KeepAlive() PutOption { return func(o *putOptions) { o.keepAlive = true } }

// ErrKeepAliveLimit: a Put with KeepAlive found the node already keeping
// Config.MaxKeepAlives values alive.
var ErrKeepAliveLimit = core.ErrKeepAliveLimit

// StopKeepAlive ends the keep-alive of the publisher's value under key
// (WithPublisher, default this node's ID) and reports whether there was
// one. The value is not withdrawn: it lives out the TTL the nodes granted
// (Delete withdraws it, and ends its keep-alive too).
func (n *Node) StopKeepAlive(key ID, opts ...PutOption) (bool, error) {
	o := options(opts)
	ok := n.c.StopKeepAlive(key, o.publisher)
	return ok, n.keep.save()
}

// KeepAliveInfo is one value the node keeps alive.
type KeepAliveInfo struct {
	Key       ID
	Publisher ID
	Version   uint64
	Value     []byte
	// TTL is what each republish asks for; Quorum what it must reach.
	TTL    time.Duration
	Quorum int
	// Next is when the next republish starts (zero while one runs).
	Next time.Time
	// Republished counts the puts that succeeded, the first included;
	// Failures those that failed since the last success, LastError the
	// last one's error.
	Republished int
	Failures    int
	LastError   string
}

// KeepAlives lists the values the node keeps alive, by key and publisher.
func (n *Node) KeepAlives() []KeepAliveInfo {
	ks := n.c.KeepAlives()
	out := make([]KeepAliveInfo, len(ks))
	for i, k := range ks {
		r := k.Request
		out[i] = KeepAliveInfo{Key: r.Key, Publisher: r.Publisher, Version: r.Version, Value: r.Value, TTL: r.TTL, Quorum: r.Quorum,
			Next: k.Next, Republished: k.Republished, Failures: k.Failures, LastError: k.LastError}
	}
	return out
}

// KeepAliveStore keeps a node's keep-alives across restarts (see
// Config.KeepAliveStore). Load returns what the last Save saved (nothing,
// and no error, the first time); Save replaces it, atomically: a crash
// during a Save leaves the old list or the new one. Only the fields that
// say what to republish matter (key, publisher, version, value, TTL,
// quorum); the others describe the moment. The node calls Save from one
// goroutine at a time.
type KeepAliveStore interface {
	Load() ([]KeepAliveInfo, error)
	Save([]KeepAliveInfo) error
}

// keepState saves the node's keep-alives to Config.KeepAliveStore when
// they changed.
type keepState struct {
	mu     sync.Mutex
	n      *Node
	store  KeepAliveStore // nil: nothing to save
	saved  uint64         // the generation last saved
	closed bool           // no saveLater starts a save past Close
	wg     sync.WaitGroup // the saves saveLater started
}

// saveLater saves a change that happened on the node's own goroutine (a
// keep-alive ended on its own), off that goroutine, since a save writes a
// file. Close waits for the saves it started.
func (k *keepState) saveLater() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		k.saveOrLog()
	}()
}

// close waits for the saves in progress and stops new ones; a change that
// came too late for them is saved here, once the node is closed.
func (k *keepState) close() {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.wg.Wait()
	k.saveOrLog()
}

// restore loads the saved keep-alives into the node.
func (k *keepState) restore() error {
	if k.store == nil {
		return nil
	}
	list, err := k.store.Load()
	if err != nil {
		return fmt.Errorf("dht: loading the keep-alives: %w", err)
	}
	for i, x := range list {
		req := core.PutRequest{Key: x.Key, Value: x.Value, TTL: x.TTL, Publisher: x.Publisher, Version: x.Version, Quorum: x.Quorum, KeepAlive: true}
		if err := k.n.c.RestoreKeepAlive(req); err != nil {
			return fmt.Errorf("dht: restoring saved keep-alive %d of %d (key %s): %w", i+1, len(list), x.Key.Short(), err)
		}
	}
	k.saved = k.n.c.KeepAliveGeneration()
	return nil
}

// saveOrLog is save for a change no caller waits for: the error goes to
// the node's log.
func (k *keepState) saveOrLog() {
	if err := k.save(); err != nil {
		k.n.c.Config().Logger.Warn("a keep-alive ended on its own but could not be saved", "err", err)
	}
}

// save writes the keep-alives if they changed since the last save.
func (k *keepState) save() error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.store == nil || k.n == nil {
		return nil
	}
	gen := k.n.c.KeepAliveGeneration()
	if gen == k.saved {
		return nil
	}
	if err := k.store.Save(k.n.KeepAlives()); err != nil {
		return fmt.Errorf("dht: saving the keep-alives: %w", err)
	}
	k.saved = gen
	return nil
}

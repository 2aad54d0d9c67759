package dht

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/ident"
	"github.com/dhtkit/dht/internal/atomicfile"
	"github.com/dhtkit/dht/internal/core"
	"github.com/dhtkit/dht/record"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/store/bolt"
)

// Files of a data directory (Config.DataDir).
const (
	IDFile       = "node.key"      // the node's ID, 40 hex digits and a newline
	KeyFile      = "identity.key"  // the node's ed25519 identity key, in the format of `dht keygen` (record.MarshalPrivateKey)
	ValuesFile   = "values.db"     // the values it holds (bbolt)
	ContactsFile = "contacts.json" // its routing table's contacts, for rejoining
)

// maxSavedContacts bounds the contacts a restarted node pings to rejoin.
const maxSavedContacts = 32

// contactsEvery is how often a running node saves its contacts, so that a
// crash loses at most this much of its view of the network.
const contactsEvery = 5 * time.Minute

// dataDir is an open data directory.
type dataDir struct {
	dir   string
	store store.Store // opened here; nil when Config.Store was given
	saved []netip.AddrPort
	stop  chan struct{}
	wg    sync.WaitGroup
}

// openDataDir opens (creating) cfg.DataDir: it fills cfg.Key from the key
// file (see loadIdentity) and cfg.ID from the ID file (or writes the ID the
// node will use), opens the value store unless
// cfg.Store is set, and reads the saved contacts into cfg.Seeds.
func openDataDir(cfg *Config) (*dataDir, error) {
	d := &dataDir{dir: cfg.DataDir, stop: make(chan struct{})}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		return nil, fmt.Errorf("dht: Config.DataDir %q: %w", d.dir, err)
	}
	if err := loadIdentity(cfg, d.dir); err != nil {
		return nil, err
	}
	if cfg.Key != nil && cfg.ID.IsZero() {
		cfg.ID = ident.ID(cfg.Key) // and node.key says so, below
	}
	idPath := filepath.Join(d.dir, IDFile)
	switch b, err := os.ReadFile(idPath); {
	case err == nil:
		saved, perr := id.Parse(strings.TrimSpace(string(b)))
		if perr != nil {
			return nil, fmt.Errorf("dht: %s: not a node ID (40 hex digits): %w", idPath, perr)
		}
		if cfg.ID.IsZero() {
			cfg.ID = saved
		} else if cfg.ID != saved {
			if err := writeFileAtomic(idPath, []byte(cfg.ID.String()+"\n")); err != nil {
				return nil, err
			}
		}
	case errors.Is(err, os.ErrNotExist):
		if cfg.ID.IsZero() {
			var b [id.Len]byte
			if _, err := rand.Read(b[:]); err != nil {
				return nil, err
			}
			cfg.ID = id.ID(b)
		}
		if err := writeFileAtomic(idPath, []byte(cfg.ID.String()+"\n")); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("dht: reading %s: %w", idPath, err)
	}
	if cfg.Store == nil && !cfg.ReadOnly {
		st, err := bolt.Open(filepath.Join(d.dir, ValuesFile), cfg.StoreLimits, bolt.Options{})
		if err != nil {
			return nil, fmt.Errorf("dht: opening the value store in %s: %w", d.dir, err)
		}
		d.store = st
		cfg.Store = st
		cfg.StoreLimits = store.Limits{}
	}
	if b, err := os.ReadFile(filepath.Join(d.dir, ContactsFile)); err == nil {
		var saved []string
		if json.Unmarshal(b, &saved) == nil {
			for _, s := range saved {
				if a, err := netip.ParseAddrPort(s); err == nil && a.Port() != 0 && !a.Addr().IsUnspecified() && len(d.saved) < maxSavedContacts {
					d.saved = append(d.saved, a)
				}
			}
		}
		// A damaged contacts file costs the node only its shortcut back in.
	}
	if !cfg.ReadOnly {
		cfg.Seeds = append(cfg.Seeds[:len(cfg.Seeds):len(cfg.Seeds)], d.saved...)
	}
	return d, nil
}

// start begins saving the node's contacts every contactsEvery.
func (d *dataDir) start(n *Node) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(contactsEvery)
		defer t.Stop()
		for {
			select {
			case <-d.stop:
				return
			case <-t.C:
				_ = d.saveContacts(n.c)
			}
		}
	}()
}

// saveContacts writes the routing table's verified contacts, freshest
// first, at most maxSavedContacts of them. A table that is empty (a node
// cut off) keeps the file it has.
func (d *dataDir) saveContacts(c *core.Node) error {
	es := c.Contacts()
	var out []string
	for _, e := range es {
		if e.Verified {
			out = append(out, e.Contact.Addr.String())
		}
	}
	if len(out) == 0 {
		return nil
	}
	if len(out) > maxSavedContacts*4 {
		out = out[:maxSavedContacts*4]
	}
	b, _ := json.Marshal(out)
	return writeFileAtomic(filepath.Join(d.dir, ContactsFile), b)
}

// close saves the contacts and closes the store opened here. The node is
// closed already.
func (d *dataDir) close(c *core.Node) error {
	close(d.stop)
	d.wg.Wait()
	err := d.saveContacts(c)
	if d.store != nil {
		err = errors.Join(err, d.store.Close())
	}
	return err
}

// abort releases what openDataDir opened, for a New that failed.
func (d *dataDir) abort() {
	if d.store != nil {
		d.store.Close()
	}
}

func writeFileAtomic(path string, b []byte) error { return atomicfile.Write(path, b, 0o600) }

// loadIdentity fills cfg.Key from the data directory (see LoadIdentity)
// unless the node has an ID or key of its own, or is read-only.
func loadIdentity(cfg *Config, dir string) error {
	if cfg.Key != nil || !cfg.ID.IsZero() || cfg.ReadOnly {
		return nil
	}
	k, _, err := LoadIdentity(dir, cfg.Difficulty, cfg.RequireIdentity)
	cfg.Key = k
	return err
}

// LoadIdentity returns the identity key kept in dir's KeyFile, creating the
// file (atomically, mode 0600, in the format of `dht keygen`) with a new key
// of the given difficulty when there is none; created says whether it did.
// A directory from before identity keys, whose IDFile holds a free ID, gets
// no key unless require is set (key nil, no error): the node keeps the ID
// its peers know it by. A key file that does not parse is an error, never
// replaced: it is the node's identity.
func LoadIdentity(dir string, difficulty int, require bool) (key ed25519.PrivateKey, created bool, err error) {
	path := filepath.Join(dir, KeyFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := record.ParsePrivateKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("dht: %s: %w (move it away to make a new identity)", path, err)
		}
		return k, false, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, false, fmt.Errorf("dht: reading %s: %w", path, err)
	}
	if _, err := os.Stat(filepath.Join(dir, IDFile)); err == nil && !require {
		return nil, false, nil // an older node's free ID: kept
	}
	k, _, err := ident.Generate(func(b []byte) error { _, err := rand.Read(b); return err }, difficulty)
	if err != nil {
		return nil, false, fmt.Errorf("dht: Config.Difficulty: %w", err)
	}
	text, err := record.MarshalPrivateKey(k)
	if err != nil {
		return nil, false, err
	}
	if err := writeFileAtomic(path, text); err != nil {
		return nil, false, err
	}
	return k, true, nil
}

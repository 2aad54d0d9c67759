package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/id"
)

// KeepAliveFile is the data directory's list of the values the daemon
// republishes for its programs (`dht put --keep`), so that a restarted
// daemon goes on keeping them alive. It is rewritten atomically on every
// change, before the API call that made it answers.
const KeepAliveFile = "keepalives.json"

// maxKeepAliveFile bounds what the daemon reads back: the default 1024
// keep-alives of 64 KiB values, in base64, with room to spare.
const maxKeepAliveFile = 128 << 20

// KeepAlives is the dht.KeepAliveStore of a data directory: the file
// KeepAliveFile in it.
func (d DataDir) KeepAlives() dht.KeepAliveStore { return keepAliveFile{path: d.File(KeepAliveFile)} }

type keepAliveFile struct{ path string }

type savedKeepAlives struct {
	Saved      time.Time        `json:"saved"`
	KeepAlives []savedKeepAlive `json:"keepalives"`
}

type savedKeepAlive struct {
	Key       string `json:"key"`
	Publisher string `json:"publisher"`
	Version   uint64 `json:"version"`
	TTL       string `json:"ttl"`
	Quorum    int    `json:"quorum,omitempty"`
	Value     []byte `json:"value"` // base64
}

// Save writes the list, replacing the file atomically (mode 0600).
func (f keepAliveFile) Save(list []dht.KeepAliveInfo) error {
	sk := savedKeepAlives{Saved: time.Now().UTC().Truncate(time.Second), KeepAlives: make([]savedKeepAlive, len(list))}
	for i, k := range list {
		sk.KeepAlives[i] = savedKeepAlive{Key: k.Key.String(), Publisher: k.Publisher.String(), Version: k.Version,
			TTL: k.TTL.String(), Quorum: k.Quorum, Value: k.Value}
	}
	b, err := json.MarshalIndent(sk, "", "  ")
	if err != nil {
		return err
	}
	if len(b) > maxKeepAliveFile {
		return fmt.Errorf("%s: %d bytes of keep-alives, over the %d this daemon reads back", f.path, len(b), maxKeepAliveFile)
	}
	return WriteFileAtomic(f.path, append(b, '\n'), 0o600)
}

// Load reads the list: nothing when there is no file. A file that is not
// a keep-alive list, or holds an entry that is not one, is an error that
// names it: the node must not start and then overwrite values it was
// asked to keep alive.
func (f keepAliveFile) Load() ([]dht.KeepAliveInfo, error) {
	b, err := readSmall(f.path, maxKeepAliveFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var sk savedKeepAlives
	if err := json.Unmarshal(b, &sk); err != nil {
		return nil, fmt.Errorf("%s: not a keep-alive list (move it away to start without it): %v", f.path, err)
	}
	out := make([]dht.KeepAliveInfo, 0, len(sk.KeepAlives))
	for i, s := range sk.KeepAlives {
		k, err1 := id.Parse(s.Key)
		p, err2 := id.Parse(s.Publisher)
		ttl, err3 := time.ParseDuration(s.TTL)
		if err := errors.Join(err1, err2, err3); err != nil || len(s.Value) == 0 || s.Version == 0 {
			return nil, fmt.Errorf("%s: keep-alive %d is not one (move the file away to start without it): %v", f.path, i+1, err)
		}
		out = append(out, dht.KeepAliveInfo{Key: k, Publisher: p, Version: s.Version, TTL: ttl, Quorum: s.Quorum, Value: s.Value})
	}
	return out, nil
}

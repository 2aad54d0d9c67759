package node

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dhtkit/dht/internal/atomicfile"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/dhtkit/dht"
	"github.com/dhtkit/dht/id"
)

// The files of a data directory (docs/config.md, "Data directory"). Every
// file is written atomically with mode 0600, the directory has mode 0700:
// the token is a secret, and the rest is nobody else's business either.
const (
	// KeyFile keeps the node's identity: its ID, 40 hex digits on one line.
	KeyFile = "node.key"
	// StoreFile is the persistent value store (bbolt), opened through
	// Hooks.OpenStore.
	StoreFile = "values.db"
	// ContactsFile is the routing table's last snapshot, used to rejoin
	// when every seed is down.
	ContactsFile = "contacts.json"
	// TokenFile keeps the HTTP API's bearer token, 64 hex digits.
	TokenFile = "api.token"
	// APIFile says where the running node's HTTP API listens (APIInfo); it
	// exists only while the API does.
	APIFile = "api.json"
)

// Bounds on what the daemon reads back from its data directory: the files
// are its own, but a damaged or foreign file must not make it allocate
// without limit.
const (
	maxSmallFile     = 4 << 10
	maxContactsFile  = 4 << 20
	maxSavedContacts = 160 * 32 // a full routing table of the largest K
)

// DataDir is a node's data directory. The zero value is not usable: use
// OpenDataDir. Its methods may be called from several goroutines, as long as
// two do not write the same file at once.
type DataDir struct {
	// Path is the directory.
	Path string
}

// DefaultDataDir returns $XDG_DATA_HOME/dht, or ~/.local/share/dht when
// XDG_DATA_HOME is unset or not absolute (as the XDG specification says).
func DefaultDataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "dht"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return "", fmt.Errorf("no data directory: neither XDG_DATA_HOME nor HOME is set; give one with --data DIR, or run with --memory")
	}
	return filepath.Join(home, ".local", "share", "dht"), nil
}

// RuntimeDir is where a node run with --memory writes its api.json, so that
// the CLI finds it: $XDG_RUNTIME_DIR/dht, or the default data directory.
func RuntimeDir() (string, error) {
	if d := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(d) {
		return filepath.Join(d, "dht"), nil
	}
	return DefaultDataDir()
}

// OpenDataDir makes the directory (mode 0700) when it does not exist and
// returns it. An existing directory that others may read is tightened to
// 0700, since it holds the API token.
func OpenDataDir(path string) (DataDir, error) {
	if path == "" {
		return DataDir{}, errors.New("data directory: empty path")
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		return DataDir{}, fmt.Errorf("data directory %s: %w", path, unwrapPathError(err))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return DataDir{}, fmt.Errorf("data directory %s: %w", path, unwrapPathError(err))
	}
	if !fi.IsDir() {
		return DataDir{}, fmt.Errorf("data directory %s: not a directory", path)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, fi.Mode().Perm()&0o700); err != nil {
			return DataDir{}, fmt.Errorf("data directory %s: others may read it and it cannot be made private: %w", path, unwrapPathError(err))
		}
	}
	return DataDir{Path: path}, nil
}

// File returns the path of the named file of the directory.
func (d DataDir) File(name string) string { return filepath.Join(d.Path, name) }

// LoadOrCreateID returns the ID kept in node.key, creating the file with a
// random ID when there is none. created says whether it did. A node.key that
// holds no ID is an error, never silently replaced: the node's identity is
// what its peers know it by.
func (d DataDir) LoadOrCreateID() (_ dht.ID, created bool, err error) {
	b, err := readSmall(d.File(KeyFile), maxSmallFile)
	if err == nil {
		line, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		v, err := id.Parse(strings.TrimSpace(line))
		if err != nil {
			return dht.ID{}, false, fmt.Errorf("%s: %v; move it away to make a new identity", d.File(KeyFile), err)
		}
		return v, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return dht.ID{}, false, err
	}
	var v dht.ID
	if _, err := rand.Read(v[:]); err != nil {
		return dht.ID{}, false, err
	}
	if err := WriteFileAtomic(d.File(KeyFile), []byte(v.String()+"\n"), 0o600); err != nil {
		return dht.ID{}, false, err
	}
	return v, true, nil
}

// SaveID writes x to node.key, where tools read the node's ID; a node whose
// ID is its identity key's (identity.key) keeps the two in step.
func (d DataDir) SaveID(x dht.ID) error {
	return WriteFileAtomic(d.File(KeyFile), []byte(x.String()+"\n"), 0o600)
}

// LoadOrCreateToken returns the API token kept in api.token, creating the
// file with 32 random bytes (hex) when there is none.
func (d DataDir) LoadOrCreateToken() (token string, created bool, err error) {
	p := d.File(TokenFile)
	b, err := readSmall(p, maxSmallFile)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if !validToken(t) {
			return "", false, fmt.Errorf("%s: not a token (want 64 hex digits); remove it to make a new one", p)
		}
		if err := tightenPerm(p); err != nil {
			return "", false, err
		}
		return t, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	t := NewToken()
	if err := WriteFileAtomic(p, []byte(t+"\n"), 0o600); err != nil {
		return "", false, err
	}
	return t, true, nil
}

// NewToken returns a fresh API token: 32 random bytes, hex.
func NewToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("node: no randomness for a token: " + err.Error()) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b[:])
}

func validToken(t string) bool {
	if len(t) != 64 {
		return false
	}
	_, err := hex.DecodeString(t)
	return err == nil
}

// tightenPerm makes a secret file private when it is not.
func tightenPerm(p string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(p, 0o600); err != nil {
			return fmt.Errorf("%s: others may read it and it cannot be made private: %w", p, unwrapPathError(err))
		}
	}
	return nil
}

// savedContacts is contacts.json.
type savedContacts struct {
	Saved    time.Time      `json:"saved"`
	Contacts []savedContact `json:"contacts"`
}

type savedContact struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// SaveContacts writes the routing table snapshot. An empty list is not
// written: a node that lost every contact must not forget the ones it had.
func (d DataDir) SaveContacts(cs []dht.Contact, now time.Time) error {
	if len(cs) == 0 {
		return nil
	}
	cs = cs[:min(len(cs), maxSavedContacts)]
	sc := savedContacts{Saved: now.UTC().Truncate(time.Second), Contacts: make([]savedContact, len(cs))}
	for i, c := range cs {
		sc.Contacts[i] = savedContact{ID: c.ID.String(), Addr: c.Addr.String()}
	}
	b, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(d.File(ContactsFile), append(b, '\n'), 0o600)
}

// LoadContacts reads the saved snapshot: nil when there is none. Entries that
// are not a contact are skipped; a file that is not a snapshot is an error.
func (d DataDir) LoadContacts() ([]dht.Contact, time.Time, error) {
	b, err := readSmall(d.File(ContactsFile), maxContactsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, time.Time{}, nil
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	var sc savedContacts
	if err := json.Unmarshal(b, &sc); err != nil {
		return nil, time.Time{}, fmt.Errorf("%s: not a contacts snapshot: %v", d.File(ContactsFile), err)
	}
	var out []dht.Contact
	for _, c := range sc.Contacts[:min(len(sc.Contacts), maxSavedContacts)] {
		v, err := id.Parse(c.ID)
		if err != nil {
			continue
		}
		a, err := netip.ParseAddrPort(c.Addr)
		if err != nil || a.Port() == 0 || a.Addr().IsUnspecified() || a.Addr().IsMulticast() {
			continue
		}
		out = append(out, dht.Contact{ID: v, Addr: a})
	}
	return out, sc.Saved, nil
}

// APIInfo is api.json: where the running node's HTTP API listens.
type APIInfo struct {
	// Addr is the API's address, "127.0.0.1:4001".
	Addr string `json:"addr"`
	// PID is the node's process ID.
	PID int `json:"pid"`
}

// WriteAPIInfo writes api.json.
func (d DataDir) WriteAPIInfo(info APIInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return WriteFileAtomic(d.File(APIFile), append(b, '\n'), 0o600)
}

// RemoveAPIInfo removes api.json if it is this process's, so that a node
// stopping late does not remove the file of one started after it.
func (d DataDir) RemoveAPIInfo() error {
	info, err := ReadAPIInfo(d.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err == nil && info.PID != os.Getpid() {
		return nil
	}
	if err := os.Remove(d.File(APIFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// ReadAPIInfo reads dir/api.json, for the CLI to find a running node. The
// error wraps fs.ErrNotExist when no node's API runs from dir.
func ReadAPIInfo(dir string) (APIInfo, error) {
	p := filepath.Join(dir, APIFile)
	b, err := readSmall(p, maxSmallFile)
	if err != nil {
		return APIInfo{}, err
	}
	var info APIInfo
	if err := json.Unmarshal(b, &info); err != nil || info.Addr == "" {
		return APIInfo{}, fmt.Errorf("%s: not an API address file", p)
	}
	return info, nil
}

// FindAPI finds the running node's api.json for the CLI: in dataDir when it
// is given, otherwise in RuntimeDir (where a --memory node writes it) and
// then DefaultDataDir. It returns the file's content and the directory it
// was in (whose api.token, if any, holds the token); the error wraps
// fs.ErrNotExist when no node's API was found.
func FindAPI(dataDir string) (APIInfo, string, error) {
	dirs := []string{dataDir}
	if dataDir == "" {
		dirs = dirs[:0]
		if d, err := RuntimeDir(); err == nil {
			dirs = append(dirs, d)
		}
		if d, err := DefaultDataDir(); err == nil && (len(dirs) == 0 || dirs[0] != d) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		info, err := ReadAPIInfo(d)
		if err == nil {
			return info, d, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return APIInfo{}, d, err
		}
	}
	return APIInfo{}, "", fmt.Errorf("no running node found (no %s in %s): %w", APIFile, strings.Join(dirs, " or "), fs.ErrNotExist)
}

// WriteFileAtomic replaces path with data so that a crash leaves either the
// old file or the new one, never a mix: it writes a temporary file in the
// same directory, syncs it, renames it over path and syncs the directory.
// The file gets mode perm whatever the umask.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.Write(path, data, perm)
}

// readSmall reads a file of at most limit bytes.
func readSmall(p string, limit int64) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(io.LimitReader(f, limit+1)); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if int64(buf.Len()) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes, which no file of the node's is", p, limit)
	}
	return buf.Bytes(), nil
}

// unwrapPathError drops the *fs.PathError wrapper, whose text repeats the
// path that our own messages already name.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

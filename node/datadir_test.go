//go:build unix

package node

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dhtkit/dht"
)

func perm(t *testing.T, p string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

// The directory is made 0700 (and tightened when others could read it), and
// every file in it is 0600 whatever the umask.
func TestDataDirAndItsFilesArePrivate(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	p := filepath.Join(t.TempDir(), "a", "dht")
	d, err := OpenDataDir(p)
	if err != nil {
		t.Fatal(err)
	}
	if m := perm(t, p); m != 0o700 {
		t.Errorf("data dir mode %v, want 0700", m)
	}
	if _, _, err := d.LoadOrCreateID(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.LoadOrCreateToken(); err != nil {
		t.Fatal(err)
	}
	d.SaveContacts([]dht.Contact{{ID: dht.Key("a"), Addr: netip.MustParseAddrPort("127.0.0.1:4000")}}, time.Now())
	d.WriteAPIInfo(APIInfo{Addr: "127.0.0.1:4001", PID: os.Getpid()})
	for _, f := range []string{KeyFile, TokenFile, ContactsFile, APIFile} {
		if m := perm(t, d.File(f)); m != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, m)
		}
	}
	os.Chmod(p, 0o755)
	os.Chmod(d.File(TokenFile), 0o644)
	d, err = OpenDataDir(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.LoadOrCreateToken(); err != nil {
		t.Fatal(err)
	}
	if m := perm(t, p); m != 0o700 {
		t.Errorf("an open data dir stays %v, want it tightened to 0700", m)
	}
	if m := perm(t, d.File(TokenFile)); m != 0o600 {
		t.Errorf("a readable token stays %v, want it tightened to 0600", m)
	}
}

// node.key: made once, read back the same; the reader takes one hex line
// with spaces around it; a damaged key is an error, never replaced.
func TestNodeKeyKeepsTheIDAndRefusesADamagedOne(t *testing.T) {
	d, _ := OpenDataDir(t.TempDir())
	id1, created, err := d.LoadOrCreateID()
	if err != nil || !created || id1.IsZero() {
		t.Fatalf("first: %v, %v, %v", id1, created, err)
	}
	b, _ := os.ReadFile(d.File(KeyFile))
	if string(b) != id1.String()+"\n" {
		t.Errorf("node.key holds %q, want the hex ID and a newline", b)
	}
	id2, created, err := d.LoadOrCreateID()
	if err != nil || created || id2 != id1 {
		t.Errorf("second: %v, %v, %v; want %v unchanged", id2, created, err, id1)
	}
	os.WriteFile(d.File(KeyFile), []byte("  "+strings.ToUpper(id1.String())+"  \nfuture: line\n"), 0o600)
	if id3, _, err := d.LoadOrCreateID(); err != nil || id3 != id1 {
		t.Errorf("tolerant read: %v, %v", id3, err)
	}
	os.WriteFile(d.File(KeyFile), []byte("not a key\n"), 0o600)
	if _, _, err := d.LoadOrCreateID(); err == nil || !strings.Contains(err.Error(), KeyFile) {
		t.Errorf("damaged key: %v, want an error naming node.key", err)
	}
	if b, _ := os.ReadFile(d.File(KeyFile)); string(b) != "not a key\n" {
		t.Errorf("the damaged key was replaced")
	}
}

// api.token: 64 hex digits made once, read back the same, a bad one refused.
func TestAPITokenIsMadeOnceAndKept(t *testing.T) {
	d, _ := OpenDataDir(t.TempDir())
	tok, created, err := d.LoadOrCreateToken()
	if err != nil || !created || !validToken(tok) {
		t.Fatalf("%q, %v, %v", tok, created, err)
	}
	tok2, created, err := d.LoadOrCreateToken()
	if err != nil || created || tok2 != tok {
		t.Errorf("second: %q, %v, %v", tok2, created, err)
	}
	os.WriteFile(d.File(TokenFile), []byte("short\n"), 0o600)
	if _, _, err := d.LoadOrCreateToken(); err == nil {
		t.Error("a bad token was accepted")
	}
	if NewToken() == NewToken() {
		t.Error("two tokens are equal")
	}
}

// contacts.json round-trips, skips entries that are no contact, and is not
// overwritten by an empty table.
func TestSavedContactsRoundTripAndSurviveAnEmptyTable(t *testing.T) {
	d, _ := OpenDataDir(t.TempDir())
	if cs, _, err := d.LoadContacts(); cs != nil || err != nil {
		t.Fatalf("no file: %v, %v", cs, err)
	}
	want := []dht.Contact{
		{ID: dht.Key("a"), Addr: netip.MustParseAddrPort("127.0.0.1:4000")},
		{ID: dht.Key("b"), Addr: netip.MustParseAddrPort("[::1]:4001")},
	}
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := d.SaveContacts(want, now); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveContacts(nil, now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	got, at, err := d.LoadContacts()
	if err != nil || len(got) != 2 || got[0] != want[0] || got[1] != want[1] || !at.Equal(now) {
		t.Fatalf("got %v at %v, %v; want %v at %v", got, at, err, want, now)
	}
	os.WriteFile(d.File(ContactsFile), []byte(`{"contacts":[{"id":"zz","addr":"127.0.0.1:1"},{"id":"`+want[0].ID.String()+`","addr":"0.0.0.0:1"},{"id":"`+want[0].ID.String()+`","addr":"127.0.0.1:9"}]}`), 0o600)
	got, _, err = d.LoadContacts()
	if err != nil || len(got) != 1 || got[0].Addr.Port() != 9 {
		t.Errorf("bad entries not skipped: %v, %v", got, err)
	}
	os.WriteFile(d.File(ContactsFile), []byte(`[1,2]`), 0o600)
	if _, _, err := d.LoadContacts(); err == nil {
		t.Error("a file that is no snapshot was accepted")
	}
}

// api.json is written, read by ReadAPIInfo, and removed only by the process
// that wrote it.
func TestAPIFileIsRemovedOnlyByItsOwner(t *testing.T) {
	d, _ := OpenDataDir(t.TempDir())
	if _, err := ReadAPIInfo(d.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("no file: %v, want fs.ErrNotExist", err)
	}
	d.WriteAPIInfo(APIInfo{Addr: "127.0.0.1:4001", PID: os.Getpid() + 1})
	if err := d.RemoveAPIInfo(); err != nil {
		t.Fatal(err)
	}
	if info, err := ReadAPIInfo(d.Path); err != nil || info.PID != os.Getpid()+1 {
		t.Fatalf("another process's api.json was removed: %v, %v", info, err)
	}
	d.WriteAPIInfo(APIInfo{Addr: "127.0.0.1:4001", PID: os.Getpid()})
	if info, err := ReadAPIInfo(d.Path); err != nil || info.Addr != "127.0.0.1:4001" {
		t.Fatalf("%v, %v", info, err)
	}
	if err := d.RemoveAPIInfo(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.File(APIFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("api.json still there: %v", err)
	}
}

// A write that fails at the last step (the rename) leaves the old content
// whole and no temporary file behind; one that succeeds replaces the file
// entirely.
func TestWriteFileAtomicLeavesTheOldFileOrTheNewOne(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	if err := WriteFileAtomic(p, []byte("old content, longer than the new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("content %q, want exactly the new one", b)
	}
	// A non-empty directory in the target's place makes the rename fail
	// after the temporary file was written and synced.
	blocked := filepath.Join(dir, "blocked")
	os.MkdirAll(filepath.Join(blocked, "x"), 0o700)
	if err := WriteFileAtomic(blocked, []byte("data"), 0o600); err == nil {
		t.Fatal("rename over a non-empty directory succeeded")
	}
	if _, err := os.Stat(filepath.Join(blocked, "x")); err != nil {
		t.Errorf("the old target was damaged: %v", err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "no", "such", "dir"), []byte("x"), 0o600); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
}

// DefaultDataDir follows XDG: $XDG_DATA_HOME/dht, else ~/.local/share/dht
// (a relative XDG_DATA_HOME is ignored, as the specification says).
func TestDefaultDataDirFollowsXDG(t *testing.T) {
	t.Setenv("HOME", "/home/ann")
	t.Setenv("XDG_DATA_HOME", "/data")
	if d, _ := DefaultDataDir(); d != "/data/dht" {
		t.Errorf("with XDG_DATA_HOME: %q", d)
	}
	t.Setenv("XDG_DATA_HOME", "rel")
	if d, _ := DefaultDataDir(); d != "/home/ann/.local/share/dht" {
		t.Errorf("with a relative XDG_DATA_HOME: %q", d)
	}
	t.Setenv("XDG_RUNTIME_DIR", "/run/user/1000")
	if d, _ := RuntimeDir(); d != "/run/user/1000/dht" {
		t.Errorf("runtime dir %q", d)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "")
	if _, err := DefaultDataDir(); err == nil || !strings.Contains(err.Error(), "--memory") {
		t.Errorf("no HOME: %v", err)
	}
}

// FindAPI looks in the given directory, else the runtime directory (a
// --memory node's), then the default data directory.
func TestFindAPILooksWhereNodesWriteAPIFile(t *testing.T) {
	home, run := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("XDG_RUNTIME_DIR", run)
	if _, _, err := FindAPI(""); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("nothing running: %v", err)
	}
	def, _ := DefaultDataDir()
	dd, _ := OpenDataDir(def)
	dd.WriteAPIInfo(APIInfo{Addr: "127.0.0.1:1", PID: 1})
	if info, dir, err := FindAPI(""); err != nil || info.Addr != "127.0.0.1:1" || dir != def {
		t.Errorf("default dir: %v %q %v", info, dir, err)
	}
	rd, _ := OpenDataDir(filepath.Join(run, "dht"))
	rd.WriteAPIInfo(APIInfo{Addr: "127.0.0.1:2", PID: 2})
	if info, _, err := FindAPI(""); err != nil || info.Addr != "127.0.0.1:2" {
		t.Errorf("runtime dir first: %v %v", info, err)
	}
	other, _ := OpenDataDir(t.TempDir())
	if _, _, err := FindAPI(other.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a given dir is the only place looked: %v", err)
	}
}

package dht

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dhtkit/dht/clock"
	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/ident"
	"github.com/dhtkit/dht/record"
	"github.com/dhtkit/dht/transport/memnet"
)

// The identity key in a data directory: made once, kept across restarts,
// never replaced when damaged.

func memConfig(t *testing.T, dir string) Config {
	t.Helper()
	clk := clock.NewVirtual(time.Unix(0, 0))
	cfg := DefaultConfig()
	cfg.Transport = memnet.New(memnet.Config{Clock: clk}).NewEndpoint()
	cfg.Clock = clk
	cfg.DataDir = dir
	return cfg
}

func TestIdentityKeyIsKeptInTheDataDir(t *testing.T) {
	dir := t.TempDir()
	cfg := memConfig(t, dir)
	cfg.Difficulty = 4
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pub := n.PublicKey()
	if pub == nil || ident.Derive(pub) != n.ID() || ident.Work(n.ID()) < 4 {
		t.Fatalf("ID %v is not its key's with 4 bits of work", n.ID().Short())
	}
	n.Close()
	path := filepath.Join(dir, KeyFile)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", KeyFile, fi.Mode().Perm())
	}
	text, _ := os.ReadFile(path)
	if k, err := record.ParsePrivateKey(text); err != nil || ident.ID(k) != n.ID() {
		t.Fatalf("%s: %v, or not the node's key", KeyFile, err)
	}
	saved, _ := os.ReadFile(filepath.Join(dir, IDFile))
	if strings.TrimSpace(string(saved)) != n.ID().String() {
		t.Fatalf("%s holds %q, want the derived ID %v", IDFile, saved, n.ID())
	}
	n2, err := New(memConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	defer n2.Close()
	if n2.ID() != n.ID() || !bytes.Equal(n2.PublicKey(), pub) {
		t.Fatalf("restarted as %v, was %v", n2.ID().Short(), n.ID().Short())
	}
}

func TestDamagedIdentityKeyIsAnErrorNotReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	bad := []byte(record.KeyFileHeader + "\nseed 1234\n")
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := New(memConfig(t, dir))
	if err == nil || !strings.Contains(err.Error(), KeyFile) {
		t.Fatalf("err = %v, want one naming %s", err, KeyFile)
	}
	if got, _ := os.ReadFile(path); !bytes.Equal(got, bad) {
		t.Fatal("the damaged key file was replaced")
	}
}

// A data directory from before identity keys keeps its free ID, unless the
// network requires identity; an explicit ID keeps today's behaviour.
func TestOldDataDirKeepsItsFreeID(t *testing.T) {
	dir := t.TempDir()
	free := id.Key("an old node")
	if err := os.WriteFile(filepath.Join(dir, IDFile), []byte(free.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := New(memConfig(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	if n.ID() != free || n.PublicKey() != nil {
		t.Fatalf("old data dir: ID %v, key %x", n.ID().Short(), n.PublicKey())
	}
	n.Close()
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); err == nil {
		t.Fatal("a key file was made for a free ID")
	}
	cfg := memConfig(t, dir)
	cfg.RequireIdentity = true
	n, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.ID() == free || ident.Derive(n.PublicKey()) != n.ID() {
		t.Fatalf("RequireIdentity: ID %v, not derived", n.ID().Short())
	}
	cfg = memConfig(t, "")
	cfg.ID, cfg.RequireIdentity = free, true
	if _, err := New(cfg); err == nil {
		t.Fatal("RequireIdentity with an explicit free ID was accepted")
	}
}

// Without a data directory the key lives in memory: the node still owns
// its ID.
func TestNodeWithoutDataDirOwnsItsID(t *testing.T) {
	n, err := New(memConfig(t, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if n.PublicKey() == nil || ident.Derive(n.PublicKey()) != n.ID() {
		t.Fatalf("ID %v is not derived from a key", n.ID().Short())
	}
}

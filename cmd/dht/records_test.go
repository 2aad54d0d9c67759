package main

import (
	"crypto/ed25519"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dhtkit/dht/record"
)

// keygen writes a private key file (0600) that record.LoadKeyFile reads
// back to the public key it printed, and refuses to overwrite one unless
// told to.
func TestKeygenWritesAPrivateKeyFileAndRefusesToOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "me.key")
	code, out, errOut := runCmd("keygen", "-o", path)
	if code != exitOK {
		t.Fatalf("keygen: %d %q %q", code, out, errOut)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v, want 0600", err, st)
	}
	priv, err := record.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub := record.FormatPublicKey(priv.Public().(ed25519.PublicKey))
	if !strings.Contains(out, "public key "+pub) || !strings.Contains(out, path) {
		t.Errorf("keygen printed %q, want the public key %s and the path", out, pub)
	}
	before, _ := os.ReadFile(path)
	code, _, errOut = runCmd("keygen", "-o", path)
	if after, _ := os.ReadFile(path); code != exitUsage || !strings.Contains(errOut, "exists") || !strings.Contains(errOut, "-force") || string(after) != string(before) {
		t.Errorf("second keygen without -force: exit %d %q; the file changed: %v", code, errOut, string(after) != string(before))
	}
	code, out, _ = runCmd("keygen", "-o", path, "-force")
	if after, _ := os.ReadFile(path); code != exitOK || string(after) == string(before) || strings.Contains(out, pub) {
		t.Errorf("keygen -force: exit %d %q, file replaced %v", code, out, string(after) != string(before))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("replaced key file has mode %v", st.Mode().Perm())
	}
	if code, _, errOut := runCmd("keygen", "extra"); code != exitUsage || !strings.Contains(errOut, "unexpected argument") {
		t.Errorf("keygen extra: %d %q", code, errOut)
	}
}

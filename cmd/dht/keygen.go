package main

// dht keygen: the ed25519 key pair that owns signed and typed records. The
// key file's format is package record's (record.MarshalPrivateKey); the
// private key stays in that file and in this process, never sent anywhere.

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path/filepath"

	"github.com/dhtkit/dht/record"
)

// defaultKeyFile is where keygen writes without -o: the user's dht data
// directory, as dht node keeps its own files there.
func defaultKeyFile() string {
	dir := os.Getenv("DHT_DATA")
	if dir == "" {
		if d := os.Getenv("XDG_DATA_HOME"); d != "" {
			dir = filepath.Join(d, "dht")
		} else if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, ".local", "share", "dht")
		}
	}
	return filepath.Join(dir, "record.key")
}

func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("keygen", stderr)
	out := fs.String("o", "", "write the key file to `FILE` (default $DHT_DATA/record.key, else $XDG_DATA_HOME/dht/record.key or ~/.local/share/dht/record.key)")
	force := fs.Bool("force", false, "overwrite FILE when it exists (the key it held is lost, and with it the records it owns)")
	if code, ok := parse(fs, args); !ok {
		return code
	}
	if !noArgs(fs, stderr) {
		return exitUsage
	}
	path := *out
	if path == "" {
		path = defaultKeyFile()
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		fmt.Fprintf(stderr, "dht keygen: %v\n", err)
		return exitFailure
	}
	text, err := record.MarshalPrivateKey(priv)
	if err != nil {
		fmt.Fprintf(stderr, "dht keygen: %v\n", err)
		return exitFailure
	}
	if err := writeKeyFile(path, text, *force); err != nil {
		if errors.Is(err, iofs.ErrExist) {
			return usageError(fs, "%s exists: give -force to replace it (the records its key owns can then no longer be changed), or -o another FILE", path)
		}
		fmt.Fprintf(stderr, "dht keygen: %v\n", err)
		return exitFailure
	}
	fmt.Fprintf(stdout, "public key %s\nkey file   %s\n", record.FormatPublicKey(pub), path)
	return exitOK
}

// writeKeyFile writes text to path with mode 0600, creating its directory
// (0700) when needed. Without force an existing file is left alone
// (io/fs.ErrExist); with force it is replaced only once the new file is
// complete (write, sync, rename), so a failure never leaves half a key.
func writeKeyFile(path string, text []byte, force bool) error {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	if !force {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := f.Write(text); err != nil {
			f.Close()
			os.Remove(path)
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(path)
			return err
		}
		return f.Close()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keygen-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename; removes a failed one
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(text); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

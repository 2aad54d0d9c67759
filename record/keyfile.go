package record

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
)

// KeyFileHeader is the first line of a key file.
const KeyFileHeader = "dhtkit ed25519 private key v1"

// maxKeyFile bounds what LoadKeyFile reads: a key file is three short lines.
const maxKeyFile = 4 << 10

// MarshalPrivateKey returns the key-file text of priv, the format `dht
// keygen` writes:
//
//	dhtkit ed25519 private key v1
//	seed <the 32-byte seed in 64 lowercase hex digits>
//	public <the 32-byte public key in hex, for people and as a check>
//
// The seed is the whole secret: keep the file private (mode 0600).
func MarshalPrivateKey(priv ed25519.PrivateKey) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errPrivateKey
	}
	var b bytes.Buffer
	b.WriteString(KeyFileHeader + "\n")
	b.WriteString("seed " + hex.EncodeToString(priv.Seed()) + "\n")
	b.WriteString("public " + hex.EncodeToString(priv.Public().(ed25519.PublicKey)) + "\n")
	return b.Bytes(), nil
}

// ParsePrivateKey reads key-file text. The header line comes first; then a
// "seed" line whose value is the 32-byte seed as 64 hex digits or in
// base64 (standard or URL alphabet, padded or not); an optional "public"
// line must match the seed's public key. Blank lines and lines starting
// with '#' are ignored; any other line is an error. Errors name the line
// and never include the secret.
func ParsePrivateKey(text []byte) (ed25519.PrivateKey, error) {
	lines := strings.Split(string(text), "\n")
	var seed, public []byte
	header := false
	for i, line := range lines {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n := i + 1
		if !header {
			if line != KeyFileHeader {
				return nil, fmt.Errorf("record: key file line %d: want the header %q", n, KeyFileHeader)
			}
			header = true
			continue
		}
		field, value, _ := strings.Cut(line, " ")
		value = strings.TrimSpace(value)
		switch field {
		case "seed":
			if seed != nil {
				return nil, fmt.Errorf("record: key file line %d: a second seed line", n)
			}
			b, err := decodeKeyBytes(value)
			if err != nil {
				return nil, fmt.Errorf("record: key file line %d: the seed %v", n, err)
			}
			seed = b
		case "public":
			b, err := ParsePublicKey(value)
			if err != nil {
				return nil, fmt.Errorf("record: key file line %d: %w", n, err)
			}
			public = b
		default:
			// Echo a short field name only: a long one may be the secret
			// written without its "seed" label.
			if len(field) > 12 {
				return nil, fmt.Errorf("record: key file line %d: not a field line (want \"seed <hex or base64>\" or \"public <hex>\")", n)
			}
			return nil, fmt.Errorf("record: key file line %d: unknown field %q (want seed or public)", n, field)
		}
	}
	if !header {
		return nil, fmt.Errorf("record: not a key file: no %q header line", KeyFileHeader)
	}
	if seed == nil {
		return nil, errors.New("record: key file has no seed line")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if public != nil && !bytes.Equal(public, priv.Public().(ed25519.PublicKey)) {
		return nil, errors.New("record: key file's public line does not match its seed (the file is damaged)")
	}
	return priv, nil
}

// decodeKeyBytes decodes 32 bytes written as hex or base64.
func decodeKeyBytes(s string) ([]byte, error) {
	if len(s) == 2*ed25519.SeedSize {
		b, err := hex.DecodeString(s)
		if err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == ed25519.SeedSize {
			return b, nil
		}
	}
	return nil, errors.New("is not 32 bytes in hex (64 digits) or base64")
}

// LoadKeyFile reads and parses the key file at path. On Unix it refuses a
// file that its group or others may read, as ssh does, since the seed is
// the whole secret.
func LoadKeyFile(path string) (ed25519.PrivateKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("record: key file: %w", err)
	}
	defer f.Close()
	if runtime.GOOS != "windows" {
		if st, err := f.Stat(); err == nil && st.Mode().Perm()&0o077 != 0 {
			return nil, fmt.Errorf("record: key file %s is readable by others (mode %04o); run chmod 600 %s", path, st.Mode().Perm(), path)
		}
	}
	text, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("record: key file %s: %w", path, err)
	}
	if len(text) > maxKeyFile {
		return nil, fmt.Errorf("record: key file %s is over %d bytes: not a key file", path, maxKeyFile)
	}
	priv, err := ParsePrivateKey(text)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return priv, nil
}

// FormatPublicKey returns a public key's text form: 64 lowercase hex digits.
func FormatPublicKey(pub ed25519.PublicKey) string {
	return hex.EncodeToString(pub)
}

// ParsePublicKey reads the text form of a public key: 64 hex digits (either
// case) of the 32-byte ed25519 key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if len(s) != 2*ed25519.PublicKeySize {
		return nil, fmt.Errorf("record: a public key is 64 hex digits, not %d characters", len(s))
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, errors.New("record: the public key is not hexadecimal")
	}
	return ed25519.PublicKey(b), nil
}

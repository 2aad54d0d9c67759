package record

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestKeyFileRoundTrip(t *testing.T) {
	text, err := MarshalPrivateKey(priv1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParsePrivateKey(text)
	if err != nil || !bytes.Equal(got, priv1) {
		t.Fatalf("ParsePrivateKey(MarshalPrivateKey(k)) = %v", err)
	}
	if !strings.HasPrefix(string(text), KeyFileHeader+"\nseed "+hex.EncodeToString(seed1)+"\n") {
		t.Fatalf("key file text %q", text)
	}
	// The seed in base64, CRLF line ends, comments, no public line.
	alt := "# my key\r\n" + KeyFileHeader + "\r\nseed " + base64.StdEncoding.EncodeToString(seed1) + "\r\n"
	if got, err := ParsePrivateKey([]byte(alt)); err != nil || !bytes.Equal(got, priv1) {
		t.Fatalf("base64 seed: %v", err)
	}
}

func TestKeyFileErrors(t *testing.T) {
	seedHex := hex.EncodeToString(seed1)
	cases := map[string]string{
		"":                                      "no",
		"seed " + seedHex:                       "header",
		KeyFileHeader:                           "no seed",
		KeyFileHeader + "\nseed abc":            "line 2: the seed is not 32 bytes",
		KeyFileHeader + "\nseed " + seedHex[2:]: "line 2",
		KeyFileHeader + "\nseed " + seedHex + "\nseed " + seedHex:                 "second seed",
		KeyFileHeader + "\nsecret " + seedHex:                                     "unknown field",
		KeyFileHeader + "\nseed " + seedHex + "\npublic " + FormatPublicKey(pub2): "does not match",
		KeyFileHeader + "\nseed " + seedHex + "\npublic xyz":                      "line 3",
	}
	for text, want := range cases {
		_, err := ParsePrivateKey([]byte(text))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePrivateKey(%q) = %v, want an error saying %q", text, err, want)
		}
		if err != nil && strings.Contains(err.Error(), seedHex[:16]) {
			t.Errorf("error %q shows the secret seed", err)
		}
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "key")
	text, _ := MarshalPrivateKey(priv1)
	if err := os.WriteFile(path, text, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadKeyFile(path); err != nil || !bytes.Equal(got, priv1) {
		t.Fatalf("LoadKeyFile: %v", err)
	}
	if runtime.GOOS != "windows" {
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKeyFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("a world-readable key file: %v", err)
		}
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "none")); err == nil {
		t.Fatal("a missing key file loaded")
	}
}

func TestParsePublicKey(t *testing.T) {
	s := FormatPublicKey(pub1)
	for _, in := range []string{s, strings.ToUpper(s), " " + s + "\n"} {
		if got, err := ParsePublicKey(in); err != nil || !bytes.Equal(got, pub1) {
			t.Fatalf("ParsePublicKey(%q) = %v", in, err)
		}
	}
	for _, in := range []string{"", s[:62], s + "00", "zz" + s[2:]} {
		if _, err := ParsePublicKey(in); err == nil {
			t.Fatalf("ParsePublicKey(%q) accepted", in)
		}
	}
}

package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runNodeWith(env map[string]string, args ...string) (int, string, string) {
	var o, e bytes.Buffer
	code := runNodeEnv(args, func(k string) string { return env[k] }, &o, &e)
	return code, o.String(), e.String()
}

// A wrong setting, from any source, stops `dht node` with exit 2 and exactly
// two lines: what is wrong, and where the help is; never the whole usage.
func TestNodeUsageErrorsAreOneLinePlusAPointerToHelp(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "dht.toml")
	os.WriteFile(conf, []byte("k = 99\n"), 0o600)
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{nil, []string{"--lisen", "x"}, "unknown flag --lisen"},
		{nil, []string{"--listen", "nonsense"}, `invalid listen "nonsense" (from flag --listen)`},
		{map[string]string{"DHT_LOG_FORMAT": "xml"}, nil, `invalid log-format "xml" (from env DHT_LOG_FORMAT)`},
		{nil, []string{"--config", conf}, `invalid k "99" (from file ` + conf + `:1)`},
		{nil, []string{"--network", "moon"}, `invalid network "moon"`},
		{nil, []string{"stray"}, "unexpected argument"},
	} {
		code, out, errOut := runNodeWith(c.env, c.args...)
		lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
		if code != exitFailure || out != "" || len(lines) != 2 {
			t.Errorf("%v %v: exit %d, stdout %q, stderr %q; want exit 2 and two lines", c.env, c.args, code, out, errOut)
			continue
		}
		if !strings.HasPrefix(lines[0], "dht node: ") || !strings.Contains(lines[0], c.want) {
			t.Errorf("%v: first line %q does not say %q", c.args, lines[0], c.want)
		}
		if lines[1] != "Run 'dht node --help' for usage." {
			t.Errorf("%v: second line %q", c.args, lines[1])
		}
	}
}

// --print-config prints every setting and its source on stdout and exits 0
// without starting a node.
func TestNodePrintConfigShowsSourcesAndExits(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "dht.toml")
	os.WriteFile(conf, []byte("sockets = 2\n"), 0o600)
	code, out, errOut := runNodeWith(map[string]string{"DHT_LOG_LEVEL": "debug", "DHT_CONFIG": conf},
		"--listen", "127.0.0.1:4999", "--print-config")
	if code != exitOK || errOut != "" {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	for _, w := range []string{
		`listen = ["127.0.0.1:4999"]`, "# flag --listen",
		`log-level = "debug"`, "# env DHT_LOG_LEVEL",
		`sockets = 2`, "# file " + conf + ":1",
		`k = 20`, "# network main in built-in networks.json",
		`log-format = "text"`, "# default",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("--print-config does not say %q:\n%s", w, out)
		}
	}
}

// --help prints the settings with their variables and exits 0.
func TestNodeHelpListsSettingsAndVariables(t *testing.T) {
	code, _, errOut := runNodeWith(nil, "--help")
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	for _, w := range []string{"--listen", "DHT_LISTEN", "--config", "--print-config", "--network FILE[:NAME]"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("help does not mention %s", w)
		}
	}
}

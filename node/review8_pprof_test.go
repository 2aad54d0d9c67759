package node

import (
	"net/http"
	"testing"
)

// pprof on a loopback API address is open to this machine's programs, and
// must stay closed to web pages: a page whose host name was pointed at
// 127.0.0.1 (DNS rebinding) would otherwise read the command line, heap
// and goroutine profiles, or burn the CPU for a profile. As for the API's
// reads, a Host that does not name loopback needs the token.
func TestPProfOnLoopbackNeedsTheTokenForForeignHosts(t *testing.T) {
	dir := t.TempDir()
	cfg := daemonConfig(dir)
	cfg.Memory = true
	cfg.HTTP = "127.0.0.1:0"
	cfg.PProf = true
	r := startDaemon(t, cfg, Hooks{})
	defer r.stop(t)
	info, err := ReadAPIInfo(dir)
	if err != nil {
		t.Fatal(err)
	}
	get := func(host, auth string) int {
		req, err := http.NewRequest("GET", "http://"+info.Addr+"/debug/pprof/cmdline", nil)
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("", ""); code != 200 {
		t.Errorf("pprof from loopback: %d, want 200", code)
	}
	if code := get("localhost:1234", ""); code != 200 {
		t.Errorf("pprof with Host localhost: %d, want 200", code)
	}
	if code := get("evil.example:80", ""); code != http.StatusUnauthorized {
		t.Errorf("pprof with a foreign Host and no token: %d, want 401", code)
	}
	if code := get("evil.example:80", "Bearer "+r.svc.Token); code != 200 {
		t.Errorf("pprof with a foreign Host and the token: %d, want 200", code)
	}
}

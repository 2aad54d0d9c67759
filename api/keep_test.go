package api

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// keep=1 asks a put for a keep-alive; anything but 0 or 1 is refused with
// the parameter's name.
func TestPutOptionsKeep(t *testing.T) {
	for v, want := range map[string]bool{"1": true, "0": false} {
		o, err := putOptions(url.Values{"keep": {v}})
		if err != nil || o.Keep != want {
			t.Errorf("keep=%s: %+v %v", v, o, err)
		}
	}
	for _, v := range []string{"2", "yes", ""} {
		_, err := putOptions(url.Values{"keep": {v}})
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeBadRequest || !strings.Contains(e.Message, "keep=") {
			t.Errorf("keep=%q: %v, want a bad request naming keep=", v, err)
		}
	}
	for _, r := range routes {
		if r.method == "DELETE" && strings.HasSuffix(r.path, "/values") {
			for _, p := range r.params {
				if p == "keep" {
					t.Error("DELETE /values takes keep=; a delete ends a keep-alive, it does not start one")
				}
			}
		}
	}
}

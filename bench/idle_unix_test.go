//go:build unix

package bench

import (
	"context"
	"strings"
	"syscall"
	"testing"
)

// More nodes than file descriptors are refused before any socket is opened.
func TestRunIdleRefusesMoreNodesThanTheFileLimit(t *testing.T) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		t.Skip("no open-file limit to read:", err)
	}
	if l.Max+1 > MaxIdleNodes {
		t.Skipf("the hard open-file limit %d allows more than the %d nodes RunIdle accepts", l.Max, MaxIdleNodes)
	}
	_, err := RunIdle(context.Background(), IdleConfig{Nodes: int(l.Max) + 1})
	if err == nil || !strings.Contains(err.Error(), "file descriptors") {
		t.Fatalf("%d nodes over a hard limit of %d: error %v", l.Max+1, l.Max, err)
	}
}

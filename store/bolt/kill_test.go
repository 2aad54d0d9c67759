package bolt_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/dhtkit/dht/id"
	"github.com/dhtkit/dht/store"
	"github.com/dhtkit/dht/store/bolt"
)

// The kill test's child is this test binary run again with these variables
// set: the path of the store, the seed of its Puts, and the iteration, which
// makes its versions higher than every earlier child's.
const (
	envKillPath = "DHT_BOLT_KILL_PATH"
	envKillSeed = "DHT_BOLT_KILL_SEED"
	envKillIter = "DHT_BOLT_KILL_ITER"
)

// The records the children write: killKeys keys × killPubs publishers, so
// that children replace each other's records as well as adding new ones.
const (
	killKeys = 400
	killPubs = 8
)

func killLimits() store.Limits {
	return store.Limits{MaxValues: killKeys * killPubs, MaxPerPublisher: killKeys, MaxValueSize: 4096}
}

func killKey(k int) id.ID { return id.Key("kill/" + strconv.Itoa(k)) }
func killPub(p int) id.ID { return id.Key("publisher/" + strconv.Itoa(p)) }

// killRecord is the record a child writes for (k, p) at version ver: a
// function of the three, so that the parent can check any record it finds,
// acknowledged or not. One version in five is a tombstone.
func killRecord(k, p int, ver uint64, now time.Time) store.Value {
	v := store.Value{Publisher: killPub(p), Version: ver, Expires: now.Add(24 * time.Hour)}
	if ver%5 == 0 {
		v.Deleted = true
		return v
	}
	var seed [24]byte
	binary.BigEndian.PutUint64(seed[0:], uint64(k))
	binary.BigEndian.PutUint64(seed[8:], uint64(p))
	binary.BigEndian.PutUint64(seed[16:], ver)
	h := sha256.Sum256(seed[:])
	n := int(binary.BigEndian.Uint16(h[:]) % 3000) // sizes from 0 to 2999 bytes
	v.Data = bytes.Repeat(h[:], n/len(h)+1)[:n]
	return v
}

// TestKill9LosesNoAcknowledgedRecord runs a child process that puts records
// in a tight loop and prints each one once its Sync callback has reported
// nil, kills it with SIGKILL at a random moment, and checks that bbolt opens
// the file, that the file passes bbolt's consistency check, that every
// acknowledged record is there (or a newer version of it), and that every
// record in it is one a child wrote, intact. Then again, on the same file.
func TestKill9LosesNoAcknowledgedRecord(t *testing.T) {
	if path := os.Getenv(envKillPath); path != "" {
		killChild(path)
		return
	}
	iters, budget := 30, 25*time.Second
	if testing.Short() {
		iters, budget = 5, 10*time.Second
	}
	base := uint64(time.Now().UnixNano())
	if s := os.Getenv(envKillSeed); s != "" {
		var err error
		if base, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "db")
	acked := map[[2]int]uint64{} // highest acknowledged version of each record
	start, total := time.Now(), 0
	it := 0
	for ; it < iters && time.Since(start) < budget; it++ {
		seed := base + uint64(it)
		n := killOnce(t, path, seed, it, acked)
		total += n
		checkKilled(t, path, seed, it, acked)
	}
	t.Logf("%d iterations in %v, %d acknowledged puts, %d records acknowledged (base seed %d)",
		it, time.Since(start).Round(time.Millisecond), total, len(acked), base)
	if total == 0 {
		t.Fatal("no child ever acknowledged a put: the test tested nothing")
	}
}

// killOnce runs one child, kills it, and adds what it acknowledged to acked.
// It returns the number of acknowledgements.
func killOnce(t *testing.T, path string, seed uint64, it int, acked map[[2]int]uint64) int {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("iteration %d, seed %d (rerun with %s=%d): %s", it, seed, envKillSeed, seed-uint64(it), fmt.Sprintf(format, args...))
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9LosesNoAcknowledgedRecord$")
	cmd.Env = append(os.Environ(),
		envKillPath+"="+path,
		envKillSeed+"="+strconv.FormatUint(seed, 10),
		envKillIter+"="+strconv.Itoa(it+1))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	type ack struct {
		k, p int
		ver  uint64
	}
	var acks []ack
	first := make(chan struct{})
	read := make(chan error, 1)
	go func() {
		r := bufio.NewReader(out)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				// A line cut short was not acknowledged (lines are
				// written whole, so there is none in practice).
				if err == io.EOF {
					err = nil
				}
				read <- err
				return
			}
			var a ack
			if _, err := fmt.Sscanf(line, "ack %d %d %d\n", &a.k, &a.p, &a.ver); err != nil {
				read <- fmt.Errorf("child printed %q: %v", line, err)
				return
			}
			acks = append(acks, a)
			if len(acks) == 1 {
				close(first)
			}
		}
	}()

	// Most kills come after the child's first acknowledgement, at a random
	// moment of its write loop; one in four at a random moment from its
	// start, so that some land in Open (while it deletes expired records,
	// say) or before anything was acknowledged.
	r := rand.New(rand.NewPCG(seed, 1))
	if r.IntN(4) == 0 {
		time.Sleep(time.Duration(r.Int64N(int64(150 * time.Millisecond))))
	} else {
		select {
		case <-first:
		case <-time.After(waitFor):
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			fail("no acknowledgement from the child within %v; its stderr:\n%s", waitFor, stderr.String())
		}
		time.Sleep(time.Duration(r.Int64N(int64(60 * time.Millisecond))))
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		fail("kill: %v", err)
	}
	err = <-read
	werr := cmd.Wait()
	if err != nil {
		fail("%v", err)
	}
	var exit *exec.ExitError
	if !errors.As(werr, &exit) || exit.ProcessState.Success() || exit.ProcessState.ExitCode() != -1 {
		fail("the child ended by itself before the kill (%v); its stderr:\n%s", werr, stderr.String())
	}
	for _, a := range acks {
		if a.k < 0 || a.k >= killKeys || a.p < 0 || a.p >= killPubs {
			fail("child acknowledged an impossible record %v", a)
		}
		kp := [2]int{a.k, a.p}
		acked[kp] = max(acked[kp], a.ver)
	}
	return len(acks)
}

// checkKilled checks the file a killed child left.
func checkKilled(t *testing.T, path string, seed uint64, it int, acked map[[2]int]uint64) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("after kill %d, seed %d (rerun with %s=%d): %s", it, seed, envKillSeed, seed-uint64(it), fmt.Sprintf(format, args...))
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: waitFor})
	if err != nil {
		fail("bbolt cannot open the file: %v", err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fail("bbolt's check: %v", err)
	}

	now := time.Now()
	s, err := bolt.Open(path, killLimits(), bolt.Options{Now: now})
	if err != nil {
		fail("reopen: %v", err)
	}
	defer s.Close()
	for kp, ver := range acked {
		v, ok := s.Lookup(killKey(kp[0]), killPub(kp[1]), now)
		if !ok {
			fail("acknowledged record %v v%d is gone", kp, ver)
		}
		if v.Version < ver {
			fail("acknowledged record %v v%d rolled back to v%d", kp, ver, v.Version)
		}
	}
	// Every record held, acknowledged or not, is one a child wrote, whole.
	held := 0
	for k := range killKeys {
		for _, v := range s.Records(killKey(k), now, nil) {
			held++
			p := -1
			for i := range killPubs {
				if killPub(i) == v.Publisher {
					p = i
				}
			}
			if p < 0 {
				fail("record of key %d from an unknown publisher %s", k, v.Publisher)
			}
			want := killRecord(k, p, v.Version, now)
			if v.Deleted != want.Deleted || !bytes.Equal(v.Data, want.Data) {
				fail("record %d/%d v%d holds %d bytes (deleted %v), want %d (deleted %v)",
					k, p, v.Version, len(v.Data), v.Deleted, len(want.Data), want.Deleted)
			}
		}
	}
	if held != s.Len() {
		fail("the store holds %d records but only %d are under the children's keys", s.Len(), held)
	}
}

// killChild is the child's side: put records as fast as the store takes
// them, and print each one once its Sync has reported nil. It never returns;
// the parent kills it.
func killChild(path string) {
	die := func(err error) {
		fmt.Fprintln(os.Stderr, "kill child:", err)
		os.Exit(2)
	}
	seed, err := strconv.ParseUint(os.Getenv(envKillSeed), 10, 64)
	if err != nil {
		die(err)
	}
	iter, err := strconv.ParseUint(os.Getenv(envKillIter), 10, 32)
	if err != nil {
		die(err)
	}
	s, err := bolt.Open(path, killLimits(), bolt.Options{})
	if err != nil {
		die(err)
	}
	r := rand.New(rand.NewPCG(seed, 2))
	drained := make(chan error, 1)
	for i := uint64(1); ; i++ {
		k, p := r.IntN(killKeys), r.IntN(killPubs)
		ver := iter<<32 | i // above every earlier child's versions
		now := time.Now()
		v := killRecord(k, p, ver, now)
		for {
			err := s.Put(killKey(k), v, netip.Addr{}, now)
			if err == nil {
				break
			}
			if !errors.Is(err, store.ErrBusy) {
				die(fmt.Errorf("put %d/%d v%d: %w", k, p, ver, err))
			}
			s.Sync(func(err error) { drained <- err })
			if err := <-drained; err != nil {
				die(err)
			}
		}
		line := []byte(fmt.Sprintf("ack %d %d %d\n", k, p, ver))
		s.Sync(func(err error) {
			if err != nil {
				die(err)
			}
			// One write of a short line to a pipe is atomic: the parent
			// sees it whole or not at all.
			if _, err := os.Stdout.Write(line); err != nil {
				die(err)
			}
		})
	}
}

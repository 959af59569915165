package pebblestore

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/junction-broker/junction/storage"
	"github.com/junction-broker/junction/storage/storetest"
)

// helperEnv carries the data directory to the child process of
// TestKill9KeepsSyncedCommits.
const helperEnv = "JUNCTION_PEBBLESTORE_KILL_DIR"

// TestHelperProcess is the child of TestKill9KeepsSyncedCommits; it does
// nothing in a normal run. It commits synced appends to queue 1, 256 in
// flight at a time, and prints "ack <seq>" for each done(nil) (dones run in
// commit order) until it is killed, or gives up after a minute.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("only runs as the child of TestKill9KeepsSyncedCommits")
	}
	s, err := Open(dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(2)
	}
	window := make(chan struct{}, 256)
	deadline := time.Now().Add(time.Minute)
	body := strings.Repeat("k", 1000)
	for seq := storage.SeqNum(1); time.Now().Before(deadline); seq++ {
		window <- struct{}{}
		s.Commit([]storage.Op{storage.Append(1, seq, storage.Bytes(fmt.Sprintf("%d:%s", seq, body)))}, true, func(err error) {
			if err != nil {
				fmt.Fprintln(os.Stderr, "commit:", err)
				os.Exit(3)
			}
			fmt.Fprintf(os.Stdout, "ack %d\n", seq)
			<-window
		})
	}
	os.Exit(4)
}

// TestKill9KeepsSyncedCommits runs TestHelperProcess in a child process,
// SIGKILLs it once it has acknowledged some commits, reopens its data and
// checks that every acknowledged message is there, in order, with nothing
// missing before it.
func TestKill9KeepsSyncedCommits(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a child process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	// Read acks on a goroutine so the deadline below can interrupt.
	acks := make(chan storage.SeqNum, 1024)
	readErr := make(chan error, 1)
	go func() {
		defer close(acks)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "ack ") {
				continue
			}
			n, err := strconv.ParseUint(line[4:], 10, 64)
			if err != nil {
				readErr <- fmt.Errorf("bad line %q", line)
				return
			}
			acks <- storage.SeqNum(n)
		}
		readErr <- sc.Err()
	}()

	const killAfter = 3000
	var last storage.SeqNum
	timeout := time.After(storetest.Timeout)
	for last < killAfter {
		select {
		case seq, ok := <-acks:
			if !ok {
				t.Fatalf("child exited after %d acks: %v\nstderr:\n%s", last, <-readErr, stderr.String())
			}
			if seq != last+1 {
				t.Fatalf("ack %d after ack %d: dones out of order", seq, last)
			}
			last = seq
		case <-timeout:
			t.Fatalf("only %d acks within %v\nstderr:\n%s", last, storetest.Timeout, stderr.String())
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	killed = true
	// Acks the child printed before it died count too.
	for seq := range acks {
		if seq != last+1 {
			t.Fatalf("ack %d after ack %d: dones out of order", seq, last)
		}
		last = seq
	}
	if err := <-readErr; err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait() // "signal: killed"

	s := mustOpen(t, dir, Options{})
	defer s.Close()
	var n storage.SeqNum
	if err := s.ScanQueue(1, 0, false, func(seq storage.SeqNum, v []byte) error {
		n++
		if seq != n || !strings.HasPrefix(string(v), fmt.Sprintf("%d:", seq)) {
			return fmt.Errorf("message %d is seq %d with %.10q...", n, seq, v)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n < last {
		t.Fatalf("recovered %d messages, but %d were acknowledged", n, last)
	}
	t.Logf("acknowledged %d before SIGKILL, recovered %d", last, n)
}

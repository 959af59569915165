package interop

import (
	"bytes"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
)

// stompBinary runs the real broker binary, serving only STOMP, over one
// data directory, so that it can be killed and started again.
type stompBinary struct {
	t      *testing.T
	bin    string
	dir    string
	addr   string
	cmd    *exec.Cmd
	exited chan error
	logs   *bytes.Buffer // read only once the process has exited
}

// start runs the binary on a free loopback port and waits until it
// accepts connections.
func (sb *stompBinary) start() {
	t := sb.t
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sb.addr = l.Addr().String()
	_ = l.Close()
	sb.logs = new(bytes.Buffer)
	sb.cmd = exec.Command(sb.bin, "--data-dir", sb.dir, "--amqp-listen=", "--mqtt-listen=", "--stomp-listen", sb.addr)
	sb.cmd.Env = []string{} // no JUNCTION_* from the caller
	sb.cmd.Stderr = sb.logs
	if err := sb.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited := sb.cmd, make(chan error, 1)
	sb.exited = exited
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { sb.kill() })
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", sb.addr, time.Second)
		if err == nil {
			_ = c.Close()
			return
		}
		select {
		case err := <-exited:
			sb.exited = nil
			t.Fatalf("broker exited: %v\n%s", err, sb.logs)
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			sb.kill()
			t.Fatalf("broker not listening on %s after 20s\n%s", sb.addr, sb.logs)
		}
	}
}

// kill sends SIGKILL (kill -9) and waits for the process to be gone.
func (sb *stompBinary) kill() {
	if sb.exited == nil {
		return
	}
	_ = sb.cmd.Process.Kill()
	<-sb.exited
	sb.exited = nil
}

// TestSTOMPPersistentSurvivesKill: a SEND with persistent:true is on disk
// when its RECEIPT comes; after kill -9 and a restart on the same data
// directory the persistent messages are there, in order and marked
// redelivered, and the transient one is not.
func TestSTOMPPersistentSurvivesKill(t *testing.T) {
	t.Parallel()
	sb := &stompBinary{t: t, bin: buildBroker(t), dir: t.TempDir()}
	sb.start()
	var want []string
	for _, v := range stompVersions {
		c, err := stomp.Dial("tcp", sb.addr, stompDialOpts(v)...)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 20 {
			body := "p-" + string(v) + "-" + strconv.Itoa(i)
			stompSend(t, c, "/queue/durable", body, "persistent", "true")
			want = append(want, body)
		}
		stompSend(t, c, "/queue/durable", "transient-"+string(v))
		stompGone(c) // no DISCONNECT: the broker dies next
	}
	sb.kill()

	sb.start()
	c := stompDial(t, sb.addr, stomp.V12)
	// No stompSub: its sync RECEIPT would queue behind 60 MESSAGEs that
	// go-stomp only hands over as they are read.
	s, err := c.Subscribe("/queue/durable", stomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range stompWantBodies(t, s, want...) {
		if m.Header.Get("persistent") != "true" || m.Header.Get("redelivered") != "true" {
			t.Errorf("%s: persistent %q redelivered %q", m.Body, m.Header.Get("persistent"), m.Header.Get("redelivered"))
		}
		if err := c.Ack(m); err != nil {
			t.Fatal(err)
		}
	}
	stompSend(t, c, "/queue/durable", "marker")
	stompWantBodies(t, s, "marker") // the transient messages are gone
}

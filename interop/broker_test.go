package interop

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/junction-broker/junction/conf"
)

// buildBroker builds cmd/junction into a temporary directory and returns the
// binary's path. It builds in the broker's own module (the parent directory),
// so this module's go.sum need not list the broker's dependencies.
func buildBroker(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build the broker: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "junction")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "./cmd/junction")
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestBrokerBinary builds the broker and runs its --check, the way the
// interop tests will start it.
func TestBrokerBinary(t *testing.T) {
	bin := buildBroker(t)
	for _, tc := range []struct {
		args []string
		ok   bool
		want string
	}{
		{[]string{"--check", "--data-dir", t.TempDir(), "--amqp-listen", "127.0.0.1:0"}, true, "configuration OK"},
		{[]string{"--check", "--log-level", "loud"}, false, `log.level: "loud" is not one of`},
		{[]string{"--help"}, true, "Usage: junction"},
	} {
		cmd := exec.Command(bin, tc.args...)
		cmd.Env = []string{} // no JUNCTION_* from the caller
		out, err := cmd.CombinedOutput()
		if (err == nil) != tc.ok || !strings.Contains(string(out), tc.want) {
			t.Errorf("junction %q: err %v, want ok=%v and %q in:\n%s", tc.args, err, tc.ok, tc.want, out)
		}
	}
}

// TestDefaultPorts: the clients assume RabbitMQ's well-known ports.
func TestDefaultPorts(t *testing.T) {
	d := conf.Defaults()
	got := [3]string{d.AMQP.Listen, d.MQTT.Listen, d.STOMP.Listen}
	if want := [3]string{":5672", ":1883", ":61613"}; got != want {
		t.Fatalf("default listen addresses %q, want %q", got, want)
	}
}

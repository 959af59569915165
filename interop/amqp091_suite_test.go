package interop

import (
	"context"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// amqp091Version is the amqp091-go release whose integration tests run
// against Junction; it is the client version the other interop tests use.
const amqp091Version = "v1.10.0"

// amqp091Skip lists the suite's tests we skip, and why:
//   - TestConnectionRecovery*: drop connections through RabbitMQ's
//     management HTTP API (none in v1.10.0; listed for newer versions).
//   - TestIntegrationRecoverNotImplemented, TestRabbitMQQueueTTLGet,
//     TestRabbitMQQueueNackMultipleRequeue: they run only when the server
//     says product "RabbitMQ" and, when it does not, return without closing
//     the connection they opened, so the suite's goleak check fails the
//     package. Their bodies pass against Junction when allowed to run
//     (recover requeue=false gets 540, x-message-ttl, nack multiple).
//
// TestConnection_Close_WhenMemoryAlarmIsActive skips itself without
// rabbitmqctl; Junction's own blocked tests cover that ground.
const amqp091Skip = "^(TestConnectionRecovery.*|TestIntegrationRecoverNotImplemented|TestRabbitMQQueueTTLGet|TestRabbitMQQueueNackMultipleRequeue)$"

// TestAMQP091IntegrationSuite runs the integration tests that ship with
// github.com/rabbitmq/amqp091-go (build tag "integration", broker from
// AMQP_URL) against an in-process Junction. The module's source comes from
// the Go module cache (go mod download) into a scratch directory; none of
// it is part of this repository.
func TestAMQP091IntegrationSuite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs another module's test suite")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "mod", "download", "-json", "github.com/rabbitmq/amqp091-go@"+amqp091Version).Output()
	if err != nil {
		t.Fatalf("go mod download: %v\n%s", err, out)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download said %s (%v)", out, err)
	}
	src := filepath.Join(t.TempDir(), "amqp091-go")
	if err := copyTree(mod.Dir, src); err != nil {
		t.Fatal(err)
	}

	url, _ := startAMQP(t)
	cmd := exec.CommandContext(ctx, goBin, "test", "-tags", "integration", "-count=1", "-timeout", "5m",
		"-skip", amqp091Skip, "-v", ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "AMQP_URL="+url("guest:guest"), "GOFLAGS=-mod=mod")
	res, err := cmd.CombinedOutput()
	passed := len(regexp.MustCompile(`(?m)^--- PASS`).FindAll(res, -1))
	failed := regexp.MustCompile(`(?m)^--- FAIL: \S+`).FindAll(res, -1)
	t.Logf("amqp091-go %s integration suite: %d passed, %d failed", amqp091Version, passed, len(failed))
	if err != nil || len(failed) > 0 {
		t.Fatalf("suite failed (%v): %s\n%s", err, strings.Join(strings.Fields(string(joinLines(failed))), " "), tail(res, 150))
	}
	if passed < 100 {
		t.Fatalf("only %d tests passed; did the suite run?\n%s", passed, tail(res, 50))
	}
}

// copyTree copies the regular files under from into to, writable.
func copyTree(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

func joinLines(bs [][]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(append(out, b...), '\n')
	}
	return out
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(string(b), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

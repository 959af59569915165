// Package broker starts and stops the brokers the comparison runs against,
// each from a fresh data directory, on its own loopback ports, logging to a
// file: Junction (the binary under test), RabbitMQ (Debian's
// rabbitmq-server, run as the current user with its own node name, config
// and plugins file, so the system's node and configuration stay untouched)
// and Mosquitto (with its own config file).
package broker

import (
	"context"
	"debug/buildinfo"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/junction-broker/junction/bench/load"
	"github.com/junction-broker/junction/bench/proc"
)

// Ports are one broker's listen ports on 127.0.0.1; 0 leaves a protocol off.
type Ports struct{ AMQP, MQTT, STOMP int }

// DefaultPorts keeps the three brokers off each other's and off the usual
// ports, so a broker already running on 5672/1883/61613 does not interfere,
// and below Linux's ephemeral range (32768 up), where an outgoing
// connection's local port can take a listen port away. RabbitMQ's
// distribution port is rabbitDistPort.
var DefaultPorts = map[string]Ports{
	"junction":  {AMQP: 20672, MQTT: 20883, STOMP: 20613},
	"rabbitmq":  {AMQP: 21672, MQTT: 21883, STOMP: 21613},
	"mosquitto": {MQTT: 22883},
}

const rabbitDistPort = 21671

// Broker is one running broker process.
type Broker struct {
	Name   string
	Dir    string // its data directory and logs
	Log    string // the log to quote when it fails
	Ports  Ports
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // the process's exit status, once exited is closed
}

// Options for Start.
type Options struct {
	Junction string   // path to the junction binary
	Pin      []string // command prefix, e.g. taskset -c 0; empty for none
	Ports    *Ports   // nil: DefaultPorts[name]
	Args     []string // Junction only: more command-line flags, after the ones Start sets
}

// Start starts broker name (junction, rabbitmq or mosquitto) with a fresh
// directory under root and waits until every port accepts connections.
func Start(ctx context.Context, name, root string, o Options) (*Broker, error) {
	ports, ok := DefaultPorts[name]
	if !ok {
		return nil, fmt.Errorf("broker: unknown broker %q", name)
	}
	if o.Ports != nil {
		ports = *o.Ports
	}
	dir := filepath.Join(root, name)
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	for _, p := range []int{ports.AMQP, ports.MQTT, ports.STOMP} {
		if p == 0 {
			continue
		}
		l, err := net.Listen("tcp", addr(p))
		if err != nil {
			return nil, fmt.Errorf("broker: %s: port %d is taken (a broker left over from an earlier run?): %w", name, p, err)
		}
		l.Close()
	}
	b := &Broker{Name: name, Dir: dir, Ports: ports, exited: make(chan struct{})}
	var argv []string
	env := os.Environ()
	switch name {
	case "junction":
		argv = []string{o.Junction, "--data-dir", filepath.Join(dir, "data"),
			"--amqp-listen", addr(ports.AMQP), "--mqtt-listen", addr(ports.MQTT), "--stomp-listen", addr(ports.STOMP)}
		argv = append(argv, o.Args...)
		b.Log = filepath.Join(dir, "junction.log")
	case "rabbitmq":
		var err error
		argv, env, err = rabbitmq(dir, ports, env)
		if err != nil {
			return nil, err
		}
		b.Log = filepath.Join(dir, "log", "bench@localhost.log")
	case "mosquitto":
		conf := filepath.Join(dir, "mosquitto.conf")
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
			return nil, err
		}
		// The settings of the baseline measurements; `user root` keeps
		// Mosquitto from switching to the mosquitto user, which could not
		// write our directory, when started by root.
		text := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\nmax_queued_messages 10000\nlog_dest stderr\nuser %s\n",
			ports.MQTT, filepath.Join(dir, "data"), currentUser())
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			return nil, err
		}
		argv = []string{"mosquitto", "-c", conf}
		b.Log = filepath.Join(dir, "mosquitto.log")
	}
	argv = append(append([]string(nil), o.Pin...), argv...)
	out, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	b.cmd = exec.Command(argv[0], argv[1:]...)
	b.cmd.Env = env
	b.cmd.Dir = dir
	b.cmd.Stdout, b.cmd.Stderr = out, out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // a ^C to the harness is not a ^C to the broker
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("broker: start %s: %w", name, err)
	}
	go func() {
		b.err = b.cmd.Wait()
		close(b.exited)
	}()
	if err := b.waitReady(ctx, 120*time.Second); err != nil {
		_ = b.Stop(10 * time.Second)
		return nil, fmt.Errorf("broker: %s did not start: %w\n%s", name, err, b.LogTail(8))
	}
	return b, nil
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

func listening(port int) bool {
	c, err := net.DialTimeout("tcp", addr(port), 200*time.Millisecond)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// rabbitmq writes RabbitMQ's config, plugins and env files into dir and
// returns the command line and environment that start a node on them.
func rabbitmq(dir string, p Ports, env []string) ([]string, []string, error) {
	server := "/usr/lib/rabbitmq/bin/rabbitmq-server" // Debian's; /usr/sbin/rabbitmq-server would su to the rabbitmq user
	if _, err := os.Stat(server); err != nil {
		server = "rabbitmq-server"
	}
	conf := fmt.Sprintf("listeners.tcp.default = 127.0.0.1:%d\nmqtt.listeners.tcp.default = 127.0.0.1:%d\nstomp.listeners.tcp.default = 127.0.0.1:%d\n",
		p.AMQP, p.MQTT, p.STOMP)
	files := map[string]string{
		"rabbitmq.conf":     conf,
		"enabled_plugins":   "[rabbitmq_mqtt,rabbitmq_stomp].\n",
		"rabbitmq-env.conf": "", // instead of /etc/rabbitmq/rabbitmq-env.conf
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return nil, nil, err
		}
	}
	env = append(env,
		"RABBITMQ_NODENAME=bench@localhost",
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(p.AMQP),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(rabbitDistPort),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbitmq.pid"),
		"RABBITMQ_ADVANCED_CONFIG_FILE="+filepath.Join(dir, "advanced.config"),
	)
	return []string{server}, env, nil
}

func (b *Broker) waitReady(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, p := range []int{b.Ports.AMQP, b.Ports.MQTT, b.Ports.STOMP} {
		for p != 0 && !listening(p) {
			select {
			case <-b.exited:
				return fmt.Errorf("exited: %v", b.err)
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("port %d not listening after %v", p, limit)
			}
		}
	}
	return nil
}

// Target is where the load generator finds b, PIDs included.
func (b *Broker) Target() load.Target {
	t := load.Target{Broker: b.Name, PIDs: []int{b.cmd.Process.Pid}}
	if b.Ports.AMQP != 0 {
		t.AMQP = "amqp://guest:guest@" + addr(b.Ports.AMQP) + "/"
	}
	if b.Ports.MQTT != 0 {
		t.MQTT = addr(b.Ports.MQTT)
	}
	if b.Ports.STOMP != 0 {
		t.STOMP = addr(b.Ports.STOMP)
	}
	return t
}

// PIDs is b's process tree now.
func (b *Broker) PIDs() []int { return proc.Tree(b.cmd.Process.Pid) }

// Exited reports whether b's process has ended, and how.
func (b *Broker) Exited() (bool, error) {
	select {
	case <-b.exited:
		return true, b.err
	default:
		return false, nil
	}
}

// Freeze stops every process in b's process group (SIGSTOP), so that an
// idle broker's background work (timers, compactions, statistics) takes no
// CPU from another broker's run on a small machine; Thaw resumes it.
func (b *Broker) Freeze() { _ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGSTOP) }

// Thaw resumes b after Freeze (SIGCONT).
func (b *Broker) Thaw() { _ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGCONT) }

// Kill ends b (SIGKILL to its process group). Junction first gets SIGQUIT,
// on which the Go runtime writes every goroutine's stack to its log (see
// BusyStacks) and exits.
func (b *Broker) Kill() {
	b.Thaw()
	if b.Name == "junction" {
		_ = syscall.Kill(b.cmd.Process.Pid, syscall.SIGQUIT)
		select {
		case <-b.exited:
		case <-time.After(5 * time.Second):
		}
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	<-b.exited
}

// BusyStacks returns, from a Go goroutine dump in b's log (see Kill), the
// stacks of the goroutines that were running or runnable, each cut to its
// first lines: what a runaway broker was doing. "" if there is none.
func (b *Broker) BusyStacks(goroutines, lines int) string {
	data, err := os.ReadFile(b.Log)
	if err != nil {
		return ""
	}
	var out []string
	for block := range strings.SplitSeq(string(data), "\n\n") {
		if !strings.HasPrefix(block, "goroutine ") {
			if i := strings.Index(block, "\ngoroutine "); i >= 0 {
				block = block[i+1:] // the first goroutine follows the SIGQUIT banner
			} else {
				continue
			}
		}
		head, _, _ := strings.Cut(block, "\n")
		if !strings.Contains(head, "[running]") && !strings.Contains(head, "[runnable]") {
			continue
		}
		ls := strings.Split(block, "\n")
		out = append(out, strings.Join(ls[:min(len(ls), lines)], "\n"))
		if len(out) == goroutines {
			break
		}
	}
	return strings.Join(out, "\n\n")
}

// Stop asks b to stop (SIGTERM) and kills it if it has not within grace.
// Everything b started in its process group goes with it.
func (b *Broker) Stop(grace time.Duration) error {
	if done, _ := b.Exited(); done {
		return nil
	}
	b.Thaw() // a stopped process cannot act on SIGTERM
	_ = syscall.Kill(b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.exited
		return fmt.Errorf("broker: %s did not stop within %v; killed", b.Name, grace)
	}
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL) // stragglers (erl_child_setup)
	return nil
}

// LogTail returns the last n lines of b's log and of its console output,
// leaving out routine per-connection lines.
func (b *Broker) LogTail(n int) string {
	var parts []string
	for _, f := range uniq(b.Log, filepath.Join(b.Dir, b.Name+".log")) {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		var lines []string
		for line := range strings.SplitSeq(strings.TrimRight(string(data), "\n"), "\n") {
			if !routine(line) {
				lines = append(lines, line)
			}
		}
		lines = lines[max(len(lines)-n, 0):]
		parts = append(parts, "==> "+f+" <==\n"+strings.Join(lines, "\n"))
	}
	return strings.Join(parts, "\n")
}

// routine reports whether a log line is one of Junction's per-connection
// lifecycle lines, which say nothing about why a broker failed.
func routine(line string) bool {
	return strings.Contains(line, `level=INFO msg="connection opened"`) ||
		strings.Contains(line, `level=INFO msg="connection closed"`)
}

func uniq(s ...string) []string {
	var out []string
	for _, v := range s {
		if len(out) == 0 || out[len(out)-1] != v {
			out = append(out, v)
		}
	}
	return out
}

// Version reports the installed version of broker name, for the report.
func Version(name, junction string) string {
	run := func(argv ...string) string {
		out, err := exec.Command(argv[0], argv[1:]...).Output()
		if err != nil {
			return "?"
		}
		return strings.TrimSpace(string(out))
	}
	switch name {
	case "junction":
		rev := run("git", "-C", filepath.Dir(junction), "rev-parse", "--short", "HEAD")
		if run("git", "-C", filepath.Dir(junction), "status", "--porcelain", "--untracked-files=no") != "" {
			rev += "+uncommitted"
		}
		if bi, err := buildinfo.ReadFile(junction); err == nil {
			rev += " (built with " + bi.GoVersion + ")"
		}
		return "Junction " + rev
	case "rabbitmq":
		return "RabbitMQ " + run("dpkg-query", "-W", "-f=${Version}", "rabbitmq-server") +
			" (Erlang " + run("dpkg-query", "-W", "-f=${Version}", "erlang-base") + ")"
	case "mosquitto":
		return "Mosquitto " + run("dpkg-query", "-W", "-f=${Version}", "mosquitto")
	}
	return name
}

// ErrNotInstalled is returned by Check for a broker that is missing.
var ErrNotInstalled = errors.New("not installed")

// Check reports whether broker name can be started here.
func Check(name, junction string) error {
	switch name {
	case "junction":
		if _, err := os.Stat(junction); err != nil {
			return fmt.Errorf("junction: %w (%v)", ErrNotInstalled, err)
		}
	case "rabbitmq":
		if _, err := exec.LookPath("/usr/lib/rabbitmq/bin/rabbitmq-server"); err != nil {
			if _, err := exec.LookPath("rabbitmq-server"); err != nil {
				return fmt.Errorf("rabbitmq-server: %w", ErrNotInstalled)
			}
		}
	case "mosquitto":
		if _, err := exec.LookPath("mosquitto"); err != nil {
			return fmt.Errorf("mosquitto: %w", ErrNotInstalled)
		}
	}
	return nil
}

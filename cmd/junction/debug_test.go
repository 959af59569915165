package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDebugListener: with debug_listen set the broker serves the goroutine
// profile there and stops serving when it stops; unset, the process
// listens on the protocol ports and nothing else.
func TestDebugListener(t *testing.T) {
	base := func() []string {
		return []string{"--data-dir", t.TempDir(), "--amqp-listen", "127.0.0.1:0", "--mqtt-listen", "", "--stomp-listen", ""}
	}
	t.Run("set", func(t *testing.T) {
		// The "=" form: startRun counts "-listen" arguments as protocols.
		out, addrs, stop := startRun(t, append(base(), "--debug-listen=127.0.0.1:0"))
		dbg := logged(t, out.String(), "debug listening")
		if got, want := listeningPorts(t), ports(t, addrs["amqp"], dbg); !slices.Equal(got, want) {
			t.Errorf("listening on ports %v, want %v (AMQP, debug)", got, want)
		}
		body := get(t, "http://"+dbg+"/debug/pprof/goroutine?debug=1")
		if !strings.HasPrefix(body, "goroutine profile: total ") {
			t.Errorf("goroutine profile starts %q", body[:min(len(body), 60)])
		}
		if !strings.Contains(body, "/cmd/junction.run+") { // this process: the goroutine in run
			t.Errorf("goroutine profile lacks the goroutine in run:\n%s", body)
		}
		if code := stop(); code != 0 {
			t.Fatalf("exit %d:\n%s", code, out.String())
		}
		if c, err := net.DialTimeout("tcp", dbg, time.Second); err == nil {
			c.Close()
			t.Errorf("debug listener %s still accepts after the broker stopped", dbg)
		}
	})
	t.Run("unset", func(t *testing.T) {
		out, addrs, stop := startRun(t, base())
		if got, want := listeningPorts(t), ports(t, addrs["amqp"]); !slices.Equal(got, want) {
			t.Errorf("listening on ports %v, want only AMQP's %v", got, want)
		}
		if strings.Contains(out.String(), "debug listening") {
			t.Errorf("debug listener started though debug_listen is unset:\n%s", out.String())
		}
		if code := stop(); code != 0 {
			t.Fatalf("exit %d:\n%s", code, out.String())
		}
	})
	t.Run("taken", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		code, out := runCancelled(t, append(base(), "--debug-listen", ln.Addr().String()), noEnv)
		if code != exitFail || !strings.Contains(out, "debug listener") || !strings.Contains(out, "address already in use") {
			t.Fatalf("exit %d, want %d with the bind error; output:\n%s", code, exitFail, out)
		}
	})
}

// logged returns the addr attribute of the JSON log record msg.
func logged(t *testing.T, log, msg string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var rec struct{ Msg, Addr string }
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == msg {
			return rec.Addr
		}
	}
	t.Fatalf("no %q record in the log:\n%s", msg, log)
	return ""
}

func get(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(b)
}

// ports returns the sorted ports of host:port addresses.
func ports(t *testing.T, addrs ...string) []int {
	t.Helper()
	var ps []int
	for _, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatalf("address %q: %v", a, err)
		}
		n, _ := strconv.Atoi(p)
		ps = append(ps, n)
	}
	slices.Sort(ps)
	return ps
}

// listeningPorts returns the sorted, distinct local ports of the TCP
// sockets this process holds in the LISTEN state, from /proc: the socket
// inodes its descriptors point at, looked up in /proc/self/net/tcp{,6}.
func listeningPorts(t *testing.T) []int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	mine := map[string]bool{}
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			mine[strings.TrimSuffix(inode, "]")] = true
		}
	}
	var ps []int
	for _, table := range []string{"/proc/self/net/tcp", "/proc/self/net/tcp6"} {
		b, err := os.ReadFile(table)
		if err != nil {
			continue // no IPv6
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "0A" || !mine[f[9]] {
				continue
			}
			_, hexPort, _ := strings.Cut(f[1], ":")
			p, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil {
				t.Fatalf("%s: local address %q", table, f[1])
			}
			if !slices.Contains(ps, int(p)) {
				ps = append(ps, int(p))
			}
		}
	}
	slices.Sort(ps)
	return ps
}

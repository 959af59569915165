package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a strings.Builder safe for the concurrent writes of a
// running broker and the reads of its test.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// noEnv is an empty environment, so tests do not depend on the caller's.
func noEnv(string) (string, bool) { return "", false }

// runCancelled runs the broker with a context that is already cancelled:
// it starts, then stops at once.
func runCancelled(t *testing.T, args []string, env func(string) (string, bool)) (int, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out syncBuffer
	code := run(ctx, args, env, &out)
	return code, out.String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "junction.toml")
	if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestRunCheck(t *testing.T) {
	good := writeConfig(t, "[amqp]\nlisten = \":0\"\n[log]\nlevel = \"debug\"\n")
	bad := writeConfig(t, "data_dir = \"\"\nbogus = 1\n[log]\nlevel = \"loud\"\n[amqp]\nlisten = \"x:y\"\n")
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		code int
		want []string
		not  []string
	}{
		{"defaults", []string{"--check"}, nil, 0, []string{"configuration OK (built-in defaults"}, nil},
		{"good file", []string{"--check", "--config", good}, nil, 0, []string{"configuration OK (" + good}, nil},
		{"bad file", []string{"--check", "--config", bad}, nil, 1, []string{
			"invalid configuration",
			"  bogus: unknown key in " + bad,
			"  data_dir: required",
			`  log.level: "loud" is not one of debug, info, warn, error`,
			`  amqp.listen: "x:y": invalid port`,
		}, []string{"configuration OK"}},
		{"bad env", []string{"--check"}, map[string]string{"JUNCTION_MQTT_LISTEN": "nope"}, 1,
			[]string{`mqtt.listen: "nope": missing port in address`, "(from JUNCTION_MQTT_LISTEN)"}, nil},
		{"flag fixes env", []string{"--check", "--mqtt-listen", ":1884"}, map[string]string{"JUNCTION_MQTT_LISTEN": "nope"}, 0,
			[]string{"configuration OK"}, nil},
		{"bad flag value", []string{"--check", "--log-format", "xml"}, nil, 1, []string{`log.format: "xml"`, "(from --log-format)"}, nil},
		{"missing file", []string{"--check", "--config", filepath.Join(t.TempDir(), "none.toml")}, nil, 1,
			[]string{"config: open", "no such file"}, nil},
		{"unknown flag", []string{"--check", "--verbose"}, nil, 2, []string{"flag provided but not defined: -verbose", "--help"}, nil},
		{"stray argument", []string{"serve"}, nil, 2, []string{`unexpected argument "serve"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok }
			code, out := runCancelled(t, tc.args, env)
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(out, w) {
					t.Errorf("output has %q", w)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

func TestRunCheckDoesNotTouchDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, out := runCancelled(t, []string{"--check", "--data-dir", dir}, noEnv); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("--check created the data dir (stat: %v)", err)
	}
}

func TestRunHelp(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		code, out := runCancelled(t, []string{arg}, noEnv)
		if code != 0 {
			t.Errorf("%s: exit %d", arg, code)
		}
		for _, w := range []string{
			"Usage: junction", "--config FILE", "--data-dir DIR", "--amqp-listen ADDR", "--mqtt-listen ADDR",
			"--stomp-listen ADDR", "--log-level", "--log-format", "--check",
			"JUNCTION_DATA_DIR", "JUNCTION_AMQP_LISTEN", "JUNCTION_MQTT_LISTEN", "JUNCTION_STOMP_LISTEN", "JUNCTION_LOG_LEVEL",
		} {
			if !strings.Contains(out, w) {
				t.Errorf("%s: help lacks %q", arg, w)
			}
		}
	}
}

func TestRunDataDir(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir string
		code      int
		want      string
	}{
		{"created", filepath.Join(tmp, "a", "b"), 0, "stopped"},
		{"exists", tmp, 0, "stopped"},
		{"is a file", file, 1, `data dir "` + file + `": cannot create`},
		{"under a file", filepath.Join(file, "data"), 1, `data dir "` + filepath.Join(file, "data") + `": cannot create`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := runCancelled(t, []string{"--data-dir", tc.dir, "--amqp-listen", ":0", "--mqtt-listen=", "--stomp-listen="}, noEnv)
			if code != tc.code || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, want %d with %q; output:\n%s", code, tc.code, tc.want, out)
			}
			if code == 0 {
				if fi, err := os.Stat(tc.dir); err != nil || !fi.IsDir() {
					t.Fatalf("data dir not created: %v", err)
				}
				ents, _ := os.ReadDir(tc.dir)
				for _, e := range ents {
					if strings.HasPrefix(e.Name(), ".junction-write-test") {
						t.Fatalf("write test left %s behind", e.Name())
					}
				}
			}
		})
	}
	t.Run("read-only", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		if f, err := os.CreateTemp(dir, "probe"); err == nil { // root ignores permissions
			f.Close()
			t.Skip("permissions are not enforced for this user")
		}
		code, out := runCancelled(t, []string{"--data-dir", dir}, noEnv)
		if code != 1 || !strings.Contains(out, `data dir "`+dir+`": not writable`) {
			t.Fatalf("exit %d; output:\n%s", code, out)
		}
	})
}

// TestRunStopsOnCancel runs the broker until its context is cancelled, as a
// signal would, and checks it logs its lifecycle in the configured format.
func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan int, 1)
	args := []string{"--data-dir", t.TempDir(), "--amqp-listen", "127.0.0.1:0", "--mqtt-listen=", "--log-format", "json"}
	go func() { done <- run(ctx, args, noEnv, &out) }()

	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), `"msg":"started"`) {
		if time.Now().After(deadline) {
			t.Fatalf("broker did not start; output:\n%s", out.String())
		}
		time.Sleep(time.Millisecond)
	}
	select {
	case code := <-done:
		t.Fatalf("run returned %d before cancel", code)
	default:
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d; output:\n%s", code, out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after cancel")
	}
	for _, w := range []string{`"msg":"starting"`, `"msg":"protocol disabled","proto":"mqtt"`, `"msg":"stopping"`, `"msg":"stopped"`} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("log lacks %s:\n%s", w, out.String())
		}
	}
}

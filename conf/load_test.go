package conf

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// env returns a lookup function over m, for Load.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// writeFile writes a config file into a temporary directory.
func writeFile(t testing.TB, body string) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "junction.toml")
	if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

// keys returns the keys of the problems in err.
func keys(err error) []string {
	var ks []string
	for _, p := range Problems(err) {
		ks = append(ks, p.Key)
	}
	return ks
}

func TestLoadDefaults(t *testing.T) {
	c, opts, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, defaults) {
		t.Fatalf("Load(nil) =\n%+v\nwant defaults\n%+v", c, defaults)
	}
	if opts != (Options{}) {
		t.Fatalf("opts = %+v, want zero", opts)
	}
}

func TestLoadFile(t *testing.T) {
	c, opts, err := Load([]string{"--config", "testdata/full.toml"}, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		DataDir: "/var/lib/junction",
		Log:     Log{Level: "debug", Format: "json"},
		Router: Router{
			DefaultVHost:        "prod",
			DefaultUser:         "admin",
			DefaultPass:         "s3cret",
			LoopbackUsers:       []string{},
			MemoryBudget:        GiB,
			MaxMessageSize:      16 * MiB,
			MemoryHighWatermark: 0.25, MemoryHighWatermarkAbsolute: 512 * MiB,
			MaxQueues: 100,
			TopicPermissions: []TopicPermission{
				{User: "admin", VHost: "/", Exchange: "amq.topic", Write: ptr(".*"), Read: ptr(".*"), DenyRead: `^secret\.`},
				{User: "sensor", VHost: "devices", Exchange: "mqtt.topic", Write: ptr(`^sensors\.{client_id}\.`), Read: ptr(""), DenyWrite: `\.admin$`},
			},
			Provenance: false,
		},
		Storage: Storage{MemtableSize: 32 * MiB, CacheSize: GiB},
		Transport: Transport{EventLoops: 2, TickInterval: 250 * time.Millisecond, MaxInbound: MiB, MaxOutbound: 8 * MiB,
			SlowConsumerTimeout: 5 * time.Second, MaxConnections: 1000},
		AMQP: AMQP{Listen: "127.0.0.1:5673", FrameMax: 4096, ChannelMax: 16, Heartbeat: 30 * time.Second},
		MQTT: MQTT{Listen: "", VHost: "devices", Exchange: "mqtt.topic", TopicMode: TopicModeLossless,
			RetainedMaxMessages: 1000, RetainedMaxBytes: MiB, TopicAliasMaximum: 0, MaxQueuedMessages: 500, MaxKeepAlive: 5 * time.Minute, RevealRefusals: false},
		STOMP: STOMP{Listen: "[::1]:61614", HeartBeat: 0},
	}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("Load(full.toml) =\n%+v\nwant\n%+v", c, want)
	}
	if opts.ConfigFile != "testdata/full.toml" || opts.Check {
		t.Fatalf("opts = %+v", opts)
	}
}

// TestLoadPrecedence: defaults < file < environment < flags, for every
// setting that has an environment variable and a flag.
func TestLoadPrecedence(t *testing.T) {
	// Three distinct valid values per setting: file, env, flag.
	values := map[string][3]string{
		"data-dir":     {"/file", "/env", "/flag"},
		"amqp-listen":  {":1001", ":1002", ":1003"},
		"mqtt-listen":  {":2001", ":2002", ":2003"},
		"stomp-listen": {":3001", ":3002", ":3003"},
		"log-level":    {"debug", "warn", "error"},
		"log-format":   {"json", "text", "json"},
		"debug-listen": {"127.0.0.1:6061", "127.0.0.1:6062", "[::1]:6063"},
	}
	for _, s := range settings {
		v, ok := values[s.flag]
		if !ok {
			t.Fatalf("no test values for --%s", s.flag)
		}
		section, key, nested := strings.Cut(s.key, ".")
		file := section + " = " + `"` + v[0] + `"`
		if nested {
			file = "[" + section + "]\n" + key + ` = "` + v[0] + `"`
		}
		name := writeFile(t, file)
		for _, tc := range []struct {
			name string
			env  map[string]string
			args []string
			want string
		}{
			{"file", nil, nil, v[0]},
			{"env", map[string]string{s.env: v[1]}, nil, v[1]},
			{"flag", nil, []string{"--" + s.flag, v[2]}, v[2]},
			{"flag=", nil, []string{"--" + s.flag + "=" + v[2]}, v[2]},
			{"env+flag", map[string]string{s.env: v[1]}, []string{"-" + s.flag, v[2]}, v[2]},
		} {
			t.Run(s.flag+"/"+tc.name, func(t *testing.T) {
				c, _, err := Load(append([]string{"--config", name}, tc.args...), env(tc.env))
				if err != nil {
					t.Fatal(err)
				}
				if got := *s.field(&c); got != tc.want {
					t.Fatalf("%s = %q, want %q", s.key, got, tc.want)
				}
			})
		}
	}
}

func TestLoadEmptyListenDisables(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want [3]string // amqp, mqtt, stomp
	}{
		{"flag=", nil, []string{"--mqtt-listen="}, [3]string{":5672", "", ":61613"}},
		{"flag empty arg", nil, []string{"--mqtt-listen", ""}, [3]string{":5672", "", ":61613"}},
		{"single dash", nil, []string{"-stomp-listen="}, [3]string{":5672", ":1883", ""}},
		{"env set empty", map[string]string{"JUNCTION_AMQP_LISTEN": ""}, nil, [3]string{"", ":1883", ":61613"}},
		{"flag overrides empty env", map[string]string{"JUNCTION_AMQP_LISTEN": ""}, []string{"--amqp-listen", ":5673"}, [3]string{":5673", ":1883", ":61613"}},
		{"empty flag overrides env", map[string]string{"JUNCTION_STOMP_LISTEN": ":6000"}, []string{"--stomp-listen="}, [3]string{":5672", ":1883", ""}},
		{"two of three", map[string]string{"JUNCTION_MQTT_LISTEN": ""}, []string{"--stomp-listen="}, [3]string{":5672", "", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := Load(tc.args, env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			got := [3]string{c.AMQP.Listen, c.MQTT.Listen, c.STOMP.Listen}
			if got != tc.want {
				t.Fatalf("listen = %q, want %q", got, tc.want)
			}
		})
	}
	// An empty file value disables too.
	c, _, err := Load([]string{"--config", writeFile(t, "[amqp]\nlisten = \"\"\n")}, env(nil))
	if err != nil || c.AMQP.Listen != "" {
		t.Fatalf("file listen = \"\": got %q, %v", c.AMQP.Listen, err)
	}
	// But not all three.
	_, _, err = Load([]string{"--amqp-listen=", "--mqtt-listen=", "--stomp-listen="}, env(nil))
	if got := keys(err); !slices.Equal(got, []string{"amqp.listen, mqtt.listen, stomp.listen"}) {
		t.Fatalf("all disabled: problems %q (%v)", got, err)
	}
}

func TestLoadConfigFileFromEnv(t *testing.T) {
	fromEnv := writeFile(t, `data_dir = "/from-env-file"`)
	fromFlag := writeFile(t, `data_dir = "/from-flag-file"`)
	c, opts, err := Load(nil, env(map[string]string{"JUNCTION_CONFIG": fromEnv}))
	if err != nil || c.DataDir != "/from-env-file" || opts.ConfigFile != fromEnv {
		t.Fatalf("JUNCTION_CONFIG: %q %+v %v", c.DataDir, opts, err)
	}
	c, opts, err = Load([]string{"--config", fromFlag}, env(map[string]string{"JUNCTION_CONFIG": fromEnv}))
	if err != nil || c.DataDir != "/from-flag-file" || opts.ConfigFile != fromFlag {
		t.Fatalf("--config over JUNCTION_CONFIG: %q %+v %v", c.DataDir, opts, err)
	}
	// --config= means no file, even when JUNCTION_CONFIG names one.
	c, opts, err = Load([]string{"--config="}, env(map[string]string{"JUNCTION_CONFIG": fromEnv}))
	if err != nil || c.DataDir != "./data" || opts.ConfigFile != "" {
		t.Fatalf("--config= over JUNCTION_CONFIG: %q %+v %v", c.DataDir, opts, err)
	}
}

func TestLoadCheckFlag(t *testing.T) {
	for _, args := range [][]string{{"--check"}, {"-check"}, {"--check=true"}} {
		_, opts, err := Load(args, env(nil))
		if err != nil || !opts.Check {
			t.Errorf("Load(%q): Check = %v, err %v", args, opts.Check, err)
		}
	}
	if _, opts, _ := Load([]string{"--check=false"}, env(nil)); opts.Check {
		t.Error("--check=false set Check")
	}
}

func TestLoadUnknownKeys(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"top level", "lisen = 1", []string{"lisen"}},
		{"in a section", "[amqp]\nlisten = \":5672\"\nlistne = \":1\"", []string{"amqp.listne"}},
		{"unknown section: reported once", "[nope]\na = 1\n[nope.sub]\nb = 2", []string{"nope"}},
		{"misplaced key", "[log]\ndata_dir = \"x\"", []string{"log.data_dir"}},
		{"several", "a = 1\n[log]\nb = 2\n[mqtt]\nc = 3", []string{"a", "log.b", "mqtt.c"}},
		{"topic permission", "[[router.topic_permissions]]\nuser = \"u\"\nwrites = \".*\"", []string{"router.topic_permissions.writes"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := writeFile(t, tc.file)
			_, _, err := Load([]string{"--config", name}, env(nil))
			if got := keys(err); !slices.Equal(got, tc.want) {
				t.Fatalf("problems %q, want %q (%v)", got, tc.want, err)
			}
			for _, p := range Problems(err) {
				if !strings.Contains(p.Msg, "unknown key") || !strings.Contains(p.Msg, name) {
					t.Errorf("%v: want it to say unknown key and name the file", p)
				}
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		key, msg   string
	}{
		{"syntax", "[amqp\n", "config", "to end table name"},
		{"type", "[amqp]\nframe_max = \"big\"", "amqp.frame_max", "incompatible types"},
		{"size", "[router]\nmemory_budget = \"12MB\"", "router.memory_budget", `like "64MiB"`},
		{"duration", "[transport]\ntick_interval = \"soon\"", "transport.tick_interval", `invalid duration: "soon"`},
		{"duplicate key", "data_dir = \"a\"\ndata_dir = \"b\"", "data_dir", "already been defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := writeFile(t, tc.file)
			_, _, err := Load([]string{"--config", name}, env(nil))
			ps := Problems(err)
			if len(ps) != 1 || ps[0].Key != tc.key || !strings.Contains(ps[0].Msg, tc.msg) || !strings.Contains(ps[0].Msg, name) {
				t.Fatalf("got %v; want one problem with key %q mentioning %q and the file", err, tc.key, tc.msg)
			}
		})
	}
	_, _, err := Load([]string{"--config", filepath.Join(t.TempDir(), "missing.toml")}, env(nil))
	if ps := Problems(err); len(ps) != 1 || ps[0].Key != "config" || !errors.Is(err, os.ErrNotExist) && !strings.Contains(ps[0].Msg, "no such file") {
		t.Fatalf("missing file: %v", err)
	}
}

// TestLoadReportsEveryProblem: one Load reports every problem in the file,
// the environment and the flags together, each naming its key.
func TestLoadReportsEveryProblem(t *testing.T) {
	_, _, err := Load([]string{"--config", "testdata/bad.toml", "--log-format", "yaml"},
		env(map[string]string{"JUNCTION_LOG_LEVEL": "chatty"}))
	want := map[string]string{
		"lisen":                   "unknown key",
		"stomp.colour":            "unknown key",
		"data_dir":                "required",
		"log.level":               `"chatty" is not one of debug, info, warn, error (from JUNCTION_LOG_LEVEL)`,
		"log.format":              `"yaml" is not one of text, json (from --log-format)`,
		"router.max_message_size": "1GiB is not between 1B and 512MiB",
		"router.memory_budget":    "1KiB is not between 1MiB",
		"amqp.frame_max":          "100 is not between 4096",
		"amqp.channel_max":        "0 is not between 1 and 65535",
		"amqp.heartbeat":          "1.5s is not a whole number of seconds",
		"amqp.listen":             `"x:y": invalid port`,
		"mqtt.listen":             `"5672": missing port in address`,
		"mqtt.topic_mode":         `"dots" is not one of swap, lossless`,
	}
	ps := Problems(err)
	got := map[string]string{}
	for _, p := range ps {
		got[p.Key] += p.Msg
	}
	for k, msg := range want {
		if !strings.Contains(got[k], msg) {
			t.Errorf("%s: got %q, want it to contain %q", k, got[k], msg)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected problem %s: %s", k, got[k])
		}
	}
	// The joined error prints one problem per line.
	if n := strings.Count(err.Error(), "\n") + 1; n != len(ps) {
		t.Errorf("err.Error() has %d lines for %d problems:\n%v", n, len(ps), err)
	}
}

func TestLoadCommandLineErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		msg  string
	}{
		{"unknown flag", []string{"--amqp-port", "1"}, "flag provided but not defined: -amqp-port"},
		{"missing value", []string{"--data-dir"}, "flag needs an argument: -data-dir"},
		{"stray argument", []string{"--check", "serve"}, `unexpected argument "serve"`},
		{"bad bool", []string{"--check=maybe"}, "invalid boolean value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := Load(tc.args, env(nil))
			if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v; want ErrUsage mentioning %q", err, tc.msg)
			}
			if ps := Problems(err); len(ps) != 1 || ps[0].Key != "flags" {
				t.Fatalf("problems %v, want one for key flags", ps)
			}
		})
	}
	for _, args := range [][]string{{"-h"}, {"--help"}, {"-help"}, {"--check", "-h"}} {
		if _, _, err := Load(args, env(nil)); !errors.Is(err, ErrHelp) {
			t.Errorf("Load(%q) = %v, want ErrHelp", args, err)
		}
	}
}

func TestUsage(t *testing.T) {
	var b strings.Builder
	Usage(&b)
	out := b.String()
	for _, want := range []string{"--config FILE", "JUNCTION_CONFIG", "--check", "--help", `--mqtt-listen=`} {
		if !strings.Contains(out, want) {
			t.Errorf("usage lacks %q", want)
		}
	}
	for _, s := range settings {
		for _, want := range []string{"--" + s.flag + " " + s.arg, s.env, s.key} {
			if !strings.Contains(out, want) {
				t.Errorf("usage lacks %q", want)
			}
		}
	}
}

func ptr(s string) *string { return &s }

// TestLoadTopicPermissions: left-out keys get their defaults, an explicit
// empty pattern stays (it allows nothing), and a bad pattern names its key.
func TestLoadTopicPermissions(t *testing.T) {
	name := writeFile(t, "[[router.topic_permissions]]\nuser = \"u\"\nread = \"\"\n\n[[router.topic_permissions]]\nuser = \"v\"\ndeny_read = \"(\"\n")
	c, _, err := Load([]string{"--config", name}, env(nil))
	if got := keys(err); !slices.Equal(got, []string{"router.topic_permissions[1].deny_read"}) {
		t.Fatalf("problems %q (%v)", got, err)
	}
	p := c.Router.TopicPermissions[0]
	if p.VHost != "/" || p.Exchange != "amq.topic" || p.WritePattern() != ".*" || p.Read == nil || *p.Read != "" {
		t.Fatalf("entry 0 = %+v (write %q, read %q)", p, p.WritePattern(), p.ReadPattern())
	}
	var zero TopicPermission
	if zero.WritePattern() != AllPattern || zero.ReadPattern() != AllPattern {
		t.Fatal("a nil pattern is not everything")
	}
}

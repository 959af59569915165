package conf

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
)

// defaults is what default.toml must say; a change to either is deliberate.
var defaults = Config{
	DataDir: "./data",
	Log:     Log{Level: "info", Format: "text"},
	Router: Router{
		DefaultVHost:        "/",
		DefaultUser:         "guest",
		DefaultPass:         "guest",
		LoopbackUsers:       []string{"guest"},
		MemoryBudget:        256 * MiB,
		DiskFreeLimit:       50 * MiB,
		MemoryHighWatermark: 0.6,
		MaxMessageSize:      128 * MiB,
		TopicPermissions:    []TopicPermission{},
		Provenance:          true,
	},
	Storage: Storage{MemtableSize: 64 * MiB, CacheSize: 128 * MiB},
	Transport: Transport{
		EventLoops:          0,
		TickInterval:        time.Second,
		MaxInbound:          4 * MiB,
		MaxOutbound:         16 * MiB,
		SlowConsumerTimeout: time.Minute,
		MaxConnections:      0,
	},
	AMQP: AMQP{Listen: ":5672", FrameMax: 131072, ChannelMax: 2047, Heartbeat: 60 * time.Second},
	MQTT: MQTT{Listen: ":1883", VHost: "/", Exchange: "amq.topic", TopicMode: TopicModeSwap,
		RetainedMaxMessages: 100000, RetainedMaxBytes: 64 * MiB, TopicAliasMaximum: 32, RevealRefusals: true},
	STOMP: STOMP{Listen: ":61613", HeartBeat: 10 * time.Second},
}

func TestDefaults(t *testing.T) {
	d := Defaults()
	if !reflect.DeepEqual(d, defaults) {
		t.Fatalf("Defaults() =\n%+v\nwant\n%+v", d, defaults)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	// Each call returns its own copy.
	d.Router.LoopbackUsers[0] = "changed"
	if Defaults().Router.LoopbackUsers[0] != "guest" {
		t.Fatal("Defaults shares state between calls")
	}
}

// TestDefaultTOMLDocumentsEveryKey checks that default.toml, the example
// configuration, sets every key Config has and says what it is for.
func TestDefaultTOMLDocumentsEveryKey(t *testing.T) {
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(DefaultTOML)).Decode(&c)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(DefaultTOML), "\n")
	for _, key := range tomlKeys(reflect.TypeFor[Config](), nil) {
		if !md.IsDefined(key...) {
			t.Errorf("default.toml does not set %s", strings.Join(key, "."))
			continue
		}
		// The key's line, or the block of key lines it is in, follows a comment.
		name := key[len(key)-1] + " = "
		for i, l := range lines {
			if !strings.HasPrefix(l, name) {
				continue
			}
			j := i - 1
			for j >= 0 && strings.Contains(lines[j], " = ") && !strings.HasPrefix(lines[j], "#") {
				j--
			}
			if j < 0 || !strings.HasPrefix(lines[j], "#") {
				t.Errorf("default.toml: %s has no comment", strings.Join(key, "."))
			}
		}
	}
}

// tomlKeys lists the leaf keys of struct type t, as paths.
func tomlKeys(t reflect.Type, prefix []string) [][]string {
	var keys [][]string
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("toml")
		if tag == "" || tag == "-" {
			continue
		}
		path := append(append([]string(nil), prefix...), tag)
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, tomlKeys(f.Type, path)...)
			continue
		}
		keys = append(keys, path)
	}
	return keys
}

func TestSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		str  string
	}{
		{"0", 0, "0B"},
		{"1", 1, "1B"},
		{"1023", 1023, "1023B"},
		{"1024", KiB, "1KiB"},
		{"512B", 512, "512B"},
		{"4KiB", 4 * KiB, "4KiB"},
		{"1536KiB", 1536 * KiB, "1536KiB"},
		{"128MiB", 128 * MiB, "128MiB"},
		{" 64 MiB ", 64 * MiB, "64MiB"},
		{"2GiB", 2 * GiB, "2GiB"},
		{"3TiB", 3 * TiB, "3TiB"},
		{"134217728", 128 * MiB, "128MiB"},
	} {
		got, err := ParseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			continue
		}
		if got.String() != tc.str {
			t.Errorf("Size(%d).String() = %q, want %q", got, got.String(), tc.str)
		}
		if back, err := ParseSize(got.String()); err != nil || back != got {
			t.Errorf("ParseSize(%q) = %d, %v: String does not round-trip", got.String(), back, err)
		}
	}
	for _, in := range []string{"", "MiB", "-1", "1.5MiB", "12MB", "1 mib", "10K", "0x10", "9999999TiB", "9223372036854775808"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

// TestConnectionLimit: transport.max_connections 0 is 90% of the
// open-files soft limit, never 0; a set value is used as it is.
func TestConnectionLimit(t *testing.T) {
	for _, tc := range []struct {
		max    int
		nofile uint64
		want   int
	}{
		{0, 1024, 921},
		{0, 1048576, 943718},
		{0, 10, 9},
		{0, 1, 1},
		{0, 0, 1},
		{0, ^uint64(0), maxConnections}, // RLIM_INFINITY
		{500, 1024, 500},
		{5000, 1024, 5000}, // the operator's word, even above the descriptors
	} {
		tr := Transport{MaxConnections: tc.max}
		if got := tr.ConnectionLimit(tc.nofile); got != tc.want {
			t.Errorf("max_connections %d, nofile %d: limit %d, want %d", tc.max, tc.nofile, got, tc.want)
		}
	}
}

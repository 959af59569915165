package conf

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
)

// Options are the command-line settings that are not configuration values.
type Options struct {
	// ConfigFile is the file given with --config or JUNCTION_CONFIG; "" if
	// none was given (then only defaults, environment and flags apply).
	ConfigFile string
	// Check asks the caller to validate the configuration and exit (--check).
	Check bool
}

// setting is a configuration value that the environment and a flag can set.
type setting struct {
	flag, env, key string
	arg, usage     string
	field          func(*Config) *string
}

// settings are the values settable from the environment and flags, in the
// order Usage lists them.
var settings = []setting{
	{"data-dir", "JUNCTION_DATA_DIR", "data_dir", "DIR", "directory for durable state, created if missing",
		func(c *Config) *string { return &c.DataDir }},
	{"amqp-listen", "JUNCTION_AMQP_LISTEN", "amqp.listen", "ADDR", "AMQP 0-9-1 listen address, host:port",
		func(c *Config) *string { return &c.AMQP.Listen }},
	{"mqtt-listen", "JUNCTION_MQTT_LISTEN", "mqtt.listen", "ADDR", "MQTT listen address, host:port",
		func(c *Config) *string { return &c.MQTT.Listen }},
	{"stomp-listen", "JUNCTION_STOMP_LISTEN", "stomp.listen", "ADDR", "STOMP listen address, host:port",
		func(c *Config) *string { return &c.STOMP.Listen }},
	{"log-level", "JUNCTION_LOG_LEVEL", "log.level", "LEVEL", "debug, info, warn or error",
		func(c *Config) *string { return &c.Log.Level }},
	{"log-format", "JUNCTION_LOG_FORMAT", "log.format", "FORMAT", "text or json",
		func(c *Config) *string { return &c.Log.Format }},
	{"debug-listen", "JUNCTION_DEBUG_LISTEN", "debug_listen", "ADDR", "net/http/pprof listen address, host:port; bind it to loopback",
		func(c *Config) *string { return &c.DebugListen }},
}

// Names of the settings that are not configuration values.
const (
	configFlag = "config"
	configEnv  = "JUNCTION_CONFIG"
	checkFlag  = "check"
)

// Load builds the configuration from, lowest to highest precedence: the
// defaults (default.toml), the TOML file named by --config or
// JUNCTION_CONFIG, the environment variables in settings, and the flags in
// args (os.Args[1:]). env looks up one environment variable; pass
// os.LookupEnv. A variable that is set but empty counts: an empty
// JUNCTION_MQTT_LISTEN disables MQTT, as does --mqtt-listen= on the command
// line.
//
// On failure Load returns everything it found wrong at once: an errors.Join
// of *Error values (see Problems), each naming its key and, when the value
// came from the environment or a flag, where it came from. Errors in the
// command line itself also match ErrUsage; -h and --help return ErrHelp. The
// Config and Options returned alongside an error hold what could be loaded,
// for callers that report more.
func Load(args []string, env func(string) (string, bool)) (Config, Options, error) {
	var opts Options
	fs := flag.NewFlagSet("junction", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the caller prints Usage
	fs.Usage = func() {}
	fs.StringVar(&opts.ConfigFile, configFlag, "", "")
	fs.BoolVar(&opts.Check, checkFlag, false, "")
	flagVals := make([]*string, len(settings))
	for i, s := range settings {
		flagVals[i] = fs.String(s.flag, "", "")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Config{}, opts, ErrHelp
		}
		return Config{}, opts, fmt.Errorf("%w: %w", ErrUsage, &Error{Key: "flags", Msg: err.Error()})
	}
	if fs.NArg() > 0 {
		return Config{}, opts, fmt.Errorf("%w: %w", ErrUsage, &Error{Key: "flags", Msg: fmt.Sprintf("unexpected argument %q", fs.Arg(0))})
	}
	setFlags := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })

	if !setFlags[configFlag] {
		if v, ok := env(configEnv); ok {
			opts.ConfigFile = v
		}
	}

	c := Defaults()
	var errs []error
	if opts.ConfigFile != "" {
		errs = append(errs, loadFile(opts.ConfigFile, &c)...)
	}

	// from records, per key, which environment variable or flag set it last.
	from := map[string]string{}
	for i, s := range settings {
		if v, ok := env(s.env); ok {
			*s.field(&c) = v
			from[s.key] = s.env
		}
		if setFlags[s.flag] {
			*s.field(&c) = *flagVals[i]
			from[s.key] = "--" + s.flag
		}
	}

	for _, p := range Problems(c.Validate()) {
		if src, ok := from[p.Key]; ok {
			p.Msg += " (from " + src + ")"
		}
		errs = append(errs, p)
	}
	return c, opts, join(errs)
}

// tomlErr matches the decoder's error text: line, last key, message.
var tomlErr = regexp.MustCompile(`^toml: line (\d+)(?: \(last key "([^"]*)"\))?: (?s:(.*))$`)

// loadFile decodes the TOML file name over c.
func loadFile(name string, c *Config) []error {
	doc, err := os.ReadFile(name)
	if err != nil {
		return []error{&Error{Key: "config", Msg: err.Error()}}
	}
	err = decode(doc, c)
	if err == nil {
		return nil
	}
	if ps := Problems(err); len(ps) > 0 { // unknown keys
		errs := make([]error, len(ps))
		for i, p := range ps {
			p.Msg += " in " + name
			errs[i] = p
		}
		return errs
	}
	// A syntax or type error: the decoder stops at the first one. Its text is
	// "toml: line N (last key "k"): msg" or "toml: line N: msg" whether it is
	// a toml.ParseError or not; report k as the key and N with the file.
	key, msg := "config", err.Error()
	if m := tomlErr.FindStringSubmatch(msg); m != nil {
		if m[2] != "" {
			key = m[2]
		}
		msg = fmt.Sprintf("%s (%s line %s)", m[3], name, m[1])
	} else {
		msg = fmt.Sprintf("%s (%s)", msg, name)
	}
	return []error{&Error{Key: key, Msg: msg}}
}

// Usage writes the command-line help: every flag, its environment variable
// and its default.
func Usage(w io.Writer) {
	d := Defaults()
	var b strings.Builder
	b.WriteString(`Usage: junction [flags]

Junction is a message broker speaking AMQP 0-9-1, MQTT and STOMP.

Configuration comes from, lowest to highest precedence: built-in defaults,
the TOML file given with --config, environment variables, flags. The built-in
defaults are conf/default.toml in the source, which documents every key.

Flags:
`)
	row := func(flag, usage string) { fmt.Fprintf(&b, "  %s\n        %s\n", flag, usage) }
	row("--config FILE", "TOML configuration file (env "+configEnv+")")
	for _, s := range settings {
		row("--"+s.flag+" "+s.arg, fmt.Sprintf("%s\n        (env %s, key %s, default %q)", s.usage, s.env, s.key, *s.field(&d)))
	}
	row("--check", "validate the configuration, print every problem, and exit")
	row("-h, --help", "print this help and exit")
	b.WriteString(`
An empty listen address disables that protocol: --mqtt-listen= or
--mqtt-listen "" on the command line, JUNCTION_MQTT_LISTEN= in the environment.

Exit status: 0 on success and for --help, 1 if the configuration is invalid
or the broker fails, 2 if the command line is malformed.
`)
	_, _ = io.WriteString(w, b.String())
}

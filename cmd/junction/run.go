package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/junction-broker/junction/conf"
)

// Exit codes.
const (
	exitOK     = 0 // success, --check passed, --help
	exitFail   = 1 // invalid configuration, unusable data dir, broker failure
	exitUsage  = 2 // malformed command line
	stopBudget = 30 * time.Second
)

// run is the whole program but for signal handling: it loads and validates
// the configuration, prepares the data directory, starts the broker and stops
// it when ctx is cancelled. env looks up environment variables (os.LookupEnv);
// diagnostics and logs go to stderr. It returns the exit code.
func run(ctx context.Context, args []string, env func(string) (string, bool), stderr io.Writer) int {
	cfg, opts, err := conf.Load(args, env)
	switch {
	case errors.Is(err, conf.ErrHelp):
		conf.Usage(stderr)
		return exitOK
	case errors.Is(err, conf.ErrUsage):
		fmt.Fprintf(stderr, "junction: %v\nRun junction --help for usage.\n", strings.TrimSpace(problemLines(err)))
		return exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "junction: invalid configuration:\n%v\n", problemLines(err))
		return exitFail
	}
	if opts.Check {
		src := "built-in defaults"
		if opts.ConfigFile != "" {
			src = opts.ConfigFile
		}
		fmt.Fprintf(stderr, "junction: configuration OK (%s, environment and flags)\n", src)
		return exitOK
	}

	if err := prepareDataDir(cfg.DataDir); err != nil {
		fmt.Fprintf(stderr, "junction: %v\n", err)
		return exitFail
	}
	log := cfg.Logger(stderr)
	log.Info("starting", "data_dir", cfg.DataDir, "amqp", cfg.AMQP.Listen, "mqtt", cfg.MQTT.Listen, "stomp", cfg.STOMP.Listen)
	// The debug listener comes up first and goes down last, so that a slow
	// start (recovery) or a stuck stop can be profiled.
	if cfg.DebugListen != "" {
		d, err := startDebug(cfg.DebugListen, log.With("component", "debug"))
		if err != nil {
			log.Error("start failed", "err", err)
			return exitFail
		}
		defer func() { _ = d.stop() }()
	}
	// A signal during start-up is honoured once the broker is up, so that
	// it still stops cleanly: start-up itself is bounded.
	b, stop, err := startBroker(context.WithoutCancel(ctx), cfg, log)
	if err != nil {
		log.Error("start failed", "err", err)
		return exitFail
	}
	log.Info("started")

	code := exitOK
	select {
	case <-ctx.Done():
		log.Info("stopping", "cause", context.Cause(ctx))
	case <-b.failed:
		// Nothing can be acknowledged any more; stopping lets the next
		// start recover everything acknowledged from the write-ahead log.
		log.Error("stopping: storage failed and can no longer make messages durable")
		code = exitFail
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopBudget)
	defer cancel()
	if err := stop(sctx); err != nil {
		log.Error("stop failed", "err", err)
		return exitFail
	}
	log.Info("stopped")
	return code
}

// problemLines formats err's configuration problems one per indented line.
func problemLines(err error) string {
	ps := conf.Problems(err)
	if len(ps) == 0 {
		return "  " + err.Error()
	}
	var s string
	for i, p := range ps {
		if i > 0 {
			s += "\n"
		}
		s += "  " + p.Error()
	}
	return s
}

// prepareDataDir creates dir if needed and proves it writable by creating
// and removing a file in it, so that a bad data_dir fails at start with a
// clear message rather than at the first durable write.
func prepareDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("data dir %q: cannot create: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".junction-write-test-*")
	if err != nil {
		return fmt.Errorf("data dir %q: not writable: %w", dir, err)
	}
	name := f.Name()
	err = errors.Join(f.Close(), os.Remove(name))
	if err != nil {
		return fmt.Errorf("data dir %q: not writable: %w", dir, err)
	}
	return nil
}

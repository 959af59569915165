package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleLogger routes Pebble's logging to the store's slog.Logger: Infof
// at Debug (Pebble's routine chatter), Errorf at Error. Fatalf is where
// Pebble gives up on an error it cannot handle; instead of exiting the
// process as Pebble's default logger does, it puts the store in the failed
// state and panics, which the committer recovers (see the package doc).
type pebbleLogger struct{ s *Store }

// fatalError is the panic value of pebbleLogger.Fatalf.
type fatalError struct{ msg string }

func (e fatalError) Error() string { return "pebble fatal: " + e.msg }

func (l pebbleLogger) Infof(format string, args ...any) {
	if l.s.log.Enabled(context.Background(), slog.LevelDebug) {
		l.s.log.Debug(fmt.Sprintf(format, args...), "source", "pebble")
	}
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.s.log.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

func (l pebbleLogger) Fatalf(format string, args ...any) {
	e := fatalError{fmt.Sprintf(format, args...)}
	l.s.log.Error(e.msg, "source", "pebble", "fatal", true)
	l.s.fail(e)
	panic(e)
}

// eventListener logs the Pebble events an operator should see. Background
// (flush, compaction) errors are logged, not fatal: Pebble retries them and
// the WAL still holds the data. Corruption fails the store.
func (s *Store) eventListener() *pebble.EventListener {
	return &pebble.EventListener{
		BackgroundError: func(err error) {
			s.log.Error("pebble background error", "err", err)
		},
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			err := fmt.Errorf("data corruption in %s: %w", info.Path, info.Details)
			if info.Details == nil {
				err = errors.New("data corruption in " + info.Path)
			}
			s.fail(err)
		},
		DiskSlow: func(info pebble.DiskSlowInfo) {
			s.log.Warn("disk slow", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
		},
		WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
			s.log.Warn("pebble write stall", "reason", info.Reason)
		},
		WriteStallEnd: func() {
			s.log.Info("pebble write stall ended")
		},
	}
}

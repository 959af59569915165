package transport

import (
	"context"
	"fmt"
	"log/slog"
)

// gnetLogger routes gnet's own log lines into our slog.Logger. gnet's Info
// lines are boot chatter and go to Debug; our Info lines are ours.
type gnetLogger struct{ l *slog.Logger }

func (g gnetLogger) logf(lvl slog.Level, format string, args ...any) {
	if g.l.Enabled(context.Background(), lvl) {
		g.l.Log(context.Background(), lvl, fmt.Sprintf(format, args...), "component", "gnet")
	}
}

func (g gnetLogger) Debugf(format string, args ...any) { g.logf(slog.LevelDebug, format, args...) }
func (g gnetLogger) Infof(format string, args ...any)  { g.logf(slog.LevelDebug, format, args...) }
func (g gnetLogger) Warnf(format string, args ...any)  { g.logf(slog.LevelWarn, format, args...) }
func (g gnetLogger) Errorf(format string, args ...any) { g.logf(slog.LevelError, format, args...) }

// Fatalf is logged at Error: gnet v2.10.0 calls it only on kqueue platforms,
// and a library must not exit the process.
func (g gnetLogger) Fatalf(format string, args ...any) { g.logf(slog.LevelError, format, args...) }

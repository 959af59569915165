package conf

import (
	"io"
	"log/slog"
	"strings"
)

// SlogLevel returns the slog level for l.Level (case-insensitive), or
// slog.LevelInfo for a level Validate would reject.
func (l Log) SlogLevel() slog.Level {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Logger returns a logger writing to w in c.Log's format ("json", otherwise
// text) at c.Log's level. It is the broker's only logger; components receive
// it, or one derived from it with With, and never use slog.Default.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.Log.SlogLevel()}
	if strings.EqualFold(c.Log.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

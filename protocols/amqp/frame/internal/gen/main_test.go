package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestUpToDate runs the generator in memory and compares its output with
// the committed spec_gen.go, so that the two cannot drift.
func TestUpToDate(t *testing.T) {
	want, err := generate(specJSON)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join("..", "..", out))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run go generate ./protocols/amqp/frame", out)
	}
}

func TestCamel(t *testing.T) {
	for in, want := range map[string]string{
		"routing-key":      "RoutingKey",
		"channel-id":       "ChannelID",
		"nowait":           "NoWait",
		"get-ok":           "GetOk",
		"FRAME-MIN-SIZE":   "FrameMinSize",
		"update-secret-ok": "UpdateSecretOk",
	} {
		if got := camel(in); got != want {
			t.Errorf("camel(%q) = %q, want %q", in, got, want)
		}
	}
}

package bench

import (
	"testing"

	"github.com/junction-broker/junction/conf"
)

// BenchmarkConfigLoad measures broker configuration loading, the first step
// of every scenario's broker start; a placeholder until scenarios land.
func BenchmarkConfigLoad(b *testing.B) {
	noEnv := func(string) (string, bool) { return "", false }
	args := []string{"--data-dir", b.TempDir(), "--amqp-listen", "127.0.0.1:0"}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := conf.Load(args, noEnv); err != nil {
			b.Fatal(err)
		}
	}
}

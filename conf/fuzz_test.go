package conf

import (
	"errors"
	"testing"
)

// FuzzParseSize: no panic; a parsed size prints back to the same value.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "128MiB", "1GiB", "4 KiB", "12345", "1.5MiB", "-1", "99999999999TiB", "MiB", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d: negative", s, n)
		}
		again, err := ParseSize(n.String())
		if err != nil || again != n {
			t.Fatalf("ParseSize(%q) = %d prints as %q, which parses to %d (%v)", s, n, n.String(), again, err)
		}
	})
}

// FuzzConfigFile: any file content either loads into a configuration that
// validates or fails with problems naming their keys; never a panic.
func FuzzConfigFile(f *testing.F) {
	f.Add(DefaultTOML)
	f.Add([]byte("data_dir = \"/tmp/x\"\n[log]\nlevel = \"debug\"\n"))
	f.Add([]byte("[amqp]\nlisten = \"\"\n[mqtt]\nlisten = \"\"\n[stomp]\nlisten = \"\"\n"))
	f.Add([]byte("lisen = 1\n[router]\nmemory_budget = \"lots\"\n"))
	f.Add([]byte("[transport]\ntick_interval = \"-5s\"\nmax_inbound = 0\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		c := Defaults()
		if err := decode(doc, &c); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("validation error without a key: %v", err)
			}
		}
	})
}

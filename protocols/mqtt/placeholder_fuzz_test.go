package mqtt

import "testing"

// FuzzPlaceholderFeed: the CONNECT sniffing never panics and keeps
// 0 <= n <= len(in).
func FuzzPlaceholderFeed(f *testing.F) {
	f.Add(connect(4))
	f.Add(connect(5))
	f.Add([]byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Add([]byte{0x10, 0x00, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		s := Placeholder{}.Open(nil)
		n, err := s.Feed(in)
		if n < 0 || n > len(in) {
			t.Fatalf("n = %d for %d bytes", n, len(in))
		}
		if err != nil {
			s.Fail(err)
		}
	})
}

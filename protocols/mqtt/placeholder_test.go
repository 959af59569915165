package mqtt

import (
	"bytes"
	"testing"
)

func connect(level byte) []byte {
	body := []byte{0x00, 0x04, 'M', 'Q', 'T', 'T', level, 0x02, 0x00, 0x3c, 0x00, 0x01, 'c'}
	return append([]byte{0x10, byte(len(body))}, body...)
}

func TestPlaceholderConnack(t *testing.T) {
	for _, c := range []struct {
		level byte
		want  []byte
	}{{4, connackUnavailable3}, {3, connackUnavailable3}, {5, connackUnavailable5}} {
		s := Placeholder{}.Open(nil)
		in := connect(c.level)
		if n, err := s.Feed(in[:5]); n != 0 || err != nil {
			t.Fatalf("partial CONNECT consumed: %d %v", n, err)
		}
		n, err := s.Feed(in)
		if n != len(in) || err == nil {
			t.Fatalf("level %d: %d %v", c.level, n, err)
		}
		if got := s.Fail(err); !bytes.Equal(got, c.want) {
			t.Errorf("level %d: CONNACK % x, want % x", c.level, got, c.want)
		}
	}
	s := Placeholder{}.Open(nil)
	if _, err := s.Feed([]byte{0x30, 0x00}); err == nil || s.Fail(err) != nil {
		t.Error("a non-CONNECT first packet must be closed without a reply")
	}
}

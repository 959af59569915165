package stomp

import (
	"bytes"
	"testing"
)

func TestPlaceholderError(t *testing.T) {
	s := Placeholder{}.Open(nil)
	if n, err := s.Feed([]byte("CONN")); n != 0 || err != nil {
		t.Fatalf("partial line consumed: %d %v", n, err)
	}
	_, err := s.Feed([]byte("CONNECT\naccept-version:1.2\n\n\x00"))
	if err == nil {
		t.Fatal("no refusal")
	}
	if got := s.Fail(err); !bytes.HasPrefix(got, []byte("ERROR\n")) || got[len(got)-1] != 0 {
		t.Fatalf("reply %q", got)
	}
}

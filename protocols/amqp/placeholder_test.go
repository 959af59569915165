package amqp

import (
	"bytes"
	"testing"
)

func TestPlaceholderRefusesWithProtocolHeader(t *testing.T) {
	s := Placeholder{}.Open(nil)
	if n, err := s.Feed([]byte("AMQP")); n != 0 || err != nil {
		t.Fatalf("half a header consumed: %d %v", n, err)
	}
	n, err := s.Feed([]byte("AMQP\x00\x00\x09\x01"))
	if n != 8 || err == nil {
		t.Fatalf("got %d %v", n, err)
	}
	if got := s.Fail(err); !bytes.Equal(got, protocolHeader) {
		t.Fatalf("reply %q", got)
	}
}

package load

import "testing"

func TestParseStompFrame(t *testing.T) {
	for _, tc := range []struct {
		name, in       string
		cmd, ack, body string
		n              int
	}{
		{"content-length with NULs", "MESSAGE\nack:7\ncontent-length:3\n\na\x00b\x00rest", "MESSAGE", "7", "a\x00b", 36},
		{"NUL-terminated", "MESSAGE\nack:x\n\nhello\x00", "MESSAGE", "x", "hello", 21},
		{"CRLF", "RECEIPT\r\nreceipt-id:r1\r\n\r\n\x00", "RECEIPT", "", "", 27},
		{"no headers", "MESSAGE\n\nz\x00", "MESSAGE", "", "z", 11},
		{"partial headers", "MESSAGE\nack:1\n", "", "", "", 0},
		{"partial body", "MESSAGE\ncontent-length:5\n\nab", "", "", "", 0},
	} {
		var f stompFrame
		n, err := parseStompFrame([]byte(tc.in), &f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if n != tc.n {
			t.Errorf("%s: consumed %d, want %d", tc.name, n, tc.n)
			continue
		}
		if n == 0 {
			continue
		}
		if f.command != tc.cmd || string(f.header("ack")) != tc.ack || string(f.body) != tc.body {
			t.Errorf("%s: got %q ack %q body %q", tc.name, f.command, f.header("ack"), f.body)
		}
	}
	var f stompFrame
	if _, err := parseStompFrame([]byte("MESSAGE\ncontent-length:1\n\nab"), &f); err == nil {
		t.Error("a body not followed by NUL was accepted")
	}
}

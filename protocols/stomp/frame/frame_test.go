package frame

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// parseAll parses in whole, returning a description of every frame or
// heart-beat and whether it ended in an error.
func parseAll(p *Parser, in []byte) (got []string, rest int, err error) {
	n := 0
	for {
		f, k, e := p.Parse(in[n:])
		if e != nil {
			return got, len(in) - n, e
		}
		if k == 0 {
			return got, len(in) - n, nil
		}
		n += k
		got = append(got, describe(f))
	}
}

func describe(f *Frame) string {
	if f == nil {
		return "EOL"
	}
	var b strings.Builder
	b.WriteString(f.Command)
	for i := 0; i < f.Header.Len(); i++ {
		k, v := f.Header.GetAt(i)
		fmt.Fprintf(&b, "|%q=%q", k, v)
	}
	fmt.Fprintf(&b, "|body=%q", f.Body)
	return b.String()
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    Version
		in   string
		want []string
		err  string
	}{
		{"simple", V12, "SEND\ndestination:/queue/a\n\nhello\x00", []string{`SEND|"destination"="/queue/a"|body="hello"`}, ""},
		{"crlf and heart-beats", V12, "\n\r\nSEND\r\ndestination:/queue/a\r\n\r\nhi\x00\n\n", []string{"EOL", "EOL", `SEND|"destination"="/queue/a"|body="hi"`, "EOL", "EOL"}, ""},
		{"content-length with NULs", V12, "SEND\ncontent-length:3\n\na\x00b\x00", []string{`SEND|"content-length"="3"|body="a\x00b"`}, ""},
		{"repeated header first wins", V12, "SEND\nx:1\nx:2\n\n\x00", []string{`SEND|"x"="1"|"x"="2"|body=""`}, ""},
		{"escapes 1.2", V12, "SEND\na\\cb:c\\nd\\\\e\\rf\n\n\x00", []string{`SEND|"a:b"="c\nd\\e\rf"|body=""`}, ""},
		{"escapes 1.1 no \\r", V11, "SEND\na:\\r\n\n\x00", nil, "invalid header"},
		{"escapes 1.0 none", V10, "SEND\na:\\t\\n\n\n\x00", []string{`SEND|"a"="\\t\\n"|body=""`}, ""},
		{"CONNECT not unescaped", V12, "CONNECT\npasscode:a\\tb\n\n\x00", []string{`CONNECT|"passcode"="a\\tb"|body=""`}, ""},
		{"undefined escape", V12, "SEND\na:\\t\n\n\x00", nil, "invalid header"},
		{"unknown command", V12, "FOO\n\n\x00", nil, "unknown command"},
		{"no colon", V12, "SEND\nabc\n\n\x00", nil, "malformed header"},
		{"bad content-length", V12, "SEND\ncontent-length:x\n\n\x00", nil, "invalid content-length"},
		{"content-length mismatch", V12, "SEND\ncontent-length:1\n\nab\x00", nil, "malformed frame"},
		{"content-length too large", V12, "SEND\ncontent-length:100000\n\n", nil, "frame too large"},
		{"body too large", V12, "SEND\n\n" + strings.Repeat("x", 300), nil, "frame too large"},
		{"header line too long", V12, "SEND\na:" + strings.Repeat("x", 100), nil, "header line too long"},
		{"too many headers", V12, "SEND\n" + strings.Repeat("a:b\n", 9), nil, "too many headers"},
		// Declared sizes beyond 31, 32, 63 and 64 bits are too large, not
		// malformed.
		{"content-length 2^31", V12, "SEND\ncontent-length:2147483648\n\n", nil, "frame too large"},
		{"content-length 2^32-1", V12, "SEND\ncontent-length:4294967295\n\n", nil, "frame too large"},
		{"content-length 2^63", V12, "SEND\ncontent-length:9223372036854775808\n\n", nil, "frame too large"},
		{"content-length 2^64", V12, "SEND\ncontent-length:18446744073709551616\n\n", nil, "frame too large"},
		{"content-length negative", V12, "SEND\ncontent-length:-1\n\n", nil, "invalid content-length"},
		// Headers are UTF-8 from 1.1 on; CONNECT, parsed before the version
		// is known, and 1.0 frames are octets. No header carries a NUL.
		{"invalid UTF-8 1.2", V12, "SEND\na:\xc3\x28\n\n\x00", nil, "invalid header"},
		{"overlong UTF-8 1.1", V11, "SEND\n\xc0\xae:b\n\n\x00", nil, "invalid header"},
		{"UTF-8 1.2", V12, "SEND\na:\u00e9\u6f22\n\n\x00", []string{"SEND|\"a\"=\"\u00e9\u6f22\"|body=\"\""}, ""},
		{"octets 1.0", V10, "SEND\na:\xff\n\n\x00", []string{`SEND|"a"="\xff"|body=""`}, ""},
		{"octets in CONNECT", V12, "CONNECT\npasscode:\xff\n\n\x00", []string{`CONNECT|"passcode"="\xff"|body=""`}, ""},
		{"NUL in a header value", V10, "SEND\na:b\x00c\ncontent-length:0\n\n\x00", nil, "invalid header"},
		{"NUL in a header name", V12, "SEND\na\x00:b\n\n\x00", nil, "invalid header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Parser{Limits: Limits{MaxFrameSize: 256, MaxHeaders: 8, MaxHeaderLine: 64}, Version: tc.v}
			got, _, err := parseAll(p, []byte(tc.in))
			if tc.err != "" {
				fe, ok := err.(*Error)
				if !ok || fe.Message != tc.err {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	for _, v := range []Version{V10, V11, V12} {
		hs := []string{"k:ey", "va\nl\\ue\r", "destination", "/queue/a"}
		b := Append(nil, v, "MESSAGE", hs, []byte("a\x00b"))
		p := &Parser{Version: v, Server: true}
		f, n, err := p.Parse(b)
		if err != nil || n != len(b) {
			t.Fatalf("%v: %v %d/%d", v, err, n, len(b))
		}
		k, val := f.Header.GetAt(0)
		switch v {
		case V10:
			if k != "k_ey" || val != "va l\\ue " {
				t.Fatalf("1.0 header %q=%q", k, val)
			}
		case V11:
			if k != "k:ey" || val != "va\nl\\ue " {
				t.Fatalf("1.1 header %q=%q", k, val)
			}
		case V12:
			if k != "k:ey" || val != "va\nl\\ue\r" {
				t.Fatalf("1.2 header %q=%q", k, val)
			}
		}
		if string(f.Body) != "a\x00b" {
			t.Fatalf("body %q", f.Body)
		}
	}
	// CONNECTED is never escaped.
	b := Append(nil, V12, "CONNECTED", []string{"server", "a:b"}, nil)
	if !bytes.Contains(b, []byte("server:a:b\n")) {
		t.Fatalf("CONNECTED %q", b)
	}
}

// feedSplit parses in delivered in chunks of the given sizes, the way the
// transport offers growing unconsumed input.
func feedSplit(p *Parser, in []byte, sizes []byte) (got []string, err error) {
	var buf []byte
	pos, si := 0, 0
	for pos < len(in) {
		step := 1
		if len(sizes) > 0 {
			step = int(sizes[si%len(sizes)])%13 + 1
			si++
		}
		end := min(pos+step, len(in))
		buf = append(buf, in[pos:end]...)
		pos = end
		for {
			f, k, e := p.Parse(buf)
			if e != nil {
				return got, e
			}
			if k == 0 {
				break
			}
			buf = buf[k:]
			got = append(got, describe(f))
		}
	}
	return got, nil
}

// TestHeadFillingTheLimitWithAHugeLength: a head exactly as long as the
// frame limit leaves no room for a body; a content-length near 2^63 must
// be refused as too large, not wrap the body's end around (it panicked
// with an index out of range, before the login).
func TestHeadFillingTheLimitWithAHugeLength(t *testing.T) {
	lim := Limits{MaxFrameSize: 256, MaxHeaders: 8, MaxHeaderLine: 64}
	for _, cl := range []string{"9223372036854775807", "18446744073709551615", "1"} {
		head := "SEND\ncontent-length:" + cl + "\n"
		for left := lim.MaxFrameSize - len(head) - 1; left > 0; { // header lines of at most 60 bytes
			n := min(left, 60)
			head += "x:" + strings.Repeat("y", n-3) + "\n"
			left -= n
		}
		in := head + "\n" + "body\x00"
		if i := strings.Index(in, "\n\n"); i+2 != lim.MaxFrameSize {
			t.Fatalf("head is %d bytes, want %d", i+2, lim.MaxFrameSize)
		}
		_, _, err := parseAll(&Parser{Limits: lim, Version: V12}, []byte(in))
		var fe *Error
		if !errors.As(err, &fe) || fe.Message != "frame too large" {
			t.Fatalf("content-length %s: err %v, want frame too large", cl, err)
		}
	}
}

func FuzzFramer(f *testing.F) {
	seeds := []string{
		"SEND\ndestination:/queue/a\n\nhello\x00",
		"\n\r\nSEND\r\ndestination:/queue/a\r\n\r\nhi\x00\n\n",
		"SEND\ncontent-length:3\n\na\x00b\x00SEND\n\n\x00",
		"CONNECT\naccept-version:1.2\nhost:/\n\n\x00",
		"SUBSCRIBE\nid:1\ndestination:/topic/a\nack:client\n\n\x00",
		"SEND\na\\cb:c\\nd\\\\e\\rf\n\n\x00",
		"SEND\na:\\t\n\n\x00",
		"SEND\ncontent-length:1000\n\n",
		"FOO\n\n\x00",
		"SEND\n" + strings.Repeat("a:b\n", 9) + "\n\x00",
		// A head of exactly the limit (256) and a length near 2^63.
		"SEND\ncontent-length:9223372036854775807\n" + strings.Repeat("x:"+strings.Repeat("y", 57)+"\n", 3) +
			"x:" + strings.Repeat("y", 32) + "\n\nbody\x00",
	}
	for i, s := range seeds {
		f.Add([]byte(s), []byte{byte(i), 3, 7}, uint8(i%3))
	}
	f.Fuzz(func(t *testing.T, in, sizes []byte, ver uint8) {
		lim := Limits{MaxFrameSize: 256, MaxHeaders: 8, MaxHeaderLine: 64}
		v := Version(ver % 3)
		whole, _, err1 := parseAll(&Parser{Limits: lim, Version: v}, in)
		split, err2 := feedSplit(&Parser{Limits: lim, Version: v}, in, sizes)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("whole err %v, split err %v", err1, err2)
		}
		if fmt.Sprint(whole) != fmt.Sprint(split) {
			t.Fatalf("whole %q\nsplit %q", whole, split)
		}
	})
}

package interop

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
)

// Malformed input over a raw socket. MQTT 3.1.1 has no server DISCONNECT:
// the connection just closes [MQTT-4.8.0-1]. MQTT 5 gets a DISCONNECT with
// the reason code (0x81 malformed, 0x82 protocol error, 0x90 topic name
// invalid, 0x95 packet too large) before the close. Input before CONNECT is
// closed on silently, in either version. Meanwhile a well-behaved client
// connected before keeps working, and no session panics (startMQTTServer's
// cleanup checks). Oversized and overlong remaining lengths, and a client
// that lingers after its DISCONNECT, are in the hostile-input catalogue
// (hostile_mqtt_test.go), which bounds memory and others' latency too.

// mqttMaxPacket is the packet limit the malformed-input broker runs with.
const mqttMaxPacket = 4096

// rawConnect opens a raw connection and sends a CONNECT of MQTT version v
// (4: 3.1.1, 5: 5.0) with client id id, clean start, keepalive 60s.
func rawConnect(t *testing.T, addr string, v byte, id string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	rawWrite(t, c, connectBytes(v, id))
	if first, body := rawRead(t, c); first != 0x20 || len(body) < 2 || body[1] != 0 {
		t.Fatalf("v%d: CONNACK %#x %x", v, first, body)
	}
	return c
}

func connectBytes(v byte, id string) []byte {
	vh := []byte{0, 4, 'M', 'Q', 'T', 'T', v, 0x02, 0, 60}
	if v == 5 {
		vh = append(vh, 0) // no properties
	}
	vh = append(vh, byte(len(id)>>8), byte(len(id)))
	vh = append(vh, id...)
	return append([]byte{0x10, byte(len(vh))}, vh...)
}

func rawWrite(t *testing.T, c net.Conn, b []byte) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// rawRead reads one packet (short ones: a one-byte remaining length).
func rawRead(t *testing.T, c net.Conn) (first byte, body []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("reading a packet: %v", err)
	}
	if hdr[1]&0x80 != 0 {
		t.Fatalf("packet %#x with a long remaining length", hdr[0])
	}
	body = make([]byte, hdr[1])
	if _, err := io.ReadFull(c, body); err != nil {
		t.Fatalf("reading a packet body: %v", err)
	}
	return hdr[0], body
}

// rawClosed checks that the server sends nothing more and closes c within
// the deadline (a reset counts as a close).
func rawClosed(t *testing.T, c net.Conn, within time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(within))
	var b [64]byte
	n, err := c.Read(b[:])
	switch {
	case n > 0:
		t.Fatalf("got %x, want the connection closed", b[:n])
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET):
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("connection still open after %v", within)
	default:
		t.Fatalf("read: %v", err)
	}
}

func TestMQTTMalformedInput(t *testing.T) {
	addr := startMQTTServer(t, nil, jmqtt.Config{MaxPacketSize: mqttMaxPacket})

	// The well-behaved pair, connected before any bad input.
	good := client3(t, addr, "good")
	in := subscribe3(t, good, "good/#", 1)
	check := func(t *testing.T, body string) {
		t.Helper()
		publish3(t, good, "good/x", 1, body)
		if m := recv3(t, in); m.payload != body {
			t.Fatalf("good client got %+v, want %q", m, body)
		}
	}

	for _, tc := range []struct {
		name   string
		v4, v5 []byte // after a successful CONNECT; nil: not for this version
		rc     byte   // MQTT 5 DISCONNECT reason code
	}{
		{"reserved flags: PUBLISH QoS 3",
			[]byte{0x36, 0x05, 0x00, 0x01, 'a', 0x00, 0x01}, []byte{0x36, 0x06, 0x00, 0x01, 'a', 0x00, 0x01, 0x00}, 0x81},
		{"reserved flags: SUBSCRIBE 0x80",
			[]byte{0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}, []byte{0x80, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x00}, 0x81},
		{"invalid UTF-8 topic",
			[]byte{0x30, 0x04, 0x00, 0x02, 0xC3, 0x28}, []byte{0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, 0x00}, 0x81},
		{"U+0000 in a topic",
			[]byte{0x30, 0x05, 0x00, 0x03, 'a', 0x00, 'b'}, []byte{0x30, 0x06, 0x00, 0x03, 'a', 0x00, 'b', 0x00}, 0x81},
		{"wildcard in a PUBLISH topic",
			[]byte{0x30, 0x05, 0x00, 0x03, 'a', '/', '+'}, []byte{0x30, 0x06, 0x00, 0x03, 'a', '/', '#', 0x00}, 0x90},
		{"second CONNECT", connectBytes(4, "bad"), connectBytes(5, "bad"), 0x82},
		{"unexpected packet type: CONNACK", []byte{0x20, 0x02, 0x00, 0x00}, []byte{0x20, 0x03, 0x00, 0x00, 0x00}, 0x82},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.v4 != nil {
				c := rawConnect(t, addr, 4, "bad")
				rawWrite(t, c, tc.v4)
				rawClosed(t, c, 10*time.Second)
				check(t, "after 3.1.1 "+tc.name)
			}
			if tc.v5 != nil {
				c := rawConnect(t, addr, 5, "bad")
				rawWrite(t, c, tc.v5)
				first, body := rawRead(t, c)
				if first != 0xE0 || len(body) < 1 || body[0] != tc.rc {
					t.Fatalf("v5: got %#x %x, want DISCONNECT %#x", first, body, tc.rc)
				}
				_ = c.Close() // the client closes; the server would after its linger
				check(t, "after 5.0 "+tc.name)
			}
		})
	}

	// Before CONNECT nothing is answered, whatever the bytes.
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"PUBLISH before CONNECT", []byte{0x30, 0x05, 0x00, 0x01, 'a', 'h', 'i'}},
		{"SUBSCRIBE before CONNECT", []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}},
		{"HTTP before CONNECT", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"CONNECT with reserved flag", []byte{0x10, 0x0D, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x03, 0, 60, 0, 1, 'x'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			rawWrite(t, c, tc.b)
			rawClosed(t, c, 10*time.Second)
			check(t, "after "+tc.name)
		})
	}
}

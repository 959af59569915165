package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// stompWire is a lean STOMP 1.2 client connection for the load generator:
// frames are built into a buffer and written in batches, and MESSAGE bodies
// are read straight out of the read buffer, so the generator does not cap
// what a fast broker can show (go-stomp's client costs a goroutine hop, a
// channel send and several allocations per frame).
//
// Its methods are not safe for concurrent use: a connection is a
// consumer's (which reads and writes acks) or a producer's (which writes).
type stompWire struct {
	nc  net.Conn
	rd  *bufio.Reader
	out []byte
}

// stompWireMaxFrame bounds a frame the client reads: the scenarios' bodies
// and headers fit well within it.
const stompWireMaxFrame = 1 << 20

// dialStompWire connects and logs in as guest on vhost "/" with STOMP 1.2,
// without heart-beats.
func dialStompWire(ctx context.Context, addr string) (*stompWire, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &stompWire{nc: nc, rd: bufio.NewReaderSize(nc, 2*stompWireMaxFrame)}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	c.out = append(c.out, "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\nheart-beat:0,0\n\n\x00"...)
	if err := c.flush(); err != nil {
		_ = nc.Close()
		return nil, err
	}
	f, done, err := c.readFrame()
	if err == nil && f.command != "CONNECTED" {
		err = f.err()
	}
	if done != nil {
		done()
	}
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("stomp connect: %w", err)
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

// send appends a SEND frame to the output.
func (c *stompWire) send(dest string, body []byte, persistent bool) {
	c.out = append(c.out, "SEND\ndestination:"...)
	c.out = append(c.out, dest...)
	if persistent {
		c.out = append(c.out, "\npersistent:true"...)
	}
	c.out = append(c.out, "\ncontent-type:application/octet-stream\ncontent-length:"...)
	c.out = strconv.AppendInt(c.out, int64(len(body)), 10)
	c.out = append(c.out, "\n\n"...)
	c.out = append(c.out, body...)
	c.out = append(c.out, 0)
}

// ack appends an ACK frame for the MESSAGE whose ack header was id.
func (c *stompWire) ack(id []byte) {
	c.out = append(c.out, "ACK\nid:"...)
	c.out = append(c.out, id...)
	c.out = append(c.out, "\n\n\x00"...)
}

// subscribe subscribes to dest with ack mode client-individual and waits
// for the broker's RECEIPT, so the subscription is in place on return.
func (c *stompWire) subscribe(ctx context.Context, id, dest string, prefetch int) error {
	c.out = append(c.out, "SUBSCRIBE\nid:"...)
	c.out = append(c.out, id...)
	c.out = append(c.out, "\ndestination:"...)
	c.out = append(c.out, dest...)
	c.out = append(c.out, "\nack:client-individual\nprefetch-count:"...)
	c.out = strconv.AppendInt(c.out, int64(prefetch), 10)
	c.out = append(c.out, "\nreceipt:sub-"...)
	c.out = append(c.out, id...)
	c.out = append(c.out, "\n\n\x00"...)
	if err := c.flush(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetReadDeadline(dl)
		defer c.nc.SetReadDeadline(time.Time{})
	}
	for {
		f, done, err := c.readFrame()
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", dest, err)
		}
		cmd, ferr := f.command, f.err()
		done()
		switch cmd {
		case "RECEIPT":
			return nil
		case "ERROR":
			return fmt.Errorf("subscribe %s: %w", dest, ferr)
		}
	}
}

// flush writes the output.
func (c *stompWire) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.nc.Write(c.out)
	c.out = c.out[:0]
	return err
}

// close sends DISCONNECT and closes the socket. It may run while another
// goroutine uses c: it writes straight to the socket.
func (c *stompWire) close() {
	_ = c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
	_, _ = c.nc.Write([]byte("DISCONNECT\n\n\x00"))
	_ = c.nc.Close()
}

// stompFrame is a frame read by readFrame; its slices alias the read
// buffer until the frame's done is called.
type stompFrame struct {
	command string // interned for the commands a broker sends
	headers []byte // the header lines, each ending in '\n'
	body    []byte
}

// header returns the first value of header name (escapes left as sent).
func (f *stompFrame) header(name string) []byte {
	h := f.headers
	for len(h) > 0 {
		i := bytes.IndexByte(h, '\n')
		line := h[:i]
		h = h[i+1:]
		if len(line) > len(name) && line[len(name)] == ':' && string(line[:len(name)]) == name {
			return bytes.TrimSuffix(line[len(name)+1:], []byte{'\r'})
		}
	}
	return nil
}

// err describes an ERROR frame (or any unexpected one).
func (f *stompFrame) err() error {
	if f.command == "ERROR" {
		return fmt.Errorf("ERROR from the broker: %s: %s", f.header("message"), bytes.TrimSpace(f.body))
	}
	return fmt.Errorf("unexpected %s frame", f.command)
}

var stompCommands = []string{"MESSAGE", "RECEIPT", "ERROR", "CONNECTED"}

// readFrame returns the next frame, skipping heart-beat newlines. It
// accepts \r\n line ends and bodies with or without content-length.
// Before it waits for bytes from the broker it writes the output (acks
// gathered while reading what was buffered), so the connection's reader
// must be the goroutine that writes on it.
func (c *stompWire) readFrame() (f stompFrame, done func(), err error) {
	need := 1
	for {
		if need > c.rd.Buffered() {
			if err := c.flush(); err != nil {
				return f, nil, err
			}
		}
		if _, err := c.rd.Peek(need); err != nil {
			return f, nil, err
		}
		b, _ := c.rd.Peek(c.rd.Buffered())
		// Heart-beats and the EOLs some brokers send after a frame's NUL.
		skip := 0
		for skip < len(b) && (b[skip] == '\n' || b[skip] == '\r') {
			skip++
		}
		if skip > 0 {
			_, _ = c.rd.Discard(skip)
			need = 1
			continue
		}
		n, perr := parseStompFrame(b, &f)
		if perr != nil {
			return f, nil, perr
		}
		if n > 0 {
			return f, func() { _, _ = c.rd.Discard(n) }, nil
		}
		if len(b) >= stompWireMaxFrame {
			return f, nil, errors.New("stomp frame larger than 1 MiB")
		}
		need = len(b) + 1
	}
}

// parseStompFrame parses the frame at the start of b into f and returns
// its length, or 0 if b holds only part of it.
func parseStompFrame(b []byte, f *stompFrame) (int, error) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return 0, nil
	}
	cmd := bytes.TrimSuffix(b[:i], []byte{'\r'})
	f.command = ""
	for _, c := range stompCommands {
		if string(cmd) == c {
			f.command = c
		}
	}
	if f.command == "" {
		f.command = string(cmd)
	}
	start := i + 1
	var bodyAt int
	switch rest := b[start:]; {
	case len(rest) == 0:
		return 0, nil
	case rest[0] == '\n': // no headers
		f.headers, bodyAt = nil, start+1
	case bytes.HasPrefix(rest, []byte("\r\n")):
		f.headers, bodyAt = nil, start+2
	default:
		end := bytes.Index(rest, []byte("\n\n"))
		crlf := bytes.Index(rest, []byte("\r\n\r\n"))
		switch {
		case end < 0 && crlf < 0:
			return 0, nil
		case crlf >= 0 && (end < 0 || crlf < end):
			f.headers, bodyAt = rest[:crlf+2], start+crlf+4
		default:
			f.headers, bodyAt = rest[:end+1], start+end+2
		}
	}
	if cl := f.header("content-length"); cl != nil {
		n, err := strconv.Atoi(string(cl))
		if err != nil || n < 0 {
			return 0, fmt.Errorf("stomp: bad content-length %q", cl)
		}
		if len(b) < bodyAt+n+1 {
			return 0, nil
		}
		if b[bodyAt+n] != 0 {
			return 0, errors.New("stomp: body not followed by NUL")
		}
		f.body = b[bodyAt : bodyAt+n]
		return bodyAt + n + 1, nil
	}
	j := bytes.IndexByte(b[bodyAt:], 0)
	if j < 0 {
		return 0, nil
	}
	f.body = b[bodyAt : bodyAt+j]
	return bodyAt + j + 1, nil
}

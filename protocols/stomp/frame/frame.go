// Package frame is Junction's STOMP codec: an incremental, size-limited
// parser and an encoder with version-correct header escaping. It reuses
// go-stomp's frame types and constants (DESIGN.md §7) but not its blocking,
// unbounded reader.
package frame

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	sf "github.com/go-stomp/stomp/v3/frame"
)

// Frame is go-stomp's frame type: a command, ordered headers (Get returns
// the first occurrence, as STOMP 1.2 requires) and a body.
type Frame = sf.Frame

// Header is go-stomp's ordered header list.
type Header = sf.Header

// Version is a STOMP protocol version.
type Version uint8

// STOMP versions.
const (
	V10 Version = iota
	V11
	V12
)

func (v Version) String() string {
	switch v {
	case V11:
		return "1.1"
	case V12:
		return "1.2"
	}
	return "1.0"
}

// Defaults for zero Limits fields.
const (
	DefaultMaxFrameSize  = 2 << 20
	DefaultMaxHeaders    = 1000
	DefaultMaxHeaderLine = 64 << 10
)

// Limits bound one inbound frame. They are checked before bytes are
// buffered beyond them.
type Limits struct {
	MaxFrameSize  int // whole frame, command to NUL
	MaxHeaders    int // header lines
	MaxHeaderLine int // one header line, without its EOL
}

// WithDefaults fills zero fields.
func (l Limits) WithDefaults() Limits {
	if l.MaxFrameSize <= 0 {
		l.MaxFrameSize = DefaultMaxFrameSize
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = DefaultMaxHeaders
	}
	if l.MaxHeaderLine <= 0 {
		l.MaxHeaderLine = DefaultMaxHeaderLine
	}
	return l
}

// Error is a malformed or oversized frame. It is fatal: the server answers
// with an ERROR frame carrying Message and closes.
type Error struct {
	Message string
	Detail  string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return "stomp: " + e.Message
	}
	return "stomp: " + e.Message + ": " + e.Detail
}

func errorf(msg, detail string) *Error { return &Error{Message: msg, Detail: detail} }

// clientCommands are the commands a server accepts.
var clientCommands = map[string]bool{
	sf.CONNECT: true, sf.STOMP: true, sf.SEND: true, sf.SUBSCRIBE: true, sf.UNSUBSCRIBE: true,
	sf.ACK: true, sf.NACK: true, sf.BEGIN: true, sf.COMMIT: true, sf.ABORT: true, sf.DISCONNECT: true,
}

// serverCommands are the commands a client accepts (for tests and tools).
var serverCommands = map[string]bool{
	sf.CONNECTED: true, sf.MESSAGE: true, sf.RECEIPT: true, sf.ERROR: true,
}

// Parser reads frames incrementally from a byte stream. The caller passes
// the unconsumed bytes, which always start at a frame boundary and grow
// between calls; the parser remembers how far it has scanned the frame in
// progress, so a frame arriving in many pieces is scanned once.
type Parser struct {
	Limits
	// Version selects header unescaping (CONNECT, STOMP and CONNECTED
	// frames are never unescaped).
	Version Version
	// Server makes the parser accept the server's commands instead of the
	// client's (for clients and tests).
	Server bool

	scan    int    // bytes of the frame in progress already scanned
	hdrEnd  int    // offset of the body; 0 while the headers are incomplete
	lines   int    // header lines seen
	bodyLen int    // content-length, or -1 for a NUL-terminated body
	f       *Frame // the frame in progress once its headers are parsed
}

// Reset forgets the frame in progress.
func (p *Parser) Reset() {
	p.scan, p.hdrEnd, p.lines, p.bodyLen, p.f = 0, 0, 0, 0, nil
}

// Parse reads from the front of in. It returns (nil, n, nil) with n > 0
// for heart-beat EOLs between frames, (f, n, nil) for a complete frame of
// n bytes, (nil, 0, nil) when more bytes are needed, and a *Error for a
// malformed or oversized frame, after which the stream is unusable.
func (p *Parser) Parse(in []byte) (*Frame, int, error) {
	l := p.Limits.WithDefaults()
	if len(in) == 0 {
		return nil, 0, nil
	}
	if p.scan == 0 {
		// An EOL between frames is a heart-beat; one at a time, so the
		// result does not depend on how the bytes arrive.
		if in[0] == '\n' {
			return nil, 1, nil
		}
		if in[0] == '\r' && len(in) > 1 && in[1] == '\n' {
			return nil, 2, nil
		}
		if in[0] == '\r' && len(in) == 1 {
			return nil, 0, nil
		}
	}
	if p.hdrEnd == 0 {
		for {
			j := bytes.IndexByte(in[p.scan:], '\n')
			if j < 0 {
				if len(in)-p.scan > l.MaxHeaderLine+1 {
					return nil, 0, errorf("header line too long", "a header line exceeds "+strconv.Itoa(l.MaxHeaderLine)+" bytes")
				}
				if len(in) > l.MaxFrameSize {
					return nil, 0, tooLarge(l)
				}
				return nil, 0, nil
			}
			line := in[p.scan : p.scan+j]
			line = bytes.TrimSuffix(line, []byte{'\r'})
			if len(line) > l.MaxHeaderLine {
				return nil, 0, errorf("header line too long", "a header line exceeds "+strconv.Itoa(l.MaxHeaderLine)+" bytes")
			}
			first := p.scan == 0
			p.scan += j + 1
			if p.scan > l.MaxFrameSize {
				return nil, 0, tooLarge(l)
			}
			if first {
				continue
			}
			if len(line) == 0 {
				p.hdrEnd = p.scan
				break
			}
			p.lines++
			if p.lines > l.MaxHeaders {
				return nil, 0, errorf("too many headers", "a frame may have at most "+strconv.Itoa(l.MaxHeaders)+" headers")
			}
		}
		f, err := p.parseHead(in[:p.hdrEnd])
		if err != nil {
			return nil, 0, err
		}
		p.f = f
		p.bodyLen = -1
		if v, ok := f.Header.Contains(sf.ContentLength); ok {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			if err != nil && !errors.Is(err, strconv.ErrRange) {
				return nil, 0, errorf("invalid content-length", "content-length '"+v+"' is not a number")
			}
			// A number too large for 64 bits is too large for the limit.
			// The head may fill the limit: what is left is then nothing
			// (not -1, which as a uint64 would let every length pass).
			if err != nil || n > uint64(max(0, l.MaxFrameSize-p.hdrEnd-1)) {
				return nil, 0, tooLarge(l)
			}
			p.bodyLen = int(n)
		}
	}
	var end int // offset of the terminating NUL
	if p.bodyLen >= 0 {
		end = p.hdrEnd + p.bodyLen
		if len(in) <= end {
			return nil, 0, nil
		}
		if in[end] != 0 {
			return nil, 0, errorf("malformed frame", "the body is not followed by a NUL octet where content-length says it ends")
		}
	} else {
		j := bytes.IndexByte(in[p.scan:], 0)
		if j < 0 {
			p.scan = len(in)
			if len(in) > l.MaxFrameSize {
				return nil, 0, tooLarge(l)
			}
			return nil, 0, nil
		}
		end = p.scan + j
	}
	if end+1 > l.MaxFrameSize {
		return nil, 0, tooLarge(l)
	}
	f := p.f
	if end > p.hdrEnd {
		f.Body = bytes.Clone(in[p.hdrEnd:end])
	}
	p.Reset()
	return f, end + 1, nil
}

func tooLarge(l Limits) *Error {
	return errorf("frame too large", "frames are limited to "+strconv.Itoa(l.MaxFrameSize)+" bytes")
}

// parseHead parses the command line and the headers (head ends with the
// blank line).
func (p *Parser) parseHead(head []byte) (*Frame, error) {
	nl := bytes.IndexByte(head, '\n')
	cmd := string(bytes.TrimSuffix(head[:nl], []byte{'\r'}))
	known := clientCommands
	if p.Server {
		known = serverCommands
	}
	if !known[cmd] {
		if len(cmd) > 64 {
			cmd = cmd[:64]
		}
		return nil, errorf("unknown command", "'"+strconv.Quote(cmd)+"' is not a STOMP command")
	}
	escaped := p.Version >= V11 && cmd != sf.CONNECT && cmd != sf.STOMP && cmd != sf.CONNECTED
	rest := head[nl+1:]
	// A NUL ends a frame for peers that read to it: forwarded in a
	// MESSAGE header it would let the sender cut frames for them.
	if bytes.IndexByte(rest, 0) >= 0 {
		return nil, errorf("invalid header", "a header contains a NUL octet")
	}
	// STOMP 1.1 and 1.2: commands and headers are encoded in UTF-8.
	if escaped && !utf8.Valid(rest) {
		return nil, errorf("invalid header", "a header is not valid UTF-8")
	}
	f := &Frame{Command: cmd, Header: sf.NewHeader()}
	for len(rest) > 0 {
		nl := bytes.IndexByte(rest, '\n')
		line := bytes.TrimSuffix(rest[:nl], []byte{'\r'})
		rest = rest[nl+1:]
		if len(line) == 0 {
			break
		}
		c := bytes.IndexByte(line, ':')
		if c < 0 {
			return nil, errorf("malformed header", "header line without ':'")
		}
		k, v := line[:c], line[c+1:]
		if escaped {
			var ok bool
			var ks, vs string
			if ks, ok = unescape(k, p.Version); ok {
				vs, ok = unescape(v, p.Version)
			}
			if !ok {
				return nil, errorf("invalid header", "undefined escape sequence in a header")
			}
			f.Header.Add(ks, vs)
		} else {
			f.Header.Add(string(k), string(v))
		}
	}
	return f, nil
}

// unescape decodes \n \c \\ (and \r from 1.2).
func unescape(b []byte, v Version) (string, bool) {
	i := bytes.IndexByte(b, '\\')
	if i < 0 {
		return string(b), true
	}
	out := make([]byte, 0, len(b))
	out = append(out, b[:i]...)
	for ; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i == len(b) {
			return "", false
		}
		switch b[i] {
		case 'n':
			out = append(out, '\n')
		case 'c':
			out = append(out, ':')
		case '\\':
			out = append(out, '\\')
		case 'r':
			if v < V12 {
				return "", false
			}
			out = append(out, '\r')
		default:
			return "", false
		}
	}
	return string(out), true
}

// appendEscaped appends s escaped for version v.
func appendEscaped(dst []byte, s string, v Version, escape bool) []byte {
	if !escape {
		// 1.0 and CONNECTED cannot carry these octets: replace them so the
		// frame stays well formed.
		for i := 0; i < len(s); i++ {
			c := s[i]
			if c == '\n' || c == '\r' || c == 0 {
				c = ' '
			}
			dst = append(dst, c)
		}
		return dst
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\n':
			dst = append(dst, '\\', 'n')
		case ':':
			dst = append(dst, '\\', 'c')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\r':
			if v >= V12 {
				dst = append(dst, '\\', 'r')
			} else {
				dst = append(dst, ' ')
			}
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// Append encodes a frame with headers (key, value pairs) for version v.
// When body is not nil a content-length header is added.
func Append(dst []byte, v Version, command string, headers []string, body []byte) []byte {
	escape := v >= V11 && command != sf.CONNECTED && command != sf.CONNECT && command != sf.STOMP
	dst = append(dst, command...)
	dst = append(dst, '\n')
	for i := 0; i+1 < len(headers); i += 2 {
		k := headers[i]
		if !escape {
			k = strings.ReplaceAll(k, ":", "_")
		}
		dst = appendEscaped(dst, k, v, escape)
		dst = append(dst, ':')
		dst = appendEscaped(dst, headers[i+1], v, escape)
		dst = append(dst, '\n')
	}
	if body != nil {
		dst = append(dst, "content-length:"...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, '\n')
	}
	dst = append(dst, '\n')
	dst = append(dst, body...)
	return append(dst, 0)
}

// AppendFrame encodes f (see Append); f's own content-length is dropped.
func AppendFrame(dst []byte, v Version, f *Frame) []byte {
	var hs []string
	for i := 0; i < f.Header.Len(); i++ {
		k, val := f.Header.GetAt(i)
		if k != sf.ContentLength {
			hs = append(hs, k, val)
		}
	}
	body := f.Body
	if body == nil {
		body = []byte{}
	}
	return Append(dst, v, f.Command, hs, body)
}

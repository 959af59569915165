package frame

import (
	"encoding/binary"
	"math"
)

// AppendMethodFrame appends m as a method frame on channel (§4.2.4).
// It allocates only if dst lacks capacity. Passing a method literal
// (&BasicDeliver{...}) makes it escape to the heap at the call site; a
// session keeps the method struct it reuses instead.
//
// The frame is not checked against frame-max: every method the server
// sends is far below FrameMinSize except connection.start, whose server
// properties the server controls.
func AppendMethodFrame(dst []byte, channel uint16, m Method) []byte {
	at := len(dst)
	dst = appendFrameHeader(dst, FrameMethod, channel, 0)
	c, mid := m.ID()
	dst = m.appendArgs(appendIDs(dst, c, mid))
	binary.BigEndian.PutUint32(dst[at+3:], uint32(len(dst)-at-7))
	return append(dst, FrameEnd)
}

// bodyChunk returns the largest body frame payload for frameMax: frame-max
// counts the whole frame, so 8 bytes less (§4.2.3). 0 means no limit.
func bodyChunk(frameMax uint32) int {
	if frameMax == 0 {
		return math.MaxUint32
	}
	if frameMax <= FrameOverhead {
		return 1 // not a valid frame-max (the minimum is FrameMinSize); still terminate
	}
	return int(frameMax - FrameOverhead)
}

// appendHeaderFrame appends a content header frame.
func appendHeaderFrame(dst []byte, channel, classID uint16, props *Properties, bodySize uint64) []byte {
	at := len(dst)
	dst = appendFrameHeader(dst, FrameHeader, channel, 0)
	dst = AppendContentHeader(dst, classID, bodySize, props)
	binary.BigEndian.PutUint32(dst[at+3:], uint32(len(dst)-at-7))
	return append(dst, FrameEnd)
}

// AppendContent appends a content header frame for props (nil: none) and
// the body frames carrying body, split so that no frame exceeds frameMax
// (payload ≤ frameMax-8; 0 means no limit), to dst (§4.2.6). An empty body
// has no body frames. It follows the method frame of basic.deliver,
// basic.get-ok or basic.return. It copies body; AppendContentVec does not.
func AppendContent(dst []byte, channel uint16, classID uint16, props *Properties, body []byte, frameMax uint32) []byte {
	dst = appendHeaderFrame(dst, channel, classID, props, uint64(len(body)))
	chunk := bodyChunk(frameMax)
	for len(body) > 0 {
		n := min(len(body), chunk)
		dst = appendFrameHeader(dst, FrameBody, channel, uint32(n))
		dst = append(dst, body[:n]...)
		dst = append(dst, FrameEnd)
		body = body[n:]
	}
	return dst
}

// AppendContentVec is AppendContent for vectored writes: it appends the
// framing bytes (the header frame and each body frame's header and
// frame-end) to dst, and appends to vec, in wire order, slices of dst for
// the framing and slices of body for the body chunks, so the body is
// never copied. It returns both extended slices.
//
// The slices in vec alias dst's backing array as returned (grown once,
// before any slice is taken) and body: both must stay untouched until the
// bytes are written. Content with an empty body yields one vec entry.
func AppendContentVec(vec [][]byte, dst []byte, channel uint16, classID uint16, props *Properties, body []byte, frameMax uint32) ([][]byte, []byte) {
	chunk := bodyChunk(frameMax)
	frames := (len(body) + chunk - 1) / chunk
	start := len(dst)
	dst = appendHeaderFrame(dst, channel, classID, props, uint64(len(body)))
	headerEnd := len(dst)
	// Framing around the body: 7 header bytes per body frame, 1 end byte.
	if need := FrameOverhead * frames; cap(dst)-len(dst) < need {
		grown := make([]byte, len(dst), len(dst)+need)
		copy(grown, dst)
		dst = grown
	}
	rest := body
	for range frames {
		n := min(len(rest), chunk)
		dst = appendFrameHeader(dst, FrameBody, channel, uint32(n))
		dst = append(dst, FrameEnd)
		rest = rest[n:]
	}
	// All framing is written; dst will not move again. Slice it.
	if frames == 0 {
		return append(vec, dst[start:headerEnd:headerEnd]), dst
	}
	at := headerEnd
	vec = append(vec, dst[start:at+7:at+7]) // header frame + first body frame header
	rest = body
	for i := range frames {
		n := min(len(rest), chunk)
		vec = append(vec, rest[:n:n])
		rest = rest[n:]
		end := at + 7 // this frame's end byte
		if i+1 < frames {
			vec = append(vec, dst[end:end+8:end+8]) // end + next frame header
		} else {
			vec = append(vec, dst[end:end+1:end+1])
		}
		at += 8
	}
	return vec, dst
}

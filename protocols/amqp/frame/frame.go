package frame

import "encoding/binary"

// Frame is one AMQP 0-9-1 frame (§4.2.3): type octet, channel, payload,
// frame-end. Payload aliases the buffer the frame was parsed from and is
// valid only until the caller discards or reuses those bytes (for gnet:
// until Discard); copy what must be kept.
type Frame struct {
	Type    uint8 // FrameMethod, FrameHeader, FrameBody or FrameHeartbeat
	Channel uint16
	Payload []byte
}

// FrameOverhead is the size of a frame's header (7) and frame-end (1).
const FrameOverhead = 8

// FrameSizeFudge is how far a frame may exceed the negotiated frame-max
// and still be accepted. RabbitMQ allows 8 bytes (rabbit_reader's
// FRAME_SIZE_FUDGE: "quite a few [clients] get it wrong - off-by 1 or 8
// (empty frame size) are typical"), that is a payload of up to frame-max
// bytes instead of frame-max - 8; so do we. We never send frames larger
// than frame-max.
const FrameSizeFudge = 8

// ProtocolHeader is AMQP 0-9-1's protocol header (§4.2.2). A server that
// receives any other greeting sends this and closes the socket.
const ProtocolHeader = "AMQP\x00\x00\x09\x01"

// ParseFrame parses the frame at the start of buf. It returns n == 0 and
// err == nil when buf holds only part of a frame: call again with more
// bytes. Otherwise n is the number of bytes the frame occupies.
//
// frameMax is the negotiated frame-max (connection.tune-ok; before tuning,
// FrameMinSize); 0 means no limit, as in connection.tune. A frame whose
// declared size exceeds it (beyond FrameSizeFudge) fails with
// ErrFrameTooLarge as soon as the 7-byte header is in, before its payload
// is buffered. An unknown frame type fails as soon as the first byte is in.
// Failures are *Error with 501 FRAME_ERROR: a hard error.
//
// The heartbeat's channel (must be 0) and the order of frames are the
// session's to check (§4.2.7, 505 UNEXPECTED_FRAME).
func ParseFrame(buf []byte, frameMax uint32) (f Frame, n int, err error) {
	if len(buf) == 0 {
		return Frame{}, 0, nil
	}
	switch buf[0] {
	case FrameMethod, FrameHeader, FrameBody, FrameHeartbeat:
	default:
		return Frame{}, 0, ErrFrameType
	}
	if len(buf) < 7 {
		return Frame{}, 0, nil
	}
	size := binary.BigEndian.Uint32(buf[3:])
	if frameMax != 0 && uint64(size)+FrameOverhead > uint64(frameMax)+FrameSizeFudge {
		return Frame{}, 0, ErrFrameTooLarge
	}
	if uint64(len(buf)) < uint64(size)+FrameOverhead {
		return Frame{}, 0, nil
	}
	end := 7 + int(size)
	if buf[end] != FrameEnd {
		return Frame{}, 0, ErrFrameEnd
	}
	if buf[0] == FrameHeartbeat && size != 0 {
		return Frame{}, 0, ErrHeartbeatPayload
	}
	return Frame{Type: buf[0], Channel: binary.BigEndian.Uint16(buf[1:]), Payload: buf[7:end:end]}, end + 1, nil
}

// ParseProtocolHeader checks the greeting at the start of buf. It returns
// ok and n == 8 for AMQP 0-9-1's; n == 0 and err == nil while buf holds a
// proper prefix of it (need more bytes); and ErrProtocolHeader as soon as
// the bytes differ, after which the server sends ProtocolHeader and closes
// (§4.2.2). RabbitMQ also speaks 0-8 and 0-9; we do not.
func ParseProtocolHeader(buf []byte) (ok bool, n int, err error) {
	k := min(len(buf), len(ProtocolHeader))
	if string(buf[:k]) != ProtocolHeader[:k] {
		return false, 0, ErrProtocolHeader
	}
	if k < len(ProtocolHeader) {
		return false, 0, nil
	}
	return true, len(ProtocolHeader), nil
}

// AppendProtocolHeader appends ProtocolHeader, the answer to a greeting
// that is not AMQP 0-9-1's.
func AppendProtocolHeader(dst []byte) []byte { return append(dst, ProtocolHeader...) }

// AppendHeartbeat appends a heartbeat frame (type 8, channel 0, empty
// payload; §4.2.7).
func AppendHeartbeat(dst []byte) []byte {
	return append(dst, FrameHeartbeat, 0, 0, 0, 0, 0, 0, FrameEnd)
}

// AppendFrame appends a frame of type typ carrying payload.
func AppendFrame(dst []byte, typ uint8, channel uint16, payload []byte) []byte {
	dst = appendFrameHeader(dst, typ, channel, uint32(len(payload)))
	dst = append(dst, payload...)
	return append(dst, FrameEnd)
}

func appendFrameHeader(dst []byte, typ uint8, channel uint16, size uint32) []byte {
	return append(dst, typ, byte(channel>>8), byte(channel), byte(size>>24), byte(size>>16), byte(size>>8), byte(size))
}

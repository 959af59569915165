package frame

import "strconv"

// Error is a decoding failure with the reply code the peer must be told
// (AMQP 0-9-1 §1.5.1 reply codes, §4.2.3 frame errors). Match it with
// errors.As; the frame-level sentinels (ErrFrameEnd, ...) also with
// errors.Is.
type Error struct {
	Code              uint16 // reply-code: 501 FRAME_ERROR, 540 NOT_IMPLEMENTED, ...
	ClassID, MethodID uint16 // failing method; 0 if none
	Text              string // reply-text: short, no secrets
}

// Error implements error: "amqp frame: 501 FRAME_ERROR - text (class 60, method 40)".
func (e *Error) Error() string {
	b := make([]byte, 0, 64+len(e.Text))
	b = append(b, "amqp frame: "...)
	b = strconv.AppendUint(b, uint64(e.Code), 10)
	if n := ReplyName(e.Code); n != "" {
		b = append(b, ' ')
		b = append(b, n...)
	}
	b = append(b, " - "...)
	b = append(b, e.Text...)
	if e.ClassID != 0 || e.MethodID != 0 {
		b = append(b, " (class "...)
		b = strconv.AppendUint(b, uint64(e.ClassID), 10)
		b = append(b, ", method "...)
		b = strconv.AppendUint(b, uint64(e.MethodID), 10)
		b = append(b, ')')
	}
	return string(b)
}

// Soft reports whether only the channel closes: the spec's soft-error class
// (311–313, 403–406); every other code closes the connection.
func (e *Error) Soft() bool { return isSoft(e.Code) }

// codeMalformed is the reply code for a method payload, field table or
// content header that cannot be decoded. RabbitMQ sends 501 FRAME_ERROR
// here (rabbit_framing_amqp_0_9_1:decode_method_fields falls through to
// rabbit_misc:frame_error, "cannot decode"), not 502 SYNTAX_ERROR, and a
// drop-in replacement answers as RabbitMQ does. Both are hard errors, so
// either way the connection closes.
const codeMalformed = FrameError

// Frame-level errors. They carry no class or method and are shared values,
// so returning them does not allocate.
var (
	// ErrFrameEnd: the octet after the payload is not 0xCE (§4.2.3).
	ErrFrameEnd = &Error{Code: FrameError, Text: "frame end marker is not 0xCE"}
	// ErrFrameTooLarge: the declared payload size exceeds the negotiated
	// frame-max.
	ErrFrameTooLarge = &Error{Code: FrameError, Text: "frame larger than negotiated frame-max"}
	// ErrFrameType: the frame type is not method, header, body or heartbeat.
	ErrFrameType = &Error{Code: FrameError, Text: "unknown frame type"}
	// ErrHeartbeatPayload: a heartbeat frame with a non-empty payload
	// (RabbitMQ: unknown_frame).
	ErrHeartbeatPayload = &Error{Code: FrameError, Text: "heartbeat frame with payload"}
	// ErrProtocolHeader: the greeting is not AMQP 0-9-1's. The server sends
	// ProtocolHeader and closes the socket (§4.2.2); there is no reply code.
	ErrProtocolHeader = &Error{Code: FrameError, Text: "protocol header is not AMQP 0-9-1"}
	// ErrShortMethod: a method frame payload shorter than its 4-byte ids.
	ErrShortMethod = &Error{Code: codeMalformed, Text: "method frame shorter than class and method ids"}
	// ErrShortHeader: a content header payload shorter than 14 bytes.
	ErrShortHeader = &Error{Code: codeMalformed, Text: "content header shorter than 14 bytes"}
)

// unknownMethod is the answer to a (class, method) pair the spec does not
// define. RabbitMQ's framing exits with {unknown_method_id, Id} there
// (rabbit_framing_amqp_0_9_1:lookup_method_name), which is not an AMQP
// error: its reader dies and the client sees the socket close without a
// connection.close. We answer with the spec's code for "functionality that
// is not implemented in the server", 540 NOT_IMPLEMENTED, a hard error, so
// clients get a reason. Methods the spec defines but a server must not
// receive (basic.deliver from a client, say) decode fine here; the session
// answers them with 503 COMMAND_INVALID as rabbit_channel does
// ("unimplemented method").
func unknownMethod(classID, methodID uint16) *Error {
	text := "unknown method"
	if _, ok := className(classID); !ok {
		text = "unknown class"
	}
	return &Error{Code: NotImplemented, ClassID: classID, MethodID: methodID, Text: text}
}

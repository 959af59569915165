// Package frame is Junction's AMQP 0-9-1 wire codec: bytes ⇄ frames,
// methods, content headers and field tables, as RabbitMQ reads and writes
// them. It does no I/O, keeps no connection state and imports the standard
// library only; the session logic (which frame may come when, channel
// numbers, 505 UNEXPECTED_FRAME) lives in protocols/amqp.
//
// # Layers
//
//   - [ParseProtocolHeader] checks the 8-byte greeting (AMQP 0-9-1 §4.2.2).
//   - [ParseFrame] cuts one frame out of a buffer (§4.2.3); it is incremental:
//     n == 0 && err == nil means "need more bytes".
//   - [DecodeMethod] and [Decoder.DecodeMethod] turn a method frame's payload
//     into one of the generated method structs (spec_gen.go, produced by
//     internal/gen from the RabbitMQ JSON spec); each struct has Decode and
//     Append.
//   - [ParseContentHeader] and [Properties] handle content headers
//     (§4.2.6.1); [Table] handles field tables (§4.2.5.5 plus the RabbitMQ
//     errata types).
//   - [AppendMethodFrame], [AppendContent] and [AppendContentVec] build the
//     server's output into caller-owned buffers.
//
// # Buffers
//
// Decoding aliases its input where it says so ([Frame.Payload],
// [ContentHeader.RawProperties]); such slices are valid only until the
// caller discards or reuses the input bytes (for gnet: until Discard).
// Decoded strings, byte slices in tables and tables themselves are copies
// and may be kept. Append functions append to dst and return the extended
// slice, like append; they allocate only when dst lacks capacity.
//
// # Errors
//
// Every decoding failure is an [*Error] carrying the reply code the peer
// must be sent. RabbitMQ answers a frame it cannot decode with 501
// FRAME_ERROR (rabbit_misc:frame_error from decode_method_fields, and
// "Malformed UTF-8 in shortstr"), so this package does the same for
// malformed method payloads, tables and properties (codeMalformed in
// error.go is the one place to change that).
//
// # Concurrency
//
// Functions are safe from any goroutine. A [Decoder] is not: use one per
// connection (it reuses method structs and caches short strings).
package frame

// Package frame implements the RFC 6455 WebSocket wire format on byte
// slices: header parsing from buffered bytes without blocking, masking,
// message reassembly with incremental UTF-8 validation, close frames, frame
// encoding (once, for fan-out), and a byte-accounted outbound queue.
//
// The package knows nothing of sockets and imports only the standard
// library. Every function works on bytes the caller already holds: a parser
// either returns a complete result or says how many more bytes it needs.
//
// Reading, per connection: [ParseHeader] on the buffered bytes (it enforces
// the frame-level rules and the payload limit from the header alone), [Mask]
// to unmask the payload as it arrives, and an [Assembler] for the rules that
// span frames (fragmentation, the message size limit, UTF-8 of text, failed
// at the first bad byte). Every violation is a *[CloseError] carrying the
// close code to fail the connection with; [CloseStatus] extracts it.
//
// Writing: [AppendFrame] and [AppendMaskedFrame] encode into a caller's
// buffer; [NewFrame] encodes a broadcast once; [PingFrame], [PongFrame] and
// [CloseFrame] are precompiled. A [Queue] holds a connection's outbound
// bytes against its limit and hands them to a vectored write in batches.
//
// None of the per-message paths allocates: parsing, unmasking, validating,
// reassembling, encoding into a reused buffer and queueing in steady state.
//
// Ownership of byte slices is stated on every function: unless a comment says
// otherwise, a function does not retain a slice it is given after it returns.
package frame

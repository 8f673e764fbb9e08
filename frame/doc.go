// Package frame implements the RFC 6455 WebSocket wire format on byte
// slices: header parsing from buffered bytes without blocking, masking,
// message reassembly with incremental UTF-8 validation, close frames, frame
// encoding (once, for fan-out), and a byte-accounted outbound queue.
//
// The package knows nothing of sockets and imports only the standard
// library. Every function works on bytes the caller already holds: a parser
// either returns a complete result or says how many more bytes it needs.
//
// Ownership of byte slices is stated on every function: unless a comment says
// otherwise, a function does not retain a slice it is given after it returns.
package frame

// Package compress implements permessage-deflate (RFC 7692) for
// network-cluster: the compressor presets of uWebSockets, the negotiation
// of the Sec-WebSocket-Extensions header on both sides, and the codecs.
// It knows no sockets and no frames: the caller sets and checks RSV1,
// joins a message's frames, and maps errors to close codes.
//
// # Negotiation
//
// A server parses the client's offers, accepts the first one its preset
// can serve, and answers with the response:
//
//	offers, err := compress.ParseOffers(req.Header.Values("Sec-WebSocket-Extensions"))
//	// err != nil: 400 Bad Request (RFC 6455 §4.2.1)
//	if resp, ok := preset.Accept(offers); ok {
//		hdr = resp.AppendTo(hdr) // Sec-WebSocket-Extensions: permessage-deflate; ...
//		cfg := compress.NewConfig(preset, resp, true)
//	}
//
// A client offers, then checks what the server answered and fails the
// connection if it breaks RFC 7692:
//
//	offer := preset.Offer()
//	resp, ok, err := compress.ParseResponse(res.Header.Values("Sec-WebSocket-Extensions"))
//	if err == nil && ok {
//		err = preset.CheckResponse(offer, resp)
//	}
//	cfg := compress.NewConfig(preset, resp, false)
//
// # Messages
//
// Messages of DefaultThreshold bytes and more are worth compressing:
// Compressor.Compress returns the payload of a frame with RSV1 set (the
// 00 00 ff ff tail already removed). An inbound message with RSV1 set goes,
// all its frames' payloads joined, to Decompressor.Decompress with the
// maximum message size: ErrTooBig means close 1009, ErrCorrupt close 1007.
// Both calls allocate nothing in steady state.
//
// With context takeover a Compressor's history must match what the peer
// has inflated: every message compressed by it must be sent, in order.
// A broadcast can be compressed once by a Compressor without context
// takeover (safe for concurrent use) and sent to every connection whose
// Config.CompressWindowBits is at least that Compressor's window; on a
// connection whose own Compressor keeps context, pass the plaintext to its
// Observe. Messages sent uncompressed do not touch any history.
//
// # Memory
//
// The presets name the memory a connection may keep between messages, and
// this package keeps within it (Compressor.Retained, Decompressor.Retained,
// BenchmarkRetainedMemory):
//
//	preset                     window  kept between messages
//	SHARED_COMPRESSOR          15 bits 0
//	DEDICATED_COMPRESSOR_3KB    9 bits 1.5 KB (1 KB history + 512 B match table)
//	DEDICATED_COMPRESSOR_4KB    9 bits 2 KB
//	DEDICATED_COMPRESSOR_8KB   10 bits 4 KB
//	...                                (doubling)
//	DEDICATED_COMPRESSOR_256KB 15 bits 128 KB (64 KB history + 64 KB table)
//	SHARED_DECOMPRESSOR        any     0
//	DEDICATED_DECOMPRESSOR_xB   9..15  x bytes (the window)
//
// A klauspost/compress flate.Writer keeps 330 KB to 1.4 MB, and a writer
// reset per message with a dictionary must re-index the dictionary every
// time (about 10× slower than this package's encoder for 1 KiB messages
// with a 32 KiB window: BenchmarkCompressReference/klauspost-ResetDict-32KB
// against BenchmarkCompress/DEDICATED_COMPRESSOR_256KB). So compression uses
// this package's own
// DEFLATE encoder: greedy LZ77 matching over a hash table of 16-bit
// positions, the history and table kept per connection within the preset's
// budget, every match verified byte for byte and never further back than
// the negotiated window (1<<bits bytes, also inside one large message),
// blocks written stored, fixed or dynamic, whichever is smallest. Its work
// arrays (about 100 KB) come from a pool for the duration of a call.
// Inflation uses pooled klauspost/compress readers primed with the
// connection's window.
//
// A window of 8 bits (RFC 7692 allows 8..15) is honoured when the peer
// asks for it: the encoder keeps to 256-byte distances. Presets never ask
// for less than 9.
package compress

package compress

import "fmt"

// Accept is the server side of the negotiation (RFC 7692 §7.1): it returns
// the response to the first offer that preset p can accept, or ok=false to
// decline them all (then the server's handshake response carries no
// permessage-deflate element). Offers with Err set are skipped, as RFC 7692
// §5 requires. A disabled or invalid preset declines everything.
//
// The response follows from the preset:
//   - outbound (server to client): a shared compressor answers
//     server_no_context_takeover; a dedicated one with a window below 15
//     bits answers server_max_window_bits=W. An offered
//     server_max_window_bits=N is always accepted, answering min(N, W); an
//     offered server_no_context_takeover is always accepted.
//   - inbound (client to server): a shared decompressor answers
//     client_no_context_takeover. A dedicated one with window W keeps
//     context: it answers client_max_window_bits=min(W, offered value) when
//     the offer has client_max_window_bits (and W or the value is below
//     15); when the offer lacks it and W is below 15 the server cannot limit
//     the client's window, so it answers client_no_context_takeover
//     instead. An offered client_no_context_takeover is echoed, so nothing
//     is kept.
//
// Pass the response to NewConfig(p, resp, true) and write resp.AppendTo
// into the handshake response.
func (p Preset) Accept(offers []Params) (resp Params, ok bool) {
	if !p.Enabled() {
		return Params{}, false
	}
	cw, _ := p.compressWindow()
	dw := p.decompressWindow()
	for _, o := range offers {
		if o.Err != nil || o.ServerMaxWindowBits < 0 || o.ServerMaxWindowBits > 15 ||
			o.ClientMaxWindowBits < -1 || o.ClientMaxWindowBits > 15 ||
			(o.ServerMaxWindowBits > 0 && o.ServerMaxWindowBits < 8) ||
			(o.ClientMaxWindowBits > 0 && o.ClientMaxWindowBits < 8) {
			continue
		}
		var r Params
		// Outbound: our compressor.
		if cw == 0 || o.ServerNoContextTakeover {
			r.ServerNoContextTakeover = true
		}
		if o.ServerMaxWindowBits > 0 {
			// We must answer with the same or a smaller value (§7.1.2.1).
			r.ServerMaxWindowBits = o.ServerMaxWindowBits
			if cw != 0 && cw < r.ServerMaxWindowBits {
				r.ServerMaxWindowBits = cw
			}
		} else if cw != 0 && cw < 15 {
			r.ServerMaxWindowBits = cw
		}
		// Inbound: our decompressor.
		switch {
		case dw == 0 || o.ClientNoContextTakeover:
			r.ClientNoContextTakeover = true
		case o.ClientMaxWindowBits != 0:
			w := dw
			if o.ClientMaxWindowBits > 0 && o.ClientMaxWindowBits < w {
				w = o.ClientMaxWindowBits
			}
			if w < 15 || o.ClientMaxWindowBits > 0 {
				r.ClientMaxWindowBits = w
			}
		case dw < 15:
			// The response must not carry client_max_window_bits (§7.1.2.2),
			// so we cannot bound the client's window: ask for no context
			// takeover rather than keep 32 KB.
			r.ClientNoContextTakeover = true
		}
		return r, true
	}
	return Params{}, false
}

// Offer is the client side's offer for preset p (send it with AppendTo as
// the Sec-WebSocket-Extensions request header). A disabled or invalid
// preset offers nothing: check Enabled first.
//
//   - outbound (client to server): a shared compressor offers
//     client_no_context_takeover (a hint the server may echo); a dedicated
//     one offers client_max_window_bits=W, or client_max_window_bits
//     without a value for W=15, so that the server may ask for less.
//   - inbound (server to client): a shared decompressor offers
//     server_no_context_takeover; a dedicated one with W below 15 offers
//     server_max_window_bits=W.
func (p Preset) Offer() Params {
	var o Params
	if !p.Enabled() {
		return o
	}
	switch cw, _ := p.compressWindow(); {
	case cw == 0:
		o.ClientNoContextTakeover = true
	case cw == 15:
		o.ClientMaxWindowBits = -1
	default:
		o.ClientMaxWindowBits = cw
	}
	switch dw := p.decompressWindow(); {
	case dw == 0:
		o.ServerNoContextTakeover = true
	case dw < 15:
		o.ServerMaxWindowBits = dw
	}
	return o
}

// CheckResponse checks the server's response resp (from ParseResponse)
// against the client's offer (from Offer) as RFC 7692 §5 and §7.1 require.
// A non-nil error wraps ErrInvalidParams or ErrNegotiation, and the client
// must fail the WebSocket connection. The preset is not consulted: every
// response that accepts the offer is supported, because a compressor may
// always use less context than allowed and the decompressor keeps what the
// response asks for.
func (p Preset) CheckResponse(offer, resp Params) error {
	if resp.Err != nil {
		return resp.Err
	}
	switch {
	case resp.ServerMaxWindowBits < 0 || resp.ServerMaxWindowBits > 15 ||
		(resp.ServerMaxWindowBits > 0 && resp.ServerMaxWindowBits < 8):
		return fmt.Errorf("%w: server_max_window_bits=%d", ErrInvalidParams, resp.ServerMaxWindowBits)
	case resp.ClientMaxWindowBits < 0 || resp.ClientMaxWindowBits > 15 ||
		(resp.ClientMaxWindowBits > 0 && resp.ClientMaxWindowBits < 8):
		// -1 (no value) is valid only in an offer (§7.1.2.2).
		return fmt.Errorf("%w: client_max_window_bits in a response needs a value of 8..15", ErrInvalidParams)
	case offer.ServerNoContextTakeover && !resp.ServerNoContextTakeover:
		// §7.1.1.1: the server accepts it by including it.
		return fmt.Errorf("%w: server_no_context_takeover was offered but not accepted", ErrNegotiation)
	case offer.ServerMaxWindowBits > 0 && resp.ServerMaxWindowBits == 0:
		// §7.1.2.1: the server accepts it by including it.
		return fmt.Errorf("%w: server_max_window_bits was offered but not accepted", ErrNegotiation)
	case offer.ServerMaxWindowBits > 0 && resp.ServerMaxWindowBits > offer.ServerMaxWindowBits:
		return fmt.Errorf("%w: server_max_window_bits=%d above the offered %d", ErrNegotiation,
			resp.ServerMaxWindowBits, offer.ServerMaxWindowBits)
	case resp.ClientMaxWindowBits > 0 && offer.ClientMaxWindowBits == 0:
		// §7.1.2.2: MUST NOT include it when the offer did not.
		return fmt.Errorf("%w: client_max_window_bits was not offered", ErrNegotiation)
	case resp.ClientMaxWindowBits > 0 && offer.ClientMaxWindowBits > 0 && resp.ClientMaxWindowBits > offer.ClientMaxWindowBits:
		return fmt.Errorf("%w: client_max_window_bits=%d above the offered %d", ErrNegotiation,
			resp.ClientMaxWindowBits, offer.ClientMaxWindowBits)
	}
	return nil
}

// Config is the agreed permessage-deflate configuration of one connection
// from one side's point of view: how its Compressor may compress outbound
// messages and how its Decompressor must inflate inbound ones. Build it with
// NewConfig from the negotiated response. A Config is a plain value, safe
// for concurrent use.
type Config struct {
	// CompressWindowBits bounds the compressor's back-references to
	// 1<<CompressWindowBits bytes (8..15). 0 means 15.
	CompressWindowBits int
	// CompressContextTakeover lets the compressor refer to earlier messages
	// (keeping their last 1<<CompressWindowBits bytes). false: every
	// message is compressed on its own and nothing is kept; such a
	// Compressor is safe for concurrent use and its output can be sent to
	// any connection.
	CompressContextTakeover bool
	// CompressMemLevel sizes the compressor's match table: 1<<(memLevel+7)
	// entries of 2 bytes, at most 1<<(CompressWindowBits+1) entries, kept
	// between messages only with context takeover. 1..9; 0 means 8.
	CompressMemLevel int

	// DecompressWindowBits is the peer's window (8..15): with context
	// takeover the decompressor keeps the last 1<<DecompressWindowBits
	// bytes of inflated output. 0 means 15.
	DecompressWindowBits int
	// DecompressContextTakeover: the peer may refer to earlier messages, so
	// the decompressor keeps their last bytes. false: nothing is kept.
	DecompressContextTakeover bool
}

// NewConfig returns the configuration that a side using preset p keeps to
// after the negotiation ended with response resp (the Params the server
// sent, from Accept on the server and ParseResponse on the client). server
// tells which side this is. The compressor keeps context only when the
// response allows it and p has a dedicated compressor, and never uses a
// larger window than p's; the decompressor follows what the response
// imposes on the peer.
func NewConfig(p Preset, resp Params, server bool) Config {
	var c Config
	cw, mem := p.compressWindow()
	outBits, outNoCtx := resp.ClientMaxWindowBits, resp.ClientNoContextTakeover
	inBits, inNoCtx := resp.ServerMaxWindowBits, resp.ServerNoContextTakeover
	if server {
		outBits, outNoCtx, inBits, inNoCtx = inBits, inNoCtx, outBits, outNoCtx
	}
	c.CompressWindowBits = clampBits(outBits)
	if cw != 0 {
		c.CompressWindowBits = min(c.CompressWindowBits, cw)
		c.CompressContextTakeover = !outNoCtx
		c.CompressMemLevel = mem
	}
	c.DecompressWindowBits = clampBits(inBits)
	c.DecompressContextTakeover = !inNoCtx
	return c
}

// clampBits maps a negotiated window-bits value to 8..15 (absent or
// without a value: 15).
func clampBits(b int) int {
	switch {
	case b <= 0 || b > 15:
		return 15
	case b < 8:
		return 8
	}
	return b
}

func (c Config) compressBits() int {
	if c.CompressWindowBits == 0 {
		return 15
	}
	return min(max(c.CompressWindowBits, 8), 15)
}

func (c Config) decompressBits() int {
	if c.DecompressWindowBits == 0 {
		return 15
	}
	return min(max(c.DecompressWindowBits, 8), 15)
}

// hashBits is the size of the compressor's match table, log2 entries.
func (c Config) hashBits() int {
	m := c.CompressMemLevel
	if m <= 0 {
		m = 8
	}
	return min(max(m, 1)+7, c.compressBits()+1, 16)
}

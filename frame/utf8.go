package frame

import "unicode/utf8"

// ValidUTF8 reports whether p is entirely valid UTF-8 (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF). p is not retained.
func ValidUTF8(p []byte) bool { return utf8.Valid(p) }

// UTF8 is an incremental UTF-8 validator (RFC 3629: overlong forms,
// surrogates and code points above U+10FFFF are invalid) for text that
// arrives in pieces, split anywhere, even inside a character. It fails at
// the first byte after which no valid continuation exists, so a text message
// is failed as soon as its bad byte arrives (RFC 6455 §8.1), not at its end.
//
// The zero value is ready to use. A UTF8 is not safe for concurrent use.
type UTF8 struct {
	need   uint8 // continuation bytes still expected for the current character
	lo, hi byte  // the range the next continuation byte must fall in
	bad    bool  // the stream is already invalid
}

// Write feeds p to the validator. It returns false as soon as p contains a
// byte that makes the stream invalid, and false for every later call until
// [UTF8.Reset]. p is not retained.
func (v *UTF8) Write(p []byte) bool {
	if v.bad {
		return false
	}
	// Finish a character split by the previous write.
	for v.need > 0 {
		if len(p) == 0 {
			return true
		}
		if c := p[0]; c < v.lo || c > v.hi {
			v.bad = true
			return false
		}
		v.need--
		v.lo, v.hi = 0x80, 0xBF
		p = p[1:]
	}
	// Split off a character left incomplete at the end of p: its lead byte
	// is among the last 3 bytes and announces more bytes than follow it.
	body := len(p)
	for j := len(p) - 1; j >= 0 && j >= len(p)-3; j-- {
		c := p[j]
		if c < 0x80 {
			break
		}
		if c >= 0xC0 {
			if len(p)-j < seqLen(c) {
				body = j
			}
			break
		}
	}
	// The body holds whole characters (or is invalid); the standard library
	// checks it fast. The tail goes through the byte-wise state machine.
	if !utf8.Valid(p[:body]) {
		v.bad = true
		return false
	}
	for _, c := range p[body:] {
		if !v.step(c) {
			v.bad = true
			return false
		}
	}
	return true
}

// seqLen returns the length of the sequence that lead byte c starts, or 1
// for a byte that cannot start a multi-byte sequence.
func seqLen(c byte) int {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 2
	case c >= 0xE0 && c <= 0xEF:
		return 3
	case c >= 0xF0 && c <= 0xF4:
		return 4
	}
	return 1
}

// step advances the state machine by one byte (RFC 3629 §4, the table of
// well-formed byte sequences) and reports whether the stream is still valid.
func (v *UTF8) step(c byte) bool {
	if v.need > 0 {
		if c < v.lo || c > v.hi {
			return false
		}
		v.need--
		v.lo, v.hi = 0x80, 0xBF
		return true
	}
	switch {
	case c < 0x80:
		return true
	case c >= 0xC2 && c <= 0xDF:
		v.need, v.lo, v.hi = 1, 0x80, 0xBF
	case c == 0xE0: // no overlong forms
		v.need, v.lo, v.hi = 2, 0xA0, 0xBF
	case c == 0xED: // no surrogates U+D800–U+DFFF
		v.need, v.lo, v.hi = 2, 0x80, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		v.need, v.lo, v.hi = 2, 0x80, 0xBF
	case c == 0xF0: // no overlong forms
		v.need, v.lo, v.hi = 3, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		v.need, v.lo, v.hi = 3, 0x80, 0xBF
	case c == 0xF4: // nothing above U+10FFFF
		v.need, v.lo, v.hi = 3, 0x80, 0x8F
	default: // 0x80–0xC1 (continuation or overlong lead), 0xF5–0xFF
		return false
	}
	return true
}

// Complete reports whether the stream so far is valid and ends on a
// character boundary: true for a complete text message.
func (v *UTF8) Complete() bool { return !v.bad && v.need == 0 }

// Reset makes v ready for a new stream.
func (v *UTF8) Reset() { *v = UTF8{} }

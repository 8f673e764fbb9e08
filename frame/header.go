package frame

import "encoding/binary"

// MaxHeaderSize is the largest frame header: 2 bytes, an 8-byte extended
// payload length and a 4-byte masking key (RFC 6455 §5.2).
const MaxHeaderSize = 14

// Header is a decoded frame header (RFC 6455 §5.2).
type Header struct {
	Fin bool // the final frame of its message
	// Rsv holds the three reserved bits as in the wire byte >> 4 & 7:
	// RSV1 = 4, RSV2 = 2, RSV3 = 1.
	Rsv    byte
	Op     Opcode  // the frame type
	Masked bool    // the payload is masked with Mask (client to server)
	Mask   [4]byte // the masking key; meaningful only when Masked
	Length int64   // the payload length, 0 to 2^63-1
}

// Rsv1 reports whether the RSV1 bit is set (permessage-deflate: the message
// is compressed, RFC 7692 §6).
func (h Header) Rsv1() bool { return h.Rsv&4 != 0 }

// Role says which end of the connection parses: it decides whether incoming
// frames must be masked (RFC 6455 §5.1).
type Role uint8

const (
	// RoleServer: we are the server, so incoming frames must be masked.
	RoleServer Role = iota
	// RoleClient: we are the client, so incoming frames must not be masked.
	RoleClient
)

// ParseOptions says what [ParseHeader] accepts. The zero value parses as a
// server with no extension and no payload limit.
type ParseOptions struct {
	// Role is the parsing end. Default RoleServer.
	Role Role
	// AllowRSV1 permits the RSV1 bit on data frames (permessage-deflate was
	// negotiated). ParseHeader accepts it on any data frame; whether it may
	// appear on this one (the first frame of a message only) is for
	// [Assembler.Begin] to judge. RSV1 on a control frame is always
	// rejected. Default false: RSV1 is a protocol error.
	AllowRSV1 bool
	// MaxPayload, when > 0, is the longest data frame payload accepted: a
	// longer one is a CloseTooBig (1009) error, judged from the header alone
	// before any payload is buffered. Default 0: no limit. The limit on a
	// whole fragmented message is [Assembler.SetMaxPayload].
	MaxPayload int64
}

// ParseHeader parses the frame header at the start of b without blocking.
// It never retains b. There are three outcomes:
//
//   - complete: h is the header, n its size (2 to 14 bytes), need = 0 and
//     err = nil. The whole frame is n + h.Length bytes; the payload is still
//     masked when h.Masked (see [Mask]).
//   - incomplete: n = 0 and need > 0 is how many more bytes b must hold
//     before the header can be parsed. Once b holds the first 2 bytes the
//     figure is exact; before that it is the bytes missing from those 2.
//   - violation: err is a *[CloseError] with the code to fail the
//     connection with (RFC 6455 §7.1.7): CloseProtocolError (1002) for
//     reserved bits that no extension allows, a reserved opcode, a control
//     frame that is fragmented or longer than 125 bytes, a 64-bit length with
//     its most significant bit set, an unmasked frame sent to a server or a
//     masked frame sent to a client; CloseTooBig (1009) for a data frame
//     longer than o.MaxPayload.
//
// Violations are reported as soon as the bytes that show them are in b (a
// reserved opcode from the first byte alone), so a peer cannot hold a bad
// header open by sending it slowly. In every outcome but the first, h is the
// zero Header.
//
// A length in a longer encoding than needed (126 followed by a 16-bit 5, say)
// is accepted: RFC 6455 §5.2 says the minimal number of bytes MUST be used
// to encode the length but does not ask the receiver to fail such a frame,
// and the length is unambiguous either way.
func ParseHeader(b []byte, o ParseOptions) (h Header, n, need int, err error) {
	if len(b) < 2 {
		if len(b) == 1 {
			if err = checkFirstByte(b[0], o); err != nil {
				return Header{}, 0, 0, err
			}
		}
		return Header{}, 0, 2 - len(b), nil
	}
	b0, b1 := b[0], b[1]
	if err = checkFirstByte(b0, o); err != nil {
		return Header{}, 0, 0, err
	}
	op := Opcode(b0 & 0x0f)
	masked := b1&0x80 != 0
	length := int64(b1 & 0x7f)
	if op.IsControl() && length > MaxControlPayload {
		return Header{}, 0, 0, errControlTooLong
	}
	if masked != (o.Role == RoleServer) {
		if masked {
			return Header{}, 0, 0, errMaskedFromServer
		}
		return Header{}, 0, 0, errUnmaskedFromClient
	}
	size := 2
	switch length {
	case 126:
		size += 2
	case 127:
		size += 8
		if len(b) > 2 && b[2]&0x80 != 0 {
			return Header{}, 0, 0, errLengthTopBit
		}
	}
	if masked {
		size += 4
	}
	if len(b) < size {
		return Header{}, 0, size - len(b), nil
	}
	switch length {
	case 126:
		length = int64(binary.BigEndian.Uint16(b[2:4]))
	case 127:
		// The top bit is clear: checked above.
		length = int64(binary.BigEndian.Uint64(b[2:10]))
	}
	if o.MaxPayload > 0 && length > o.MaxPayload && !op.IsControl() {
		return Header{}, 0, 0, errFrameTooBig
	}
	h = Header{
		Fin:    b0&0x80 != 0,
		Rsv:    b0 >> 4 & 7,
		Op:     op,
		Masked: masked,
		Length: length,
	}
	if masked {
		h.Mask = [4]byte(b[size-4 : size])
	}
	return h, size, 0, nil
}

// checkFirstByte checks what the first header byte alone can show: reserved
// bits, the opcode, and a control frame without FIN.
func checkFirstByte(b0 byte, o ParseOptions) error {
	op := Opcode(b0 & 0x0f)
	if rsv := b0 & 0x70; rsv != 0 {
		if rsv != 0x40 || !o.AllowRSV1 {
			return errReservedBits
		}
		if op.IsControl() {
			return errRSV1Control
		}
	}
	if op.IsReserved() {
		return errReservedOpcode
	}
	if op.IsControl() && b0&0x80 == 0 {
		return errFragmentedControl
	}
	return nil
}

// HeaderSize returns the size of the header [AppendHeader] writes for a
// payload of length bytes: 2, plus 2 or 8 for an extended length, plus 4 for
// a masking key.
func HeaderSize(length int64, masked bool) int {
	n := 2
	switch {
	case length > 0xffff:
		n += 8
	case length > 125:
		n += 2
	}
	if masked {
		n += 4
	}
	return n
}

// AppendHeader appends the encoding of h to dst and returns the extended
// slice; it allocates only when dst lacks the capacity. The length is written
// in its minimal form and the masking key h.Mask follows when h.Masked. Only
// the low 3 bits of h.Rsv and low 4 bits of h.Op are used. It panics if
// h.Length is negative, which no frame can carry.
func AppendHeader(dst []byte, h Header) []byte {
	if h.Length < 0 {
		panic("frame: AppendHeader with a negative length")
	}
	var buf [MaxHeaderSize]byte
	buf[0] = h.Rsv&7<<4 | byte(h.Op)&0x0f
	if h.Fin {
		buf[0] |= 0x80
	}
	n := 2
	switch {
	case h.Length > 0xffff:
		buf[1] = 127
		binary.BigEndian.PutUint64(buf[2:10], uint64(h.Length))
		n = 10
	case h.Length > 125:
		buf[1] = 126
		binary.BigEndian.PutUint16(buf[2:4], uint16(h.Length))
		n = 4
	default:
		buf[1] = byte(h.Length)
	}
	if h.Masked {
		buf[1] |= 0x80
		n += copy(buf[n:], h.Mask[:])
	}
	return append(dst, buf[:n]...)
}

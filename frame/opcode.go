package frame

import "strconv"

// Opcode is the 4-bit frame type of RFC 6455 §5.2.
type Opcode byte

// The opcodes of RFC 6455 §11.8. Values 0x3–0x7 and 0xB–0xF are reserved.
const (
	OpContinuation Opcode = 0x0
	OpText         Opcode = 0x1
	OpBinary       Opcode = 0x2
	OpClose        Opcode = 0x8
	OpPing         Opcode = 0x9
	OpPong         Opcode = 0xA
)

// IsControl reports whether o is a control opcode (close, ping, pong or a
// reserved control opcode 0xB–0xF): RFC 6455 §5.5.
func (o Opcode) IsControl() bool { return o&0x8 != 0 }

// IsData reports whether o is continuation, text or binary.
func (o Opcode) IsData() bool { return o <= OpBinary }

// IsReserved reports whether o is one of the reserved opcodes (0x3–0x7,
// 0xB–0xF), which a receiver must fail with close code 1002.
func (o Opcode) IsReserved() bool {
	return (o > OpBinary && o < OpClose) || o > OpPong
}

// String returns the opcode's name, or its number for reserved opcodes.
func (o Opcode) String() string {
	switch o {
	case OpContinuation:
		return "continuation"
	case OpText:
		return "text"
	case OpBinary:
		return "binary"
	case OpClose:
		return "close"
	case OpPing:
		return "ping"
	case OpPong:
		return "pong"
	}
	return "opcode(" + strconv.Itoa(int(o)) + ")"
}

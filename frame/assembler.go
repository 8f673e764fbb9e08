package frame

import "math"

// Assembler is the message reassembly state machine for one direction of one
// connection (RFC 6455 §5.4): it tracks the message in progress across its
// fragments, lets control frames interleave, enforces the message size limit
// across fragments, and validates text as UTF-8 as it arrives. The caller
// keeps the bytes; the Assembler only looks at them.
//
// For each frame, after [ParseHeader]:
//
//	err := a.Begin(h)           // the header, in order
//	err = a.Payload(p)          // the unmasked payload, in any number of pieces
//	done, op, compressed, err := a.End()
//
// Control frames may skip Payload and End: they never disturb the message in
// progress. Every data frame must be ended with End before the next Begin.
// After any method returns an error, the connection must be failed with the
// error's close code; the Assembler is then in an unspecified state until
// [Assembler.Reset].
//
// The zero value is ready, with no size limit. An Assembler does not
// allocate and is not safe for concurrent use.
type Assembler struct {
	max   int64 // limit on a message's payload (sum of its frames); 0 = none
	total int64 // payload bytes of the message in progress, from headers
	text  UTF8
	op    Opcode   // opcode of the current (or last) message
	f     asmFlags // packed, so that the Assembler takes 24 bytes (one per connection)
}

// asmFlags are an Assembler's flags.
type asmFlags uint8

const (
	asmInMsg      asmFlags = 1 << iota // a data message is in progress
	asmCompressed                      // the current (or last) message had RSV1 on its first frame
	asmFin                             // the current data frame has FIN set
	asmCtl                             // the current frame is a control frame
	asmCheck                           // Payload validates UTF-8 (uncompressed text)
)

func (f asmFlags) has(x asmFlags) bool { return f&x != 0 }

// set sets x if on, clears it if not.
func (f *asmFlags) set(x asmFlags, on bool) {
	if on {
		*f |= x
	} else {
		*f &^= x
	}
}

// SetMaxPayload limits the payload of a whole message, summed over its
// fragments, to n bytes: a frame that takes a message past it fails Begin
// with CloseTooBig (1009). For a compressed message the limit applies to the
// compressed bytes on the wire; limiting the inflated size is the
// decompressor's job. n <= 0 removes the limit (the default).
func (a *Assembler) SetMaxPayload(n int64) {
	if n < 0 {
		n = 0
	}
	a.max = n
}

// Begin is called with each frame header in order, after [ParseHeader]. It
// returns a *[CloseError] for a frame that breaks the fragmentation rules:
// CloseProtocolError (1002) for a continuation with no message in progress,
// a text or binary frame while a message is in progress, RSV1 on a
// continuation or control frame (and for anything ParseHeader rejects: RSV2
// or RSV3, a reserved opcode, a fragmented or oversized control frame);
// CloseTooBig (1009) when the message's payload, summed over its frames so
// far, exceeds the limit of [Assembler.SetMaxPayload]. Control frames pass
// through without disturbing the message in progress.
func (a *Assembler) Begin(h Header) error {
	if h.Rsv&3 != 0 || h.Op.IsReserved() || h.Length < 0 {
		return errMalformedHeader
	}
	if h.Op.IsControl() {
		switch {
		case h.Rsv1():
			return errRSV1Control
		case !h.Fin:
			return errFragmentedControl
		case h.Length > MaxControlPayload:
			return errControlTooLong
		}
		a.f |= asmCtl
		return nil
	}
	a.f &^= asmCtl
	if h.Op == OpContinuation {
		if !a.f.has(asmInMsg) {
			return errContinuationNoMessage
		}
		if h.Rsv1() {
			return errRSV1Continuation
		}
	} else {
		if a.f.has(asmInMsg) {
			return errDataMidMessage
		}
		a.f |= asmInMsg
		a.op = h.Op
		a.f.set(asmCompressed, h.Rsv1())
		a.f.set(asmCheck, h.Op == OpText && !h.Rsv1())
		a.total = 0
		a.text.Reset()
	}
	if a.max > 0 && h.Length > a.max-a.total {
		return errMessageTooBig
	}
	if h.Length > math.MaxInt64-a.total {
		a.total = math.MaxInt64 // no limit: saturate rather than wrap
	} else {
		a.total += h.Length
	}
	a.f.set(asmFin, h.Fin)
	return nil
}

// Check returns the error [Assembler.Begin] would return for h, without
// changing the state. A receiver calls it as soon as a header is parsed,
// before the frame's payload has arrived, so that a frame taking its message
// over the limit is refused before its payload is buffered.
func (a *Assembler) Check(h Header) error {
	b := *a
	return b.Begin(h)
}

// Payload feeds unmasked payload bytes of the current frame, in order and in
// any number of pieces. For an uncompressed text message it validates UTF-8
// incrementally and returns CloseInvalidPayload (1007) at the piece holding
// the first invalid byte. For a compressed message (RSV1 on its first frame)
// the bytes are deflate data and are not checked: the caller feeds the
// inflated text to [Assembler.ValidateText] instead. Binary messages and
// control frames are not checked. p is not retained.
func (a *Assembler) Payload(p []byte) error {
	if a.f.has(asmCtl) || !a.f.has(asmCheck) {
		return nil
	}
	if !a.text.Write(p) {
		return errInvalidUTF8
	}
	return nil
}

// ValidateText validates inflated text of a compressed text message,
// incrementally: call it with each piece the decompressor yields, during
// the message or after [Assembler.End] reported it done, then call
// [Assembler.EndText] once the message is fully inflated. It returns
// CloseInvalidPayload (1007) at the piece holding the first invalid byte.
// For any other message (binary, or uncompressed text, which
// [Assembler.Payload] already checks) it does nothing. p is not retained.
func (a *Assembler) ValidateText(p []byte) error {
	if a.op != OpText || !a.f.has(asmCompressed) {
		return nil
	}
	if !a.text.Write(p) {
		return errInvalidUTF8
	}
	return nil
}

// EndText completes the validation of [Assembler.ValidateText]: it returns
// CloseInvalidPayload (1007) if the inflated text ended inside a character.
// For any other message it does nothing.
func (a *Assembler) EndText() error {
	if a.op != OpText || !a.f.has(asmCompressed) {
		return nil
	}
	ok := a.text.Complete()
	a.text.Reset()
	if !ok {
		return errInvalidUTF8
	}
	return nil
}

// End is called after the last payload byte of each data frame (calling it
// after a control frame is allowed and does nothing). When the frame had
// FIN, the message is complete: End returns done = true, the message's
// opcode ([OpText] or [OpBinary]) and whether it was compressed, and makes
// ready for the next message. An uncompressed text message that ends inside
// a character is CloseInvalidPayload (1007). For a frame without FIN it
// returns done = false: the message continues.
func (a *Assembler) End() (done bool, op Opcode, compressed bool, err error) {
	if a.f.has(asmCtl) {
		a.f &^= asmCtl
		return false, 0, false, nil
	}
	if !a.f.has(asmInMsg) || !a.f.has(asmFin) {
		return false, 0, false, nil
	}
	if a.f.has(asmCheck) && !a.text.Complete() {
		return false, 0, false, errInvalidUTF8
	}
	a.f &^= asmInMsg | asmFin | asmCheck
	a.total = 0
	return true, a.op, a.f.has(asmCompressed), nil
}

// InMessage reports whether a fragmented data message is in progress (its
// first frame has begun and its final frame has not ended).
func (a *Assembler) InMessage() bool { return a.f.has(asmInMsg) }

// Reset abandons any message in progress. The limit set by
// [Assembler.SetMaxPayload] is kept.
func (a *Assembler) Reset() { *a = Assembler{max: a.max} }

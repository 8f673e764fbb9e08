package frame

import (
	"fmt"
	"slices"
)

// event is what a connection's reader hands on: a complete message or a
// control frame.
type event struct {
	op         Opcode
	control    bool
	compressed bool
	payload    string
}

func equalEvents(a, b []event) bool { return slices.Equal(a, b) }

// streamReader is how an event loop uses the package: bytes arrive in chunks
// of any size; it parses headers from what it holds (or waits for need more
// bytes), unmasks and feeds payload as it arrives, and collects messages. For
// compressed text it stands in for the decompressor with the identity, so
// that ValidateText sees the same bytes.
type streamReader struct {
	o       ParseOptions
	a       Assembler
	buf     []byte
	h       Header
	inFrame bool
	left    int64
	pos     int
	msg     []byte
	ctl     []byte
	events  []event

	// Where a 1007 was found: the message bytes validated before and after
	// the call that failed (equal when the message ended mid-character).
	failLo, failHi int
}

func newStreamReader(o ParseOptions, maxMessage int64) *streamReader {
	r := &streamReader{o: o}
	r.a.SetMaxPayload(maxMessage)
	return r
}

// idle reports whether the reader holds no partial frame.
func (r *streamReader) idle() bool { return !r.inFrame && len(r.buf) == 0 }

func (r *streamReader) feed(chunk []byte) error {
	r.buf = append(r.buf, chunk...)
	for {
		if !r.inFrame {
			h, n, need, err := ParseHeader(r.buf, r.o)
			if err != nil {
				return err
			}
			if need > 0 {
				return nil
			}
			if err := r.a.Begin(h); err != nil {
				return err
			}
			r.buf = r.buf[n:]
			r.h, r.inFrame, r.left, r.pos = h, true, h.Length, 0
			r.ctl = r.ctl[:0]
		}
		k := min(r.left, int64(len(r.buf)))
		p := r.buf[:k]
		if r.h.Masked {
			r.pos = Mask(p, r.h.Mask, r.pos)
		}
		if r.h.Op.IsControl() {
			r.ctl = append(r.ctl, p...)
		} else {
			lo := len(r.msg)
			r.msg = append(r.msg, p...)
			err := r.a.Payload(p)
			if err == nil {
				err = r.a.ValidateText(p)
			}
			if err != nil {
				r.failLo, r.failHi = lo, len(r.msg)
				return err
			}
		}
		r.left -= k
		r.buf = r.buf[k:]
		if r.left > 0 {
			return nil
		}
		r.inFrame = false
		done, op, compressed, err := r.a.End()
		if err != nil {
			r.failLo, r.failHi = len(r.msg), len(r.msg)
			return err
		}
		if r.h.Op.IsControl() {
			if done {
				return fmt.Errorf("End reported a message after a control frame")
			}
			r.events = append(r.events, event{op: r.h.Op, control: true, payload: string(r.ctl)})
			continue
		}
		if done {
			if compressed {
				if err := r.a.EndText(); err != nil {
					r.failLo, r.failHi = len(r.msg), len(r.msg)
					return err
				}
			}
			r.events = append(r.events, event{op: op, compressed: compressed, payload: string(r.msg)})
			r.msg = r.msg[:0]
		}
		if len(r.buf) == 0 {
			r.buf = r.buf[:0:0] // let a drained buffer go
			return nil
		}
	}
}

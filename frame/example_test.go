package frame_test

import (
	"fmt"

	"github.com/networkcluster/networkcluster/frame"
)

// A server reads frames from whatever bytes it holds: ParseHeader either
// finds a complete header or says how many more bytes it needs.
func ExampleParseHeader() {
	// A client's masked "Hello" (RFC 6455 §5.7), arriving in two pieces.
	wire := []byte{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}
	o := frame.ParseOptions{Role: frame.RoleServer, MaxPayload: 32 << 10}

	_, _, need, _ := frame.ParseHeader(wire[:3], o)
	fmt.Println("need", need, "more bytes")

	h, n, _, err := frame.ParseHeader(wire, o)
	if err != nil {
		fmt.Println("close with", frame.CloseStatus(err))
		return
	}
	payload := wire[n : n+int(h.Length)]
	frame.Mask(payload, h.Mask, 0)
	fmt.Printf("%v fin=%v %q\n", h.Op, h.Fin, payload)

	// A protocol violation carries the close code to fail the connection with.
	_, _, _, err = frame.ParseHeader([]byte{0x83, 0x80}, o)
	fmt.Println(frame.CloseStatus(err))
	// Output:
	// need 3 more bytes
	// text fin=true "Hello"
	// 1002 (protocol error)
}

// Mask unmasks a payload piece by piece as it arrives.
func ExampleMask() {
	key := [4]byte{0x37, 0xfa, 0x21, 0x3d}
	payload := []byte{0x7f, 0x9f, 0x4d, 0x51, 0x58}
	pos := frame.Mask(payload[:2], key, 0)
	frame.Mask(payload[2:], key, pos)
	fmt.Printf("%s\n", payload)
	// Output: Hello
}

// An Assembler follows fragmented messages, with control frames in between,
// and fails bad text at the first invalid byte.
func ExampleAssembler() {
	var a frame.Assembler
	a.SetMaxPayload(32 << 10)
	frames := []struct {
		h       frame.Header
		payload string
	}{
		{frame.Header{Op: frame.OpText, Length: 3}, "Hel"},
		{frame.Header{Fin: true, Op: frame.OpPing}, ""},
		{frame.Header{Fin: true, Op: frame.OpContinuation, Length: 2}, "lo"},
		{frame.Header{Fin: true, Op: frame.OpText, Length: 2}, "a\xff"},
	}
	var msg []byte
	for _, f := range frames {
		if err := a.Begin(f.h); err != nil {
			fmt.Println(err)
			return
		}
		if f.h.Op.IsControl() {
			fmt.Println("control:", f.h.Op)
			continue
		}
		if err := a.Payload([]byte(f.payload)); err != nil {
			fmt.Println(err)
			return
		}
		msg = append(msg, f.payload...)
		done, op, _, err := a.End()
		if err != nil {
			fmt.Println(err)
			return
		}
		if done {
			fmt.Printf("%v message %q\n", op, msg)
			msg = msg[:0]
		}
	}
	// Output:
	// control: ping
	// text message "Hello"
	// websocket: close 1007 (invalid payload data): text is not valid UTF-8
}

// A broadcast encodes the message once and queues the same bytes on every
// connection; a slow connection hits its own limit.
func ExampleNewFrame() {
	f := frame.NewFrame(frame.OpText, []byte("to everyone"), false)
	queues := make([]frame.Queue, 3)
	for i := range queues {
		queues[i].SetLimit(20)
	}
	queues[2].Append(make([]byte, 15), nil, false) // a backlog
	for i := range queues {
		err := queues[i].AppendShared(f.Bytes(), false)
		fmt.Println(i, queues[i].Len(), err)
	}
	// Output:
	// 0 13 <nil>
	// 1 13 <nil>
	// 2 15 frame: outbound queue is over its limit (max backpressure)
}

// A writer drains a Queue in batches: one vectored write per Buffers call,
// then Advance by what the socket took.
func ExampleQueue() {
	var q frame.Queue
	q.SetLimit(1 << 20)
	for _, m := range []string{"one", "two", "three"} {
		q.Append(frame.AppendFrame(nil, true, frame.OpText, false, []byte(m)), nil, false)
	}
	q.AppendShared(frame.PingFrame(), true)
	bufs := q.Buffers(nil, 0)
	fmt.Println(len(bufs), "buffers,", q.Len(), "bytes")
	q.Advance(10) // a short write
	fmt.Println(q.Len(), "bytes left")
	q.Advance(q.Len())
	fmt.Println(q.Len(), "bytes left")
	// Output:
	// 2 buffers, 19 bytes
	// 9 bytes left
	// 0 bytes left
}

// UTF8 validates text that arrives in pieces split inside characters.
func ExampleUTF8() {
	var v frame.UTF8
	fmt.Println(v.Write([]byte("caf\xc3")), v.Complete())
	fmt.Println(v.Write([]byte("\xa9")), v.Complete())
	fmt.Println(v.Write([]byte("\xed\xa0")), v.Complete()) // a surrogate: invalid at its second byte
	// Output:
	// true false
	// true true
	// false false
}

// Close frames: precompiled ones for codes alone, and parsing a received
// close payload.
func ExampleCloseFrame() {
	fmt.Printf("% x\n", frame.CloseFrame(frame.CloseGoingAway))
	fmt.Printf("% x\n", frame.AppendCloseFrame(nil, frame.CloseTooBig, "limit 32 KiB"))

	code, reason, err := frame.ParseClose([]byte{0x03, 0xe8, 'b', 'y', 'e'})
	fmt.Println(code, string(reason), err)
	_, _, err = frame.ParseClose([]byte{0x03, 0xed})
	fmt.Println(frame.CloseStatus(err))
	// Output:
	// 88 02 03 e9
	// 88 0e 03 f1 6c 69 6d 69 74 20 33 32 20 4b 69 42
	// 1000 (normal closure) bye <nil>
	// 1002 (protocol error)
}

package frame

import "testing"

func TestOpcode(t *testing.T) {
	for op := Opcode(0); op < 16; op++ {
		control := op >= 8
		data := op <= 2
		reserved := !data && op != OpClose && op != OpPing && op != OpPong
		if op.IsControl() != control || op.IsData() != data || op.IsReserved() != reserved {
			t.Errorf("%v: control %v data %v reserved %v", op, op.IsControl(), op.IsData(), op.IsReserved())
		}
		if op.String() == "" {
			t.Errorf("%d: empty name", op)
		}
	}
	names := map[Opcode]string{OpContinuation: "continuation", OpText: "text", OpBinary: "binary",
		OpClose: "close", OpPing: "ping", OpPong: "pong", 3: "opcode(3)"}
	for op, want := range names {
		if op.String() != want {
			t.Errorf("%d: %q, want %q", op, op.String(), want)
		}
	}
}

func TestSetMaxPayloadNegative(t *testing.T) {
	var a Assembler
	a.SetMaxPayload(-1)
	if err := a.Begin(Header{Fin: true, Op: OpBinary, Length: 1 << 40}); err != nil {
		t.Fatalf("a negative limit is no limit: %v", err)
	}
}

package interop

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/provider"
)

// Raw-frame checks against the Provider, sent by python3-autobahn's client
// (python/ab_raw.py uses its sendFrame, which writes any frame as asked):
// what close code the Provider answers to bad reserved bits and opcodes,
// oversized or fragmented control frames, invalid UTF-8, bad close frames,
// over-limit and bad compressed messages, and that it echoes the good ones.

const rawMaxPayload = 64 << 10

// rawFrame is one frame for ab_raw.py (see its doc string).
type rawFrame struct {
	Op       int    `json:"op"`
	Fin      bool   `json:"fin"`
	Rsv      int    `json:"rsv,omitempty"`
	Hex      string `json:"hex,omitempty"`
	Zeros    int    `json:"zeros,omitempty"`
	Deflate  bool   `json:"deflate,omitempty"`
	Split    int    `json:"split,omitempty"`
	Unmasked bool   `json:"unmasked,omitempty"`
	Raw      string `json:"raw,omitempty"`
}

const (
	opCont, opText, opBin = 0, 1, 2
	opClose, opPing       = 8, 9
	opPong                = 10
	rsv1, rsv2, rsv3      = 4, 2, 1
)

// fr is a final frame with payload p; frag a non-final one.
func fr(op int, p []byte) rawFrame   { return rawFrame{Op: op, Fin: true, Hex: hex.EncodeToString(p)} }
func frag(op int, p []byte) rawFrame { return rawFrame{Op: op, Fin: false, Hex: hex.EncodeToString(p)} }

func withRsv(f rawFrame, rsv int) rawFrame { f.Rsv = rsv; return f }
func deflated(f rawFrame) rawFrame         { f.Deflate, f.Rsv = true, f.Rsv|rsv1; return f }

func closePayload(code int, reason []byte) []byte {
	return append([]byte{byte(code >> 8), byte(code)}, reason...)
}

// rawCase is one case: frames sent on a fresh connection, and what the
// Provider must answer.
type rawCase struct {
	Name         string     `json:"name"`
	Deflate      bool       `json:"deflate,omitempty"`
	Frames       []rawFrame `json:"frames"`
	WaitMessages int        `json:"wait_messages,omitempty"`
	WaitPongs    int        `json:"wait_pongs,omitempty"`
	CloseAfter   int        `json:"close_after,omitempty"`

	wantClose int      // the code of the Provider's close frame
	wantMsgs  [][]byte // data messages echoed, in order (nil: none)
	wantPongs [][]byte
}

// fails is a case whose frames must make the Provider close with code.
func fails(name string, code int, frames ...rawFrame) rawCase {
	return rawCase{Name: name, Frames: frames, wantClose: code}
}

// echoes is a case whose frames are good: the Provider echoes msgs (and
// answers pings with pongs), then the client closes with 1000.
func echoes(name string, msgs, pongs [][]byte, frames ...rawFrame) rawCase {
	return rawCase{Name: name, Frames: frames, WaitMessages: len(msgs), WaitPongs: len(pongs), CloseAfter: 1000,
		wantClose: 1000, wantMsgs: msgs, wantPongs: pongs}
}

func onDeflate(c rawCase) rawCase { c.Deflate = true; return c }

func b(s string) []byte { return []byte(s) }

func rawCases() []rawCase {
	x := b("x")
	cs := []rawCase{
		// RFC 6455 §5.2: reserved bits without a negotiated extension.
		fails("§5.2 RSV1 set without a negotiated extension", 1002, withRsv(fr(opText, b("hello")), rsv1)),
		fails("§5.2 RSV2 set on a text frame", 1002, withRsv(fr(opText, b("hello")), rsv2)),
		fails("§5.2 RSV3 set on a binary frame", 1002, withRsv(fr(opBin, b("hello")), rsv3)),
		fails("§5.2 all RSV bits set on a ping", 1002, withRsv(fr(opPing, b("p")), rsv1|rsv2|rsv3)),
		{Name: "§5.2 RSV2 on a frame after a good message (the good one is echoed)",
			Frames: []rawFrame{fr(opText, b("hello")), withRsv(fr(opText, b("bad")), rsv2)}, wantClose: 1002, wantMsgs: [][]byte{b("hello")}},
		// RFC 7692 §6: RSV1 only on the first frame of a data message.
		onDeflate(fails("RFC 7692 §6.1 RSV1 on a ping with permessage-deflate", 1002, withRsv(fr(opPing, b("p")), rsv1))),
		onDeflate(fails("RFC 7692 §6.1 RSV1 on a close frame with permessage-deflate", 1002, withRsv(fr(opClose, closePayload(1000, nil)), rsv1))),
		onDeflate(fails("RFC 7692 §6.1 RSV1 on a continuation frame", 1002,
			withRsv(frag(opText, b("abc")), rsv1), withRsv(fr(opCont, b("def")), rsv1))),
		onDeflate(fails("RFC 7692 §6 RSV2 with permessage-deflate", 1002, withRsv(fr(opText, b("hello")), rsv2))),
	}
	// §5.2: reserved opcodes.
	for _, op := range []int{3, 4, 5, 6, 7, 11, 12, 13, 14, 15} {
		cs = append(cs, fails(fmt.Sprintf("§5.2 reserved opcode %d", op), 1002, fr(op, x)))
	}
	cs = append(cs, rawCase{Name: "§5.2 reserved opcode 5 after a good message", Frames: []rawFrame{fr(opText, b("ok")), fr(5, x)},
		wantClose: 1002, wantMsgs: [][]byte{b("ok")}})

	p125 := []byte(strings.Repeat("p", 125))
	cs = append(cs,
		// §5.5: control frames.
		fails("§5.5 ping with a 126-byte payload", 1002, fr(opPing, []byte(strings.Repeat("p", 126)))),
		fails("§5.5 pong with a 126-byte payload", 1002, fr(opPong, []byte(strings.Repeat("p", 126)))),
		fails("§5.5 close with a 126-byte payload", 1002, fr(opClose, closePayload(1000, []byte(strings.Repeat("r", 124))))),
		fails("§5.5 fragmented ping", 1002, frag(opPing, b("p")), fr(opCont, b("q"))),
		fails("§5.5 fragmented pong", 1002, frag(opPong, b("p")), fr(opCont, b("q"))),
		fails("§5.5 fragmented close", 1002, frag(opClose, closePayload(1000, nil))),
		echoes("§5.5.2 ping with a 125-byte payload answered with it", nil, [][]byte{p125}, fr(opPing, p125)),
		echoes("§5.5.2 empty ping answered", nil, [][]byte{{}}, fr(opPing, nil)),
		echoes("§5.5.2 ping with binary payload answered", nil, [][]byte{{0, 0xff, 0xfe, 0x80}}, fr(opPing, []byte{0, 0xff, 0xfe, 0x80})),
		echoes("§5.5.3 unsolicited pong ignored", [][]byte{b("after")}, nil, fr(opPong, b("unsolicited")), fr(opText, b("after"))),
		echoes("§5.5.2 ten pings answered in order", nil,
			[][]byte{b("0"), b("1"), b("2"), b("3"), b("4"), b("5"), b("6"), b("7"), b("8"), b("9")},
			fr(opPing, b("0")), fr(opPing, b("1")), fr(opPing, b("2")), fr(opPing, b("3")), fr(opPing, b("4")),
			fr(opPing, b("5")), fr(opPing, b("6")), fr(opPing, b("7")), fr(opPing, b("8")), fr(opPing, b("9"))),
		// §5.1 / §5.3: masking.
		fails("§5.1 unmasked text frame from the client", 1002, rawFrame{Op: opText, Fin: true, Hex: hex.EncodeToString(b("hello")), Unmasked: true}),
		// §5.2: payload length.
		fails("§5.2 64-bit length with the most significant bit set", 1002,
			rawFrame{Raw: "82ff8000000000000001" + "01020304" + "00"}),
		// §5.4: fragmentation.
		fails("§5.4 continuation with no message in progress", 1002, fr(opCont, b("x"))),
		fails("§5.4 non-final continuation with no message in progress", 1002, frag(opCont, b("x"))),
		fails("§5.4 text frame while a fragmented message is in progress", 1002, frag(opText, b("a")), fr(opText, b("b"))),
		fails("§5.4 binary frame while a fragmented text is in progress", 1002, frag(opText, b("a")), fr(opBin, b("b"))),
		echoes("§5.4 ping between fragments answered, message echoed", [][]byte{b("fragment")}, [][]byte{b("p")},
			frag(opText, b("frag")), fr(opPing, b("p")), fr(opCont, b("ment"))),
		echoes("§5.4 fragments with empty payloads", [][]byte{b("x")}, nil,
			frag(opText, nil), frag(opCont, nil), fr(opCont, b("x"))),
		echoes("§5.4 fragmented binary", [][]byte{{1, 2, 3, 4, 5, 6}}, nil,
			frag(opBin, []byte{1, 2}), frag(opCont, []byte{3, 4}), fr(opCont, []byte{5, 6})),
		echoes("§5.4 empty text and binary messages", [][]byte{{}, {}}, nil, fr(opText, nil), fr(opBin, nil)),
		rawCase{Name: "§5.5.1 close between fragments ends the message unechoed",
			Frames: []rawFrame{frag(opText, b("a")), fr(opClose, closePayload(1000, nil))}, wantClose: 1000},
		// §8.1: UTF-8.
		fails("§8.1 invalid byte 0xFF in a text frame", 1007, fr(opText, []byte{'a', 0xff, 'b'})),
		fails("§8.1 UTF-16 surrogate ED A0 80", 1007, fr(opText, []byte{0xed, 0xa0, 0x80})),
		fails("§8.1 overlong encoding C0 AF", 1007, fr(opText, []byte{0xc0, 0xaf})),
		fails("§8.1 code point above U+10FFFF", 1007, fr(opText, []byte{0xf4, 0x90, 0x80, 0x80})),
		fails("§8.1 text ending inside a character", 1007, fr(opText, []byte{'a', 0xce})),
		fails("§8.1 fragmented text ending inside a character", 1007, frag(opText, b("ab")), fr(opCont, []byte{0xe2, 0x82})),
		fails("§8.1 fail fast: invalid first fragment of an unfinished message", 1007, frag(opText, []byte{'o', 'k', 0xff})),
		fails("§8.1 fail fast: invalid second fragment of an unfinished message", 1007,
			frag(opText, b("ok ")), frag(opCont, []byte{0xc3, 0x28})),
		fails("§8.1 invalid UTF-8 in the middle of a finished fragmented message", 1007,
			frag(opText, b("ok ")), frag(opCont, []byte{0xed, 0xa0, 0x80}), fr(opCont, b("end"))),
		echoes("§8.1 4-byte character split across fragments", [][]byte{b("𝄞")}, nil,
			frag(opText, []byte{0xf0, 0x9d}), fr(opCont, []byte{0x84, 0x9e})),
		echoes("§8.1 binary message with bytes that are not UTF-8", [][]byte{{0xff, 0xfe, 0xc0}}, nil, fr(opBin, []byte{0xff, 0xfe, 0xc0})),
	)
	// κόσμε, one byte per fragment.
	kosme := b("κόσμε")
	var perByte []rawFrame
	for i, c := range kosme {
		op := opCont
		if i == 0 {
			op = opText
		}
		f := frag(op, []byte{c})
		f.Fin = i == len(kosme)-1
		perByte = append(perByte, f)
	}
	cs = append(cs, echoes("§8.1 valid text in one-byte fragments", [][]byte{kosme}, nil, perByte...))

	// §5.5.1 and §7.4: close frames.
	cs = append(cs,
		fails("§5.5.1 close with a 1-byte payload", 1002, fr(opClose, []byte{0x03})),
		rawCase{Name: "§5.5.1 empty close answered with an empty close", Frames: []rawFrame{fr(opClose, nil)}, wantClose: 1005},
		rawCase{Name: "§5.5.1 close with a 123-byte reason", Frames: []rawFrame{fr(opClose, closePayload(1000, []byte(strings.Repeat("r", 123))))}, wantClose: 1000},
		fails("§8.1 close reason that is not UTF-8", 1007, fr(opClose, closePayload(1000, []byte{'a', 0xff}))),
		rawCase{Name: "§5.5.1 data after the close frame is not echoed",
			Frames: []rawFrame{fr(opClose, closePayload(1000, nil)), fr(opText, b("late")), fr(opPing, b("late"))}, wantClose: 1000},
	)
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		cs = append(cs, fails(fmt.Sprintf("§7.4.1 invalid close code %d", code), 1002, fr(opClose, closePayload(code, nil))))
	}
	for _, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999} {
		cs = append(cs, rawCase{Name: fmt.Sprintf("§7.4.1 close code %d echoed", code),
			Frames: []rawFrame{fr(opClose, closePayload(code, b("reason")))}, wantClose: code})
	}

	// §10.4 limits (MaxPayloadLength 64 KiB).
	full := patterned(rawMaxPayload)
	cs = append(cs,
		echoes("§10.4 message of exactly MaxPayloadLength", [][]byte{full}, nil, fr(opBin, full)),
		echoes("§10.4 fragmented message of exactly MaxPayloadLength", [][]byte{full}, nil,
			frag(opBin, full[:30000]), frag(opCont, full[30000:60000]), fr(opCont, full[60000:])),
		fails("§10.4 frame over MaxPayloadLength", 1009, fr(opBin, patterned(rawMaxPayload+1))),
		fails("§10.4 frame of 4 MiB over MaxPayloadLength, sent in full", 1009, fr(opBin, patterned(4<<20))),
		fails("§10.4 fragments summing over MaxPayloadLength", 1009, frag(opBin, patterned(40000)), fr(opCont, patterned(40000))),
		fails("§10.4 frame header announcing more than MaxPayloadLength (payload not sent)", 1009,
			rawFrame{Raw: "82ff0000000000100000" + "01020304"}),
	)

	// RFC 7692 on a connection that negotiated permessage-deflate.
	long := textOf(5000)
	cs = append(cs,
		onDeflate(echoes("RFC 7692 compressed text echoed", [][]byte{b("hello hello hello hello")}, nil, deflated(fr(opText, b("hello hello hello hello"))))),
		onDeflate(echoes("RFC 7692 compressed binary echoed", [][]byte{patterned(3000)}, nil, deflated(fr(opBin, patterned(3000))))),
		onDeflate(echoes("RFC 7692 compressed message in 3 fragments", [][]byte{long}, nil, rawFrame{Op: opText, Hex: hex.EncodeToString(long), Split: 3})),
		onDeflate(echoes("RFC 7692 uncompressed message on a deflate connection", [][]byte{b("plain")}, nil, fr(opText, b("plain")))),
		onDeflate(echoes("RFC 7692 empty compressed message", [][]byte{{}}, nil, deflated(fr(opText, nil)))),
		onDeflate(echoes("RFC 7692 compressed message of exactly MaxPayloadLength", [][]byte{full}, nil, deflated(fr(opBin, full)))),
		onDeflate(fails("RFC 7692 §8.1 compressed text that is not UTF-8", 1007, deflated(fr(opText, []byte{'a', 0xff, 'b'})))),
		onDeflate(fails("RFC 7692 §8.1 compressed text ending inside a character", 1007, deflated(fr(opText, []byte{'a', 0xe2, 0x82})))),
		onDeflate(fails("RFC 7692 §7.2.2 data that is not deflate", 1007, withRsv(fr(opText, []byte{0xff, 0xff, 0xff, 0xff}), rsv1))),
		onDeflate(fails("RFC 7692 compressed message inflating over MaxPayloadLength (bomb)", 1009,
			deflated(rawFrame{Op: opBin, Fin: true, Zeros: 10 << 20}))),
		onDeflate(fails("RFC 7692 compressed message inflating to MaxPayloadLength+1", 1009,
			deflated(rawFrame{Op: opBin, Fin: true, Zeros: rawMaxPayload + 1}))),
	)
	return cs
}

func TestAutobahnRawFrames(t *testing.T) {
	requireAutobahn(t)
	t.Parallel()
	cases := rawCases()
	prov, ev := startProvider(t, func(o *provider.Options) {
		o.Compressor = compress.DedicatedCompressor | compress.DedicatedDecompressor
		o.MaxPayloadLength = rawMaxPayload
		o.CloseTimeout = 3 * time.Second
	})
	js, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "cases.json")
	if err := os.WriteFile(file, js, 0o644); err != nil {
		t.Fatal(err)
	}
	p := spawn(t, python, filepath.Join("python", "ab_raw.py"), "--url", wsURL(prov.Addr().String()), "--cases", file)
	if err := p.waitExit(4 * time.Minute); err != nil {
		t.Errorf("ab_raw.py: %v\n%s", err, strings.Join(p.output(), "\n"))
	}
	type result struct {
		Name        string   `json:"name"`
		CloseCode   int      `json:"close_code"`
		CloseReason string   `json:"close_reason"`
		Messages    [][2]any `json:"messages"`
		Pongs       []string `json:"pongs"`
		Clean       bool     `json:"clean"`
		Timeout     bool     `json:"timeout"`
		Error       string   `json:"error"`
	}
	results := map[string]result{}
	for _, l := range p.matching("RESULT ") {
		var r result
		if err := json.Unmarshal([]byte(strings.TrimPrefix(l, "RESULT ")), &r); err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		results[r.Name] = r
	}
	for _, c := range cases {
		t.Run(c.Name, func(t *testing.T) {
			track(t, "python3-autobahn raw frames")
			r, ok := results[c.Name]
			switch {
			case !ok:
				t.Fatal("no result from ab_raw.py")
			case r.Error != "":
				t.Fatalf("ab_raw.py: %s", r.Error)
			case r.Timeout:
				t.Errorf("no close from the Provider within 10 s (close %d, %d messages)", r.CloseCode, len(r.Messages))
			}
			if r.CloseCode != c.wantClose {
				t.Errorf("Provider closed with %d %q, want %d", r.CloseCode, r.CloseReason, c.wantClose)
			}
			if !r.Clean && !r.Timeout {
				t.Errorf("closing handshake not clean (the TCP connection was dropped): close %d %q", r.CloseCode, r.CloseReason)
			}
			if len(r.Messages) != len(c.wantMsgs) {
				t.Errorf("%d messages echoed, want %d", len(r.Messages), len(c.wantMsgs))
			} else {
				for i, m := range r.Messages {
					got, _ := hex.DecodeString(m[1].(string))
					if string(got) != string(c.wantMsgs[i]) {
						t.Errorf("message %d: got %d bytes %.40q, want %d bytes %.40q", i, len(got), got, len(c.wantMsgs[i]), c.wantMsgs[i])
					}
				}
			}
			if len(r.Pongs) != len(c.wantPongs) {
				t.Errorf("%d pongs, want %d", len(r.Pongs), len(c.wantPongs))
			} else {
				for i, pg := range r.Pongs {
					if got, _ := hex.DecodeString(pg); string(got) != string(c.wantPongs[i]) {
						t.Errorf("pong %d: %q, want %q", i, got, c.wantPongs[i])
					}
				}
			}
		})
	}
	if t.Failed() {
		t.Logf("provider: %s", ev)
	}
}

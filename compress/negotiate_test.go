package compress

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// allPresets lists every named preset and some combinations.
var allPresets = []Preset{
	Disabled, SharedCompressor, SharedDecompressor,
	DedicatedCompressor3KB, DedicatedCompressor4KB, DedicatedCompressor8KB, DedicatedCompressor16KB,
	DedicatedCompressor32KB, DedicatedCompressor64KB, DedicatedCompressor128KB, DedicatedCompressor256KB,
	DedicatedDecompressor512B, DedicatedDecompressor1KB, DedicatedDecompressor2KB, DedicatedDecompressor4KB,
	DedicatedDecompressor8KB, DedicatedDecompressor16KB, DedicatedDecompressor32KB,
	SharedCompressor | SharedDecompressor,
	DedicatedCompressor4KB | DedicatedDecompressor,
	SharedCompressor | DedicatedDecompressor4KB,
	DedicatedCompressor | DedicatedDecompressor,
	DedicatedCompressor3KB | DedicatedDecompressor512B,
	DedicatedCompressor32KB | SharedDecompressor,
}

// budget returns the memory a preset's name allows per connection for the
// compressor and the decompressor.
func budget(p Preset) (comp, decomp int) {
	switch p & compressorMask {
	case DedicatedCompressor3KB:
		comp = 3 << 10
	case 0, SharedCompressor:
		comp = 0
	default:
		comp = 1 << ((p&compressorMask)>>4 - 9 + 12) // 4 KB at 9 bits, doubling
	}
	if w := p.decompressWindow(); w != 0 {
		decomp = 1 << w
	}
	return
}

// Offers that real peers send.
const (
	offerChrome  = "permessage-deflate; client_max_window_bits" // Chrome, Safari, Node ws, Python websockets
	offerFirefox = "permessage-deflate"
	offerSMWB9   = "permessage-deflate; server_max_window_bits=9" // autobahn
	offerSNCT    = "permessage-deflate; server_no_context_takeover"
)

// Short names of the response parameters in the golden tables.
func expand(s string) string {
	if s == "-" {
		return "declined"
	}
	out := "permessage-deflate"
	for f := range strings.SplitSeq(s, " ") {
		if f == "" {
			continue
		}
		k, v, _ := strings.Cut(f, "=")
		name := map[string]string{"S": paramServerNoContextTakeover, "C": paramClientNoContextTakeover,
			"SW": paramServerMaxWindowBits, "CW": paramClientMaxWindowBits}[k]
		out += "; " + name
		if v != "" {
			out += "=" + v
		}
	}
	return out
}

func accept(t *testing.T, p Preset, header string) string {
	t.Helper()
	offers, err := ParseOffers([]string{header})
	if err != nil {
		t.Fatalf("%q: %v", header, err)
	}
	resp, ok := p.Accept(offers)
	if !ok {
		return "declined"
	}
	return resp.String()
}

// TestAcceptEveryPreset: the response of every preset to the offers of
// browsers, Node ws, autobahn (S=server_no_context_takeover,
// C=client_no_context_takeover, SW=server_max_window_bits,
// CW=client_max_window_bits).
func TestAcceptEveryPreset(t *testing.T) {
	golden := map[Preset][4]string{ // chrome, firefox, server_max_window_bits=9, server_no_context_takeover
		Disabled:                  {"-", "-", "-", "-"},
		SharedCompressor:          {"S C", "S C", "S C SW=9", "S C"},
		SharedDecompressor:        {"S C", "S C", "S C SW=9", "S C"},
		DedicatedCompressor3KB:    {"C SW=9", "C SW=9", "C SW=9", "S C SW=9"},
		DedicatedCompressor4KB:    {"C SW=9", "C SW=9", "C SW=9", "S C SW=9"},
		DedicatedCompressor8KB:    {"C SW=10", "C SW=10", "C SW=9", "S C SW=10"},
		DedicatedCompressor16KB:   {"C SW=11", "C SW=11", "C SW=9", "S C SW=11"},
		DedicatedCompressor32KB:   {"C SW=12", "C SW=12", "C SW=9", "S C SW=12"},
		DedicatedCompressor64KB:   {"C SW=13", "C SW=13", "C SW=9", "S C SW=13"},
		DedicatedCompressor128KB:  {"C SW=14", "C SW=14", "C SW=9", "S C SW=14"},
		DedicatedCompressor256KB:  {"C", "C", "C SW=9", "S C"},
		DedicatedDecompressor512B: {"S CW=9", "S C", "S C SW=9", "S C"},
		DedicatedDecompressor1KB:  {"S CW=10", "S C", "S C SW=9", "S C"},
		DedicatedDecompressor2KB:  {"S CW=11", "S C", "S C SW=9", "S C"},
		DedicatedDecompressor4KB:  {"S CW=12", "S C", "S C SW=9", "S C"},
		DedicatedDecompressor8KB:  {"S CW=13", "S C", "S C SW=9", "S C"},
		DedicatedDecompressor16KB: {"S CW=14", "S C", "S C SW=9", "S C"},
		DedicatedDecompressor32KB: {"S", "S", "S SW=9", "S"},

		SharedCompressor | SharedDecompressor:              {"S C", "S C", "S C SW=9", "S C"},
		DedicatedCompressor4KB | DedicatedDecompressor:     {"SW=9", "SW=9", "SW=9", "S SW=9"},
		SharedCompressor | DedicatedDecompressor4KB:        {"S CW=12", "S C", "S C SW=9", "S C"},
		DedicatedCompressor | DedicatedDecompressor:        {"", "", "SW=9", "S"},
		DedicatedCompressor3KB | DedicatedDecompressor512B: {"SW=9 CW=9", "C SW=9", "C SW=9", "S C SW=9"},
		DedicatedCompressor32KB | SharedDecompressor:       {"C SW=12", "C SW=12", "C SW=9", "S C SW=12"},
	}
	for _, p := range allPresets {
		want, ok := golden[p]
		if !ok {
			t.Fatalf("no golden row for %v", p)
		}
		for i, offer := range []string{offerChrome, offerFirefox, offerSMWB9, offerSNCT} {
			if got := accept(t, p, offer); got != expand(want[i]) {
				t.Errorf("%v, offer %q:\n got  %s\n want %s", p, offer, got, expand(want[i]))
			}
		}
	}
}

// TestAcceptOffers: more offers (autobahn's, several in one header,
// invalid and duplicate parameters) against a few presets.
func TestAcceptOffers(t *testing.T) {
	both := DedicatedCompressor | DedicatedDecompressor
	small := DedicatedCompressor3KB | DedicatedDecompressor512B
	for _, tc := range []struct {
		offer string
		want  map[Preset]string
	}{
		{"permessage-deflate; client_no_context_takeover; client_max_window_bits",
			map[Preset]string{SharedCompressor: "S C", both: "C", small: "C SW=9", DedicatedDecompressor: "S C"}},
		{"permessage-deflate; client_max_window_bits=10",
			map[Preset]string{SharedCompressor: "S C", both: "CW=10", small: "SW=9 CW=9", DedicatedDecompressor: "S CW=10"}},
		{"permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
			map[Preset]string{SharedCompressor: "S C SW=12", both: "S SW=12", small: "S C SW=9"}},
		{"permessage-deflate; server_max_window_bits=8",
			map[Preset]string{SharedCompressor: "S C SW=8", both: "SW=8", small: "C SW=8"}},
		{"permessage-deflate; server_max_window_bits=10; client_max_window_bits=10, permessage-deflate; client_max_window_bits",
			map[Preset]string{SharedCompressor: "S C SW=10", both: "SW=10 CW=10", small: "SW=9 CW=9"}},
		{"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits",
			map[Preset]string{both: "", small: "SW=9 CW=9"}},
		// An invalid first offer is skipped; the next one is accepted.
		{"permessage-deflate; foo, permessage-deflate; server_no_context_takeover",
			map[Preset]string{SharedCompressor: "S C", both: "S", small: "S C SW=9"}},
		{"permessage-deflate; server_max_window_bits=20, permessage-deflate",
			map[Preset]string{both: "", small: "C SW=9"}},
		// Nothing acceptable: declined.
		{"permessage-deflate; server_max_window_bits, permessage-deflate; client_no_context_takeover; client_no_context_takeover",
			map[Preset]string{SharedCompressor: "-", both: "-", small: "-"}},
		{"permessage-deflate; client_max_window_bits=9; client_max_window_bits=9",
			map[Preset]string{both: "-"}},
		{"", map[Preset]string{both: "-"}},
	} {
		for p, want := range tc.want {
			if got := accept(t, p, tc.offer); got != expand(want) {
				t.Errorf("%v, offer %q:\n got  %s\n want %s", p, tc.offer, got, expand(want))
			}
		}
	}
}

func TestOffer(t *testing.T) {
	for p, want := range map[Preset]string{
		SharedCompressor:                                   "S C",
		DedicatedCompressor3KB:                             "S CW=9",
		DedicatedCompressor:                                "S CW",
		SharedDecompressor:                                 "S C",
		DedicatedDecompressor512B:                          "C SW=9",
		DedicatedDecompressor:                              "C",
		DedicatedCompressor | DedicatedDecompressor:        "CW",
		DedicatedCompressor4KB | DedicatedDecompressor512B: "SW=9 CW=9",
	} {
		if got := p.Offer().String(); got != expand(want) {
			t.Errorf("%v: %s, want %s", p, got, expand(want))
		}
	}
}

// TestCheckResponse: the client's checks of RFC 7692 §7.1 on what the
// server answered.
func TestCheckResponse(t *testing.T) {
	for _, tc := range []struct {
		offer, resp string
		err         error
	}{
		{"CW", "", nil},
		{"CW", "CW=10", nil},
		{"CW", "S C CW=8", nil},
		{"", "CW=10", ErrNegotiation}, // not offered
		{"CW=10", "CW=12", ErrNegotiation},
		{"CW=10", "CW=9", nil},
		{"SW=10", "", ErrNegotiation}, // not accepted
		{"SW=10", "SW=11", ErrNegotiation},
		{"SW=10", "SW=8", nil},
		{"", "SW=9", nil}, // the server may announce a smaller window
		{"S", "", ErrNegotiation},
		{"S", "S", nil},
		{"", "S C", nil},
		{"C", "", nil}, // our hint; we keep to it anyway
	} {
		offers, err := ParseOffers([]string{expand(tc.offer)})
		if err != nil || len(offers) != 1 {
			t.Fatal(tc.offer, err)
		}
		resp, ok, err := ParseResponse([]string{expand(tc.resp)})
		if err != nil || !ok {
			t.Fatal(tc.resp, err)
		}
		err = Preset(0).CheckResponse(offers[0], resp)
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("offer %q, response %q: %v, want %v", expand(tc.offer), expand(tc.resp), err, tc.err)
		}
	}
	if err := DedicatedCompressor.CheckResponse(Params{}, Params{ClientMaxWindowBits: -1}); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("client_max_window_bits without a value in a response: %v", err)
	}
}

// TestNegotiateEndToEnd runs every client preset against every server
// preset through the headers, then sends messages both ways with the
// negotiated codecs, and checks that each side keeps within its preset.
func TestNegotiateEndToEnd(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 11))
	msgs := [][]byte{jsonish(r, 1024), jsonish(r, 300), []byte("Hello"), jsonish(r, 5000), jsonish(r, 1024)}
	clients := allPresets
	if raceEnabled || testing.Short() {
		clients = []Preset{SharedCompressor, DedicatedCompressor3KB, DedicatedCompressor, DedicatedDecompressor512B,
			DedicatedCompressor | DedicatedDecompressor, SharedCompressor | DedicatedDecompressor4KB}
	}
	for _, cp := range clients {
		for _, sp := range allPresets {
			if !cp.Enabled() {
				continue
			}
			name := fmt.Sprintf("client %v, server %v", cp, sp)
			offers, err := ParseOffers([]string{cp.Offer().String()})
			if err != nil {
				t.Fatal(name, err)
			}
			sresp, ok := sp.Accept(offers)
			if !ok {
				if sp.Enabled() {
					t.Errorf("%s: declined", name)
				}
				continue
			}
			cresp, ok, err := ParseResponse([]string{sresp.String()})
			if err != nil || !ok {
				t.Fatalf("%s: %v", name, err)
			}
			if err := cp.CheckResponse(offers[0], cresp); err != nil {
				t.Errorf("%s: response %q rejected: %v", name, sresp, err)
				continue
			}
			sc, cc := NewConfig(sp, sresp, true), NewConfig(cp, cresp, false)
			pipe(t, name+" client→server", cc, sc, msgs, cp, sp)
			pipe(t, name+" server→client", sc, cc, msgs, sp, cp)
		}
	}
}

// pipe sends msgs from the side with configuration from to the side with
// configuration to, and checks memory against the presets.
func pipe(t *testing.T, name string, from, to Config, msgs [][]byte, fp, tp Preset) {
	t.Helper()
	if from.CompressContextTakeover && !to.DecompressContextTakeover {
		t.Fatalf("%s: compressor keeps context the decompressor drops", name)
	}
	if from.compressBits() > to.decompressBits() {
		t.Fatalf("%s: compressor window %d over decompressor window %d", name, from.compressBits(), to.decompressBits())
	}
	c, d := NewCompressor(from), NewDecompressor(to)
	defer c.Release()
	defer d.Release()
	var payloads [][]byte
	for i, m := range msgs {
		p, _ := c.Compress(nil, m)
		payloads = append(payloads, p)
		got, err := d.Decompress(nil, p, 1<<20)
		if err != nil || !bytes.Equal(got, m) {
			t.Fatalf("%s: message %d: %v", name, i, err)
		}
	}
	checkStream(t, msgs, payloads, from.compressBits(), from.CompressContextTakeover)
	cb, _ := budget(fp)
	_, db := budget(tp)
	if c.Retained() > cb {
		t.Errorf("%s: compressor keeps %d bytes, preset %v allows %d", name, c.Retained(), fp, cb)
	}
	if d.Retained() > db {
		t.Errorf("%s: decompressor keeps %d bytes, preset %v allows %d", name, d.Retained(), tp, db)
	}
}

func TestPresets(t *testing.T) {
	for _, p := range allPresets {
		if err := p.Validate(); err != nil {
			t.Errorf("%d: %v", p, err)
		}
		back, err := ParsePreset(p.String())
		if err != nil || back != p {
			t.Errorf("%v (%d): parses back as %v, %v", p, uint32(p), back, err)
		}
		if p.Enabled() != (p != Disabled) {
			t.Errorf("%v: Enabled() = %v", p, p.Enabled())
		}
	}
	for s, want := range map[string]Preset{
		"DISABLED": Disabled,
		"SHARED_COMPRESSOR|DEDICATED_DECOMPRESSOR":         SharedCompressor | DedicatedDecompressor,
		" dedicated-compressor-4kb | shared_decompressor ": DedicatedCompressor4KB | SharedDecompressor,
		"146":                         DedicatedCompressor4KB,
		"0x92|2304":                   DedicatedCompressor4KB | DedicatedDecompressor512B,
		"DEDICATED_COMPRESSOR":        248,
		"DEDICATED_DECOMPRESSOR_512B": 2304,
	} {
		if got, err := ParsePreset(s); err != nil || got != want {
			t.Errorf("ParsePreset(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "FOO", "147", "DEDICATED_COMPRESSOR_4KB|SHARED_COMPRESSOR", "4096", "0x1000", "SHARED_COMPRESSOR|", "1.5", "-1", "1024"} {
		if p, err := ParsePreset(s); !errors.Is(err, ErrInvalidPreset) {
			t.Errorf("ParsePreset(%q) = %v, %v; want ErrInvalidPreset", s, p, err)
		}
	}
	if s := Preset(147).String(); s != "Preset(0x93)" {
		t.Errorf("invalid preset prints %q", s)
	}
	if Preset(147).Enabled() {
		t.Error("an invalid preset is enabled")
	}
	if got := (DedicatedCompressor4KB | DedicatedDecompressor).String(); got != "DEDICATED_COMPRESSOR_4KB|DEDICATED_DECOMPRESSOR_32KB" {
		t.Errorf("String() = %q", got)
	}
}

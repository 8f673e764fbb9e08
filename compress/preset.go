package compress

import (
	"fmt"
	"strconv"
	"strings"
)

// Preset selects how a connection compresses (its compressor) and inflates
// (its decompressor), in the layout of uWebSockets: the low 8 bits are the
// compressor, windowBits<<4 | memLevel; bits 8–11 are the decompressor's
// window bits. Combine one compressor and one decompressor preset with a
// bitwise OR, for example DedicatedCompressor4KB | DedicatedDecompressor.
//
// The name of a preset is the most memory a connection keeps between
// messages for that direction, and this package keeps no more (see
// [Compressor.Retained] and [Decompressor.Retained]). A shared preset keeps
// nothing per connection: no context takeover in that direction. When only
// one half is given, the other half is the shared one, as in uWebSockets:
// SharedCompressor alone means SharedCompressor|SharedDecompressor.
//
// A Preset is a plain value, safe for concurrent use.
type Preset uint32

// The presets, with the values of uWebSockets. The comments give the window
// and what a connection keeps between messages with this package (window
// history plus, for a compressor, its match table): always within the name.
const (
	// Disabled: no permessage-deflate.
	Disabled Preset = 0
	// SharedCompressor: no context takeover for outbound messages; the
	// connection keeps nothing, and one compression of a message serves
	// every receiver (broadcast).
	SharedCompressor Preset = 1
	// SharedDecompressor: asks the peer for no context takeover
	// (client_no_context_takeover / server_no_context_takeover), so
	// inflation keeps nothing per connection.
	SharedDecompressor Preset = 256

	DedicatedCompressor3KB   Preset = 145 // window 9 bits (512 B), memLevel 1: keeps 1.5 KB
	DedicatedCompressor4KB   Preset = 146 // window 9 bits (512 B), memLevel 2: keeps 2 KB
	DedicatedCompressor8KB   Preset = 163 // window 10 bits (1 KB), memLevel 3: keeps 4 KB
	DedicatedCompressor16KB  Preset = 180 // window 11 bits (2 KB), memLevel 4: keeps 8 KB
	DedicatedCompressor32KB  Preset = 197 // window 12 bits (4 KB), memLevel 5: keeps 16 KB
	DedicatedCompressor64KB  Preset = 214 // window 13 bits (8 KB), memLevel 6: keeps 32 KB
	DedicatedCompressor128KB Preset = 231 // window 14 bits (16 KB), memLevel 7: keeps 64 KB
	DedicatedCompressor256KB Preset = 248 // window 15 bits (32 KB), memLevel 8: keeps 128 KB
	// DedicatedCompressor is DedicatedCompressor256KB.
	DedicatedCompressor = DedicatedCompressor256KB

	DedicatedDecompressor512B Preset = 2304 // window 9 bits: keeps 512 B
	DedicatedDecompressor1KB  Preset = 2560 // window 10 bits: keeps 1 KB
	DedicatedDecompressor2KB  Preset = 2816 // window 11 bits: keeps 2 KB
	DedicatedDecompressor4KB  Preset = 3072 // window 12 bits: keeps 4 KB
	DedicatedDecompressor8KB  Preset = 3328 // window 13 bits: keeps 8 KB
	DedicatedDecompressor16KB Preset = 3584 // window 14 bits: keeps 16 KB
	DedicatedDecompressor32KB Preset = 3840 // window 15 bits: keeps 32 KB
	// DedicatedDecompressor is DedicatedDecompressor32KB.
	DedicatedDecompressor = DedicatedDecompressor32KB
)

const (
	compressorMask   Preset = 0x0FF
	decompressorMask Preset = 0xF00
)

var presetNames = [...]struct {
	name string
	p    Preset
}{
	{"DISABLED", Disabled},
	{"SHARED_COMPRESSOR", SharedCompressor},
	{"SHARED_DECOMPRESSOR", SharedDecompressor},
	{"DEDICATED_COMPRESSOR_3KB", DedicatedCompressor3KB},
	{"DEDICATED_COMPRESSOR_4KB", DedicatedCompressor4KB},
	{"DEDICATED_COMPRESSOR_8KB", DedicatedCompressor8KB},
	{"DEDICATED_COMPRESSOR_16KB", DedicatedCompressor16KB},
	{"DEDICATED_COMPRESSOR_32KB", DedicatedCompressor32KB},
	{"DEDICATED_COMPRESSOR_64KB", DedicatedCompressor64KB},
	{"DEDICATED_COMPRESSOR_128KB", DedicatedCompressor128KB},
	{"DEDICATED_COMPRESSOR_256KB", DedicatedCompressor256KB},
	{"DEDICATED_COMPRESSOR", DedicatedCompressor},
	{"DEDICATED_DECOMPRESSOR_512B", DedicatedDecompressor512B},
	{"DEDICATED_DECOMPRESSOR_1KB", DedicatedDecompressor1KB},
	{"DEDICATED_DECOMPRESSOR_2KB", DedicatedDecompressor2KB},
	{"DEDICATED_DECOMPRESSOR_4KB", DedicatedDecompressor4KB},
	{"DEDICATED_DECOMPRESSOR_8KB", DedicatedDecompressor8KB},
	{"DEDICATED_DECOMPRESSOR_16KB", DedicatedDecompressor16KB},
	{"DEDICATED_DECOMPRESSOR_32KB", DedicatedDecompressor32KB},
	{"DEDICATED_DECOMPRESSOR", DedicatedDecompressor},
}

// ParsePreset parses a preset as written in configuration or on a command
// line: names as in uWebSockets and the Node package ("DEDICATED_COMPRESSOR_4KB"),
// case-insensitive, '-' accepted for '_', numbers in Go syntax ("146",
// "0x92"), and any of these joined with '|' ("SHARED_COMPRESSOR |
// DEDICATED_DECOMPRESSOR"). The result must pass [Preset.Validate].
func ParsePreset(s string) (Preset, error) {
	if strings.TrimSpace(s) == "" {
		return 0, fmt.Errorf("%w: empty preset", ErrInvalidPreset)
	}
	var p Preset
	for part := range strings.SplitSeq(s, "|") {
		part = strings.TrimSpace(part)
		if part == "" {
			return 0, fmt.Errorf("%w: empty term in %q", ErrInvalidPreset, s)
		}
		if c := part[0]; c >= '0' && c <= '9' {
			v, err := strconv.ParseUint(part, 0, 32)
			if err != nil {
				return 0, fmt.Errorf("%w: %q: %v", ErrInvalidPreset, part, err)
			}
			p |= Preset(v)
			continue
		}
		name := strings.ToUpper(strings.ReplaceAll(part, "-", "_"))
		found := false
		for _, n := range presetNames {
			if n.name == name {
				p |= n.p
				found = true
				break
			}
		}
		if !found {
			return 0, fmt.Errorf("%w: unknown name %q", ErrInvalidPreset, part)
		}
	}
	if err := p.Validate(); err != nil {
		return 0, err
	}
	return p, nil
}

// String returns the preset's name, such as "DISABLED" or
// "DEDICATED_COMPRESSOR_4KB|SHARED_DECOMPRESSOR", in the form ParsePreset
// reads. A half that is absent (and so defaults to shared) is not printed.
// An invalid preset prints as "Preset(0x…)".
func (p Preset) String() string {
	if p == Disabled {
		return "DISABLED"
	}
	if p.Validate() != nil {
		return "Preset(0x" + strconv.FormatUint(uint64(p), 16) + ")"
	}
	var parts []string
	for _, half := range [2]Preset{p & compressorMask, p & decompressorMask} {
		if half == 0 {
			continue
		}
		for _, n := range presetNames {
			if n.p == half {
				parts = append(parts, n.name)
				break
			}
		}
	}
	return strings.Join(parts, "|")
}

// Validate reports whether p is a preset this package knows: bits above 11
// are clear, the compressor byte is 0, SharedCompressor or one of the
// dedicated compressors, and the decompressor nibble is 0, shared (1) or a
// window of 9–15 bits. An error wraps ErrInvalidPreset.
func (p Preset) Validate() error {
	if p&^(compressorMask|decompressorMask) != 0 {
		return fmt.Errorf("%w: unknown bits 0x%x", ErrInvalidPreset, uint32(p&^(compressorMask|decompressorMask)))
	}
	switch c := p & compressorMask; c {
	case 0, SharedCompressor, DedicatedCompressor3KB, DedicatedCompressor4KB, DedicatedCompressor8KB,
		DedicatedCompressor16KB, DedicatedCompressor32KB, DedicatedCompressor64KB,
		DedicatedCompressor128KB, DedicatedCompressor256KB:
	default:
		return fmt.Errorf("%w: compressor byte %d is not a preset (combine at most one compressor preset)", ErrInvalidPreset, uint32(c))
	}
	if d := (p & decompressorMask) >> 8; d != 0 && d != 1 && (d < 9 || d > 15) {
		return fmt.Errorf("%w: decompressor window %d bits is not a preset", ErrInvalidPreset, uint32(d))
	}
	return nil
}

// Enabled reports whether p turns permessage-deflate on: any valid preset
// other than Disabled.
func (p Preset) Enabled() bool { return p != Disabled && p.Validate() == nil }

// compressWindow returns the dedicated compressor's window bits (9–15) and
// memLevel (1–8), or 0, 0 for a shared (or absent) compressor.
func (p Preset) compressWindow() (bits, memLevel int) {
	c := p & compressorMask
	if c <= SharedCompressor {
		return 0, 0
	}
	return int(c >> 4), int(c & 15)
}

// decompressWindow returns the dedicated decompressor's window bits
// (9–15), or 0 for a shared (or absent) decompressor.
func (p Preset) decompressWindow() int {
	d := int((p & decompressorMask) >> 8)
	if d <= 1 {
		return 0
	}
	return d
}

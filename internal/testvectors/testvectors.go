// Package testvectors holds the deterministic test data that the
// conformance cases of the provider and consumer packages share: UTF-8
// sequences after the cases of Autobahn|Testsuite section 6 (themselves
// after Markus Kuhn's UTF-8 decoder stress test), valid UTF-8 text and
// pseudo-random bytes of any length, and the kinds of data the compression
// cases of Autobahn's section 12 send. Every function but TrimUTF8 returns
// new memory that the caller owns; the same arguments give the same bytes.
package testvectors

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"unicode/utf8"
)

// UTF8Vector is one text payload and whether it is valid UTF-8 under
// RFC 3629 (no overlong forms, no surrogates, nothing above U+10FFFF;
// noncharacters such as U+FFFE are valid).
type UTF8Vector struct {
	AB    string // the Autobahn case it follows
	Desc  string
	Data  string
	Valid bool
}

// Kosme is "κόσμε", the Greek word of Markus Kuhn's test file.
const Kosme = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"

// KosmeBad is κόσμε, then U+D800 (a surrogate, invalid), then "edited":
// the message of Autobahn cases 6.3 and 6.4.
const KosmeBad = Kosme + "\xed\xa0\x80edited"

// UTF8Vectors returns the vectors, a new slice each call. Each row's
// validity is checked against unicode/utf8 by TestUTF8VectorTable, which
// guards the table against typing mistakes.
func UTF8Vectors() []UTF8Vector {
	v := []UTF8Vector{
		{"6.5.1", "κόσμε", Kosme, true},
		{"6.5.2", "Latin-1 supplement mix", "Hello-µ@ßöäüàá-UTF-8!!", true},
		{"6.5.3", "CJK, emoji and combining marks", "日本語テキスト 🎉 e\u0301", true},
	}
	// 6.6: κόσμε cut after every byte: valid only at character boundaries.
	for i := 1; i <= len(Kosme); i++ {
		p := Kosme[:i]
		v = append(v, UTF8Vector{"6.6." + strconv.Itoa(i), "κόσμε cut after byte " + strconv.Itoa(i), p, utf8.ValidString(p)})
	}
	v = append(v,
		// 6.7, 6.9: first and last sequence of each length.
		UTF8Vector{"6.7.1", "U+0000", "\x00", true},
		UTF8Vector{"6.7.2", "U+0080", "\xc2\x80", true},
		UTF8Vector{"6.7.3", "U+0800", "\xe0\xa0\x80", true},
		UTF8Vector{"6.7.4", "U+10000", "\xf0\x90\x80\x80", true},
		UTF8Vector{"6.8.1", "5-byte sequence", "\xf8\x88\x80\x80\x80", false},
		UTF8Vector{"6.8.2", "6-byte sequence", "\xfc\x84\x80\x80\x80\x80", false},
		UTF8Vector{"6.9.1", "U+007F", "\x7f", true},
		UTF8Vector{"6.9.2", "U+07FF", "\xdf\xbf", true},
		UTF8Vector{"6.9.3", "U+FFFF", "\xef\xbf\xbf", true},
		UTF8Vector{"6.9.4", "U+10FFFF", "\xf4\x8f\xbf\xbf", true},
		UTF8Vector{"6.10.1", "4 bytes above U+10FFFF", "\xf7\xbf\xbf\xbf", false},
		UTF8Vector{"6.10.2", "5 bytes", "\xfb\xbf\xbf\xbf\xbf", false},
		UTF8Vector{"6.10.3", "6 bytes", "\xfd\xbf\xbf\xbf\xbf\xbf", false},
		// 6.11: other boundaries.
		UTF8Vector{"6.11.1", "U+D7FF", "\xed\x9f\xbf", true},
		UTF8Vector{"6.11.2", "U+E000", "\xee\x80\x80", true},
		UTF8Vector{"6.11.3", "U+FFFD", "\xef\xbf\xbd", true},
		UTF8Vector{"6.11.4", "U+10FFFF", "\xf4\x8f\xbf\xbf", true},
		UTF8Vector{"6.11.5", "U+110000", "\xf4\x90\x80\x80", false},
		// 6.12: unexpected continuation bytes.
		UTF8Vector{"6.12.1", "lone 0x80", "\x80", false},
		UTF8Vector{"6.12.2", "lone 0xbf", "\xbf", false},
		UTF8Vector{"6.12.3", "2 continuation bytes", "\x80\xbf", false},
		UTF8Vector{"6.12.4", "3 continuation bytes", "\x80\xbf\x80", false},
		UTF8Vector{"6.12.5", "4 continuation bytes", "\x80\xbf\x80\xbf", false},
		UTF8Vector{"6.12.6", "5 continuation bytes", "\x80\xbf\x80\xbf\x80", false},
		UTF8Vector{"6.12.7", "6 continuation bytes", "\x80\xbf\x80\xbf\x80\xbf", false},
		UTF8Vector{"6.12.8", "all 64 continuation bytes", byteRange(0x80, 0xbf, ""), false},
		// 6.13: lonely start bytes, each followed by a space.
		UTF8Vector{"6.13.1", "2-byte starts + space", byteRange(0xc0, 0xdf, " "), false},
		UTF8Vector{"6.13.2", "3-byte starts + space", byteRange(0xe0, 0xef, " "), false},
		UTF8Vector{"6.13.3", "4-byte starts + space", byteRange(0xf0, 0xf7, " "), false},
		UTF8Vector{"6.13.4", "5-byte starts + space", byteRange(0xf8, 0xfb, " "), false},
		UTF8Vector{"6.13.5", "6-byte starts + space", byteRange(0xfc, 0xfd, " "), false},
	)
	// 6.14: sequences missing their last continuation byte; 6.15 joins them.
	missing := []string{"\xc0", "\xe0\x80", "\xf0\x80\x80", "\xf8\x80\x80\x80", "\xfc\x80\x80\x80\x80",
		"\xdf", "\xef\xbf", "\xf7\xbf\xbf", "\xfb\xbf\xbf\xbf", "\xfd\xbf\xbf\xbf\xbf"}
	for i, s := range missing {
		v = append(v, UTF8Vector{"6.14." + strconv.Itoa(i+1), "last continuation byte missing", s, false})
	}
	v = append(v,
		UTF8Vector{"6.15.1", "6.14 concatenated", strings.Join(missing, ""), false},
		UTF8Vector{"6.16.1", "0xfe", "\xfe", false},
		UTF8Vector{"6.16.2", "0xff", "\xff", false},
		UTF8Vector{"6.16.3", "fe fe ff ff", "\xfe\xfe\xff\xff", false},
		// 6.17: overlong '/'; 6.18: largest overlong forms; 6.19: overlong NUL.
		UTF8Vector{"6.17.1", "overlong / (2)", "\xc0\xaf", false},
		UTF8Vector{"6.17.2", "overlong / (3)", "\xe0\x80\xaf", false},
		UTF8Vector{"6.17.3", "overlong / (4)", "\xf0\x80\x80\xaf", false},
		UTF8Vector{"6.17.4", "overlong / (5)", "\xf8\x80\x80\x80\xaf", false},
		UTF8Vector{"6.17.5", "overlong / (6)", "\xfc\x80\x80\x80\x80\xaf", false},
		UTF8Vector{"6.18.1", "max overlong (2)", "\xc1\xbf", false},
		UTF8Vector{"6.18.2", "max overlong (3)", "\xe0\x9f\xbf", false},
		UTF8Vector{"6.18.3", "max overlong (4)", "\xf0\x8f\xbf\xbf", false},
		UTF8Vector{"6.18.4", "max overlong (5)", "\xf8\x87\xbf\xbf\xbf", false},
		UTF8Vector{"6.18.5", "max overlong (6)", "\xfc\x83\xbf\xbf\xbf\xbf", false},
		UTF8Vector{"6.19.1", "overlong NUL (2)", "\xc0\x80", false},
		UTF8Vector{"6.19.2", "overlong NUL (3)", "\xe0\x80\x80", false},
		UTF8Vector{"6.19.3", "overlong NUL (4)", "\xf0\x80\x80\x80", false},
		UTF8Vector{"6.19.4", "overlong NUL (5)", "\xf8\x80\x80\x80\x80", false},
		UTF8Vector{"6.19.5", "overlong NUL (6)", "\xfc\x80\x80\x80\x80\x80", false},
		// 6.20: single UTF-16 surrogates; 6.21: paired surrogates.
		UTF8Vector{"6.20.1", "U+D800", "\xed\xa0\x80", false},
		UTF8Vector{"6.20.2", "U+DB7F", "\xed\xad\xbf", false},
		UTF8Vector{"6.20.3", "U+DB80", "\xed\xae\x80", false},
		UTF8Vector{"6.20.4", "U+DBFF", "\xed\xaf\xbf", false},
		UTF8Vector{"6.20.5", "U+DC00", "\xed\xb0\x80", false},
		UTF8Vector{"6.20.6", "U+DF80", "\xed\xbe\x80", false},
		UTF8Vector{"6.20.7", "U+DFFF", "\xed\xbf\xbf", false},
		UTF8Vector{"6.21.1", "U+D800 U+DC00", "\xed\xa0\x80\xed\xb0\x80", false},
		UTF8Vector{"6.21.2", "U+D800 U+DFFF", "\xed\xa0\x80\xed\xbf\xbf", false},
		UTF8Vector{"6.21.3", "U+DB7F U+DC00", "\xed\xad\xbf\xed\xb0\x80", false},
		UTF8Vector{"6.21.4", "U+DB7F U+DFFF", "\xed\xad\xbf\xed\xbf\xbf", false},
		UTF8Vector{"6.21.5", "U+DB80 U+DC00", "\xed\xae\x80\xed\xb0\x80", false},
		UTF8Vector{"6.21.6", "U+DB80 U+DFFF", "\xed\xae\x80\xed\xbf\xbf", false},
		UTF8Vector{"6.21.7", "U+DBFF U+DC00", "\xed\xaf\xbf\xed\xb0\x80", false},
		UTF8Vector{"6.21.8", "U+DBFF U+DFFF", "\xed\xaf\xbf\xed\xbf\xbf", false},
	)
	// 6.22: noncharacters U+nFFFE and U+nFFFF of every plane are valid.
	for plane := rune(0); plane <= 16; plane++ {
		for _, low := range []rune{0xfffe, 0xffff} {
			r := plane<<16 | low
			v = append(v, UTF8Vector{"6.22." + strconv.Itoa(int(plane)*2+int(low-0xfffe)+1), fmt.Sprintf("noncharacter U+%04X", r), string(r), true})
		}
	}
	v = append(v,
		UTF8Vector{"6.22.35", "noncharacter U+FDD0", "\xef\xb7\x90", true},
		UTF8Vector{"6.22.36", "noncharacter U+FDEF", "\xef\xb7\xaf", true},
		UTF8Vector{"6.23.1", "U+FFFD replacement character", "\xef\xbf\xbd", true},
		UTF8Vector{"6.23.2", "byte order mark U+FEFF", "\xef\xbb\xbf", true},
		UTF8Vector{"6.23.3", "NUL inside text", "a\x00b", true},
		UTF8Vector{"6.23.4", "valid text, then a lone 0xff at the end", "κόσμε edited\xff", false},
	)
	return v
}

// byteRange returns the bytes lo..hi, each followed by sep.
func byteRange(lo, hi byte, sep string) string {
	var b strings.Builder
	for c := int(lo); c <= int(hi); c++ {
		b.WriteByte(byte(c))
		b.WriteString(sep)
	}
	return b.String()
}

// Text returns n bytes of valid UTF-8 text that mixes ASCII with 2-, 3-
// and 4-byte characters, so that fragments cut through characters.
func Text(n int) []byte {
	const unit = "Hello-µ@ßöäüàá-UTF-8!! κόσμε 日本語 🎉 "
	b := make([]byte, 0, n+len(unit))
	for len(b) < n {
		b = append(b, unit...)
	}
	b = b[:n]
	// Pad an incomplete last character with ASCII.
	start := n - 1
	for start > 0 && n-start < 4 && !utf8.RuneStart(b[start]) {
		start--
	}
	if start >= 0 && !utf8.FullRune(b[start:]) {
		for j := start; j < n; j++ {
			b[j] = '*'
		}
	}
	return b
}

// Binary returns n pseudo-random bytes (incompressible), the same for the
// same seed.
func Binary(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc908))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		u := r.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(u >> (8 * k))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// Corpus returns deterministic test data of the kinds the compression
// cases of Autobahn|Testsuite send (section 12: JSON, HTML, human text, a
// bitmap, random bytes), size bytes each. Text kinds are valid UTF-8.
func Corpus(kind string, size int) []byte {
	r := rand.New(rand.NewPCG(uint64(len(kind)), 0xbb67ae8584caa73b))
	var b []byte
	words := []string{"provider", "consumer", "message", "Größe", "naïve", "κόσμε", "日本", "work", "item", "queue", "frame", "deflate", "window", "the", "of", "and", "a"}
	switch kind {
	case "json":
		for i := 0; len(b) < size; i++ {
			b = append(b, `{"id":`...)
			b = append(b, strconv.Itoa(i)...)
			b = append(b, `,"name":"`...)
			b = append(b, words[r.IntN(len(words))]...)
			b = append(b, `","tags":["`...)
			b = append(b, words[r.IntN(len(words))]...)
			b = append(b, `","`...)
			b = append(b, words[r.IntN(len(words))]...)
			b = append(b, `"],"score":`...)
			b = append(b, strconv.Itoa(r.IntN(100000))...)
			b = append(b, `,"active":true},`+"\n"...)
		}
	case "html":
		for len(b) < size {
			b = append(b, `<tr class="row"><td>`...)
			b = append(b, words[r.IntN(len(words))]...)
			b = append(b, `</td><td><a href="/item/`...)
			b = append(b, strconv.Itoa(r.IntN(1000))...)
			b = append(b, `">`...)
			b = append(b, words[r.IntN(len(words))]...)
			b = append(b, "</a></td></tr>\n"...)
		}
	case "text":
		for len(b) < size {
			b = append(b, words[r.IntN(len(words))]...)
			if r.IntN(12) == 0 {
				b = append(b, ".\n"...)
			} else {
				b = append(b, ' ')
			}
		}
	case "bitmap":
		for len(b) < size {
			c := byte(r.IntN(4) * 85)
			for k := 1 + r.IntN(40); k > 0; k-- {
				b = append(b, c)
			}
		}
	default: // "random"
		return Binary(size, 7)
	}
	return TrimUTF8(b[:min(size, len(b))])
}

// TrimUTF8 cuts an incomplete character off the end of b and returns what
// is left, in b's memory.
func TrimUTF8(b []byte) []byte {
	for i := 0; i < 4 && len(b) > 0; i++ {
		if utf8.Valid(b) {
			return b
		}
		b = b[:len(b)-1]
	}
	return b
}

// Slices cuts n messages of size bytes from data, one after the other
// (wrapping around), as Autobahn's section 12 does; with text, each starts
// at a character and stays valid UTF-8 (padded with '.').
func Slices(data []byte, size, n int, text bool) [][]byte {
	var out [][]byte
	pos := 0
	for i := 0; i < n; i++ {
		m := make([]byte, 0, size)
		for text && pos < len(data) && !utf8.RuneStart(data[pos]) {
			pos++ // start at a character
		}
		for len(m) < size {
			if pos == len(data) {
				pos = 0
			}
			k := min(size-len(m), len(data)-pos)
			m = append(m, data[pos:pos+k]...)
			pos += k
		}
		if text {
			m = TrimUTF8(m)
			for len(m) < size {
				m = append(m, '.')
			}
		}
		out = append(out, m)
	}
	return out
}

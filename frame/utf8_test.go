package frame

import (
	"testing"
	"unicode/utf8"
)

// contBytes holds one continuation byte of each class that a lead byte's
// constraint on its second byte tells apart (RFC 3629 §4: 80–8F, 90–9F,
// A0–BF); later continuation bytes may be any of 80–BF.
var contBytes = [...]byte{0x80, 0x90, 0xA0}

// extendable reports whether some continuation makes p valid UTF-8: the
// oracle for an incremental validator. A valid stream can only be completed
// by at most 3 continuation bytes, and one byte of each class above stands
// for them all, so trying every suffix of 0 to 3 such bytes (40 in all)
// decides it, with utf8.Valid as the judge.
func extendable(p []byte) bool {
	if utf8.Valid(p) {
		return true
	}
	buf := make([]byte, len(p), len(p)+3)
	copy(buf, p)
	for n := 1; n <= 3; n++ {
		// Every suffix of n bytes drawn from contBytes: 3^n of them.
		combos := 1
		for range n {
			combos *= len(contBytes)
		}
		for c := range combos {
			b := buf
			for x := c; len(b) < len(p)+n; x /= len(contBytes) {
				b = append(b, contBytes[x%len(contBytes)])
			}
			if utf8.Valid(b) {
				return true
			}
		}
	}
	return false
}

var utf8Cases = []struct {
	name string
	s    string
	bad  int // index of the first byte after which no continuation exists, or -1
}{
	{"empty", "", -1},
	{"ascii", "hello, world", -1},
	{"2-byte", "é", -1},
	{"3-byte", "€", -1},
	{"4-byte", "𝄞", -1},
	{"max code point", "\U0010FFFF", -1},
	{"last before surrogates", "\uD7FF", -1},
	{"first after surrogates", "\uE000", -1},
	{"mixed", "κόσμε 𝄞 €", -1},
	{"incomplete 2-byte at end", "a\xc3", -1},
	{"incomplete 4-byte at end", "a\xf0\x9f\x98", -1},
	{"lone continuation", "a\x80", 1},
	{"overlong 2-byte C0", "\xc0\xaf", 0},
	{"overlong 2-byte C1", "\xc1\xbf", 0},
	{"overlong 3-byte", "\xe0\x80\xaf", 1},
	{"overlong 4-byte", "\xf0\x80\x80\xaf", 1},
	{"surrogate D800", "\xed\xa0\x80", 1},
	{"surrogate DFFF", "\xed\xbf\xbf", 1},
	{"above U+10FFFF", "\xf4\x90\x80\x80", 1},
	{"F5", "\xf5\x80\x80\x80", 0},
	{"FF", "ab\xff", 2},
	{"lead then ascii", "\xe2\x82a", 2},
	{"too many continuations", "é\x80", 2},
	{"RFC 6455 autobahn 6.4.1", "κόσμε\xed\xa0\x80edited", 11},
}

func TestUTF8Cases(t *testing.T) {
	for _, c := range utf8Cases {
		p := []byte(c.s)
		var v UTF8
		first := -1
		for i := range p {
			if !v.Write(p[i:i+1]) && first < 0 {
				first = i
			}
		}
		if first != c.bad {
			t.Errorf("%s: byte-wise Write failed at %d, want %d", c.name, first, c.bad)
		}
		var w UTF8
		ok := w.Write(p)
		if ok != (c.bad < 0) {
			t.Errorf("%s: one Write = %v", c.name, ok)
		}
		if got, want := w.Complete(), utf8.Valid(p); got != want {
			t.Errorf("%s: Complete = %v, want %v", c.name, got, want)
		}
		if ValidUTF8(p) != utf8.Valid(p) {
			t.Errorf("%s: ValidUTF8 differs from utf8.Valid", c.name)
		}
		w.Reset()
		if !w.Write([]byte("ok")) || !w.Complete() {
			t.Errorf("%s: Reset did not clear the state", c.name)
		}
	}
}

// TestUTF8AllSequences checks every 1- and 2-byte input, and every lead byte
// followed by every 2-byte continuation pair, byte by byte against the
// oracle.
func TestUTF8AllSequences(t *testing.T) {
	check := func(p []byte) {
		var v UTF8
		for i := range p {
			if got, want := v.Write(p[i:i+1]), extendable(p[:i+1]); got != want {
				t.Fatalf("% x: Write of byte %d = %v, want %v", p, i, got, want)
			}
		}
		if v.Complete() != utf8.Valid(p) {
			t.Fatalf("% x: Complete = %v", p, v.Complete())
		}
	}
	for a := range 256 {
		check([]byte{byte(a)})
		for b := range 256 {
			check([]byte{byte(a), byte(b)})
		}
	}
	for _, a := range []byte{0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf1, 0xf4} {
		for b := 0x70; b < 0xd0; b++ {
			for c := 0x70; c < 0xd0; c += 3 {
				check([]byte{a, byte(b), byte(c), 0x80})
			}
		}
	}
}

// TestUTF8Splits writes valid and invalid texts split at every point.
func TestUTF8Splits(t *testing.T) {
	texts := []string{"Hello-µ@ßöäüàá-UTF-8!!", "𝄞€é a𝄞", "ab\xed\xa0\x80cd", "\xf0\x9f\x98\x80\xf0\x9f"}
	for _, s := range texts {
		p := []byte(s)
		for i := 0; i <= len(p); i++ {
			for j := i; j <= len(p); j++ {
				var v UTF8
				r1 := v.Write(p[:i])
				r2 := v.Write(p[i:j])
				r3 := v.Write(p[j:])
				if r1 != extendable(p[:i]) || r2 != extendable(p[:j]) || r3 != extendable(p) || v.Complete() != utf8.Valid(p) {
					t.Fatalf("%q split at %d,%d: %v %v %v %v", s, i, j, r1, r2, r3, v.Complete())
				}
			}
		}
	}
}

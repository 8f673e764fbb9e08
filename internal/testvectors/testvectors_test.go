package testvectors

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// TestUTF8VectorTable checks the table of UTF-8 vectors against the
// standard library, so that a typing mistake cannot hide a bug.
func TestUTF8VectorTable(t *testing.T) {
	for _, v := range UTF8Vectors() {
		if utf8.ValidString(v.Data) != v.Valid {
			t.Errorf("%s %s: marked valid=%v", v.AB, v.Desc, v.Valid)
		}
	}
	for n := 0; n < 200; n++ {
		if p := Text(n); !utf8.Valid(p) || len(p) != n {
			t.Fatalf("Text(%d) = %q", n, p)
		}
	}
}

// TestDeterministic: the same arguments give the same bytes, of the size
// asked for, and text kinds are valid UTF-8.
func TestDeterministic(t *testing.T) {
	if !bytes.Equal(Binary(1001, 7), Binary(1001, 7)) || bytes.Equal(Binary(64, 1), Binary(64, 2)) {
		t.Fatal("Binary is not a function of its seed")
	}
	for _, kind := range []string{"json", "html", "text", "bitmap", "random"} {
		a, b := Corpus(kind, 10<<10), Corpus(kind, 10<<10)
		if !bytes.Equal(a, b) || len(a) > 10<<10 || len(a) < 10<<10-4 {
			t.Fatalf("%s: %d bytes, deterministic %v", kind, len(a), bytes.Equal(a, b))
		}
		if kind != "bitmap" && kind != "random" && !utf8.Valid(a) {
			t.Fatalf("%s: not UTF-8", kind)
		}
		for _, m := range Slices(a, 300, 50, kind != "bitmap" && kind != "random") {
			if len(m) != 300 || (kind == "text" && !utf8.Valid(m)) {
				t.Fatalf("%s: slice of %d bytes %q", kind, len(m), m)
			}
		}
	}
}

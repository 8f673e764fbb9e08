package bigbuf

import "testing"

func TestAllocFree(t *testing.T) {
	for _, n := range []int{1, 4096, 3 << 20} {
		b := Alloc(n)
		if len(b) != n || cap(b) < n {
			t.Fatalf("Alloc(%d): len %d cap %d", n, len(b), cap(b))
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("Alloc(%d): byte %d is %d", n, i, b[i])
			}
		}
		b[0], b[n-1] = 1, 2
		Free(b[:0])
	}
	Free(nil)
}

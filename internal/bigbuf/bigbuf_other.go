//go:build !linux

package bigbuf

func alloc(n int) []byte { return make([]byte, n) }

func free([]byte) {}

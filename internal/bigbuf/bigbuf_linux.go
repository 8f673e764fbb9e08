//go:build linux

package bigbuf

import "syscall"

func alloc(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]byte, n) // out of address space or mappings: the heap will do
	}
	return b
}

func free(b []byte) {
	if err := syscall.Munmap(b); err != nil {
		// Not a mapping of ours: a heap fallback of alloc; the collector has it.
		return
	}
}

package provider

import "unsafe"

// unsafeBytes views s as a byte slice without copying. The slice must not
// be modified; it is only ever read (framed, copied into a queue).
func unsafeBytes(s string) []byte {
	return unsafe.Slice(unsafe.StringData(s), len(s))
}

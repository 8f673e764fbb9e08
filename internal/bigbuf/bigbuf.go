// Package bigbuf allocates large byte buffers outside the Go heap, so that
// their memory goes back to the operating system the moment they are freed
// instead of after the next garbage collection and scavenge. On Linux a
// buffer is an anonymous private mapping, touched (and so resident) only as
// far as it is written; elsewhere it is an ordinary slice.
//
// A freed buffer must not be used again: on Linux its pages are unmapped and
// a later access faults.
package bigbuf

// Alloc returns a zeroed buffer of length n (n > 0), owned by the caller
// until Free.
func Alloc(n int) []byte { return alloc(n) }

// Free releases a buffer that Alloc returned (any reslice of it that
// keeps its start works: its capacity is used). Free of nil does nothing.
func Free(b []byte) {
	if cap(b) == 0 {
		return
	}
	free(b[:cap(b)])
}

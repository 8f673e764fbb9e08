//go:build race

package consumer

// raceEnabled: under the race detector sync.Pool drops a quarter of what is
// put back, so paths that borrow pooled buffers (messages larger than the
// read buffer or 2 KiB frames) allocate now and then.
const raceEnabled = true

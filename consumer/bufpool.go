package consumer

import "sync"

// buffer is a pooled byte slice. Pools hold *buffer so that Get and Put
// allocate nothing once warm.
type buffer struct{ b []byte }

// Size classes of the pools: 4 KiB, 16 KiB, ... 64 MiB. A larger request
// gets an unpooled buffer of its own size.
const (
	minClassShift = 12
	numClasses    = 8
	classStep     = 2 // each class is 1 << classStep times the previous
)

var bufPools [numClasses]sync.Pool

func classSize(i int) int { return 1 << (minClassShift + classStep*i) }

// getBuffer returns a buffer with len 0 and cap at least n. The caller owns
// it until putBuffer.
func getBuffer(n int) *buffer {
	for i := 0; i < numClasses; i++ {
		if n <= classSize(i) {
			if b, ok := bufPools[i].Get().(*buffer); ok {
				b.b = b.b[:0]
				return b
			}
			return &buffer{b: make([]byte, 0, classSize(i))}
		}
	}
	return &buffer{b: make([]byte, 0, n)}
}

// putBuffer files b under the largest class its capacity covers; a buffer
// smaller than the smallest class or larger than the largest is dropped.
func putBuffer(b *buffer) {
	if b == nil {
		return
	}
	c := cap(b.b)
	for i := numClasses - 1; i >= 0; i-- {
		if c >= classSize(i) {
			if c > 2*classSize(numClasses-1) {
				return // an outsize buffer: let the collector have it
			}
			b.b = b.b[:0]
			bufPools[i].Put(b)
			return
		}
	}
}

// grow makes room for n more bytes in b (moving to a larger pooled buffer
// when needed) and returns the buffer to use from now on.
func grow(b *buffer, n int) *buffer {
	if b == nil {
		return getBuffer(n)
	}
	if cap(b.b)-len(b.b) >= n {
		return b
	}
	nb := getBuffer(max(len(b.b)+n, 2*len(b.b)))
	nb.b = append(nb.b, b.b...)
	putBuffer(b)
	return nb
}

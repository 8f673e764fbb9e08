package cluster

import "testing"

// TestAllocsEnvelope guards the cluster's own per-message work: framing a
// publish into the node's reused buffer and parsing one allocate nothing.
func TestAllocsEnvelope(t *testing.T) {
	buf := make([]byte, 0, 2048)
	data := make([]byte, 1024)
	var e envelope
	var err error
	allocs := testing.AllocsPerRun(1000, func() {
		buf = appendEnvelope(buf[:0], kindPublish, flagBinary, 12345, "jobs", data)
		e, err = parseEnvelope(buf)
	})
	if err != nil || string(e.topic) != "jobs" {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Fatalf("%v allocations per envelope", allocs)
	}
}

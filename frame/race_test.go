//go:build race

package frame

// raceEnabled: the race detector makes sync.Pool drop a random share of
// what is put back, so pool-backed allocation guards cannot hold.
const raceEnabled = true

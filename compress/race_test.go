//go:build race

package compress

// raceEnabled: the race detector makes sync.Pool drop items at random, so
// allocation guards that rely on pools are skipped under it.
const raceEnabled = true

//go:build race

package peers_test

// raceEnabled: nbio trips the race detector inside its own code (it hands
// connections between goroutines in //go:norace functions), so under -race
// the nbio cases run against the peer binary, built without -race.
const raceEnabled = true

package peers

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
)

// Stats is the answer to a StatsQuery message, encoded as JSON after the
// StatsQuery prefix.
type Stats struct {
	// Goroutines is runtime.NumGoroutine() of the server process.
	Goroutines int `json:"goroutines"`
	// HeapInuse is runtime.MemStats.HeapInuse, in bytes.
	HeapInuse uint64 `json:"heap_inuse"`
	// RSS is VmRSS from /proc/self/status, in bytes (0 where unavailable).
	RSS uint64 `json:"rss"`
	// Conns is the number of open WebSocket connections.
	Conns int `json:"conns"`
}

// isStatsQuery reports whether a binary message's payload is a stats query
// (StatsQuery or StatsSettledQuery).
func isStatsQuery(p []byte) bool { return string(p) == StatsQuery || string(p) == StatsSettledQuery }

// isBroadcast reports whether a binary message's payload asks for a broadcast.
func isBroadcast(p []byte) bool {
	return len(p) >= len(BroadcastPrefix) && string(p[:len(BroadcastPrefix)]) == BroadcastPrefix
}

// statsAnswer returns a new payload StatsQuery + JSON(Stats), owned by the
// caller, for the query q; for StatsSettledQuery it collects garbage first.
// It stops the world briefly (runtime.ReadMemStats); it is meant for a few
// queries per run, not per message.
func statsAnswer(q []byte, conns int) []byte {
	if string(q) == StatsSettledQuery {
		runtime.GC()
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss, _ := readSelfRSS()
	return encodeStats(Stats{
		Goroutines: runtime.NumGoroutine(),
		HeapInuse:  ms.HeapInuse,
		RSS:        rss,
		Conns:      conns,
	})
}

// encodeStats returns a new payload StatsQuery + JSON(st).
func encodeStats(st Stats) []byte {
	js, err := json.Marshal(st)
	if err != nil { // cannot happen for this struct
		js = []byte("{}")
	}
	return append([]byte(StatsQuery), js...)
}

// ParseStats decodes a stats answer payload (StatsQuery followed by JSON). The
// payload is not retained.
func ParseStats(payload []byte) (Stats, error) {
	var st Stats
	if !bytes.HasPrefix(payload, []byte(StatsQuery)) {
		return st, ErrNotStats
	}
	if err := json.Unmarshal(payload[len(StatsQuery):], &st); err != nil {
		return st, fmt.Errorf("%w: %w", ErrNotStats, err)
	}
	return st, nil
}

// readSelfRSS returns VmRSS of this process in bytes.
func readSelfRSS() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseVmRSS(f)
}

// parseVmRSS finds the "VmRSS:   1234 kB" line of a /proc/PID/status file.
func parseVmRSS(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) != 2 || string(fields[1]) != "kB" {
			return 0, fmt.Errorf("peers: unexpected VmRSS line %q", line)
		}
		kb, err := strconv.ParseUint(string(fields[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("peers: VmRSS: %w", err)
		}
		return kb * 1024, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("peers: no VmRSS line")
}

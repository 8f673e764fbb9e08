package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"time"
)

// userHZ is the unit of the CPU times in /proc/PID/stat (USER_HZ). It is 100
// on every Linux architecture Go supports; the kernel converts to it
// whatever its internal tick rate.
const userHZ = 100

// procSample is what the harness reads of a server process from /proc.
type procSample struct {
	At      time.Time
	CPU     time.Duration // utime + stime, all threads, 10 ms resolution
	RSS     int64         // VmRSS, bytes
	HWM     int64         // VmHWM (peak RSS), bytes
	Threads int
}

// readProc samples /proc/PID/stat and /proc/PID/status. It fails on systems
// without /proc (the harness then reports CPU and memory as unavailable).
func readProc(pid int) (procSample, error) {
	s := procSample{At: time.Now()}
	if pid <= 0 {
		return s, fmt.Errorf("%w: no server pid", ErrNoProc)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("%w: %v", ErrNoProc, err)
	}
	st, err := parseProcStat(stat)
	if err != nil {
		return s, err
	}
	s.CPU = st.cpu
	s.Threads = st.threads
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("%w: %v", ErrNoProc, err)
	}
	if s.RSS, err = parseStatusKB(status, "VmRSS:"); err != nil {
		return s, err
	}
	s.HWM, _ = parseStatusKB(status, "VmHWM:")
	return s, nil
}

type procStat struct {
	cpu     time.Duration
	threads int
}

// parseProcStat parses /proc/PID/stat: the command name is in parentheses
// and may itself hold spaces and parentheses, so fields are counted from
// the last ')'. Fields (1-based, proc(5)): 14 utime, 15 stime, 20
// num_threads. b is not retained.
func parseProcStat(b []byte) (procStat, error) {
	var st procStat
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st, fmt.Errorf("%w: /proc stat without ')'", ErrProcFormat)
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state).
	const utime, stime, threads = 14 - 3, 15 - 3, 20 - 3
	if len(f) <= threads {
		return st, fmt.Errorf("%w: /proc stat has %d fields", ErrProcFormat, len(f)+2)
	}
	u, err1 := strconv.ParseUint(string(f[utime]), 10, 63)
	s, err2 := strconv.ParseUint(string(f[stime]), 10, 63)
	t, err3 := strconv.ParseUint(string(f[threads]), 10, 31)
	if err1 != nil || err2 != nil || err3 != nil {
		return st, fmt.Errorf("%w: /proc stat times", ErrProcFormat)
	}
	const tick = uint64(time.Second / userHZ)
	if u > 1<<62/tick || s > 1<<62/tick {
		return st, fmt.Errorf("%w: /proc stat times out of range", ErrProcFormat)
	}
	st.cpu = time.Duration((u + s) * tick)
	st.threads = int(t)
	return st, nil
}

// parseStatusKB finds the line "key  1234 kB" of a /proc/PID/status file
// and returns its value in bytes. b is not retained.
func parseStatusKB(b []byte, key string) (int64, error) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		rest, ok := bytes.CutPrefix(line, []byte(key))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("%w: status line %q", ErrProcFormat, line)
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 53)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("%w: status line %q", ErrProcFormat, line)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%w: no %s line", ErrProcFormat, key)
}

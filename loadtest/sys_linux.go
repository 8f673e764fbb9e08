package main

import (
	"fmt"
	"os/exec"
	"syscall"
)

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h), which the
// syscall package lacks: bind() to a source address then leaves the port
// to connect(), which picks one unique for the whole 4-tuple instead of
// reserving it for the address alone, so each 127.0.0.x source gets its
// own ~28 000 ports per server.
const ipBindAddressNoPort = 24

// dialControl runs in a net.Dialer's Control function, before bind and
// connect: noPort sets IP_BIND_ADDRESS_NO_PORT, rcvbuf > 0 sets SO_RCVBUF.
func dialControl(rc syscall.RawConn, noPort bool, rcvbuf int) error {
	var serr error
	err := rc.Control(func(fd uintptr) {
		if noPort {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
		}
		if serr == nil && rcvbuf > 0 {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
		}
	})
	if err != nil {
		return err
	}
	return serr
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit and returns
// both.
func raiseNoFile() (soft, hard uint64, err error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, 0, fmt.Errorf("getrlimit: %w", err)
	}
	if rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
			return rl.Cur, rl.Max, fmt.Errorf("setrlimit: %w", err)
		}
	}
	return rl.Cur, rl.Max, nil
}

// childDiesWithUs makes cmd's process get SIGKILL if the harness dies, so
// that no server is left behind.
func childDiesWithUs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// spreadSources reports whether connections may be bound to 127.0.0.x
// source addresses (Linux routes all of 127/8 to lo).
const spreadSources = true

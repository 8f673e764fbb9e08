//go:build !linux

package main

import (
	"os/exec"
	"syscall"
)

func dialControl(rc syscall.RawConn, noPort bool, rcvbuf int) error { return nil }

func raiseNoFile() (soft, hard uint64, err error) { return 1 << 20, 1 << 20, nil }

func childDiesWithUs(cmd *exec.Cmd) {}

const spreadSources = false

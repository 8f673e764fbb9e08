//go:build !linux

package poller

func idleClientMain() {}

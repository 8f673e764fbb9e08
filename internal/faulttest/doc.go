// Package faulttest holds the multi-process fault tests of the module: a
// Provider and its Consumers in separate processes, one of them stopped
// (SIGSTOP) or killed (SIGKILL) and restarted, or its handlers slow,
// checked over real sockets on 127.0.0.1. The tests re-run their own test binary as the child processes,
// so `go test ./...` runs them; the package has no other code.
package faulttest

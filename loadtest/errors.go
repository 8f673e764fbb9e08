package main

import "errors"

// Sentinel errors of the harness. Errors it returns wrap one of them (test
// with errors.Is) and add detail.
var (
	// ErrUsage: bad command line (exit status 2).
	ErrUsage = errors.New("loadtest: usage")
	// ErrTarget: the target is not a ws://, wss:// or tcp:// URL, or is not
	// on 127.0.0.0/8 and --allow-remote was not given.
	ErrTarget = errors.New("loadtest: target refused")
	// ErrLimit: the run needs more file descriptors or ephemeral ports than
	// this process or machine allows.
	ErrLimit = errors.New("loadtest: over a system limit")
	// ErrHandshake: the server refused or botched the WebSocket upgrade.
	ErrHandshake = errors.New("loadtest: handshake failed")
	// ErrProtocol: the server broke RFC 6455/7692 or the harness protocol.
	ErrProtocol = errors.New("loadtest: protocol violation by the server")
	// ErrServer: a server process could not be built, started or stopped.
	ErrServer = errors.New("loadtest: server process")
	// ErrNoStats: the server does not answer the NCSTATS: query.
	ErrNoStats = errors.New("loadtest: no stats from the server")
	// ErrNoProc: the server's /proc entries cannot be read (no pid given,
	// another machine, or not Linux).
	ErrNoProc = errors.New("loadtest: server process not readable")
	// ErrProcFormat: a /proc file did not have the expected layout.
	ErrProcFormat = errors.New("loadtest: unexpected /proc format")
	// ErrScenario: a scenario could not run as asked (for example a
	// broadcast against a server that does not broadcast).
	ErrScenario = errors.New("loadtest: scenario failed")
	// ErrTargets: with --check, a performance target was missed.
	ErrTargets = errors.New("loadtest: targets missed")
)

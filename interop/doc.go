// Package interop holds the interoperability tests of network-cluster
// against independent, widely used WebSocket implementations. It is a
// separate module so that importing the library never pulls in the peers,
// and so that `go test ./...` at the repository root does not run it.
//
// The peers are Node's ws 8 (client and server) and ws 7 (as the Node
// network-cluster 1.0.4 Consumer), Debian's python3-autobahn (client,
// server and raw-frame checks) and headless Chromium driven by
// playwright-core; setup.sh installs them. Node scripts live in node/,
// Python scripts in python/, the page Chromium opens in web/; each peer has
// a test file <peer>_test.go. The helpers in peer_test.go start a peer as a
// child process on 127.0.0.1, read the events it prints, and stop it;
// harness_test.go starts in-process Providers and a sniffing proxy that
// checks what went over the wire. See README.md.
package interop

// Package interop holds the interoperability tests of network-cluster
// against independent, widely used WebSocket implementations. It is a
// separate module so that importing the library never pulls in the peers,
// and so that `go test ./...` at the repository root does not run it.
//
// Peers written for Node.js live in node/ (installed by setup.sh with
// `npm ci`); each peer has a script node/<peer>.js and a test file
// <peer>_test.go. The helpers in peer_test.go start a peer as a child
// process on 127.0.0.1, read the events it prints, and stop it.
package interop

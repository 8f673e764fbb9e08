// Package peers holds the comparison servers that `loadtest compare` starts
// as separate processes: gorilla/websocket, lesismal/nbio and gobwas/ws, each
// set up the way its users set it up, plus a raw TCP echo that is the ceiling
// for the echo scenario.
//
// Every WebSocket implementation speaks the same harness protocol (see
// PROTOCOL.md beside this file): it echoes each data message to its sender,
// fans a binary message that starts with [BroadcastPrefix] out to every open
// connection, and answers a binary [StatsQuery] with a [Stats] snapshot.
//
// The package lives in a nested module so that users of the library never
// download these peers. The command cmd/peer wraps [Start] for the harness.
package peers

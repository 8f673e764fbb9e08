package consumer_test

import (
	"net"
	"net/http"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// startProvider starts a stand-in Provider for the examples: an echo server
// on 127.0.0.1 that announces a 10 s heartbeat, or rejects every upgrade
// with 403 when reject is set. It returns the port and a stop function.
func startProvider(reject bool) (port int, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				up := ws.Upgrader{OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
					if reject {
						return nil, ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden), ws.RejectionReason("Unauthorized"))
					}
					return ws.HandshakeHeaderHTTP(http.Header{proto.HeartbeatHeader: {"10000"}}), nil
				}}
				if _, err := up.Upgrade(nc); err != nil {
					return
				}
				for {
					msg, op, err := wsutil.ReadClientData(nc)
					if err != nil {
						return
					}
					if err := wsutil.WriteServerMessage(nc, op, msg); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, func() { ln.Close(); <-done }
}

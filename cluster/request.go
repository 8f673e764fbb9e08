package cluster

// serveRequest answers a kindRequest; this version has no request relay.
func (n *Node) serveRequest(e envelope, reply func([]byte) error) {
	reply(appendEnvelope(nil, kindReply, 0, 0, "", append([]byte{statusOther}, "requests are not supported by this node"...)))
}

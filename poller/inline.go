package poller

// SetInline(true) asks that OnData for this connection run on the netpoll
// poll loop that read its input, in place of a worker: this saves a
// hand-off per read, and the poll loop serves the connection's next input
// only when OnData has returned. OnData must then never block, not even
// briefly on a lock that a blocking call may hold: every connection of
// that poll loop waits while it runs. OnOpen, OnClose and the OnData of
// [Conn.Wake] still run on workers, and so does OnData of a connection
// being closed, and of a read of [Options.LinkBufferCap] bytes or more:
// netpoll reads in pieces that small until input has piled up in its
// buffer, so a burst handled as it is read would be read, handled and
// answered piece by piece, while a worker lets it pile up and be taken
// in larger pieces.
//
// It applies from the next input on and only to connections of [Listen]
// and [ListenOn] served by the netpoll engine without TLS; elsewhere (the
// [Serve] engine, [Poller.Adopt], Options.TLS) it does nothing. false
// restores the default.
func (c *Conn) SetInline(on bool) {
	c.mu.Lock()
	c.put(fInline, on)
	c.mu.Unlock()
}

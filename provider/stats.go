package provider

import "sync/atomic"

// Stats is a snapshot of the Provider's counters. Totals count since New.
type Stats struct {
	// Connections is the number of connections held now: open, or in
	// their closing handshake.
	Connections int
	// Opened and Closed count connections that completed the upgrade and
	// those of them that have since closed.
	Opened, Closed uint64
	// MessagesIn/BytesIn count data messages received (after inflation),
	// MessagesOut/BytesOut those queued by Send and, per receiver, by
	// Broadcast and Publish (payload bytes, before framing and compression).
	MessagesIn, BytesIn, MessagesOut, BytesOut uint64
	// FramesCompressed counts messages sent compressed (a broadcast under
	// the shared compressor counts once).
	FramesCompressed uint64
	// BackpressureCloses counts connections closed by the backpressure
	// policy; BackpressureRefusals counts messages refused under
	// RefuseOnBackpressure.
	BackpressureCloses, BackpressureRefusals uint64
	// HeartbeatKills counts connections closed for not answering pings.
	HeartbeatKills uint64
	// ProtocolErrors counts connections failed for violating RFC 6455/7692.
	ProtocolErrors uint64
	// BudgetCloses counts connections closed with 1013 because a message
	// did not fit Options.MemoryBudget.
	BudgetCloses uint64
	// ReadPauses counts the times a connection's input was left unread
	// because its handler queue was over Options.MaxHandlerQueue.
	ReadPauses uint64
	// MemoryInUse is the part of Options.MemoryBudget in use now.
	MemoryInUse int64
	// Rejected counts refused upgrade requests by reason
	// (RejectReason.String() keys: "auth", "not_found", ...).
	Rejected map[string]uint64

	// Requests the Provider sent with Connection.Request: RequestsSent
	// went out; each then ended in RequestsAnswered (a reply),
	// RequestsFailed (a *RemoteError), RequestsTimedOut (ctx or
	// RequestTimeout first) or RequestsDisconnected (the connection ended
	// first). PendingRequests are unanswered now. LateReplies counts
	// replies that came after their request had ended (dropped).
	RequestsSent, RequestsAnswered, RequestsFailed      uint64
	RequestsTimedOut, RequestsDisconnected, LateReplies uint64
	PendingRequests                                     int64
	// RequestsReceived counts requests from Consumers (resends included),
	// RepliesSent the replies and errors sent back, and DedupHits the
	// resent requests answered from the de-duplication window (or waiting
	// for their handler) without running the handler again.
	RequestsReceived, RepliesSent, DedupHits uint64
	// RequestsRedelivered counts the requests received flagged as resent
	// after a reconnect (included in RequestsReceived): after a failover,
	// the requests this Provider may be handling a second time.
	RequestsRedelivered uint64
}

type counters struct {
	opened, closed                           atomic.Uint64
	messagesIn, bytesIn, messagesOut         atomic.Uint64
	bytesOut, framesCompressed               atomic.Uint64
	backpressureCloses, backpressureRefusals atomic.Uint64
	heartbeatKills, protocolErrors           atomic.Uint64
	budgetCloses, readPauses                 atomic.Uint64
	rejected                                 [numRejectReasons]atomic.Uint64

	requestsOut, requestsAnswered, requestsFailed  atomic.Uint64
	requestsTimedOut, requestsDisconnected         atomic.Uint64
	lateReplies, requestsIn, repliesOut, dedupHits atomic.Uint64
	pending                                        atomic.Int64
	requestsRedelivered                            atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (p *Provider) Stats() Stats {
	s := Stats{
		Connections:          p.Len(),
		Opened:               p.stats.opened.Load(),
		Closed:               p.stats.closed.Load(),
		MessagesIn:           p.stats.messagesIn.Load(),
		BytesIn:              p.stats.bytesIn.Load(),
		MessagesOut:          p.stats.messagesOut.Load(),
		BytesOut:             p.stats.bytesOut.Load(),
		FramesCompressed:     p.stats.framesCompressed.Load(),
		BackpressureCloses:   p.stats.backpressureCloses.Load(),
		BackpressureRefusals: p.stats.backpressureRefusals.Load(),
		HeartbeatKills:       p.stats.heartbeatKills.Load(),
		ProtocolErrors:       p.stats.protocolErrors.Load(),
		BudgetCloses:         p.stats.budgetCloses.Load(),
		ReadPauses:           p.stats.readPauses.Load(),
		MemoryInUse:          p.mem.Load(),
		Rejected:             make(map[string]uint64, numRejectReasons),
		RequestsSent:         p.stats.requestsOut.Load(),
		RequestsAnswered:     p.stats.requestsAnswered.Load(),
		RequestsFailed:       p.stats.requestsFailed.Load(),
		RequestsTimedOut:     p.stats.requestsTimedOut.Load(),
		RequestsDisconnected: p.stats.requestsDisconnected.Load(),
		LateReplies:          p.stats.lateReplies.Load(),
		PendingRequests:      p.stats.pending.Load(),
		RequestsReceived:     p.stats.requestsIn.Load(),
		RepliesSent:          p.stats.repliesOut.Load(),
		DedupHits:            p.stats.dedupHits.Load(),
		RequestsRedelivered:  p.stats.requestsRedelivered.Load(),
	}
	for i := range p.stats.rejected {
		s.Rejected[RejectReason(i).String()] = p.stats.rejected[i].Load()
	}
	return s
}

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
	// did not fit Options.MemoryBudget; QueueCloses those closed with 1013
	// because their handler queue was over Options.MaxHandlerQueue.
	BudgetCloses, QueueCloses uint64
	// MemoryInUse is the part of Options.MemoryBudget in use now.
	MemoryInUse int64
	// Rejected counts refused upgrade requests by reason
	// (RejectReason.String() keys: "auth", "not_found", ...).
	Rejected map[string]uint64
}

type counters struct {
	opened, closed                           atomic.Uint64
	messagesIn, bytesIn, messagesOut         atomic.Uint64
	bytesOut, framesCompressed               atomic.Uint64
	backpressureCloses, backpressureRefusals atomic.Uint64
	heartbeatKills, protocolErrors           atomic.Uint64
	budgetCloses, queueCloses                atomic.Uint64
	rejected                                 [numRejectReasons]atomic.Uint64
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
		QueueCloses:          p.stats.queueCloses.Load(),
		MemoryInUse:          p.mem.Load(),
		Rejected:             make(map[string]uint64, numRejectReasons),
	}
	for i := range p.stats.rejected {
		s.Rejected[RejectReason(i).String()] = p.stats.rejected[i].Load()
	}
	return s
}

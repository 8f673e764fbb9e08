package cluster

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/networkcluster/networkcluster/provider"
)

// --- this node's presence, fed by the Provider ---

// observer is the Node's provider.Observer.
type observer struct{ n *Node }

func (o observer) Opened(c *provider.Connection) {
	n := o.n
	n.pmu.Lock()
	n.openLocked(c)
	n.pmu.Unlock()
	n.presenceChanged()
}

// openLocked records c if it is new; the caller holds pmu.
func (n *Node) openLocked(c *provider.Connection) *entry {
	id := c.ID()
	if e := n.local[id]; e != nil {
		return e
	}
	e := &entry{requests: c.SupportsRequests(), conn: c}
	if len(n.params) > 0 {
		for k, vs := range c.Parameters() {
			if n.params[k] && len(vs) > 0 {
				if e.params == nil {
					e.params = make(map[string]string)
				}
				e.params[k] = vs[0]
			}
		}
	}
	n.local[id] = e
	op := opOpen
	if e.requests {
		op = opOpenReq
	}
	n.addDelta(&delta{op: op, id: id, params: e.params})
	return e
}

func (o observer) Closed(c *provider.Connection, _ []string) {
	n := o.n
	n.pmu.Lock()
	if _, ok := n.local[c.ID()]; ok {
		delete(n.local, c.ID())
		n.addDelta(&delta{op: opClose, id: c.ID()})
	}
	n.pmu.Unlock()
	n.presenceChanged()
}

func (o observer) Subscribed(c *provider.Connection, topic string) {
	n := o.n
	n.pmu.Lock()
	e := n.openLocked(c) // a Subscribe may come before Opened
	if e.topics == nil {
		e.topics = make(map[string]struct{})
	}
	e.topics[topic] = struct{}{}
	n.addDelta(&delta{op: opSub, id: c.ID(), topic: topic})
	n.pmu.Unlock()
	n.presenceChanged()
}

func (o observer) Unsubscribed(c *provider.Connection, topic string) {
	n := o.n
	n.pmu.Lock()
	if e := n.local[c.ID()]; e != nil {
		delete(e.topics, topic)
		n.addDelta(&delta{op: opUnsub, id: c.ID(), topic: topic})
	}
	n.pmu.Unlock()
	n.presenceChanged()
}

// batchLimit is the largest presence batch (or snapshot chunk) payload.
func (n *Node) batchLimit() int {
	l := n.b.MaxMessage() - envelopeMaxMeta
	if l > defaultSnapChunkSize {
		l = defaultSnapChunkSize
	}
	return max(l, 64)
}

// addDelta queues a presence change for the next batch; the caller holds
// pmu. Once the node is leaving nothing more is queued.
func (n *Node) addDelta(d *delta) {
	if n.state.Load() == stateLeaving {
		return
	}
	limit := n.batchLimit()
	k := len(n.pending)
	if k == 0 || len(n.pending[k-1]) >= limit {
		n.pending = append(n.pending, make([]byte, 0, 256))
		k++
	}
	b := appendDelta(n.pending[k-1], d)
	if len(b) > limit && len(n.pending[k-1]) > 0 {
		// Over the limit: this delta starts the next batch.
		n.pending = append(n.pending, appendDelta(nil, d))
		return
	}
	if len(b) > limit {
		// A single delta over the limit: its parameters are left out.
		// (Reported from another goroutine: this one holds the Provider's
		// topic lock and pmu, which OnError may need.)
		go n.report(fmt.Errorf("%w: presence of connection %s is over the broker's message size; parameters left out", ErrTooLarge, d.id))
		dd := *d
		dd.params = nil
		b = appendDelta(n.pending[k-1][:0], &dd)
	}
	n.pending[k-1] = b
}

// flushPresence sends the batched presence changes.
func (n *Node) flushPresence() {
	n.pmu.Lock()
	batches := n.pending
	n.pending = nil
	// Sent under pmu: batches leave in the order their changes were made.
	var failed error
	for _, b := range batches {
		if err := n.sendControl(kindPresence, b); err != nil && failed == nil {
			failed = err
		}
	}
	n.pmu.Unlock()
	if failed != nil {
		n.reportSendFailure("presence", failed)
	}
}

func (n *Node) reportSendFailure(what string, err error) {
	n.rmu.RLock()
	up := n.linkUp
	n.rmu.RUnlock()
	if up {
		n.report(fmt.Errorf("cluster: %s not sent (other nodes will resynchronise): %w", what, err))
	}
}

func (n *Node) heartbeat() {
	n.pmu.Lock()
	count := len(n.local)
	n.pmu.Unlock()
	if err := n.sendControl(kindHeartbeat, appendBeat(nil, count, n.started)); err != nil {
		n.reportSendFailure("heartbeat", err)
	}
}

// loop batches presence, beats and watches the other nodes' liveness.
func (n *Node) loop() {
	defer n.wg.Done()
	defer close(n.looped)
	tick := time.NewTicker(min(n.o.PresenceBatch, n.o.Heartbeat))
	defer tick.Stop()
	lastBeat := time.Now()
	for {
		select {
		case <-n.stop:
			n.flushPresence()
			return
		case now := <-tick.C:
			n.flushPresence()
			if now.Sub(lastBeat) >= n.o.Heartbeat {
				lastBeat = now
				n.heartbeat()
				n.checkNodes(now)
			}
		}
	}
}

// presenceChanged tells the watchers (the Queues) that presence changed.
// It runs with no lock of the Node held, possibly under the Provider's
// topic lock: the watchers only signal.
func (n *Node) presenceChanged() {
	n.wmu.Lock()
	for _, f := range n.watchers {
		f()
	}
	n.wmu.Unlock()
}

// --- the replica of the other nodes ---

// remote is another node as this node knows it.
type remote struct {
	id        string
	started   int64 // its incarnation (heartbeat's started-at)
	lastSeq   uint64
	lastHeard time.Time
	up        bool
	synced    bool
	conns     map[string]*entry
	topicN    map[string]int
	count     int // from its last heartbeat

	gen     uint64 // incremented at each reset: stale snapshots are ignored
	sync    *syncState
	retryAt time.Time
}

// syncState is a presence snapshot being fetched.
type syncState struct {
	gen      uint64
	fetching bool
	seen     []uint64 // sequence numbers seen since the fetch began
	buffered []seqDelta
	maxSeen  uint64
	// the snapshot, once fetched
	done        bool
	first, last uint64 // the owner's sequence number at the first and last chunk
	entries     map[string]*entry
}

type seqDelta struct {
	seq     uint64
	payload []byte
}

func newRemote(id string) *remote {
	return &remote{id: id, conns: make(map[string]*entry), topicN: make(map[string]int)}
}

// event is an OnNodeUp/OnNodeDown call made after the locks are released.
type event struct {
	node string
	up   bool
}

// reportLocked queues err for OnError; the caller holds rmu, and fire
// reports it once rmu is released (OnError may call the Node).
func (n *Node) reportLocked(err error) { n.lockedErrs = append(n.lockedErrs, err) }

// fire reports the errors queued under rmu, then runs the node events; the
// caller has released rmu. It also tells the watchers when presence
// changed.
func (n *Node) fire(evs []event) {
	n.rmu.Lock()
	errs := n.lockedErrs
	n.lockedErrs = nil
	dirty := n.presenceDirty
	n.presenceDirty = false
	n.rmu.Unlock()
	if dirty || len(evs) > 0 {
		n.presenceChanged()
	}
	for _, err := range errs {
		n.report(err)
	}
	for _, e := range evs {
		if e.up {
			n.log.Debug("cluster node up", "node", n.id, "peer", e.node)
			if f := n.o.OnNodeUp; f != nil {
				f(e.node)
			}
		} else {
			n.log.Debug("cluster node down", "node", n.id, "peer", e.node)
			if f := n.o.OnNodeDown; f != nil {
				f(e.node)
			}
		}
	}
}

// heard records a message from node id; the caller holds rmu. A new node
// (or one that was down) comes up and is resynchronised.
func (n *Node) heard(id string, evs []event) (*remote, []event) {
	r := n.nodes[id]
	if r == nil {
		r = newRemote(id)
		n.nodes[id] = r
	}
	r.lastHeard = time.Now()
	if !r.up {
		r.up = true
		evs = append(evs, event{id, true})
		n.resync(r)
	}
	return r, evs
}

// reset drops r's presence; the caller holds rmu.
func (n *Node) reset(r *remote) {
	n.presenceDirty = true
	clear(r.conns)
	clear(r.topicN)
	r.synced = false
	r.sync = nil
	r.gen++
}

// resync starts fetching r's snapshot (after a reset, a gap, or first
// sight); the caller holds rmu. Messages from r are recorded meanwhile.
func (n *Node) resync(r *remote) {
	r.synced = false
	r.gen++
	r.sync = &syncState{gen: r.gen}
	n.fetch(r)
}

func (n *Node) fetch(r *remote) {
	if r.sync == nil || r.sync.fetching || n.state.Load() != stateRunning {
		return
	}
	r.sync.fetching = true
	gen := r.sync.gen
	n.wg.Add(1)
	go n.fetchSnapshot(r.id, gen)
}

// fetchSnapshot asks node for its presence, chunk by chunk.
func (n *Node) fetchSnapshot(node string, gen uint64) {
	defer n.wg.Done()
	entries := make(map[string]*entry)
	var first, last uint64
	cursor := ""
	var err error
	for i := 0; ; i++ {
		if i == 1<<20 {
			err = fmt.Errorf("too many chunks")
			break
		}
		ctx, cancel := context.WithTimeout(n.ctx, n.o.RequestTimeout)
		msg := appendEnvelope(nil, kindSnapReq, 0, 0, "", appendString(nil, cursor))
		var r []byte
		n.stats.snapRequested.Add(1)
		r, err = n.b.Request(ctx, node, msg)
		cancel()
		if err != nil {
			break
		}
		var e envelope
		if e, err = parseEnvelope(r); err != nil {
			break
		}
		if e.kind != kindSnapshot {
			err = fmt.Errorf("%w: reply kind %d", ErrBadEnvelope, e.kind)
			break
		}
		if i == 0 {
			first = e.seq
		}
		last = e.seq
		err = parseEntries(e.payload, e.flags&flagEntryFlags != 0, func(id string, flags byte, params map[string]string, topics []string) {
			en := &entry{params: params, requests: flags&entryRequests != 0}
			if len(topics) > 0 {
				en.topics = make(map[string]struct{}, len(topics))
				for _, t := range topics {
					en.topics[t] = struct{}{}
				}
			}
			entries[id] = en
			cursor = id
		})
		if err != nil || e.flags&flagMore == 0 {
			break
		}
	}
	var evs []event
	n.rmu.Lock()
	r := n.nodes[node]
	switch {
	case r == nil || r.sync == nil || r.sync.gen != gen:
		// reset meanwhile: a newer fetch is under way, or none is needed
	case err != nil:
		r.sync.fetching = false
		r.retryAt = time.Now().Add(n.o.Heartbeat)
	default:
		s := r.sync
		s.done, s.first, s.last, s.entries = true, first, last, entries
		evs = n.tryFinish(r, evs)
	}
	n.rmu.Unlock()
	if err != nil && n.state.Load() == stateRunning {
		n.report(fmt.Errorf("cluster: presence snapshot from node %s: %w", node, err))
	}
	n.fire(evs)
}

// tryFinish installs a fetched snapshot once the broadcast channel has
// caught up with it; the caller holds rmu.
func (n *Node) tryFinish(r *remote, evs []event) []event {
	s := r.sync
	if s == nil || !s.done || s.maxSeen < s.last {
		return evs
	}
	// Every message numbered after the first chunk must have been seen.
	want := s.first + 1
	for _, q := range s.seen {
		if q <= s.first {
			continue
		}
		if q != want {
			n.stats.gaps.Add(1)
			n.reportLocked(fmt.Errorf("%w: from node %s during a snapshot (expected %d, got %d)", ErrGap, r.id, want, q))
			n.resync(r)
			return evs
		}
		want++
	}
	n.presenceDirty = true
	clear(r.conns)
	clear(r.topicN)
	for id, e := range s.entries {
		r.conns[id] = e
		for t := range e.topics {
			r.topicN[t]++
		}
	}
	for _, d := range s.buffered {
		if d.seq > s.first {
			n.applyDeltas(r, d.payload)
		}
	}
	r.lastSeq = max(s.maxSeen, s.last)
	r.sync = nil
	r.synced = true
	return evs
}

// applyDeltas applies a presence batch to r's replica; the caller holds
// rmu. Replaying a batch on a later state converges: ids are never reused,
// a change for an unknown id is ignored, and the last change of each
// connection and topic wins.
func (n *Node) applyDeltas(r *remote, payload []byte) {
	n.presenceDirty = true
	err := parseDeltas(payload, func(d *delta) {
		e := r.conns[d.id]
		switch d.op {
		case opOpen, opOpenReq:
			if e == nil {
				r.conns[d.id] = &entry{params: d.params, requests: d.op == opOpenReq}
			} else {
				e.params, e.requests = d.params, d.op == opOpenReq
			}
		case opClose:
			if e != nil {
				for t := range e.topics {
					r.dec(t)
				}
				delete(r.conns, d.id)
			}
		case opSub:
			if e != nil {
				if _, ok := e.topics[d.topic]; !ok {
					if e.topics == nil {
						e.topics = make(map[string]struct{})
					}
					e.topics[d.topic] = struct{}{}
					r.topicN[d.topic]++
				}
			}
		case opUnsub:
			if e != nil {
				if _, ok := e.topics[d.topic]; ok {
					delete(e.topics, d.topic)
					r.dec(d.topic)
				}
			}
		}
	})
	if err != nil {
		n.stats.badEnvelopes.Add(1)
		n.reportLocked(fmt.Errorf("cluster: presence from node %s: %w", r.id, err))
		n.resync(r)
	}
}

func (r *remote) dec(topic string) {
	if r.topicN[topic]--; r.topicN[topic] <= 0 {
		delete(r.topicN, topic)
	}
}

// sequenced records a numbered message from r; the caller holds rmu. It
// reports whether a presence payload may be applied now (false while a
// snapshot is being fetched: it is buffered then).
func (n *Node) sequenced(r *remote, seq uint64, presence []byte, evs []event) (bool, []event) {
	if s := r.sync; s != nil {
		s.seen = append(s.seen, seq)
		s.maxSeen = max(s.maxSeen, seq)
		if presence != nil {
			s.buffered = append(s.buffered, seqDelta{seq, append([]byte(nil), presence...)})
		}
		if len(s.seen) > 1<<20 {
			n.resync(r) // the snapshot never came: start over
		}
		return false, n.tryFinish(r, evs)
	}
	switch {
	case seq == r.lastSeq+1:
		r.lastSeq = seq
		return true, evs
	case seq <= r.lastSeq:
		return false, evs // a duplicate: already applied
	}
	n.stats.gaps.Add(1)
	n.reportLocked(fmt.Errorf("%w: from node %s (expected %d, got %d)", ErrGap, r.id, r.lastSeq+1, seq))
	n.resync(r)
	return n.sequenced(r, seq, presence, evs)
}

// checkNodes declares down the nodes silent for NodeTimeout, counting only
// the time our own link has been up, and retries failed snapshots.
func (n *Node) checkNodes(now time.Time) {
	var evs []event
	n.rmu.Lock()
	for _, r := range n.nodes {
		if !r.up {
			continue
		}
		since := r.lastHeard
		if !n.linkUp {
			continue
		}
		if n.linkSince.After(since) {
			since = n.linkSince
		}
		if now.Sub(since) > n.o.NodeTimeout {
			r.up = false
			n.reset(r)
			evs = append(evs, event{r.id, false})
			continue
		}
		if r.sync != nil && !r.sync.fetching && now.After(r.retryAt) {
			n.fetch(r)
		}
	}
	n.rmu.Unlock()
	n.fire(evs)
}

// --- the BrokerHandler ---

type handler struct{ n *Node }

func (h handler) HandleBroadcast(from string, msg []byte) {
	n := h.n
	n.stats.received.Add(1)
	n.stats.bytesReceived.Add(uint64(len(msg)))
	e, err := parseEnvelope(msg)
	if err != nil {
		n.stats.badEnvelopes.Add(1)
		n.report(fmt.Errorf("from node %s: %w", from, err))
		return
	}
	if from == n.id {
		return
	}
	// Fan-out goes on while this node drains after its leave message.
	switch e.kind {
	case kindBroadcast:
		n.p.Broadcast(e.binary(), e.payload)
	case kindPublish:
		n.p.Publish(string(e.topic), e.binary(), e.payload)
	}
	if n.state.Load() != stateRunning {
		return
	}
	var evs []event
	n.rmu.Lock()
	if e.kind == kindLeave {
		if r := n.nodes[from]; r != nil && r.up {
			r.up = false
			n.reset(r)
			evs = append(evs, event{from, false})
		}
		n.rmu.Unlock()
		n.fire(evs)
		return
	}
	var r *remote
	if e.kind == kindHeartbeat {
		count, started, err := parseBeat(e.payload)
		if err != nil {
			n.rmu.Unlock()
			n.stats.badEnvelopes.Add(1)
			n.report(fmt.Errorf("from node %s: %w", from, err))
			return
		}
		if r = n.nodes[from]; r != nil && r.started != 0 && r.started != started && r.up {
			// Restarted with the same id: a new incarnation.
			n.reset(r)
			r.lastSeq = 0
			n.resync(r)
		}
		r, evs = n.heard(from, evs)
		r.started, r.count = started, count
	} else {
		r, evs = n.heard(from, evs)
	}
	var presence []byte
	if e.kind == kindPresence {
		presence = e.payload
	}
	apply, evs := n.sequenced(r, e.seq, presence, evs)
	if apply && presence != nil {
		n.applyDeltas(r, presence)
	}
	n.rmu.Unlock()
	n.fire(evs)
}

func (h handler) HandleDirect(from string, msg []byte) {
	n := h.n
	n.stats.received.Add(1)
	n.stats.bytesReceived.Add(uint64(len(msg)))
	if _, err := parseEnvelope(msg); err != nil {
		n.stats.badEnvelopes.Add(1)
		n.report(fmt.Errorf("from node %s: %w", from, err))
	}
	// No directed one-way message is used by this version.
}

func (h handler) HandleRequest(from string, msg []byte, reply func([]byte) error) {
	n := h.n
	n.stats.received.Add(1)
	n.stats.bytesReceived.Add(uint64(len(msg)))
	e, err := parseEnvelope(msg)
	if err != nil {
		n.stats.badEnvelopes.Add(1)
		n.report(fmt.Errorf("from node %s: %w", from, err))
		reply(replyStatus(err))
		return
	}
	switch e.kind {
	case kindSnapReq:
		cursor, _, ok := cutBytes(e.payload)
		if !ok {
			reply(replyStatus(fmt.Errorf("%w: snapshot cursor", ErrBadEnvelope)))
			return
		}
		n.stats.snapServed.Add(1)
		reply(n.snapshot(string(cursor)))
	case kindSend:
		id, data, err := parseDirected(e.payload)
		if err == nil {
			if c, ok := n.p.Connection(id); ok {
				err = sendLocal(c, e.binary(), data)
			} else {
				err = ErrUnknownConnection
			}
		}
		n.stats.served.Add(1)
		if err == ErrUnknownConnection {
			reply(appendEnvelope(nil, kindReply, 0, 0, "", []byte{statusUnknown}))
			return
		}
		reply(replyStatus(err))
	case kindRequest:
		n.stats.served.Add(1)
		n.serveRequest(e, reply)
	default:
		reply(replyStatus(fmt.Errorf("%w: request kind %d", ErrBadEnvelope, e.kind)))
	}
}

// snapshot encodes this node's connections with ids after cursor, as
// many as fit in one message. Its sequence number is taken before the
// table is read, so every change numbered up to it is included.
func (n *Node) snapshot(cursor string) []byte {
	n.sendMu.Lock()
	seq := n.seq
	n.sendMu.Unlock()
	n.pmu.Lock()
	ids := make([]string, 0, len(n.local))
	for id := range n.local {
		if id > cursor {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	limit := n.batchLimit()
	var payload []byte
	flags := flagEntryFlags
	for i, id := range ids {
		e := n.local[id]
		var ef byte
		if e.requests {
			ef = entryRequests
		}
		next := appendEntry(payload, id, ef, e.params, sortedKeys(e.topics))
		if len(next) > limit && i > 0 {
			flags |= flagMore
			break
		}
		payload = next
	}
	n.pmu.Unlock()
	return appendEnvelope(nil, kindSnapshot, flags, seq, "", payload)
}

func (h handler) HandleLink(up bool, err error) {
	n := h.n
	n.rmu.Lock()
	changed := n.linkUp != up
	n.linkUp = up
	if up && changed {
		n.linkSince = time.Now()
	}
	n.rmu.Unlock()
	if !changed {
		return
	}
	if up {
		n.report(fmt.Errorf("%w: link restored", ErrBroker))
		return
	}
	n.stats.linkDowns.Add(1)
	n.report(fmt.Errorf("%w: link lost: %w", ErrBroker, err))
}

func (h handler) HandleDropped(k int) {
	n := h.n
	n.stats.dropped.Add(uint64(k))
	n.report(fmt.Errorf("%w: the broker client dropped %d messages", ErrGap, k))
	// Which node lost what is unknown: resynchronise everyone.
	n.rmu.Lock()
	for _, r := range n.nodes {
		if r.up {
			n.resync(r)
		}
	}
	n.rmu.Unlock()
}

func sortedKeys(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func sortNodes(ns []NodeInfo) {
	slices.SortFunc(ns, func(a, b NodeInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
}

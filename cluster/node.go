package cluster

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/networkcluster/networkcluster/provider"
)

// Defaults of Options.
const (
	DefaultHeartbeat      = time.Second
	DefaultNodeTimeout    = 3 * time.Second
	DefaultPresenceBatch  = 50 * time.Millisecond
	DefaultRequestTimeout = 10 * time.Second
)

// Options configures a Node. Only Broker is required.
type Options struct {
	// Broker carries the cluster's messages (natsbroker.New, or a
	// MemBroker for tests). Required.
	Broker Broker
	// NodeID names this node; it must be unique in the cluster, at most 64
	// bytes, without '.', '*', '>' or white space. Default: 12 random
	// base32 characters (a restarted process is a new node).
	NodeID string
	// Heartbeat is the interval of this node's heartbeat on the broker.
	// Default 1 s.
	Heartbeat time.Duration
	// NodeTimeout: a node silent this long while our own broker link has
	// been up that long is down: its presence is dropped and OnNodeDown
	// runs. Default 3 s; it must be at least twice Heartbeat.
	NodeTimeout time.Duration
	// PresenceBatch is how long presence changes are batched before they
	// go to the broker. Default 50 ms.
	PresenceBatch time.Duration
	// PresenceParams lists the connection URL parameters replicated in
	// presence (ConnInfo.Params), e.g. "worker". Other parameters never
	// leave this node. Never list a secret (an Auth parameter): presence
	// crosses the broker.
	PresenceParams []string
	// RequestTimeout bounds Send to a remote connection, and snapshot
	// requests, when the ctx has no deadline. Default 10 s.
	RequestTimeout time.Duration
	// OnNodeUp runs when a node is first heard of, or heard again after it
	// was down. OnNodeDown runs when a node is declared down (NodeTimeout)
	// or leaves (Shutdown). They run on the Node's goroutines and must not
	// block.
	OnNodeUp, OnNodeDown func(node string)
	// OnError is told of what has no caller to return to: broker link lost
	// and restored (wrapping ErrBroker), messages lost (ErrGap), bad
	// envelopes, failed snapshots. It must not block.
	OnError func(error)
	// Logger receives debug logs; nil means silent.
	Logger *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	bad := func(format string, a ...any) (Options, error) {
		return o, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, a...)...)
	}
	if o.Broker == nil {
		return bad("Broker is required")
	}
	if o.NodeID == "" {
		var b [8]byte
		rand.Read(b[:])
		o.NodeID = strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:]))[:12]
	}
	if err := CheckName(o.NodeID); err != nil {
		return bad("NodeID: %v", err)
	}
	if o.Heartbeat == 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.NodeTimeout == 0 {
		o.NodeTimeout = DefaultNodeTimeout
	}
	if o.PresenceBatch == 0 {
		o.PresenceBatch = DefaultPresenceBatch
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	switch {
	case o.Heartbeat < 0 || o.NodeTimeout < 0 || o.PresenceBatch < 0 || o.RequestTimeout < 0:
		return bad("negative duration")
	case o.NodeTimeout < 2*o.Heartbeat:
		return bad("NodeTimeout %v is less than twice Heartbeat %v", o.NodeTimeout, o.Heartbeat)
	}
	return o, nil
}

// CheckName reports whether s can name a node (or a NATS subject prefix):
// 1 to 64 bytes, no '.', '*', '>', white space or control characters.
func CheckName(s string) error {
	if s == "" || len(s) > 64 {
		return fmt.Errorf("%q: length must be 1 to 64 bytes", s)
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '.' || r == '*' || r == '>' {
			return fmt.Errorf("%q: contains %q", s, r)
		}
	}
	return nil
}

// Node joins a Provider to a cluster: cluster-wide Broadcast and Publish,
// Send to a connection on any node, and a replica of every node's
// connections and topics (presence). Create it with New before the
// Provider starts, then Start it. Its methods are safe for concurrent use.
//
// Delivery across nodes is at most once: a nil error means the message
// left this node. Messages from one node reach every other node in the
// order this node sent them; there is no order across nodes. Losses are
// counted in Stats and reported to OnError.
//
// Goroutines: one for heartbeats, presence batches and liveness, plus one
// per presence snapshot being fetched from another node, and those of the
// Broker.
type Node struct {
	p   *provider.Provider
	o   Options
	b   Broker
	id  string
	log *slog.Logger

	started int64        // unix ns of Start: a restart is a new incarnation
	state   atomic.Int32 // stateNew, stateRunning, stateLeaving
	ctx     context.Context
	cancel  context.CancelFunc
	stop    chan struct{}
	looped  chan struct{} // closed when the heartbeat loop has ended
	wg      sync.WaitGroup

	// sendMu orders the broadcast channel: a sequence number is taken and
	// the message handed to the broker under it.
	sendMu  sync.Mutex
	seq     uint64
	sendBuf []byte

	// pmu guards this node's own presence: the table snapshots are made
	// from, and the deltas waiting for the next batch.
	pmu     sync.Mutex
	local   map[string]*entry
	pending [][]byte
	params  map[string]bool

	// rmu guards the replica of the other nodes.
	rmu        sync.RWMutex
	nodes      map[string]*remote
	linkUp     bool
	linkSince  time.Time
	lockedErrs []error // for OnError, once rmu is released (fire)
	// presenceDirty: the replica changed; fire tells the watchers.
	presenceDirty bool

	// wmu guards watchers: funcs told (without locks held) that presence
	// changed, for the Queues.
	wmu      sync.Mutex
	watchers map[*Queue]func()

	stats counters
}

const (
	stateNew int32 = iota
	stateRunning
	stateLeaving
)

// entry is a connection in presence.
type entry struct {
	params map[string]string
	topics map[string]struct{}
	// requests: the connection speaks requests (a Queue worker candidate).
	requests bool
	// conn is the connection itself, in this node's own table only.
	conn *provider.Connection
}

// ConnInfo describes a connection in presence.
type ConnInfo struct {
	ID, Node string
	// Topics the connection is subscribed to, sorted.
	Topics []string
	// Params are the connection's URL parameters listed in
	// Options.PresenceParams (nil if none).
	Params map[string]string
}

// NodeInfo describes a node as this node knows it.
type NodeInfo struct {
	ID string
	// Self marks this node.
	Self bool
	// Connections is the number of its connections in presence.
	Connections int
	// LastHeard is when a message from it last arrived (now for Self).
	LastHeard time.Time
	// Up is false once it was declared down or left.
	Up bool
	// Synced is true when its presence is known (a snapshot arrived and no
	// message was lost since).
	Synced bool
}

// New attaches a cluster Node to p. Call it before p.Start: it adds a
// provider.Observer.
func New(p *provider.Provider, o Options) (*Node, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	n := &Node{
		p: p, o: o, b: o.Broker, id: o.NodeID, log: o.Logger,
		stop:     make(chan struct{}),
		looped:   make(chan struct{}),
		local:    make(map[string]*entry),
		nodes:    make(map[string]*remote),
		params:   make(map[string]bool),
		watchers: make(map[*Queue]func()),
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	for _, k := range o.PresenceParams {
		n.params[k] = true
	}
	if err := p.Observe(observer{n}); err != nil {
		return nil, fmt.Errorf("cluster: %w (call New before the Provider starts)", err)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	return n, nil
}

// ID returns this node's id.
func (n *Node) ID() string { return n.id }

// Start joins the cluster: it opens the broker, sends the first heartbeat
// (other nodes then fetch this node's presence, and this node theirs as
// they are heard of) and starts the heartbeat goroutine.
func (n *Node) Start(ctx context.Context) error {
	if !n.state.CompareAndSwap(stateNew, stateRunning) {
		if n.state.Load() == stateRunning {
			return fmt.Errorf("cluster: node already started")
		}
		return ErrClosed
	}
	n.started = time.Now().UnixNano()
	n.rmu.Lock()
	n.linkUp, n.linkSince = true, time.Now()
	n.rmu.Unlock()
	if err := n.b.Open(ctx, n.id, handler{n}); err != nil {
		n.state.Store(stateNew)
		return fmt.Errorf("%w: open: %w", ErrBroker, err)
	}
	n.heartbeat()
	n.wg.Add(1)
	go n.loop()
	n.log.Debug("cluster node started", "node", n.id)
	return nil
}

func (n *Node) running() error {
	switch n.state.Load() {
	case stateNew:
		return ErrNotStarted
	case stateLeaving:
		return ErrClosed
	}
	return nil
}

func (n *Node) report(err error) {
	n.log.Debug("cluster error", "node", n.id, "err", err)
	if f := n.o.OnError; f != nil {
		f(err)
	}
}

// --- cluster-wide fan-out ---

// Broadcast sends a message to every connection of the cluster: one
// envelope is handed to the broker for the other nodes (which frame it once
// each), then local receivers get it (as provider.Broadcast). The result
// counts local receivers only. The error wraps ErrTooLarge when the
// message is over the broker's MaxMessage, ErrBroker when it did not leave
// this node: in both cases local delivery has happened all the same. A
// text message that is not UTF-8 is refused before any delivery
// (provider.ErrInvalidUTF8).
func (n *Node) Broadcast(binary bool, data []byte) (provider.BroadcastResult, error) {
	if err := n.running(); err != nil {
		return provider.BroadcastResult{}, err
	}
	if !binary && !utf8.Valid(data) {
		return provider.BroadcastResult{}, provider.ErrInvalidUTF8
	}
	// The envelope goes first: the broker client only queues it, and the
	// other nodes start their fan-out while this one does its own.
	ferr := n.fanOut(kindBroadcast, flagsOf(binary), "", data)
	res, err := n.p.Broadcast(binary, data)
	if err != nil {
		return res, err
	}
	return res, ferr
}

// Publish sends a message to the subscribers of topic on every node, as
// Broadcast does.
func (n *Node) Publish(topic string, binary bool, data []byte) (provider.BroadcastResult, error) {
	if err := n.running(); err != nil {
		return provider.BroadcastResult{}, err
	}
	if !binary && !utf8.Valid(data) {
		return provider.BroadcastResult{}, provider.ErrInvalidUTF8
	}
	ferr := n.fanOut(kindPublish, flagsOf(binary), topic, data)
	res, err := n.p.Publish(topic, binary, data)
	if err != nil {
		return res, err
	}
	return res, ferr
}

func flagsOf(binary bool) byte {
	if binary {
		return flagBinary
	}
	return 0
}

func (n *Node) fanOut(k kind, flags byte, topic string, data []byte) error {
	n.sendMu.Lock()
	size := envelopeSize(k, n.seq+1, topic, len(data))
	if max := n.b.MaxMessage(); size > max {
		n.sendMu.Unlock()
		n.stats.tooLarge.Add(1)
		return fmt.Errorf("%w: %d bytes in the envelope, the broker takes %d", ErrTooLarge, size, max)
	}
	err := n.sendLocked(k, flags, topic, data)
	n.sendMu.Unlock()
	return err
}

// sendLocked puts one envelope on the broadcast channel with the next
// sequence number; the caller holds sendMu. A failed send still uses its
// number, so receivers see the gap.
func (n *Node) sendLocked(k kind, flags byte, topic string, data []byte) error {
	n.seq++
	n.sendBuf = appendEnvelope(n.sendBuf[:0], k, flags, n.seq, topic, data)
	err := n.b.Broadcast(n.sendBuf)
	if cap(n.sendBuf) > 1<<20 {
		n.sendBuf = nil
	}
	if err != nil {
		n.stats.brokerErrors.Add(1)
		if !errors.Is(err, ErrBroker) && !errors.Is(err, ErrTooLarge) {
			err = fmt.Errorf("%w: %w", ErrBroker, err)
		}
		return err
	}
	n.stats.sent.Add(1)
	n.stats.bytesSent.Add(uint64(len(n.sendBuf)))
	return nil
}

// sendControl sends a cluster-internal message on the broadcast channel.
func (n *Node) sendControl(k kind, payload []byte) error {
	n.sendMu.Lock()
	defer n.sendMu.Unlock()
	return n.sendLocked(k, 0, "", payload)
}

// --- directed sends ---

// Send sends a message to one connection anywhere in the cluster. A local
// id takes the local path (Connection.SendText or SendBinary). Otherwise the
// node holding it (found in presence) is asked to send it, and its
// Connection's answer crosses back: nil once the owner queued the message;
// provider.ErrClosed, provider.ErrBackpressure or provider.ErrInvalidUTF8
// from the owner; ErrUnknownConnection when no node holds the id (or the
// owner no longer does); ErrNodeUnreachable at once when the owner does not
// listen on the broker; ErrTooLarge; or ctx's error (Options.RequestTimeout
// applies when ctx has no deadline).
func (n *Node) Send(ctx context.Context, connID string, binary bool, data []byte) error {
	if err := n.running(); err != nil {
		return err
	}
	if c, ok := n.p.Connection(connID); ok {
		return sendLocal(c, binary, data)
	}
	owner, ok := n.lookupRemote(connID)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownConnection, connID)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, n.o.RequestTimeout)
		defer cancel()
	}
	n.stats.remoteSends.Add(1)
	payload := make([]byte, 0, len(connID)+binaryLen(len(connID))+len(data))
	payload = appendString(payload, connID)
	payload = append(payload, data...)
	r, err := n.call(ctx, owner, kindSend, flagsOf(binary), payload)
	if err == nil {
		err = parseStatus(owner, connID, r, nil)
	}
	if err != nil {
		n.stats.remoteSendErrors.Add(1)
	}
	return err
}

func sendLocal(c *provider.Connection, binary bool, data []byte) error {
	if binary {
		return c.SendBinary(data)
	}
	return c.SendText(data)
}

// call makes a directed request to owner and returns the reply envelope.
func (n *Node) call(ctx context.Context, owner string, k kind, flags byte, payload []byte) (envelope, error) {
	msg := appendEnvelope(make([]byte, 0, envelopeHdrMax+len(payload)), k, flags, 0, "", payload)
	if max := n.b.MaxMessage(); len(msg) > max {
		return envelope{}, fmt.Errorf("%w: %d bytes in the envelope, the broker takes %d", ErrTooLarge, len(msg), max)
	}
	r, err := n.b.Request(ctx, owner, msg)
	if err != nil {
		switch {
		case ctx.Err() != nil && !errors.Is(err, ErrNodeUnreachable):
			return envelope{}, fmt.Errorf("cluster: node %s: %w", owner, ctx.Err())
		case errors.Is(err, ErrNodeUnreachable), errors.Is(err, ErrBroker), errors.Is(err, ErrTooLarge):
			return envelope{}, err
		}
		return envelope{}, fmt.Errorf("%w: %w", ErrBroker, err)
	}
	e, err := parseEnvelope(r)
	if err != nil || e.kind != kindReply || len(e.payload) == 0 {
		return envelope{}, fmt.Errorf("%w: bad reply from node %s", ErrBadEnvelope, owner)
	}
	return e, nil
}

func binaryLen(n int) int { return uvarintLen(uint64(n)) }

// parseStatus turns a kindReply into an error (nil for statusOK); a
// statusMessage reply is stored in msg when msg is not nil.
func parseStatus(owner, connID string, e envelope, msg *provider.Message) error {
	st, rest := e.payload[0], e.payload[1:]
	switch st {
	case statusOK:
		return nil
	case statusMessage:
		if msg == nil {
			return fmt.Errorf("%w: unexpected message reply from node %s", ErrBadEnvelope, owner)
		}
		*msg = provider.Message{Binary: e.binary(), Data: append([]byte(nil), rest...)}
		return nil
	case statusUnknown:
		return fmt.Errorf("%w: %q (node %s no longer holds it)", ErrUnknownConnection, connID, owner)
	case statusClosed:
		return fmt.Errorf("%w: connection %s on node %s: %s", provider.ErrClosed, connID, owner, rest)
	case statusBackpress:
		return fmt.Errorf("%w: connection %s on node %s", provider.ErrBackpressure, connID, owner)
	case statusInvalidUTF8:
		return fmt.Errorf("%w (checked on node %s)", provider.ErrInvalidUTF8, owner)
	}
	if err := statusError(st, owner, connID, rest); err != nil {
		return err
	}
	return fmt.Errorf("%w: node %s: %s", ErrRemote, owner, rest)
}

// replyStatus encodes err (from the owner's Connection) as a kindReply.
func replyStatus(err error) []byte {
	var st byte
	var text string
	if st, text = errorStatus(err); st != 0 {
		return appendEnvelope(nil, kindReply, 0, 0, "", append([]byte{st}, text...))
	}
	switch {
	case err == nil:
		st = statusOK
	case errors.Is(err, provider.ErrBackpressure):
		st = statusBackpress
	case errors.Is(err, provider.ErrInvalidUTF8):
		st = statusInvalidUTF8
	case errors.Is(err, provider.ErrClosed):
		st, text = statusClosed, err.Error()
	default:
		st, text = statusOther, err.Error()
	}
	return appendEnvelope(nil, kindReply, 0, 0, "", append([]byte{st}, text...))
}

// --- presence queries ---

// Lookup returns the node holding connection connID, from presence (a
// replica: a connection that opened on another node less than
// PresenceBatch plus the broker's latency ago may be missing).
func (n *Node) Lookup(connID string) (node string, ok bool) {
	n.pmu.Lock()
	_, ok = n.local[connID]
	n.pmu.Unlock()
	if ok {
		return n.id, true
	}
	if _, ok := n.p.Connection(connID); ok {
		return n.id, true
	}
	return n.lookupRemote(connID)
}

func (n *Node) lookupRemote(connID string) (string, bool) {
	n.rmu.RLock()
	defer n.rmu.RUnlock()
	for id, r := range n.nodes {
		if _, ok := r.conns[connID]; ok {
			return id, true
		}
	}
	return "", false
}

// Len returns the number of connections in the cluster: this node's open
// connections plus the other nodes' in presence.
func (n *Node) Len() int {
	n.pmu.Lock()
	k := len(n.local)
	n.pmu.Unlock()
	n.rmu.RLock()
	for _, r := range n.nodes {
		k += len(r.conns)
	}
	n.rmu.RUnlock()
	return k
}

// Subscribers returns the number of connections subscribed to topic in
// the cluster.
func (n *Node) Subscribers(topic string) int {
	k := n.p.Subscribers(topic)
	n.rmu.RLock()
	for _, r := range n.nodes {
		k += r.topicN[topic]
	}
	n.rmu.RUnlock()
	return k
}

// Range calls f for each connection in the cluster (a snapshot: this
// node's first, then the others'), until f returns false.
func (n *Node) Range(f func(ConnInfo) bool) {
	var all []ConnInfo
	n.pmu.Lock()
	for id, e := range n.local {
		all = append(all, e.info(id, n.id))
	}
	n.pmu.Unlock()
	n.rmu.RLock()
	for node, r := range n.nodes {
		for id, e := range r.conns {
			all = append(all, e.info(id, node))
		}
	}
	n.rmu.RUnlock()
	for _, c := range all {
		if !f(c) {
			return
		}
	}
}

func (e *entry) info(id, node string) ConnInfo {
	ci := ConnInfo{ID: id, Node: node, Topics: sortedKeys(e.topics)}
	if len(e.params) > 0 {
		ci.Params = make(map[string]string, len(e.params))
		for k, v := range e.params {
			ci.Params[k] = v
		}
	}
	return ci
}

// Nodes returns this node and the nodes it has heard of, this node first.
func (n *Node) Nodes() []NodeInfo {
	n.pmu.Lock()
	self := NodeInfo{ID: n.id, Self: true, Connections: len(n.local), LastHeard: time.Now(), Up: n.state.Load() == stateRunning, Synced: true}
	n.pmu.Unlock()
	out := []NodeInfo{self}
	n.rmu.RLock()
	for id, r := range n.nodes {
		out = append(out, NodeInfo{ID: id, Connections: len(r.conns), LastHeard: r.lastHeard, Up: r.up, Synced: r.synced})
	}
	n.rmu.RUnlock()
	sortNodes(out[1:])
	return out
}

// --- shutdown ---

// Shutdown leaves the cluster gracefully: it tells the other nodes (they
// drop this node's presence at once, without waiting for NodeTimeout, and
// their Queues redeliver the jobs that were in flight on its workers),
// then shuts the Provider down (p.Shutdown(ctx): its Consumers reconnect
// elsewhere), then closes the broker, flushing what was handed to it
// (bounded by ctx). This node's own Queues end their jobs with ErrClosed
// (a *provider.JobError wrapping it once an attempt was made). It returns
// the first error.
func (n *Node) Shutdown(ctx context.Context) error {
	prev := n.state.Swap(stateLeaving)
	if prev == stateLeaving {
		return ErrClosed
	}
	close(n.stop)
	qs := n.queues()
	for _, q := range qs {
		q.nodeStopping()
	}
	var first error
	if prev == stateRunning {
		// The loop's last presence batch and heartbeat go before the leave:
		// nothing may follow it on the broadcast channel.
		<-n.looped
		first = n.sendControl(kindLeave, nil)
	}
	if err := n.p.Shutdown(ctx); err != nil && first == nil {
		first = err
	}
	for _, q := range qs {
		q.nodeStopped()
	}
	n.cancel()
	n.wg.Wait()
	if prev == stateRunning {
		if err := n.b.Close(ctx); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// --- stats ---

// Stats counts a Node's traffic since Start.
type Stats struct {
	// Sent and Received count envelopes on the broker (fan-out, presence,
	// heartbeats, directed calls), BytesSent and BytesReceived their bytes.
	Sent, Received, BytesSent, BytesReceived uint64
	// Dropped counts messages the broker client dropped (slow consumer).
	Dropped uint64
	// Gaps counts sequence gaps seen (messages from a node lost).
	Gaps uint64
	// BrokerErrors counts sends the broker refused; TooLarge those refused
	// for their size before reaching it.
	BrokerErrors, TooLarge uint64
	// BadEnvelopes counts messages that were not readable envelopes.
	BadEnvelopes uint64
	// SnapshotsRequested and SnapshotsServed count presence snapshot
	// chunks fetched from and served to other nodes.
	SnapshotsRequested, SnapshotsServed uint64
	// LinkUp reports the broker link; LinkDowns counts its losses.
	LinkUp    bool
	LinkDowns uint64
	// RemoteSends counts Send calls to connections on other nodes, and
	// RemoteSendErrors those that failed; RemoteRequests and
	// RemoteRequestErrors the same for Request. Served counts directed
	// calls answered for other nodes.
	RemoteSends, RemoteSendErrors, RemoteRequests, RemoteRequestErrors, Served uint64
	// NodesUp is the number of other nodes up.
	NodesUp int
}

type counters struct {
	sent, received, bytesSent, bytesReceived, dropped, gaps atomic.Uint64
	brokerErrors, tooLarge, badEnvelopes                    atomic.Uint64
	snapRequested, snapServed, linkDowns                    atomic.Uint64
	remoteSends, remoteSendErrors                           atomic.Uint64
	remoteRequests, remoteRequestErrors, served             atomic.Uint64
}

// Stats returns a snapshot of the counters.
func (n *Node) Stats() Stats {
	s := Stats{
		Sent: n.stats.sent.Load(), Received: n.stats.received.Load(),
		BytesSent: n.stats.bytesSent.Load(), BytesReceived: n.stats.bytesReceived.Load(),
		Dropped: n.stats.dropped.Load(), Gaps: n.stats.gaps.Load(),
		BrokerErrors: n.stats.brokerErrors.Load(), TooLarge: n.stats.tooLarge.Load(),
		BadEnvelopes:       n.stats.badEnvelopes.Load(),
		SnapshotsRequested: n.stats.snapRequested.Load(), SnapshotsServed: n.stats.snapServed.Load(),
		LinkDowns:   n.stats.linkDowns.Load(),
		RemoteSends: n.stats.remoteSends.Load(), RemoteSendErrors: n.stats.remoteSendErrors.Load(),
		RemoteRequests: n.stats.remoteRequests.Load(), RemoteRequestErrors: n.stats.remoteRequestErrors.Load(),
		Served: n.stats.served.Load(),
	}
	n.rmu.RLock()
	s.LinkUp = n.linkUp
	for _, r := range n.nodes {
		if r.up {
			s.NodesUp++
		}
	}
	n.rmu.RUnlock()
	return s
}

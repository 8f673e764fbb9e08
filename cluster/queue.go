package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/networkcluster/networkcluster/provider"
)

// QueueOptions configures a cluster-wide Queue. The zero value is valid:
// every connection of the cluster that speaks requests is a worker, one job
// at a time. The fields mean what they mean in provider.QueueOptions.
type QueueOptions struct {
	// Topic selects the workers: the connections subscribed to Topic on any
	// node (as presence knows them). "" means every connection. Only
	// connections that negotiated requests take jobs.
	Topic string
	// MaxInFlight is the number of this queue's jobs a worker may hold
	// unanswered at once. Default 1.
	MaxInFlight int
	// AttemptTimeout bounds one attempt; the owner of a remote worker is
	// given the same deadline. Default 30 s. Negative: the Submit ctx's
	// deadline, or Options.RequestTimeout (remote) and the Provider's
	// RequestTimeout (local) when it has none.
	AttemptTimeout time.Duration
	// MaxAttempts is the number of workers a job is given to, at most,
	// before it fails with a *provider.JobError wrapping
	// provider.ErrAttemptsExhausted. Default 5.
	MaxAttempts int
	// MaxQueued bounds the jobs waiting for a worker: Submit returns
	// provider.ErrQueueFull beyond it. Default 10 000.
	MaxQueued int
	// Retryable says whether a job failed with a *provider.RemoteError goes
	// to another worker. Nil: provider.Retryable.
	Retryable func(e *provider.RemoteError) bool
}

// QueueStats is a snapshot of a cluster Queue's counters.
type QueueStats struct {
	// Workers is the number of connections that take the queue's jobs,
	// RemoteWorkers those of them on other nodes.
	Workers, RemoteWorkers int
	// Queued jobs wait for a worker; InFlight jobs are with one.
	Queued, InFlight int
	// Submitted counts jobs accepted; each ends in Done or Failed.
	// Refused counts Submit calls that got provider.ErrQueueFull.
	Submitted, Done, Failed, Refused uint64
	// Attempts counts jobs sent to a worker, RemoteAttempts those sent to
	// a worker on another node, Redelivered those flagged redelivered. A
	// job refused before it reached the worker (stale presence: the owner
	// no longer holds the connection, or its node is unreachable) is not
	// counted once the refusal is known.
	Attempts, RemoteAttempts, Redelivered uint64
	// Lost counts attempts abandoned because their worker's node went
	// down or left, or the worker left presence, before it answered.
	Lost uint64
}

// errWorkerLost is the cause of an attempt abandoned because its worker
// left presence (its node went down or left).
var errWorkerLost = errors.New("cluster: worker lost (its node is down or it left presence)")

// Queue hands each job to one worker anywhere in the cluster: a connection
// in presence (this node's or another node's) that negotiated requests,
// is in the queue's topic and has fewer than MaxInFlight of the queue's
// jobs unanswered. A job for a remote worker goes through the node that
// holds it (as Node.Request); the reply is the result. A job whose worker
// disconnects, times out, fails it with a retryable error, or whose node
// goes down or leaves, is given to another worker flagged redelivered
// (consumer.Request.Redelivered), up to MaxAttempts; then it ends with a
// *provider.JobError listing each attempt.
//
// Delivery is at least once: a worker (or a node) lost mid-job may have
// done it, so handlers must be idempotent. The queue lives in the
// submitting node's memory: when that node dies, its queued jobs and the
// outcomes of its jobs in flight die with it (workers on other nodes may
// still run those jobs; nobody retries them). A node going down is
// noticed after Options.NodeTimeout, or at once when it shuts down
// gracefully.
//
// Workers are picked from presence, a replica: a worker that opened on
// another node less than PresenceBatch plus the broker latency ago is not
// used yet, and a stale entry costs one refused attempt (not counted
// against MaxAttempts). Picking is the worker with the fewest of this
// queue's jobs in flight, preferring those that have not failed the job.
//
// Its methods are safe for concurrent use. Make one with Node.NewQueue.
type Queue struct {
	n         *Node
	o         QueueOptions
	retryable func(*provider.RemoteError) bool
	poke      chan struct{}
	quit      chan struct{}
	loopDone  chan struct{}

	mu       sync.Mutex
	workers  map[string]*cworker // by connection id
	gone     map[string]struct{} // refused a job as unknown: skipped while in presence
	front    []*cjob             // jobs taken back, in reverse order (the last is next)
	back     []*cjob             // jobs waiting, in order
	backHead int
	queued   int
	inflight map[*cjob]*cworker
	closing  bool // Close began
	killed   bool // Close gave up
	stopped  bool // the Node is shutting down
	drained  chan struct{}
	wg       sync.WaitGroup

	submitted, done, failed, refused  uint64
	attempts, remoteAttempts, redeliv uint64
	lost                              uint64
}

type cworker struct {
	id, node string
	conn     *provider.Connection // a local worker; nil for a remote one
	inFlight int
	present  bool // seen in the last presence scan
	running  map[*cjob]context.CancelCauseFunc
}

const (
	cjobQueued uint8 = iota
	cjobInFlight
	cjobEnded
)

type cjob struct {
	ctx       context.Context
	binary    bool
	data      []byte
	done      func(provider.Message, error)
	state     uint8
	redeliver bool
	attempts  []provider.JobAttempt
	failedOn  []string
	stopCtx   func() bool
}

// NewQueue makes a cluster-wide job queue whose workers are the
// connections of every node of the cluster (see QueueOptions.Topic). It
// may be called before or after Start; workers on other nodes are used
// once the Node has started and their presence arrived.
func (n *Node) NewQueue(o QueueOptions) (*Queue, error) {
	bad := func(format string, a ...any) (*Queue, error) {
		return nil, fmt.Errorf("%w: "+format, append([]any{ErrInvalidOptions}, a...)...)
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = provider.DefaultQueueMaxInFlight
	}
	if o.AttemptTimeout == 0 {
		o.AttemptTimeout = provider.DefaultQueueAttemptTimout
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = provider.DefaultQueueMaxAttempts
	}
	if o.MaxQueued == 0 {
		o.MaxQueued = provider.DefaultQueueMaxQueued
	}
	switch {
	case o.MaxInFlight < 0:
		return bad("queue MaxInFlight %d", o.MaxInFlight)
	case o.MaxAttempts < 0:
		return bad("queue MaxAttempts %d", o.MaxAttempts)
	case o.MaxQueued < 0:
		return bad("queue MaxQueued %d", o.MaxQueued)
	}
	if n.state.Load() == stateLeaving {
		return nil, ErrClosed
	}
	q := &Queue{
		n: n, o: o, retryable: o.Retryable,
		poke:     make(chan struct{}, 1),
		quit:     make(chan struct{}),
		loopDone: make(chan struct{}),
		workers:  make(map[string]*cworker),
		gone:     make(map[string]struct{}),
		inflight: make(map[*cjob]*cworker),
		drained:  make(chan struct{}),
	}
	if q.retryable == nil {
		q.retryable = provider.Retryable
	}
	n.wmu.Lock()
	n.watchers[q] = q.changed
	n.wmu.Unlock()
	q.scan()
	go q.loop()
	return q, nil
}

// changed is the Node's presence hook: it only signals the loop.
func (q *Queue) changed() {
	select {
	case q.poke <- struct{}{}:
	default:
	}
}

// loop rescans presence after each change.
func (q *Queue) loop() {
	defer close(q.loopDone)
	for {
		select {
		case <-q.quit:
			return
		case <-q.poke:
			q.scan()
		}
	}
}

// candidate is a worker found in presence.
type candidate struct {
	id, node string
	conn     *provider.Connection
}

func (q *Queue) wants(e *entry) bool {
	if !e.requests {
		return false
	}
	if q.o.Topic == "" {
		return true
	}
	_, ok := e.topics[q.o.Topic]
	return ok
}

// scan brings the worker set in line with presence, abandons the attempts
// of workers that left it, and dispatches.
func (q *Queue) scan() {
	n := q.n
	var cands []candidate
	n.pmu.Lock()
	for id, e := range n.local {
		if q.wants(e) && e.conn != nil {
			cands = append(cands, candidate{id: id, node: n.id, conn: e.conn})
		}
	}
	n.pmu.Unlock()
	n.rmu.RLock()
	for node, r := range n.nodes {
		if !r.up {
			continue
		}
		for id, e := range r.conns {
			if q.wants(e) {
				cands = append(cands, candidate{id: id, node: node})
			}
		}
	}
	n.rmu.RUnlock()

	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped || q.killed {
		return
	}
	for _, w := range q.workers {
		w.present = false
	}
	seen := make(map[string]struct{}, len(cands))
	for _, c := range cands {
		seen[c.id] = struct{}{}
		if _, ok := q.gone[c.id]; ok {
			continue
		}
		if w := q.workers[c.id]; w != nil {
			w.present = true
			continue
		}
		q.workers[c.id] = &cworker{id: c.id, node: c.node, conn: c.conn, present: true, running: make(map[*cjob]context.CancelCauseFunc)}
	}
	for id := range q.gone {
		if _, ok := seen[id]; !ok {
			delete(q.gone, id)
		}
	}
	for id, w := range q.workers {
		if !w.present {
			delete(q.workers, id)
		}
	}
	// Attempts on remote workers that left presence (their node went down
	// or left, or they closed there; or they left the set earlier, refusing
	// a job) are abandoned: the owner's answer may never come.
	var alive map[string]bool
	for j, w := range q.inflight {
		if w.conn != nil || q.workers[w.id] == w {
			continue
		}
		if alive == nil {
			alive = make(map[string]bool)
		}
		ok, known := alive[w.id]
		if !known {
			ok = n.present(w.id)
			alive[w.id] = ok
		}
		if !ok {
			if cancel := w.running[j]; cancel != nil {
				cancel(errWorkerLost)
			}
		}
	}
	q.dispatchLocked()
}

// present reports whether a connection is in presence, on this node or on
// a node that is up.
func (n *Node) present(id string) bool {
	n.pmu.Lock()
	_, ok := n.local[id]
	n.pmu.Unlock()
	if ok {
		return true
	}
	n.rmu.RLock()
	defer n.rmu.RUnlock()
	for _, r := range n.nodes {
		if _, ok := r.conns[id]; ok && r.up {
			return true
		}
	}
	return false
}

// Submit hands a job to a worker anywhere in the cluster and waits for
// its outcome, which is exactly one of: the worker's reply; a
// *provider.JobError (attempts used up, a worker failed it with a code
// that is not retryable, or ctx ended, the queue was closed or the Node
// shut down after an attempt); ctx's error when it ends before any
// attempt; ErrClosed when the Node shut down; provider.ErrQueueClosed when
// Close gave up on it. It returns at once with provider.ErrQueueFull,
// provider.ErrQueueClosed, ErrClosed or provider.ErrInvalidUTF8 when the
// job is not taken. data is copied.
func (q *Queue) Submit(ctx context.Context, binary bool, data []byte) (provider.Message, error) {
	type outcome struct {
		m   provider.Message
		err error
	}
	ch := make(chan outcome, 1)
	if err := q.SubmitAsync(ctx, binary, data, func(m provider.Message, err error) { ch <- outcome{m, err} }); err != nil {
		return provider.Message{}, err
	}
	o := <-ch
	return o.m, o.err
}

// SubmitAsync is Submit without the wait: it returns nil once the job is
// taken, and done is then called exactly once with the outcome, from a
// goroutine of the queue (done must not block for long). When it returns
// an error done is never called.
func (q *Queue) SubmitAsync(ctx context.Context, binary bool, data []byte, done func(provider.Message, error)) error {
	if done == nil {
		return fmt.Errorf("%w: SubmitAsync without a done func", ErrInvalidOptions)
	}
	if !binary && !utf8.Valid(data) {
		return provider.ErrInvalidUTF8
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &cjob{ctx: ctx, binary: binary, data: append([]byte(nil), data...), done: done}
	q.mu.Lock()
	switch {
	case q.closing:
		q.mu.Unlock()
		return provider.ErrQueueClosed
	case q.stopped:
		q.mu.Unlock()
		return ErrClosed
	case q.queued >= q.o.MaxQueued:
		q.refused++
		k := q.queued
		q.mu.Unlock()
		return fmt.Errorf("%w: %d jobs wait", provider.ErrQueueFull, k)
	}
	q.submitted++
	if ctx.Done() != nil {
		j.stopCtx = context.AfterFunc(ctx, func() { q.ctxDone(j) })
	}
	q.back = append(q.back, j)
	q.queued++
	q.dispatchLocked()
	q.mu.Unlock()
	return nil
}

// ctxDone ends a job whose ctx ended while it waited for a worker.
func (q *Queue) ctxDone(j *cjob) {
	q.mu.Lock()
	if j.state != cjobQueued {
		q.mu.Unlock()
		return
	}
	q.queued--
	err := q.endLocked(j, j.ctx.Err())
	q.mu.Unlock()
	j.done(provider.Message{}, err)
}

func (q *Queue) endLocked(j *cjob, cause error) error {
	j.state = cjobEnded
	q.failed++
	if j.stopCtx != nil {
		j.stopCtx()
	}
	q.checkDrainedLocked()
	if len(j.attempts) == 0 {
		return cause
	}
	return &provider.JobError{Err: cause, Attempts: j.attempts}
}

// nextLocked returns the job at the front of the wait list (ended ones
// are dropped), or nil.
func (q *Queue) nextLocked() *cjob {
	for {
		var j *cjob
		switch {
		case len(q.front) > 0:
			j = q.front[len(q.front)-1]
		case q.backHead < len(q.back):
			j = q.back[q.backHead]
		default:
			q.back, q.backHead = q.back[:0], 0
			return nil
		}
		if j.state == cjobQueued {
			return j
		}
		q.popLocked()
	}
}

func (q *Queue) popLocked() {
	if k := len(q.front); k > 0 {
		q.front[k-1] = nil
		q.front = q.front[:k-1]
		return
	}
	q.back[q.backHead] = nil
	q.backHead++
	if q.backHead > 64 && q.backHead*2 > len(q.back) {
		q.back = append(q.back[:0], q.back[q.backHead:]...)
		q.backHead = 0
	}
}

// dispatchLocked sends waiting jobs to workers with a free slot.
func (q *Queue) dispatchLocked() {
	for q.queued > 0 && !q.killed && !q.stopped {
		j := q.nextLocked()
		if j == nil {
			return
		}
		w := q.pickLocked(j)
		if w == nil {
			return
		}
		q.popLocked()
		q.queued--
		q.startLocked(j, w)
	}
}

// pickLocked chooses the worker with the fewest jobs in flight, preferring
// those that have not failed j.
func (q *Queue) pickLocked(j *cjob) *cworker {
	var best, fallback *cworker
	for _, w := range q.workers {
		if w.inFlight >= q.o.MaxInFlight {
			continue
		}
		if w.conn != nil && w.conn.State() != provider.StateOpen {
			continue
		}
		if slices.Contains(j.failedOn, w.id) {
			if fallback == nil || w.inFlight < fallback.inFlight {
				fallback = w
			}
			continue
		}
		if best == nil || w.inFlight < best.inFlight {
			best = w
		}
	}
	if best != nil {
		return best
	}
	return fallback
}

func (q *Queue) startLocked(j *cjob, w *cworker) {
	j.state = cjobInFlight
	w.inFlight++
	q.inflight[j] = w
	q.attempts++
	if w.conn == nil {
		q.remoteAttempts++
	}
	redeliver := j.redeliver
	if redeliver {
		q.redeliv++
	}
	ctx := j.ctx
	var cancelT context.CancelFunc = func() {}
	if q.o.AttemptTimeout > 0 {
		ctx, cancelT = context.WithTimeout(ctx, q.o.AttemptTimeout)
	}
	ctx, cancel := context.WithCancelCause(ctx)
	w.running[j] = cancel
	q.wg.Add(1)
	go q.run(j, w, redeliver, ctx, func() { cancel(nil); cancelT() })
}

// run is one attempt.
func (q *Queue) run(j *cjob, w *cworker, redeliver bool, ctx context.Context, release func()) {
	defer q.wg.Done()
	start := time.Now()
	var m provider.Message
	var err error
	if w.conn != nil {
		if redeliver {
			m, err = w.conn.RequestRedelivered(ctx, j.binary, j.data)
		} else {
			m, err = w.conn.Request(ctx, j.binary, j.data)
		}
	} else {
		m, err = q.n.request(ctx, w.id, j.binary, j.data, redeliver)
	}
	cause := context.Cause(ctx)
	release()
	took := time.Since(start)

	q.mu.Lock()
	w.inFlight--
	delete(w.running, j)
	delete(q.inflight, j)
	if err == nil {
		j.state = cjobEnded
		q.done++
		if j.stopCtx != nil {
			j.stopCtx()
		}
		q.checkDrainedLocked()
		q.dispatchLocked()
		q.mu.Unlock()
		j.done(m, nil)
		return
	}
	if cause == errWorkerLost && !errors.Is(err, errWorkerLost) {
		q.lost++
		err = fmt.Errorf("%w (%w)", errWorkerLost, err)
	}
	// Errors that say the job never reached the worker: not an attempt.
	notSent := errors.Is(err, ErrUnknownConnection) || errors.Is(err, ErrNodeUnreachable) ||
		errors.Is(err, provider.ErrNotSupported) ||
		(errors.Is(err, provider.ErrClosed) && !errors.Is(err, provider.ErrDisconnected))
	if notSent {
		// Not an attempt: uncounted.
		q.attempts--
		if w.conn == nil {
			q.remoteAttempts--
		}
		if redeliver {
			q.redeliv--
		}
	} else {
		j.attempts = append(j.attempts, provider.JobAttempt{Worker: w.id, Redelivered: redeliver, Err: err, Took: took})
	}
	var final error
	var re *provider.RemoteError
	switch {
	case j.ctx.Err() != nil:
		final = j.ctx.Err()
	case cause == provider.ErrQueueClosed:
		final = provider.ErrQueueClosed
	case cause == ErrClosed || q.stopped:
		final = ErrClosed
	case notSent:
		// Stale presence: forget the worker until presence drops it.
		q.gone[w.id] = struct{}{}
		if q.workers[w.id] == w {
			delete(q.workers, w.id)
		}
	case errors.Is(err, errWorkerLost), errors.Is(err, provider.ErrDisconnected), errors.Is(err, context.DeadlineExceeded):
		j.redeliver = true
	case errors.As(err, &re):
		if !q.retryable(re) {
			final = re
			break
		}
		j.redeliver = true
	case errors.Is(err, provider.ErrTooManyPending), errors.Is(err, provider.ErrBackpressure):
		// Refused before the worker saw it: another worker, not flagged.
	case errors.Is(err, ErrBroker), errors.Is(err, ErrBadEnvelope), errors.Is(err, context.Canceled):
		// It may or may not have reached the worker.
		j.redeliver = true
	default:
		final = err
	}
	if final == nil && len(j.attempts) >= q.o.MaxAttempts {
		final = provider.ErrAttemptsExhausted
	}
	if final != nil {
		err := q.endLocked(j, final)
		q.dispatchLocked()
		q.mu.Unlock()
		j.done(provider.Message{}, err)
		return
	}
	if !notSent {
		j.failedOn = append(j.failedOn, w.id)
	}
	j.state = cjobQueued
	q.front = append(q.front, j)
	q.queued++
	q.dispatchLocked()
	q.mu.Unlock()
}

func (q *Queue) checkDrainedLocked() {
	if q.closing && q.queued == 0 && len(q.inflight) == 0 {
		select {
		case <-q.drained:
		default:
			close(q.drained)
		}
	}
}

// Stats returns a snapshot of the queue's counters.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := QueueStats{
		Workers: len(q.workers), Queued: q.queued, InFlight: len(q.inflight),
		Submitted: q.submitted, Done: q.done, Failed: q.failed, Refused: q.refused,
		Attempts: q.attempts, RemoteAttempts: q.remoteAttempts, Redelivered: q.redeliv, Lost: q.lost,
	}
	for _, w := range q.workers {
		if w.conn == nil {
			s.RemoteWorkers++
		}
	}
	return s
}

// abandonLocked ends every waiting job with cause, and the attempts in
// progress (those of remote workers only, when remoteOnly) with it as the
// cause; it returns the ended jobs' callbacks to run without the lock.
func (q *Queue) abandonLocked(cause error, remoteOnly bool) []func() {
	for _, w := range q.workers {
		if remoteOnly && w.conn != nil {
			continue
		}
		for _, cancel := range w.running {
			cancel(cause)
		}
	}
	// Workers that left the set may still have attempts running.
	for j, w := range q.inflight {
		if remoteOnly && w.conn != nil {
			continue
		}
		if cancel := w.running[j]; cancel != nil {
			cancel(cause)
		}
	}
	var calls []func()
	for {
		j := q.nextLocked()
		if j == nil {
			break
		}
		q.popLocked()
		q.queued--
		err := q.endLocked(j, cause)
		calls = append(calls, func() { j.done(provider.Message{}, err) })
	}
	return calls
}

// Close stops taking jobs (Submit returns provider.ErrQueueClosed) and
// waits until every job taken has its outcome. When ctx ends first, the
// jobs still waiting end with provider.ErrQueueClosed, the attempts in
// progress are abandoned (a *provider.JobError wrapping ErrQueueClosed),
// and Close returns ctx.Err() once every outcome has been delivered.
func (q *Queue) Close(ctx context.Context) error {
	q.mu.Lock()
	q.closing = true
	q.checkDrainedLocked()
	q.mu.Unlock()
	var err error
	select {
	case <-q.drained:
	case <-ctx.Done():
		err = ctx.Err()
		q.mu.Lock()
		q.killed = true
		calls := q.abandonLocked(provider.ErrQueueClosed, false)
		q.mu.Unlock()
		for _, f := range calls {
			f()
		}
	}
	q.wg.Wait()
	q.detach()
	return err
}

// detach removes the queue from the Node and stops its loop.
func (q *Queue) detach() {
	q.n.wmu.Lock()
	_, ok := q.n.watchers[q]
	delete(q.n.watchers, q)
	q.n.wmu.Unlock()
	if ok {
		close(q.quit)
		<-q.loopDone
	}
}

// nodeStopping runs when the Node begins to shut down: waiting jobs end
// with ErrClosed and nothing more is dispatched. Attempts on local workers
// end as the Provider closes their connections.
func (q *Queue) nodeStopping() {
	q.mu.Lock()
	q.stopped = true
	calls := q.abandonLocked(ErrClosed, true)
	q.mu.Unlock()
	for _, f := range calls {
		f()
	}
}

// nodeStopped runs once the Provider has shut down: attempts still in
// progress end with ErrClosed, and the queue is detached.
func (q *Queue) nodeStopped() {
	q.mu.Lock()
	calls := q.abandonLocked(ErrClosed, false)
	q.mu.Unlock()
	for _, f := range calls {
		f()
	}
	q.wg.Wait()
	q.detach()
}

// queues returns the Node's queues.
func (n *Node) queues() []*Queue {
	n.wmu.Lock()
	defer n.wmu.Unlock()
	out := make([]*Queue, 0, len(n.watchers))
	for q := range n.watchers {
		out = append(out, q)
	}
	return out
}

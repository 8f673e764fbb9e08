package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// Defaults of QueueOptions.
const (
	DefaultQueueMaxInFlight   = 1
	DefaultQueueAttemptTimout = 30 * time.Second
	DefaultQueueMaxAttempts   = 5
	DefaultQueueMaxQueued     = 10000
)

// Application error codes that ask a Queue to try another worker (see
// Retryable): a worker calls Request.Fail with a code in
// [CodeRetryMin, CodeRetryMax] when it cannot take the job now (it is
// overloaded, draining, lacks a resource) but another worker may.
const (
	CodeRetryMin uint16 = 1500
	CodeRetryMax uint16 = 1599
)

// QueueOptions configures a Queue. The zero value is valid: every open
// connection that negotiated requests is a worker, one job at a time.
type QueueOptions struct {
	// Topic selects the workers: the connections subscribed to Topic
	// (Connection.Subscribe, or Consumer.Subscribe where
	// Options.AuthorizeSubscribe allows it). "" means every connection.
	// Either way only connections that negotiated requests
	// (SupportsRequests) take jobs.
	Topic string
	// MaxInFlight is the number of this queue's jobs a worker may hold
	// unanswered at once (its prefetch). Default 1.
	MaxInFlight int
	// AttemptTimeout bounds one attempt: a worker that has not answered
	// within it loses the job, which goes to another worker flagged
	// redelivered (the late answer is dropped). Default 30 s. Negative: no
	// timeout of the queue's own; the Submit ctx bounds the job, and the
	// Provider's RequestTimeout bounds each attempt when ctx has no
	// deadline.
	AttemptTimeout time.Duration
	// MaxAttempts is the number of workers a job is given to, at most,
	// before it fails with a *JobError wrapping ErrAttemptsExhausted.
	// Default 5.
	MaxAttempts int
	// MaxQueued bounds the jobs waiting for a worker: Submit and
	// SubmitAsync return ErrQueueFull beyond it. A job taken back from a
	// lost or failing worker always goes back to the front, even past the
	// bound. Default 10 000.
	MaxQueued int
	// Pick chooses a worker for the job at the front of the queue among
	// candidates, the workers with a free slot (those that have not
	// failed this job before, when there are any). It returns one of them,
	// or nil to leave the job waiting until the next change. It runs with
	// the queue locked: it must be quick and must not call the Queue, nor
	// Subscribe or Unsubscribe a connection. The slice is only valid during
	// the call. It costs a pass over the workers per job; nil (the default)
	// picks in constant time: the worker with the fewest of this queue's
	// jobs in flight, round-robin among equals.
	Pick func(candidates []*Connection) *Connection
	// Retryable says whether a job failed with a *RemoteError goes to
	// another worker (true) or ends at once with a *JobError. Nil:
	// [Retryable].
	Retryable func(e *RemoteError) bool
}

// Retryable is the default QueueOptions.Retryable. It retries the
// library's codes 1 (the worker handles no requests), 2 (its handler
// panicked) and 3 (it is shutting down), and the application codes from
// CodeRetryMin to CodeRetryMax. Any other application code is the job's
// final failure: the worker judged the job itself bad.
func Retryable(e *RemoteError) bool {
	switch {
	case e.Code == proto.CodeNoHandler, e.Code == proto.CodePanic, e.Code == proto.CodeShuttingDown:
		return true
	case e.Code >= CodeRetryMin && e.Code <= CodeRetryMax:
		return true
	}
	return false
}

// JobError is the outcome of a job that ended without a result after at
// least one attempt. Err says why the queue stopped trying; Attempts lists
// each attempt. errors.Is and errors.As see Err.
type JobError struct {
	// Err is ErrAttemptsExhausted, the *RemoteError of a worker that
	// failed the job with a code that is not retryable, the Submit ctx's
	// error, ErrServerClosed (the Provider stopped) or ErrQueueClosed
	// (Close gave up waiting).
	Err error
	// Attempts lists the attempts in order.
	Attempts []JobAttempt
}

// JobAttempt is one attempt of a job: one worker it was given to.
type JobAttempt struct {
	// Worker is the connection's ID.
	Worker string
	// Redelivered is true when the job went out flagged redelivered
	// (an earlier worker may have run it).
	Redelivered bool
	// Err is why the attempt gave no result: an error wrapping
	// ErrDisconnected (the worker was lost), context.DeadlineExceeded
	// (AttemptTimeout), a *RemoteError (the worker failed it), or an
	// error of Connection.Request for a job that could not be sent
	// (ErrTooManyPending, ErrBackpressure).
	Err error
	// Took is the time from sending the job to the attempt's end.
	Took time.Duration
}

// Error implements error.
func (e *JobError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "provider: job failed: %v after %d attempt(s)", e.Err, len(e.Attempts))
	for i, a := range e.Attempts {
		fmt.Fprintf(&b, "; #%d on %s", i+1, a.Worker)
		if a.Redelivered {
			b.WriteString(" (redelivered)")
		}
		fmt.Fprintf(&b, ": %v", a.Err)
	}
	return b.String()
}

// Unwrap returns Err.
func (e *JobError) Unwrap() error { return e.Err }

// QueueStats is a snapshot of a Queue's counters. Totals count since
// NewQueue.
type QueueStats struct {
	// Workers is the number of connections that take this queue's jobs.
	Workers int
	// Queued jobs wait for a worker; InFlight jobs are with one.
	Queued, InFlight int
	// Submitted counts jobs accepted; each ends in Done (a worker's
	// result) or Failed (a *JobError, its ctx's error, ErrServerClosed or
	// ErrQueueClosed). Refused counts Submit calls that got ErrQueueFull.
	Submitted, Done, Failed, Refused uint64
	// Attempts counts jobs sent to a worker; Redelivered those sent
	// flagged redelivered (a job whose earlier worker was lost, timed out
	// or failed it retryably).
	Attempts, Redelivered uint64
	// JobLatency is from Submit to the result, over the last 2048 jobs
	// done; AttemptLatency from sending a job to the result, over the last
	// 2048 attempts that gave one.
	JobLatency, AttemptLatency Latency
}

// Latency summarises a sample of durations.
type Latency struct {
	N                  int // the sample size
	P50, P90, P99, Max time.Duration
}

// Queue hands each job to one worker: an open connection in its worker set
// that negotiated requests and has fewer than MaxInFlight of the queue's
// jobs unanswered. The job is sent with Connection.Request and the
// worker's reply is the result. A job whose worker disconnects, times out
// (AttemptTimeout) or fails it with a retryable error (QueueOptions.
// Retryable) is given to another worker, flagged redelivered
// (consumer.Request.Redelivered reports it), up to MaxAttempts. Jobs wait
// in memory, in order, while every worker is busy (at most MaxQueued), and
// go out when a worker frees a slot or a new worker opens or subscribes.
//
// Delivery is at least once within one Provider process: a worker lost
// mid-job may have done it, so handlers must be idempotent. Jobs are not
// kept across a restart of the Provider.
//
// Its methods are safe for concurrent use. Make one with Provider.NewQueue.
type Queue struct {
	p         *Provider
	o         QueueOptions
	retryable func(*RemoteError) bool

	mu       sync.Mutex
	workers  map[*Connection]*qworker
	list     []*qworker // the same workers (for Workers and Pick)
	levels   []wlist    // workers with a free slot, by jobs in flight
	cands    []*Connection
	wait     jobRing // waiting jobs, ended ones skipped
	queued   int     // live jobs in wait
	inflight map[*job]struct{}
	closing  bool          // Close began: no new jobs
	killed   bool          // Close gave up: kill is closed
	kill     chan struct{} // closed when Close gives up: attempts end
	detached bool          // removed from the Provider: no new workers
	drained  chan struct{} // closed once closing with nothing queued or in flight
	wg       sync.WaitGroup

	submitted, done, failed, refused, attempts, redelivered uint64
	jobLat, attLat                                          latRing
}

type qworker struct {
	c          *Connection
	idx        int // in Queue.list
	inFlight   int
	gone       bool     // removed from the queue
	prev, next *qworker // in Queue.levels[inFlight] while it has a free slot
}

// wlist is a list of workers with the same number of jobs in flight, in
// the order they reached it: picking from the front is round-robin.
type wlist struct{ head, tail *qworker }

func (l *wlist) pushBack(w *qworker) {
	w.prev, w.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
}

func (l *wlist) remove(w *qworker) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next = nil, nil
}

// setInFlight moves w to level n (n jobs in flight).
func (q *Queue) setInFlight(w *qworker, n int) {
	if !w.gone && w.inFlight < q.o.MaxInFlight {
		q.levels[w.inFlight].remove(w)
	}
	w.inFlight = n
	if !w.gone && n < q.o.MaxInFlight {
		q.levels[n].pushBack(w)
	}
}

// job states
const (
	jobQueued uint8 = iota
	jobInFlight
	jobEnded
)

type job struct {
	ctx       context.Context
	binary    bool
	data      []byte
	done      func(Message, error)
	own       chan turn // Submit's: its goroutine runs the attempts
	submitted time.Time
	state     uint8
	redeliver bool // the next attempt is flagged redelivered
	attempts  []JobAttempt
	failedOn  []*Connection // workers that failed it: others first
	stopCtx   func() bool   // stops the ctx watch
}

// NewQueue makes a job queue whose workers are the Provider's connections
// (see QueueOptions.Topic). It may be called before or after Start, any
// number of times: each queue counts its own jobs per worker.
func (p *Provider) NewQueue(o QueueOptions) (*Queue, error) {
	switch {
	case o.MaxInFlight == 0:
		o.MaxInFlight = DefaultQueueMaxInFlight
	case o.MaxInFlight < 0:
		return nil, fmt.Errorf("%w: queue MaxInFlight %d", ErrInvalidOptions, o.MaxInFlight)
	}
	if o.AttemptTimeout == 0 {
		o.AttemptTimeout = DefaultQueueAttemptTimout
	}
	switch {
	case o.MaxAttempts == 0:
		o.MaxAttempts = DefaultQueueMaxAttempts
	case o.MaxAttempts < 0:
		return nil, fmt.Errorf("%w: queue MaxAttempts %d", ErrInvalidOptions, o.MaxAttempts)
	}
	switch {
	case o.MaxQueued == 0:
		o.MaxQueued = DefaultQueueMaxQueued
	case o.MaxQueued < 0:
		return nil, fmt.Errorf("%w: queue MaxQueued %d", ErrInvalidOptions, o.MaxQueued)
	}
	if p.closing.Load() {
		return nil, ErrServerClosed
	}
	q := &Queue{
		p:         p,
		o:         o,
		retryable: o.Retryable,
		workers:   make(map[*Connection]*qworker),
		inflight:  make(map[*job]struct{}),
		drained:   make(chan struct{}),
		kill:      make(chan struct{}),
		levels:    make([]wlist, o.MaxInFlight),
	}
	if q.retryable == nil {
		q.retryable = Retryable
	}
	if o.Topic != "" {
		// Under the topic lock, which the Subscribe and Unsubscribe hooks
		// run under: no change slips between the registration and the
		// snapshot.
		p.topicMu.Lock()
		p.queues.add(q)
		q.mu.Lock()
		if t := p.topics[o.Topic]; t != nil {
			for c := range t.subs {
				q.addWorkerLocked(c)
			}
		}
		q.mu.Unlock()
		p.topicMu.Unlock()
		return q, nil
	}
	p.queues.add(q)
	for _, c := range p.Connections() {
		q.addWorker(c)
	}
	return q, nil
}

// Submit hands a job to a worker and waits for its outcome, which is
// exactly one of: the worker's reply (its Data is the caller's); a
// *JobError (attempts used up, a worker failed it with a code that is not
// retryable, or ctx ended or the Provider stopped after an attempt); ctx's
// error when it ends before any attempt; ErrServerClosed when the Provider
// stopped; ErrQueueClosed when Close gave up on it. It returns at once with
// ErrQueueFull, ErrQueueClosed, ErrServerClosed or ErrInvalidUTF8 (text must
// be UTF-8) when the job is not taken. data is copied.
func (q *Queue) Submit(ctx context.Context, binary bool, data []byte) (Message, error) {
	// The attempts run on this goroutine: the queue hands it each worker
	// it picks, then the outcome.
	own := make(chan turn, 1)
	err := q.submit(ctx, binary, data, func(m Message, err error) { own <- turn{msg: m, err: err} }, own)
	if err != nil {
		return Message{}, err
	}
	for {
		t := <-own // ctx ends the job too: the outcome comes
		if t.w == nil {
			return t.msg, t.err
		}
		q.run(t.j, t.w, t.flags)
	}
}

// turn is what a blocking Submit gets: a worker to send its job to, or
// (w nil) the outcome.
type turn struct {
	j     *job
	w     *qworker
	flags byte
	msg   Message
	err   error
}

// SubmitAsync is Submit without the wait: it returns nil once the job is
// taken, and done is then called exactly once with the outcome, from a
// goroutine of the queue (done must not block for long). When it returns
// an error done is never called.
func (q *Queue) SubmitAsync(ctx context.Context, binary bool, data []byte, done func(Message, error)) error {
	if done == nil {
		return fmt.Errorf("%w: SubmitAsync without a done func", ErrInvalidOptions)
	}
	return q.submit(ctx, binary, data, done, nil)
}

// submit takes a job; its attempts run on new goroutines, or are handed to
// own (Submit's goroutine).
func (q *Queue) submit(ctx context.Context, binary bool, data []byte, done func(Message, error), own chan turn) error {
	if !binary && !frame.ValidUTF8(data) {
		return ErrInvalidUTF8
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	j := &job{ctx: ctx, binary: binary, data: append([]byte(nil), data...), done: done, own: own, submitted: time.Now()}
	q.mu.Lock()
	switch {
	case q.closing:
		q.mu.Unlock()
		return ErrQueueClosed
	case q.p.closing.Load():
		q.mu.Unlock()
		return ErrServerClosed
	case q.queued >= q.o.MaxQueued:
		q.refused++
		n := q.queued
		q.mu.Unlock()
		return fmt.Errorf("%w: %d jobs wait", ErrQueueFull, n)
	}
	q.submitted++
	if ctx.Done() != nil {
		j.stopCtx = context.AfterFunc(ctx, func() { q.ctxDone(j) })
	}
	q.wait.pushBack(j)
	q.queued++
	q.dispatchLocked()
	q.mu.Unlock()
	return nil
}

// ctxDone ends a job whose ctx ended while it waited for a worker (a job
// in flight ends through its attempt, which uses ctx).
func (q *Queue) ctxDone(j *job) {
	q.mu.Lock()
	if j.state != jobQueued {
		q.mu.Unlock()
		return
	}
	q.queued--
	err := q.endLocked(j, j.ctx.Err())
	q.compactLocked()
	q.mu.Unlock()
	j.done(Message{}, err)
}

// endLocked ends j with the failure cause and returns its outcome error.
func (q *Queue) endLocked(j *job, cause error) error {
	j.state = jobEnded
	q.failed++
	q.checkDrainedLocked()
	if j.stopCtx != nil {
		j.stopCtx()
	}
	if len(j.attempts) == 0 {
		return cause
	}
	return &JobError{Err: cause, Attempts: j.attempts}
}

// dispatchLocked sends waiting jobs to workers with a free slot.
func (q *Queue) dispatchLocked() {
	for q.queued > 0 && !q.killed {
		j := q.wait.front()
		if j.state != jobQueued {
			q.wait.popFront() // ended while it waited
			continue
		}
		w := q.pickLocked(j)
		if w == nil {
			return
		}
		q.wait.popFront()
		q.queued--
		q.startLocked(j, w)
	}
}

// startLocked sends j to w on a new goroutine.
func (q *Queue) startLocked(j *job, w *qworker) {
	j.state = jobInFlight
	q.setInFlight(w, w.inFlight+1)
	q.inflight[j] = struct{}{}
	q.attempts++
	var flags byte
	if j.redeliver {
		flags = proto.FlagRedelivered
		q.redelivered++
	}
	q.wg.Add(1)
	if j.own != nil {
		j.own <- turn{j: j, w: w, flags: flags} // never blocks: one turn at a time
		return
	}
	go q.run(j, w, flags)
}

// run is one attempt.
func (q *Queue) run(j *job, w *qworker, flags byte) {
	defer q.wg.Done()
	start := time.Now()
	msg, err := w.c.request(j.ctx, j.binary, j.data, flags, max(0, q.o.AttemptTimeout), q.kill)
	took := time.Since(start)
	q.mu.Lock()
	q.setInFlight(w, w.inFlight-1)
	delete(q.inflight, j)
	if err == nil {
		j.state = jobEnded
		q.done++
		q.attLat.add(took)
		q.jobLat.add(time.Since(j.submitted))
		q.checkDrainedLocked()
		if j.stopCtx != nil {
			j.stopCtx()
		}
		q.dispatchLocked()
		q.mu.Unlock()
		j.done(msg, nil)
		return
	}
	// ErrClosed (without ErrDisconnected) is Send's: nothing went out.
	sent := errors.Is(err, ErrDisconnected) || !errors.Is(err, ErrClosed)
	if sent {
		j.attempts = append(j.attempts, JobAttempt{Worker: w.c.ID(), Redelivered: flags&proto.FlagRedelivered != 0, Err: err, Took: took})
	}
	var final error
	var re *RemoteError
	switch {
	case j.ctx.Err() != nil:
		final = j.ctx.Err()
	case q.killed:
		final = ErrQueueClosed
	case q.p.closing.Load():
		final = ErrServerClosed
	case !sent:
		// The worker closed before the job went out: not an attempt.
		q.removeWorkerLocked(w.c)
	case errors.Is(err, ErrDisconnected), errors.Is(err, context.DeadlineExceeded):
		j.redeliver = true
	case errors.As(err, &re):
		if !q.retryable(re) {
			final = re
			break
		}
		j.redeliver = true
	case errors.Is(err, ErrTooManyPending), errors.Is(err, ErrBackpressure):
		// Refused before the worker saw it: another worker, not flagged.
	default:
		final = err
	}
	if final == nil && len(j.attempts) >= q.o.MaxAttempts {
		final = ErrAttemptsExhausted
	}
	if final != nil {
		err := q.endLocked(j, final)
		q.dispatchLocked()
		q.mu.Unlock()
		j.done(Message{}, err)
		return
	}
	if sent {
		j.failedOn = append(j.failedOn, w.c)
	}
	j.state = jobQueued
	q.wait.pushFront(j)
	q.queued++
	q.dispatchLocked()
	q.mu.Unlock()
}

// pickLocked chooses a worker for j, or nil when none has a free slot.
func (q *Queue) pickLocked(j *job) *qworker {
	if q.o.Pick != nil {
		return q.pickUserLocked(j)
	}
	// The fewest in flight first, then the one that has had that many
	// longest; a job avoids the workers that failed it while others can
	// take it.
	var fallback *qworker
	for k := range q.levels {
		for w := q.levels[k].head; w != nil; {
			next := w.next
			switch {
			case State(w.c.state.Load()) != StateOpen:
				q.removeWorkerLocked(w.c) // closing: its close hook follows
			case len(j.failedOn) == 0 || !slices.Contains(j.failedOn, w.c):
				return w
			case fallback == nil:
				fallback = w
			}
			w = next
		}
	}
	return fallback
}

func (q *Queue) pickUserLocked(j *job) *qworker {
	cands := q.cands[:0]
	for pass := 0; pass < 2 && len(cands) == 0; pass++ {
		for _, w := range q.list {
			if w.inFlight >= q.o.MaxInFlight || State(w.c.state.Load()) != StateOpen {
				continue
			}
			if pass == 0 && slices.Contains(j.failedOn, w.c) {
				continue
			}
			cands = append(cands, w.c)
		}
	}
	var c *Connection
	if len(cands) > 0 {
		c = q.o.Pick(cands)
	}
	clear(cands)
	q.cands = cands[:0]
	if c == nil {
		return nil
	}
	w := q.workers[c]
	if w == nil || w.inFlight >= q.o.MaxInFlight || State(c.state.Load()) != StateOpen {
		return nil
	}
	return w
}

// Stats returns a snapshot of the queue's counters.
func (q *Queue) Stats() QueueStats {
	q.mu.Lock()
	s := QueueStats{
		Workers:     len(q.workers),
		Queued:      q.queued,
		InFlight:    len(q.inflight),
		Submitted:   q.submitted,
		Done:        q.done,
		Failed:      q.failed,
		Refused:     q.refused,
		Attempts:    q.attempts,
		Redelivered: q.redelivered,
	}
	jl, al := q.jobLat.sample(), q.attLat.sample()
	q.mu.Unlock()
	s.JobLatency, s.AttemptLatency = summarize(jl), summarize(al)
	return s
}

// QueueWorker is one worker of a Queue.
type QueueWorker struct {
	Conn *Connection
	// InFlight is the number of the queue's jobs it holds unanswered.
	InFlight int
}

// Workers returns the queue's workers now, with their jobs in flight.
func (q *Queue) Workers() []QueueWorker {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]QueueWorker, len(q.list))
	for i, w := range q.list {
		out[i] = QueueWorker{Conn: w.c, InFlight: w.inFlight}
	}
	return out
}

// Close stops taking jobs (Submit returns ErrQueueClosed) and waits until
// every job taken has its outcome: queued jobs still go to workers. When
// ctx ends first, the jobs still waiting end with ErrQueueClosed, the
// attempts in progress are abandoned (their jobs end with a *JobError
// wrapping ErrQueueClosed; a late reply is dropped), and Close returns
// ctx.Err() once every outcome has been delivered. The queue then forgets
// its workers. Calling Close again waits again.
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
		q.abandon(ErrQueueClosed)
	}
	q.wg.Wait()
	q.p.queues.remove(q)
	q.mu.Lock()
	q.detached = true
	for _, w := range q.list {
		w.gone = true
	}
	clear(q.workers)
	clear(q.list)
	q.list = q.list[:0]
	clear(q.levels)
	q.mu.Unlock()
	return err
}

// abandon ends every waiting job with cause and, for ErrQueueClosed, the
// attempts in progress too.
func (q *Queue) abandon(cause error) {
	q.mu.Lock()
	if cause == ErrQueueClosed && !q.killed {
		q.killed = true
		close(q.kill) // the attempts in progress end
	}
	var ended []*job
	var errs []error
	for q.wait.len() > 0 {
		j := q.wait.popFront()
		if j.state != jobQueued {
			continue
		}
		q.queued--
		ended = append(ended, j)
		errs = append(errs, q.endLocked(j, cause))
	}
	q.mu.Unlock()
	for i, j := range ended {
		j.done(Message{}, errs[i])
	}
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

// compactLocked drops ended jobs from the wait ring when they pile up
// behind a front that cannot move.
func (q *Queue) compactLocked() {
	if q.wait.len() <= 2*q.queued+64 {
		return
	}
	q.wait.filter(func(j *job) bool { return j.state == jobQueued })
}

// --- workers ---

func (q *Queue) addWorker(c *Connection) {
	q.mu.Lock()
	q.addWorkerLocked(c)
	q.mu.Unlock()
}

// addWorkerLocked adds c if it is open and speaks requests. A connection
// that closes after this check is removed by the close hook, which runs
// after its state changed.
func (q *Queue) addWorkerLocked(c *Connection) {
	if q.detached || !c.v2() || State(c.state.Load()) != StateOpen || q.workers[c] != nil {
		return
	}
	w := &qworker{c: c, idx: len(q.list)}
	q.workers[c] = w
	q.list = append(q.list, w)
	q.levels[0].pushBack(w)
	q.dispatchLocked()
}

func (q *Queue) removeWorker(c *Connection) {
	q.mu.Lock()
	q.removeWorkerLocked(c)
	q.mu.Unlock()
}

func (q *Queue) removeWorkerLocked(c *Connection) {
	w := q.workers[c]
	if w == nil {
		return
	}
	delete(q.workers, c)
	if w.inFlight < q.o.MaxInFlight {
		q.levels[w.inFlight].remove(w)
	}
	w.gone = true
	last := len(q.list) - 1
	q.list[w.idx] = q.list[last]
	q.list[w.idx].idx = w.idx
	q.list[last] = nil
	q.list = q.list[:last]
}

// --- the Provider's hooks ---

// queueRegistry holds the Provider's queues, read without a lock by the
// connection hooks.
type queueRegistry struct {
	mu   sync.Mutex
	list atomic.Pointer[[]*Queue]
}

func (r *queueRegistry) add(q *Queue) {
	r.mu.Lock()
	var l []*Queue
	if old := r.list.Load(); old != nil {
		l = slices.Clone(*old)
	}
	l = append(l, q)
	r.list.Store(&l)
	r.mu.Unlock()
}

func (r *queueRegistry) remove(q *Queue) {
	r.mu.Lock()
	if old := r.list.Load(); old != nil {
		l := slices.DeleteFunc(slices.Clone(*old), func(x *Queue) bool { return x == q })
		r.list.Store(&l)
	}
	r.mu.Unlock()
}

func (r *queueRegistry) load() []*Queue {
	if l := r.list.Load(); l != nil {
		return *l
	}
	return nil
}

// queuesOpened runs once c is open and OnOpen has returned.
func (p *Provider) queuesOpened(c *Connection) {
	if !c.v2() {
		return
	}
	for _, q := range p.queues.load() {
		if q.o.Topic == "" {
			q.addWorker(c)
		}
	}
}

// queuesClosed runs when c has closed (its requests have failed).
func (p *Provider) queuesClosed(c *Connection) {
	if !c.v2() {
		return
	}
	for _, q := range p.queues.load() {
		q.removeWorker(c)
	}
}

// queuesTopic runs when c subscribes to (sub) or unsubscribes from topic,
// under topicMu.
func (p *Provider) queuesTopic(c *Connection, topic string, sub bool) {
	if !c.v2() {
		return
	}
	for _, q := range p.queues.load() {
		if q.o.Topic != topic {
			continue
		}
		if sub {
			q.addWorker(c)
		} else {
			q.removeWorker(c)
		}
	}
}

// queuesStop runs when the Provider stops: jobs waiting for a worker end
// with ErrServerClosed (those in flight end as their connections close).
func (p *Provider) queuesStop() {
	for _, q := range p.queues.load() {
		q.abandon(ErrServerClosed)
	}
}

// --- the wait ring ---

// jobRing is a FIFO of jobs that also takes jobs back at the front.
type jobRing struct {
	buf        []*job
	head, size int
}

func (r *jobRing) len() int { return r.size }

func (r *jobRing) grow() {
	if r.size < len(r.buf) {
		return
	}
	nb := make([]*job, max(16, 2*len(r.buf)))
	for i := range r.size {
		nb[i] = r.buf[(r.head+i)%len(r.buf)]
	}
	r.buf, r.head = nb, 0
}

func (r *jobRing) pushBack(j *job) {
	r.grow()
	r.buf[(r.head+r.size)%len(r.buf)] = j
	r.size++
}

func (r *jobRing) pushFront(j *job) {
	r.grow()
	r.head = (r.head - 1 + len(r.buf)) % len(r.buf)
	r.buf[r.head] = j
	r.size++
}

func (r *jobRing) front() *job { return r.buf[r.head] }

func (r *jobRing) popFront() *job {
	j := r.buf[r.head]
	r.buf[r.head] = nil
	r.head = (r.head + 1) % len(r.buf)
	r.size--
	return j
}

// filter keeps the jobs for which keep is true, in order.
func (r *jobRing) filter(keep func(*job) bool) {
	n := r.size
	out := 0
	for i := range n {
		j := r.buf[(r.head+i)%len(r.buf)]
		r.buf[(r.head+i)%len(r.buf)] = nil
		if keep(j) {
			r.buf[(r.head+out)%len(r.buf)] = j
			out++
		}
	}
	r.size = out
}

// --- latency sample ---

const latSample = 2048

// latRing keeps the last latSample durations.
type latRing struct {
	d    [latSample]time.Duration
	n    int // total added
	next int
}

func (r *latRing) add(d time.Duration) {
	r.d[r.next] = d
	r.next = (r.next + 1) % latSample
	r.n++
}

func (r *latRing) sample() []time.Duration {
	return slices.Clone(r.d[:min(r.n, latSample)])
}

func summarize(s []time.Duration) Latency {
	if len(s) == 0 {
		return Latency{}
	}
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return Latency{N: len(s), P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: s[len(s)-1]}
}

package provider

import (
	"sync"
	"time"

	"github.com/networkcluster/networkcluster/internal/proto"
)

// DedupWindow bounds what the Provider keeps, per Consumer session, to
// answer a resent request without running its handler again. A Consumer
// with consumer.Options.Resend names its session in the upgrade request and
// sends unanswered requests again after a reconnect; a resent request whose
// reply is kept gets that reply, and one whose handler is still running gets
// its reply when the handler answers. A request that has left the window
// (the oldest go first) is handled again, flagged redelivered. The window
// lives in this Provider process only: after a failover to another
// Provider, handlers see redelivered requests (at least once, as MQTT QoS 1:
// make handlers idempotent).
type DedupWindow struct {
	// Requests is the most requests remembered per session. Default 1024;
	// -1 turns de-duplication off.
	Requests int
	// Age is how long a request is remembered, and how long a session
	// without a connection is kept. Default 2 minutes.
	Age time.Duration
	// Bytes caps the reply bytes kept per session. Default 256 KiB.
	Bytes int
}

// session is the de-duplication state of one Consumer session.
type session struct {
	id      string
	mu      sync.Mutex
	entries map[uint64]*dedupEntry
	order   []*dedupEntry // oldest first
	bytes   int
	conns   int   // open connections of the session; under Provider.sessMu
	idle    int64 // unix ns when conns dropped to 0; under Provider.sessMu
}

type dedupEntry struct {
	id      uint64
	at      int64
	done    bool
	reply   []byte      // the whole reply envelope, once done; immutable
	waiting *Connection // a connection the request was resent on while it ran
}

// begin records request id as in progress, or reports a hit: the request
// was seen before, and cached is its kept reply (nil while its handler
// still runs: the reply then also goes to c).
func (s *session) begin(id uint64, c *Connection, w DedupWindow) (hit bool, cached []byte) {
	now := time.Now().UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[id]; e != nil {
		if e.done {
			return true, e.reply
		}
		e.waiting = c
		return true, nil
	}
	limit := now - int64(w.Age)
	for len(s.order) > 0 && (len(s.order) >= w.Requests || s.order[0].at < limit) {
		s.evictOldest()
	}
	e := &dedupEntry{id: id, at: now}
	s.entries[id] = e
	s.order = append(s.order, e)
	return false, nil
}

// answered keeps the reply of request id and returns a connection that
// waits for it (a resend arrived while the handler ran). kept reports
// whether the reply is kept for a later resend.
func (s *session) answered(id uint64, env, data []byte, maxBytes int) (waiting *Connection, kept bool) {
	n := len(env) + len(data)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil || e.done {
		return nil, false
	}
	waiting, e.waiting = e.waiting, nil
	if n > maxBytes {
		// Too large to keep: a resend runs the handler again.
		s.drop(e)
		return waiting, false
	}
	for s.bytes+n > maxBytes && len(s.order) > 0 && s.order[0] != e {
		s.evictOldest()
	}
	if s.bytes+n > maxBytes {
		s.drop(e)
		return waiting, false
	}
	e.reply = make([]byte, 0, n)
	e.reply = append(append(e.reply, env...), data...)
	e.done = true
	s.bytes += n
	return waiting, true
}

func (s *session) evictOldest() {
	e := s.order[0]
	s.order[0] = nil
	s.order = s.order[1:]
	delete(s.entries, e.id)
	s.bytes -= len(e.reply)
}

// drop forgets e wherever it is in the order.
func (s *session) drop(e *dedupEntry) {
	delete(s.entries, e.id)
	for i, o := range s.order {
		if o == e {
			s.order = append(s.order[:i], s.order[i+1:]...)
			break
		}
	}
	s.bytes -= len(e.reply)
}

// attachSession joins c to its Consumer's session (made on first use).
func (p *Provider) attachSession(c *Connection, id string) {
	if p.o.DedupWindow.Requests < 0 || !proto.ValidSessionID(id) {
		return
	}
	p.sessMu.Lock()
	s := p.sessions[id]
	if s == nil {
		s = &session{id: id, entries: make(map[uint64]*dedupEntry)}
		p.sessions[id] = s
	}
	s.conns++
	p.sessMu.Unlock()
	c.rareState().sess = s
}

// detachSession notes that c, of session s, has closed.
func (p *Provider) detachSession(s *session) {
	p.sessMu.Lock()
	s.conns--
	if s.conns == 0 {
		s.idle = time.Now().UnixNano()
	}
	p.sessMu.Unlock()
}

// sweepSessions forgets sessions that have had no connection for the
// window's Age.
func (p *Provider) sweepSessions(now time.Time) {
	limit := now.UnixNano() - int64(p.o.DedupWindow.Age)
	p.sessMu.Lock()
	for id, s := range p.sessions {
		if s.conns == 0 && s.idle < limit {
			delete(p.sessions, id)
		}
	}
	p.sessMu.Unlock()
}

// Sessions returns how many Consumer sessions the Provider keeps a
// de-duplication window for (those with a connection and those that lost
// theirs less than DedupWindow.Age ago).
func (p *Provider) Sessions() int {
	p.sessMu.Lock()
	defer p.sessMu.Unlock()
	return len(p.sessions)
}

package provider

import (
	"testing"
	"time"
)

// The de-duplication window keeps at most Requests entries and Bytes of
// replies per session, oldest out first, and forgets entries past Age.
func TestDedupWindowBounds(t *testing.T) {
	w := DedupWindow{Requests: 3, Age: time.Hour, Bytes: 100}
	s := &session{entries: make(map[uint64]*dedupEntry)}
	for id := uint64(1); id <= 4; id++ {
		if hit, _ := s.begin(id, nil, w); hit {
			t.Fatalf("request %d: a hit on first sight", id)
		}
		if _, kept := s.answered(id, []byte{2, byte(id)}, []byte("0123456789"), w.Bytes); !kept {
			t.Fatalf("request %d: reply not kept", id)
		}
	}
	if len(s.entries) != 3 || s.entries[1] != nil {
		t.Fatalf("entries %v: the oldest should have gone", s.entries)
	}
	if hit, cached := s.begin(4, nil, w); !hit || string(cached) != "\x02\x040123456789" {
		t.Fatalf("resend of 4: hit %v, cached %q", hit, cached)
	}
	// Request 1 left the window: its resend runs again.
	if hit, _ := s.begin(1, nil, w); hit {
		t.Fatal("an evicted request was a hit")
	}
	// A reply over Bytes is not kept; others make room by evicting.
	if _, kept := s.answered(1, nil, make([]byte, 101), w.Bytes); kept {
		t.Fatal("a reply over the byte cap was kept")
	}
	s.begin(5, nil, w)
	if _, kept := s.answered(5, nil, make([]byte, 90), w.Bytes); !kept || s.bytes > w.Bytes {
		t.Fatalf("kept %v, %d bytes held (cap %d)", kept, s.bytes, w.Bytes)
	}
	// A resend while the handler runs waits for its reply.
	s.begin(6, nil, w)
	c := &Connection{}
	if hit, cached := s.begin(6, c, w); !hit || cached != nil {
		t.Fatalf("in-progress resend: hit %v cached %q", hit, cached)
	}
	if waiting, _ := s.answered(6, []byte{2, 6}, nil, w.Bytes); waiting != c {
		t.Fatal("the waiting connection was not returned")
	}
	// Age.
	old := DedupWindow{Requests: 10, Age: time.Nanosecond, Bytes: 100}
	s2 := &session{entries: make(map[uint64]*dedupEntry)}
	s2.begin(1, nil, old)
	time.Sleep(time.Millisecond)
	s2.begin(2, nil, old)
	if s2.entries[1] != nil {
		t.Fatal("an entry past Age was kept")
	}
}

// Sessions without a connection are forgotten after Age.
func TestDedupSessionsSwept(t *testing.T) {
	p, err := New(Options{DedupWindow: DedupWindow{Age: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	c := &Connection{}
	p.attachSession(c, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")
	if c.session() == nil || p.Sessions() != 1 {
		t.Fatal("session not attached")
	}
	p.attachSession(&Connection{}, "not valid")
	if p.Sessions() != 1 {
		t.Fatal("an invalid session id was accepted")
	}
	p.sweepSessions(time.Now().Add(time.Second))
	if p.Sessions() != 1 {
		t.Fatal("a session with a connection was swept")
	}
	p.detachSession(c.session())
	p.sweepSessions(time.Now().Add(time.Second))
	if p.Sessions() != 0 {
		t.Fatal("an idle session was kept past Age")
	}
}

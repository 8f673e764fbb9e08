package provider

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
)

// recObserver records observer calls as strings, with the OnOpen/OnClose
// callbacks interleaved, to check the order.
type recObserver struct {
	mu  sync.Mutex
	log []string
}

func (r *recObserver) add(s string) { r.mu.Lock(); r.log = append(r.log, s); r.mu.Unlock() }

func (r *recObserver) Opened(c *Connection) { r.add("opened " + c.Param("i")) }
func (r *recObserver) Closed(c *Connection, topics []string) {
	slices.Sort(topics)
	r.add(fmt.Sprintf("closed %s %v", c.Param("i"), topics))
}
func (r *recObserver) Subscribed(c *Connection, topic string) {
	r.add("sub " + c.Param("i") + " " + topic)
}
func (r *recObserver) Unsubscribed(c *Connection, topic string) {
	r.add("unsub " + c.Param("i") + " " + topic)
}

func (r *recObserver) entries() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.log)
}

func TestObserverEvents(t *testing.T) {
	rec := &recObserver{}
	e := newEvents()
	o := Options{Addr: "127.0.0.1:0"}
	e.hook(&o)
	onOpen, onClose := o.OnOpen, o.OnClose
	o.OnOpen = func(c *Connection) {
		rec.add("OnOpen " + c.Param("i"))
		c.Subscribe("from-onopen")
		onOpen(c)
	}
	o.OnClose = func(c *Connection, code CloseCode, reason string) {
		rec.add("OnClose " + c.Param("i"))
		onClose(c, code, reason)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Observe(rec); err != nil {
		t.Fatal(err)
	}
	second := &recObserver{}
	if err := p.Observe(second); err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	if err := p.Observe(&recObserver{}); !errors.Is(err, ErrAlreadyStarted) {
		t.Fatalf("Observe after Start: %v", err)
	}
	clients, conns := openN(t, p, e, p.Addr().String(), 1)
	c := conns[0]
	c.Subscribe("a")
	c.Subscribe("a") // not a first subscribe: no event
	c.Subscribe("b")
	c.Unsubscribe("a")
	c.Unsubscribe("a") // not subscribed: no event
	clients[0].Close()
	e.wait(t, "close", func(e *events) bool { return len(e.closes) == 1 })
	want := []string{
		"opened 0", "OnOpen 0", "sub 0 from-onopen",
		"sub 0 a", "sub 0 b", "unsub 0 a",
		"closed 0 [b from-onopen]", "OnClose 0",
	}
	if got := rec.entries(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events\n got %q\nwant %q", got, want)
	}
	var wantSecond []string
	for _, s := range want {
		if s[0] != 'O' {
			wantSecond = append(wantSecond, s)
		}
	}
	if got := second.entries(); fmt.Sprint(got) != fmt.Sprint(wantSecond) {
		t.Fatalf("second observer\n got %q\nwant %q", got, wantSecond)
	}
	p.Close()
	if err := p.Observe(rec); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Observe after Close: %v", err)
	}
}

// countObserver counts opens and closes, and subscriptions per connection
// net of unsubscriptions and closes.
type countObserver struct {
	mu             sync.Mutex
	opened, closed int
	subs           map[*Connection]int
}

func (o *countObserver) Opened(c *Connection) { o.mu.Lock(); o.opened++; o.mu.Unlock() }
func (o *countObserver) Closed(c *Connection, topics []string) {
	o.mu.Lock()
	o.closed++
	o.subs[c] -= len(topics)
	o.mu.Unlock()
}
func (o *countObserver) Subscribed(c *Connection, _ string) {
	o.mu.Lock()
	o.subs[c]++
	o.mu.Unlock()
}
func (o *countObserver) Unsubscribed(c *Connection, _ string) {
	o.mu.Lock()
	o.subs[c]--
	o.mu.Unlock()
}

// Subscribes racing with closes: every connection's subscriptions add up
// to zero once it is closed (Closed lists exactly what was not
// unsubscribed, and no Subscribed comes after Closed).
func TestObserverSubscribeRacesClose(t *testing.T) {
	obs := &countObserver{subs: map[*Connection]int{}}
	e := newEvents()
	o := Options{Addr: "127.0.0.1:0"}
	e.hook(&o)
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	p.Observe(obs)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	const n = 20
	clients, conns := openN(t, p, e, p.Addr().String(), n)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 200 {
				name := fmt.Sprint("t", j%7)
				if c.Subscribe(name) != nil {
					return
				}
				if j%3 == 0 {
					c.Unsubscribe(name)
				}
			}
		}()
		clients[i].Close()
	}
	wg.Wait()
	e.wait(t, "closes", func(e *events) bool { return len(e.closes) == n })
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.opened != n || obs.closed != n {
		t.Fatalf("opened %d closed %d", obs.opened, obs.closed)
	}
	for c, k := range obs.subs {
		if k != 0 {
			t.Errorf("connection %s: %d subscriptions left", c.Param("i"), k)
		}
	}
}

package provider

import (
	"net"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
)

// Two live connections whose ids share the registry key (their first 8
// bytes) are both found by id, counted and listed, and each leaves alone.
func TestRegistryKeyCollision(t *testing.T) {
	p, err := New(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	conn := func(id string) *Connection {
		uid, ok := parseUUID(id)
		if !ok {
			t.Fatalf("bad id %q", id)
		}
		c := &Connection{p: p, uid: uid}
		c.state.Store(uint32(StateOpen))
		return c
	}
	a := conn("0123abcd-ef01-4234-8567-89abcdef0001")
	b := conn("0123abcd-ef01-4234-8567-89abcdef0002") // a's key
	d := conn("99999999-ef01-4234-8567-89abcdef0003")
	for _, c := range []*Connection{a, b, d} {
		p.register(c)
	}
	if idKey(a.uid) != idKey(b.uid) || p.byIDx[b.uid] != b {
		t.Fatal("the test's ids do not collide")
	}
	check := func(want ...*Connection) {
		t.Helper()
		if p.Len() != len(want) || len(p.Connections()) != len(want) {
			t.Fatalf("Len %d, Connections %d, want %d", p.Len(), len(p.Connections()), len(want))
		}
		for _, c := range want {
			if got, ok := p.Connection(c.ID()); !ok || got != c {
				t.Fatalf("Connection(%s) = %p, %v; want %p", c.ID(), got, ok, c)
			}
		}
	}
	check(a, b, d)
	if _, ok := p.Connection(strings.ToUpper(a.ID())); ok {
		t.Error("an id in upper case was found")
	}
	if _, ok := p.Connection("{" + a.ID() + "}"); ok {
		t.Error("an id in braces was found")
	}
	p.unregister(a)
	check(b, d)
	if _, ok := p.Connection(a.ID()); ok {
		t.Error("a left but is still found")
	}
	p.unregister(a) // again: nothing happens
	check(b, d)
	e := conn("0123abcd-ef01-4234-8567-89abcdef0004") // the key again, now free
	p.register(e)
	check(b, d, e)
	p.unregister(b)
	p.unregister(e)
	p.unregister(d)
	check()
}

// ID gives the canonical form of a UUID, which Connection parses back; it
// is "" before the upgrade completes.
func TestConnectionID(t *testing.T) {
	c := &Connection{}
	if c.ID() != "" {
		t.Fatalf("ID before the upgrade: %q", c.ID())
	}
	const id = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
	uid, ok := parseUUID(id)
	if !ok {
		t.Fatal("parseUUID refused a UUID")
	}
	c.uid = uid
	if c.ID() != id || c.ID() != id {
		t.Fatalf("ID %q, want %q", c.ID(), id)
	}
	for _, bad := range []string{"", id[:35], id + "0", strings.ToUpper(id), strings.ReplaceAll(id, "-", "_"), "f47ac10b-58cc-4372-a567-0e02b2c3d47g"} {
		if _, ok := parseUUID(bad); ok {
			t.Errorf("parseUUID(%q) accepted", bad)
		}
	}
}

// What a connection made on first use (its id string, address, value) or
// left out (no parameters) reads the same as when it was kept.
func TestConnectionLazyState(t *testing.T) {
	p, e, addr := start(t, Options{})
	plain := dial(t, addr, "/connect")
	withQuery := dial(t, addr, "/connect?team=a&team=b&x=")
	e.wait(t, "two opened", func(e *events) bool { return len(e.opened) == 2 })
	byLocal := map[string]*Connection{}
	for _, c := range p.Connections() {
		byLocal[c.RemoteAddr().String()] = c
	}
	c, q := byLocal[plain.Conn.LocalAddr().String()], byLocal[withQuery.Conn.LocalAddr().String()]
	if c == nil || q == nil {
		t.Fatalf("connections by remote address: %v", byLocal)
	}
	if c.Parameters() != nil || c.Param("team") != "" {
		t.Errorf("no query: Parameters %v", c.Parameters())
	}
	if r := q.rare.Load(); r == nil || r.query == "" || r.params.Load() != nil {
		t.Error("the query is not kept as a string until asked for")
	}
	var wg sync.WaitGroup
	maps := make([]url.Values, 4)
	for i := range maps {
		wg.Go(func() { maps[i] = q.Parameters() })
	}
	wg.Wait()
	for _, m := range maps[1:] {
		if reflect.ValueOf(m).UnsafePointer() != reflect.ValueOf(maps[0]).UnsafePointer() {
			t.Error("Parameters gave different maps")
		}
	}
	if got := q.Parameters(); len(got["team"]) != 2 || q.Param("team") != "a" || !got.Has("x") {
		t.Errorf("Parameters %v", got)
	}
	ra, ok := c.RemoteAddr().(*net.TCPAddr)
	if !ok || ra.String() != plain.Conn.LocalAddr().String() || c.RemoteAddr() != c.RemoteAddr() {
		t.Errorf("RemoteAddr %T %v", c.RemoteAddr(), c.RemoteAddr())
	}
	if c.IP() != "127.0.0.1" {
		t.Errorf("IP %q", c.IP())
	}
	id := c.ID()
	if _, err := uuid.Parse(id); err != nil || id != strings.ToLower(id) || c.ID() != id || id == q.ID() {
		t.Errorf("IDs %q, %q", id, q.ID())
	}
	if got, ok := p.Connection(id); !ok || got != c {
		t.Errorf("Connection(%q) = %p, %v", id, got, ok)
	}
	if c.Value() != nil {
		t.Errorf("Value before SetValue: %v", c.Value())
	}
	c.SetValue("x")
	c.SetValue("y")
	if c.Value() != "y" || q.Value() != nil {
		t.Errorf("Values %v, %v", c.Value(), q.Value())
	}
}

// Package natsbroker is the NATS implementation of cluster.Broker: the
// Nodes of a cluster share one NATS subject for fan-out, presence and
// heartbeats ("<prefix>.all") and each listens on its own subject for
// directed calls ("<prefix>.node.<id>"), on one NATS connection per node
// (two subscriptions, so two delivery goroutines in all).
//
// The connection options differ from nats.go's defaults where those are
// wrong for a cluster: it never stops reconnecting (the default gives up
// after about 2 minutes); it has no reconnect buffer, so a publish while
// disconnected fails at once with cluster.ErrBroker instead of being held
// in 8 MiB that a failed reconnect loses; it pings every 2 s with 2 pings
// outstanding (a half-open link is found in about 6 s instead of 4
// minutes); a first connection that fails is retried in the background, so
// a Provider starts while NATS is late. Messages the client drops because
// this node is too slow (nats.ErrSlowConsumer) are counted and reported to
// the Node, which resynchronises presence.
//
// Messages are limited by the server's max_payload (1 MiB by default; a
// Consumer accepts 16 MiB): a larger one fails synchronously with
// cluster.ErrTooLarge. Raise max_payload on the server (up to 8 MiB is
// advised) to broadcast larger messages.
package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/networkcluster/networkcluster/cluster"
)

// Defaults of Options.
const (
	DefaultPrefix          = "networkcluster"
	DefaultMaxPending      = 1 << 16
	DefaultMaxPendingBytes = 256 << 20
	DefaultReconnectWait   = 250 * time.Millisecond
	DefaultPingInterval    = 2 * time.Second
)

// Options configures a Broker.
type Options struct {
	// URLs of the NATS servers ("nats://host:4222"); the client uses the
	// others when one fails. Default nats.DefaultURL.
	URLs []string
	// Prefix starts every subject of this cluster: clusters on one NATS
	// system with different prefixes do not see each other. No '.', '*',
	// '>' or white space. Default "networkcluster".
	Prefix string
	// Conn is an existing NATS connection to use instead of dialing URLs.
	// Its disconnect, reconnect, closed and error handlers are replaced;
	// the connection options above are then the caller's (it should not
	// echo: nats.NoEcho). Close does not close it.
	Conn *nats.Conn
	// MaxPending bounds the messages (and MaxPendingBytes their bytes)
	// waiting for this node's handler per subscription; past it the client
	// drops messages (reported as drops). Defaults 65536 and 256 MiB.
	MaxPending, MaxPendingBytes int
	// ReconnectWait is the pause between reconnect attempts, plus a random
	// jitter up to the same (1 s with TLS). Default 250 ms.
	ReconnectWait time.Duration
	// PingInterval: a server that misses 2 pings in a row is dropped and
	// reconnected. Default 2 s.
	PingInterval time.Duration
	// NATSOptions are applied after this package's (credentials, TLS, a
	// name...).
	NATSOptions []nats.Option
}

// Broker is a cluster.Broker over NATS. Create it with New; the Node opens
// it.
type Broker struct {
	o      Options
	all    string
	nc     *nats.Conn
	own    bool // nc was dialed by Open: Close closes it
	node   string
	prefix []byte // the sender's id, framed: len byte, id

	mu      sync.Mutex
	h       cluster.BrokerHandler
	subs    []*nats.Subscription
	dropped map[*nats.Subscription]int
	bufs    sync.Pool
}

// New validates o and returns a Broker that is not yet connected.
func New(o Options) (*Broker, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if err := cluster.CheckName(o.Prefix); err != nil {
		return nil, fmt.Errorf("%w: Prefix: %v", cluster.ErrInvalidOptions, err)
	}
	if len(o.URLs) == 0 && o.Conn == nil {
		o.URLs = []string{nats.DefaultURL}
	}
	if o.MaxPending <= 0 {
		o.MaxPending = DefaultMaxPending
	}
	if o.MaxPendingBytes <= 0 {
		o.MaxPendingBytes = DefaultMaxPendingBytes
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = DefaultReconnectWait
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	return &Broker{o: o, all: o.Prefix + ".all", dropped: make(map[*nats.Subscription]int)}, nil
}

func (b *Broker) nodeSubject(node string) string { return b.o.Prefix + ".node." + node }

// Conn returns the NATS connection (nil before Open).
func (b *Broker) Conn() *nats.Conn { return b.nc }

// Open connects (unless Options.Conn was given), subscribes to the
// cluster's subjects, and returns once the server has them (or at once if
// the server cannot be reached yet: the client keeps trying, and the Node
// is told through HandleLink).
func (b *Broker) Open(ctx context.Context, node string, h cluster.BrokerHandler) error {
	if err := cluster.CheckName(node); err != nil || len(node) > 255 {
		return fmt.Errorf("%w: node id: %v", cluster.ErrInvalidOptions, err)
	}
	b.mu.Lock()
	if b.h != nil {
		b.mu.Unlock()
		return fmt.Errorf("%w: already open", cluster.ErrBroker)
	}
	b.h, b.node = h, node
	b.prefix = append([]byte{byte(len(node))}, node...)
	b.mu.Unlock()

	onDisconnect := func(_ *nats.Conn, err error) {
		if err == nil {
			err = errors.New("disconnected")
		}
		h.HandleLink(false, err)
	}
	onUp := func(*nats.Conn) { h.HandleLink(true, nil) }
	onClosed := func(*nats.Conn) { h.HandleLink(false, errors.New("connection closed")) }
	onError := func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if errors.Is(err, nats.ErrSlowConsumer) && sub != nil {
			total, derr := sub.Dropped()
			if derr != nil {
				return
			}
			b.mu.Lock()
			k := total - b.dropped[sub]
			b.dropped[sub] = total
			b.mu.Unlock()
			if k > 0 {
				h.HandleDropped(k)
			}
		}
	}
	if b.o.Conn != nil {
		b.nc = b.o.Conn
		b.nc.SetDisconnectErrHandler(onDisconnect)
		b.nc.SetReconnectHandler(onUp)
		b.nc.SetClosedHandler(onClosed)
		b.nc.SetErrorHandler(onError)
	} else {
		opts := []nats.Option{
			nats.Name("networkcluster node " + node),
			nats.NoEcho(),
			nats.MaxReconnects(-1),
			nats.ReconnectWait(b.o.ReconnectWait),
			nats.ReconnectJitter(b.o.ReconnectWait, time.Second),
			nats.ReconnectBufSize(-1),
			nats.PingInterval(b.o.PingInterval),
			nats.MaxPingsOutstanding(2),
			nats.RetryOnFailedConnect(true),
			nats.DisconnectErrHandler(onDisconnect),
			nats.ReconnectHandler(onUp),
			nats.ConnectHandler(onUp),
			nats.ClosedHandler(onClosed),
			nats.ErrorHandler(onError),
		}
		nc, err := nats.Connect(strings.Join(b.o.URLs, ","), append(opts, b.o.NATSOptions...)...)
		if err != nil {
			return fmt.Errorf("%w: connect: %w", cluster.ErrBroker, err)
		}
		b.nc, b.own = nc, true
	}
	for _, subj := range []string{b.all, b.nodeSubject(node)} {
		sub, err := b.nc.Subscribe(subj, b.deliver)
		if err == nil {
			err = sub.SetPendingLimits(b.o.MaxPending, b.o.MaxPendingBytes)
		}
		if err != nil {
			b.closeConn()
			return fmt.Errorf("%w: subscribe %s: %w", cluster.ErrBroker, subj, err)
		}
		b.mu.Lock()
		b.subs = append(b.subs, sub)
		b.mu.Unlock()
	}
	if !b.nc.IsConnected() {
		h.HandleLink(false, fmt.Errorf("not connected to %v yet", b.o.URLs))
		return nil
	}
	if err := b.nc.FlushWithContext(ctx); err != nil && ctx.Err() != nil {
		b.closeConn()
		return fmt.Errorf("%w: %w", cluster.ErrBroker, err)
	}
	return nil
}

// deliver hands a NATS message to the handler.
func (b *Broker) deliver(m *nats.Msg) {
	d := m.Data
	if len(d) == 0 || int(d[0]) >= len(d) {
		return // not ours
	}
	from := string(d[1 : 1+int(d[0])])
	msg := d[1+int(d[0]):]
	switch {
	case m.Reply != "":
		b.h.HandleRequest(from, msg, func(r []byte) error {
			if err := m.Respond(r); err != nil {
				return b.wrap(err)
			}
			return nil
		})
	case m.Subject == b.all:
		b.h.HandleBroadcast(from, msg)
	default:
		b.h.HandleDirect(from, msg)
	}
}

// frame returns msg prefixed with this node's id, in a pooled buffer.
func (b *Broker) frame(msg []byte) *[]byte {
	bp, _ := b.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	*bp = append(append((*bp)[:0], b.prefix...), msg...)
	return bp
}

func (b *Broker) release(bp *[]byte) {
	if cap(*bp) <= 1<<20 {
		b.bufs.Put(bp)
	}
}

func (b *Broker) wrap(err error) error {
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return fmt.Errorf("%w: %w", cluster.ErrTooLarge, err)
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w: %w", cluster.ErrNodeUnreachable, err)
	}
	return fmt.Errorf("%w: %w", cluster.ErrBroker, err)
}

func (b *Broker) publish(subj string, msg []byte) error {
	if b.nc == nil {
		return fmt.Errorf("%w: not open", cluster.ErrBroker)
	}
	if len(msg) > b.MaxMessage() {
		return fmt.Errorf("%w: %d bytes, max %d", cluster.ErrTooLarge, len(msg), b.MaxMessage())
	}
	bp := b.frame(msg)
	err := b.nc.Publish(subj, *bp)
	b.release(bp)
	if err != nil {
		return b.wrap(err)
	}
	return nil
}

// Broadcast publishes msg on the cluster's subject.
func (b *Broker) Broadcast(msg []byte) error { return b.publish(b.all, msg) }

// Direct publishes msg on node's subject (NATS cannot tell whether anyone
// listens: an absent node loses it silently).
func (b *Broker) Direct(node string, msg []byte) error {
	return b.publish(b.nodeSubject(node), msg)
}

// Request sends msg to node and waits for the reply. No responders (the
// node is not subscribed) fails at once with cluster.ErrNodeUnreachable.
func (b *Broker) Request(ctx context.Context, node string, msg []byte) ([]byte, error) {
	if b.nc == nil {
		return nil, fmt.Errorf("%w: not open", cluster.ErrBroker)
	}
	if len(msg) > b.MaxMessage() {
		return nil, fmt.Errorf("%w: %d bytes, max %d", cluster.ErrTooLarge, len(msg), b.MaxMessage())
	}
	bp := b.frame(msg)
	r, err := b.nc.RequestWithContext(ctx, b.nodeSubject(node), *bp)
	b.release(bp)
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, nats.ErrNoResponders) {
			return nil, ctx.Err()
		}
		return nil, b.wrap(err)
	}
	return r.Data, nil
}

// MaxMessage is the server's max_payload less this node's framing (1 MiB,
// the server default, until the first connection tells).
func (b *Broker) MaxMessage() int {
	m := 1 << 20
	if b.nc != nil {
		if mp := b.nc.MaxPayload(); mp > 0 {
			m = int(mp)
		}
	}
	return m - 1 - len(b.node)
}

// Close flushes what was published (bounded by ctx) and, unless the
// connection was given in Options.Conn, closes it; with a given connection
// it only unsubscribes.
func (b *Broker) Close(ctx context.Context) error {
	if b.nc == nil {
		return nil
	}
	var err error
	if b.nc.IsConnected() {
		if ferr := b.nc.FlushWithContext(ctx); ferr != nil {
			err = fmt.Errorf("%w: flush: %w", cluster.ErrBroker, ferr)
		}
	}
	b.closeConn()
	return err
}

func (b *Broker) closeConn() {
	b.mu.Lock()
	subs := b.subs
	b.subs = nil
	b.mu.Unlock()
	if b.own {
		b.nc.Close()
		return
	}
	for _, s := range subs {
		_ = s.Unsubscribe()
	}
}

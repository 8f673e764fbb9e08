package provider

// Observer is told of connection and topic changes, for a cluster layer or
// for metrics. Add one with Provider.Observe before Start.
//
// The methods run on the goroutine that made the change and must not
// block. For one connection they come in order: Opened, then Subscribed and
// Unsubscribed as its topics change, then Closed once. Subscribed and
// Unsubscribed run while the Provider's topic table is locked (that is what
// orders them against Closed), so they must not call Subscribe,
// Unsubscribe, Topics, Subscribed, Subscribers or Publish: record the
// change and return.
type Observer interface {
	// Opened runs when c is open, just before it is registered (so that
	// nothing can subscribe it yet: Provider.Connection does not find it
	// during the call) and before OnOpen.
	Opened(c *Connection)
	// Closed runs once per opened connection when it has closed, before
	// OnClose, with the topics it was still subscribed to (no
	// Unsubscribed is reported for them). The slice is the observer's.
	Closed(c *Connection, topics []string)
	// Subscribed runs on the first Subscribe of c to topic.
	Subscribed(c *Connection, topic string)
	// Unsubscribed runs when Unsubscribe removes c from topic.
	Unsubscribed(c *Connection, topic string)
}

// Observe adds o; every Observer is told of every change, in the order they
// were added. Call it before Start: later calls return ErrAlreadyStarted
// (ErrServerClosed after Close or Shutdown).
func (p *Provider) Observe(o Observer) error {
	p.lifeMu.Lock()
	defer p.lifeMu.Unlock()
	if p.closing.Load() {
		return ErrServerClosed
	}
	if p.started.Load() {
		return ErrAlreadyStarted
	}
	if o != nil {
		p.observers = append(p.observers, o)
	}
	return nil
}

// observeOpened tells the observers that c is open.
func (p *Provider) observeOpened(c *Connection) {
	for _, o := range p.observers {
		o.Opened(c)
	}
}

// observeClosed tells the observers that c closed while in topics.
func (p *Provider) observeClosed(c *Connection, topics []string) {
	for i, o := range p.observers {
		if i > 0 {
			topics = append([]string(nil), topics...)
		}
		o.Closed(c, topics)
	}
}

// observeTopic tells the observers of a first Subscribe (sub) or an
// Unsubscribe; the caller holds topicMu.
func (p *Provider) observeTopic(c *Connection, name string, sub bool) {
	for _, o := range p.observers {
		if sub {
			o.Subscribed(c, name)
		} else {
			o.Unsubscribed(c, name)
		}
	}
}

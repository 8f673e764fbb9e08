package consumer

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/networkcluster/networkcluster/frame"
)

// run is the Consumer's goroutine: it dials, serves the connection, waits
// and dials again until the policy gives up or ctx is cancelled (Close,
// Destroy). It emits the close event and then closes c.done.
func (c *Consumer) run(ctx context.Context) {
	c.mu.Lock()
	c.runGID = goid()
	c.mu.Unlock()

	var (
		failures int         // consecutive failed attempts
		waits    int         // waits since the last open (the backoff exponent)
		timer    *time.Timer // reused for every wait
		cause    error       // set when the policy gives up
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		c.failRequests(lostError(true))
		c.mu.Lock()
		destroyed := c.destroyed.Load()
		if c.terminal == nil {
			c.terminal = cause
		}
		c.ready = false
		c.mu.Unlock()
		// The close event runs before waiters are woken, as OnOpen runs
		// before Connect returns.
		c.emitClose(closeEvent(destroyed, cause))
		c.mu.Lock()
		c.notifyLocked()
		c.mu.Unlock()
		close(c.done)
	}()

	wait, lost := false, false
	for {
		if wait {
			d := c.backoff(waits)
			if lost && len(c.cfg.Addrs) > 0 {
				// Full jitter after a loss: a fleet that lost its Provider
				// spreads its reconnects over the interval.
				d = time.Duration(rand.Int64N(int64(c.cfg.Reconnect.Interval) + 1))
			}
			lost = false
			waits++
			c.debug("network-cluster consumer: reconnecting", "in", d)
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		wait = true
		if ctx.Err() != nil {
			return
		}

		c.inFlight.Store(true)
		s, err := c.dial(ctx)
		c.inFlight.Store(false)
		if err != nil {
			if ctx.Err() != nil {
				return // closed while dialing
			}
			c.nextAddr()
			failures++
			c.reportError(err)
			var he *HandshakeError
			if errors.As(err, &he) && he.Final() {
				cause = err
				return
			}
			if max := c.cfg.Reconnect.MaxAttempts; max > 0 && failures >= max {
				cause = &gaveUpError{attempts: failures, last: err}
				return
			}
			continue
		}
		failures, waits = 0, 0
		c.serve(s)
		c.nextAddr()
		lost = true
	}
}

// nextAddr moves to the next Provider of Addrs. Only the cycle goroutine
// dials, so addrIdx needs no lock.
func (c *Consumer) nextAddr() {
	c.addrIdx = (c.addrIdx + 1) % len(c.cfg.urls)
}

// backoff returns the wait before the next attempt, the n-th since the last
// open (n from 0): Interval × Backoff^n capped at MaxInterval, jittered.
func (c *Consumer) backoff(n int) time.Duration {
	r := &c.cfg.Reconnect
	d := float64(r.Interval)
	for i := 0; i < n && d < float64(r.MaxInterval); i++ {
		d *= r.Backoff
	}
	d = min(d, float64(r.MaxInterval))
	if r.Jitter > 0 {
		d *= 1 - r.Jitter + 2*r.Jitter*rand.Float64()
	}
	return time.Duration(d)
}

// serve runs one open connection until it is lost, emitting the open and
// disconnect events.
func (c *Consumer) serve(s *session) {
	now := time.Now()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = s.nc.Close()
		s.release()
		return
	}
	c.nc = s.nc
	c.interval.Store(int64(s.interval))
	c.lastHB.Store(now.UnixNano())
	c.wmu.Lock()
	c.wc = s.nc
	c.closeSent = false
	c.dead, c.werr = false, nil
	c.sentCode, c.sentWhy = 0, ""
	c.comp = s.comp
	c.gen.Add(1)
	c.v2.Store(s.v2)
	c.connected.Store(true)
	c.mu.Unlock()
	c.stats.opens.Add(1)
	if s.v2 {
		// Requests left unanswered by the last connection go out first.
		c.resendLocked()
		c.resubscribeLocked()
	} else {
		c.failRequests(ErrNotSupported)
	}
	c.wmu.Unlock()

	c.rd.reset(c.cfg, s)
	if s.interval > 0 {
		// Not when a Close has already started the close handshake: its
		// CloseTimeout deadline stands.
		c.armCutoff(2 * s.interval)
	}
	c.debug("network-cluster consumer: open", "heartbeat", s.interval, "deflate", s.comp != nil)

	if f := c.cfg.OnOpen; f != nil {
		f()
	}
	c.mu.Lock()
	if !c.closed {
		c.ready = true
		c.opens++
		c.notifyLocked()
	}
	c.mu.Unlock()

	code, reason := c.readLoop(s.nc)
	hsErr := c.closeOutcome()
	// The connection is over (sends already fail): end TCP now rather than
	// after the handlers have caught up.
	_ = s.nc.Close()
	// Our requests and subscriptions fail now, not once the handlers have
	// caught up.
	c.controlLost()
	if !c.cfg.Resend {
		c.failRequests(lostError(false))
	}
	// The messages read before the loss are handled before OnDisconnect
	// (unless Destroy was called: they are then skipped).
	c.disp.finish()

	c.mu.Lock()
	c.ready = false
	c.nc = nil
	c.handshakeErr = hsErr
	c.notifyLocked()
	c.wmu.Lock()
	c.wc = nil
	c.closeSent = true
	c.comp = nil
	c.wmu.Unlock()
	c.connected.Store(false)
	c.mu.Unlock()
	c.stats.disconnects.Add(1)
	_ = s.nc.Close()
	c.rd.release()
	s.release()
	c.debug("network-cluster consumer: disconnected", "code", code, "reason", reason)

	if f := c.cfg.OnDisconnect; f != nil {
		f(code, reason)
	}
}

// closeOutcome returns how the close handshake of the connection just read
// ended, for a Close that started it: nil when the Provider's close frame
// came, else the error Close returns.
func (c *Consumer) closeOutcome() error {
	rd := &c.rd
	switch {
	case rd.gotClose:
		return nil
	case rd.failed:
		return fmt.Errorf("consumer: close handshake: %w", &CloseError{Code: rd.failCode, Reason: rd.failWhy})
	case errors.Is(rd.lostCause, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w (%v): %w", ErrCloseTimeout, c.cfg.CloseTimeout, rd.lostCause)
	case rd.lostCause != nil:
		return fmt.Errorf("consumer: close handshake: %w", rd.lostCause)
	}
	return errors.New("consumer: close handshake: the connection ended without a close frame")
}

// closeReason is the reason phrase for a code this side closes with.
func closeReason(err error) (frame.CloseCode, string) {
	var ce *frame.CloseError
	if errors.As(err, &ce) {
		return ce.Code, ce.Reason
	}
	return frame.CloseInternalError, ""
}

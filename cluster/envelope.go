package cluster

import (
	"encoding/binary"
	"fmt"
)

// The envelope is the cluster's own framing inside a broker message:
//
//	version (1) | kind (1) | flags (1) | seq uvarint | [topic: len uvarint, bytes] | payload
//
// seq numbers the messages a node sends on the broadcast channel (every
// kind but the directed ones, which carry 0); receivers check it is
// contiguous per sender. Only kindPublish carries a topic.
const envelopeVersion = 1

type kind uint8

const (
	kindBroadcast        kind = 1  // payload: a message for every connection
	kindPublish          kind = 2  // topic, payload: a message for the topic's subscribers
	kindSend             kind = 3  // directed request: payload = id, message
	kindRequest          kind = 4  // directed request: payload = id, message (Connection.Request)
	kindPresence         kind = 5  // payload: presence deltas
	kindHeartbeat        kind = 6  // payload: count uvarint, started-at uvarint (unix ns)
	kindSnapshot         kind = 7  // reply to kindSnapReq: seq = sender's seq, payload = entries
	kindLeave            kind = 8  // the sender is shutting down
	kindSnapReq          kind = 9  // directed request: payload = cursor (ids after it)
	kindReply            kind = 10 // reply to kindSend/kindRequest: payload = status, ...
	kindHello            kind = 11 // direct: "I am here" (payload as kindHeartbeat)
	maxKind                   = kindHello
	flagBinary           byte = 1 << 0
	flagMore             byte = 1 << 1 // kindSnapshot: more chunks follow
	flagRedelivered      byte = 1 << 2 // kindRequest: the job may have run on another worker
	flagEntryFlags       byte = 1 << 3 // kindSnapshot: each entry has a flags byte after its id
	knownFlags                = flagBinary | flagMore | flagRedelivered | flagEntryFlags
	envelopeHdrMax            = 3 + binary.MaxVarintLen64
	envelopeMaxMeta           = envelopeHdrMax + binary.MaxVarintLen64
	maxIDLen                  = 1 << 10
	maxPresenceItem           = 1 << 20
	maxStringInField          = 1 << 24
	defaultSnapChunkSize      = 256 << 10
)

// envelope is a decoded envelope; its slices alias the input.
type envelope struct {
	kind    kind
	flags   byte
	seq     uint64
	topic   []byte
	payload []byte
}

func (e *envelope) binary() bool { return e.flags&flagBinary != 0 }

// appendEnvelope appends an envelope to b.
func appendEnvelope(b []byte, k kind, flags byte, seq uint64, topic string, payload []byte) []byte {
	b = append(b, envelopeVersion, byte(k), flags)
	b = binary.AppendUvarint(b, seq)
	if k == kindPublish {
		b = binary.AppendUvarint(b, uint64(len(topic)))
		b = append(b, topic...)
	}
	return append(b, payload...)
}

// envelopeSize is the length appendEnvelope would produce.
func envelopeSize(k kind, seq uint64, topic string, payload int) int {
	n := 3 + uvarintLen(seq) + payload
	if k == kindPublish {
		n += uvarintLen(uint64(len(topic))) + len(topic)
	}
	return n
}

func uvarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// parseEnvelope decodes b, or returns an error wrapping ErrBadEnvelope.
func parseEnvelope(b []byte) (envelope, error) {
	var e envelope
	if len(b) < 4 {
		return e, fmt.Errorf("%w: %d bytes", ErrBadEnvelope, len(b))
	}
	if b[0] != envelopeVersion {
		return e, fmt.Errorf("%w: version %d", ErrBadEnvelope, b[0])
	}
	e.kind, e.flags = kind(b[1]), b[2]
	if e.kind == 0 || e.kind > maxKind {
		return e, fmt.Errorf("%w: kind %d", ErrBadEnvelope, b[1])
	}
	if e.flags&^knownFlags != 0 {
		return e, fmt.Errorf("%w: flags %#x", ErrBadEnvelope, e.flags)
	}
	seq, n := binary.Uvarint(b[3:])
	if n <= 0 {
		return e, fmt.Errorf("%w: sequence number", ErrBadEnvelope)
	}
	e.seq = seq
	rest := b[3+n:]
	if e.kind == kindPublish {
		t, r, ok := cutBytes(rest)
		if !ok {
			return e, fmt.Errorf("%w: topic", ErrBadEnvelope)
		}
		e.topic, rest = t, r
	}
	e.payload = rest
	return e, nil
}

// --- field helpers: strings are a uvarint length then the bytes ---

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func cutBytes(b []byte) (field, rest []byte, ok bool) {
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) || l > maxStringInField {
		return nil, b, false
	}
	return b[n : n+int(l)], b[n+int(l):], true
}

func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func cutUvarint(b []byte) (uint64, []byte, bool) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	return v, b[n:], true
}

// --- presence deltas ---

type deltaOp uint8

const (
	opOpen  deltaOp = 1 // id, nparams, (key, value)*
	opClose deltaOp = 2 // id
	opSub   deltaOp = 3 // id, topic
	opUnsub deltaOp = 4 // id, topic
	// opOpenReq is opOpen for a connection that speaks requests (a worker
	// candidate for a cluster Queue). A node of an older version rejects
	// it as a bad envelope (loudly), never misreads it.
	opOpenReq deltaOp = 5 // as opOpen
)

// entry flags in a snapshot (flagEntryFlags)
const entryRequests byte = 1 << 0

// delta is one decoded presence change.
type delta struct {
	op     deltaOp
	id     string
	topic  string
	params map[string]string
}

func appendDelta(b []byte, d *delta) []byte {
	b = append(b, byte(d.op))
	b = appendString(b, d.id)
	switch d.op {
	case opOpen, opOpenReq:
		b = appendParams(b, d.params)
	case opSub, opUnsub:
		b = appendString(b, d.topic)
	}
	return b
}

func appendParams(b []byte, params map[string]string) []byte {
	b = binary.AppendUvarint(b, uint64(len(params)))
	for k, v := range params {
		b = appendString(b, k)
		b = appendString(b, v)
	}
	return b
}

func cutParams(b []byte) (map[string]string, []byte, bool) {
	n, b, ok := cutUvarint(b)
	if !ok || n > uint64(len(b)) {
		return nil, b, false
	}
	var params map[string]string
	if n > 0 {
		params = make(map[string]string, n)
	}
	for range n {
		var k, v []byte
		if k, b, ok = cutBytes(b); !ok {
			return nil, b, false
		}
		if v, b, ok = cutBytes(b); !ok {
			return nil, b, false
		}
		params[string(k)] = string(v)
	}
	return params, b, true
}

// parseDeltas decodes a kindPresence payload, calling f for each delta.
func parseDeltas(b []byte, f func(d *delta)) error {
	for len(b) > 0 {
		var d delta
		d.op = deltaOp(b[0])
		id, rest, ok := cutBytes(b[1:])
		if !ok || len(id) == 0 || len(id) > maxIDLen {
			return fmt.Errorf("%w: presence id", ErrBadEnvelope)
		}
		d.id, b = string(id), rest
		switch d.op {
		case opOpen, opOpenReq:
			if d.params, b, ok = cutParams(b); !ok {
				return fmt.Errorf("%w: presence parameters", ErrBadEnvelope)
			}
		case opClose:
		case opSub, opUnsub:
			var t []byte
			if t, b, ok = cutBytes(b); !ok {
				return fmt.Errorf("%w: presence topic", ErrBadEnvelope)
			}
			d.topic = string(t)
		default:
			return fmt.Errorf("%w: presence op %d", ErrBadEnvelope, d.op)
		}
		f(&d)
	}
	return nil
}

// --- snapshot entries: id, [flags byte,] params, ntopics, topic* ---

// appendEntry appends a snapshot entry in the flagEntryFlags format.
func appendEntry(b []byte, id string, flags byte, params map[string]string, topics []string) []byte {
	b = appendString(b, id)
	b = append(b, flags)
	b = appendParams(b, params)
	b = binary.AppendUvarint(b, uint64(len(topics)))
	for _, t := range topics {
		b = appendString(b, t)
	}
	return b
}

// parseEntries decodes a kindSnapshot payload; withFlags says whether its
// entries carry a flags byte (the envelope's flagEntryFlags).
func parseEntries(b []byte, withFlags bool, f func(id string, flags byte, params map[string]string, topics []string)) error {
	for len(b) > 0 {
		id, rest, ok := cutBytes(b)
		if !ok || len(id) == 0 || len(id) > maxIDLen {
			return fmt.Errorf("%w: snapshot id", ErrBadEnvelope)
		}
		var flags byte
		if withFlags {
			if len(rest) == 0 {
				return fmt.Errorf("%w: snapshot entry flags", ErrBadEnvelope)
			}
			flags, rest = rest[0], rest[1:]
		}
		params, rest, ok := cutParams(rest)
		if !ok {
			return fmt.Errorf("%w: snapshot parameters", ErrBadEnvelope)
		}
		n, rest, ok := cutUvarint(rest)
		if !ok || n > uint64(len(rest)) {
			return fmt.Errorf("%w: snapshot topics", ErrBadEnvelope)
		}
		topics := make([]string, 0, n)
		for range n {
			var t []byte
			if t, rest, ok = cutBytes(rest); !ok {
				return fmt.Errorf("%w: snapshot topic", ErrBadEnvelope)
			}
			topics = append(topics, string(t))
		}
		f(string(id), flags, params, topics)
		b = rest
	}
	return nil
}

// --- heartbeat and hello: count, started-at ---

func appendBeat(b []byte, count int, started int64) []byte {
	b = binary.AppendUvarint(b, uint64(count))
	return binary.AppendUvarint(b, uint64(started))
}

func parseBeat(b []byte) (count int, started int64, err error) {
	c, b, ok := cutUvarint(b)
	if !ok {
		return 0, 0, fmt.Errorf("%w: heartbeat", ErrBadEnvelope)
	}
	s, _, ok := cutUvarint(b)
	if !ok || c > 1<<40 {
		return 0, 0, fmt.Errorf("%w: heartbeat", ErrBadEnvelope)
	}
	return int(c), int64(s), nil
}

// --- directed calls: id, then the message ---

// reply statuses of kindReply
const (
	statusOK          byte = 0
	statusUnknown     byte = 1
	statusClosed      byte = 2
	statusBackpress   byte = 3
	statusInvalidUTF8 byte = 4
	statusOther       byte = 5 // text follows
	statusMessage     byte = 6 // reply to kindRequest: flags byte, data follows
	statusRemoteError byte = 7 // code uint16 (uvarint), reason follows
	statusNotSupp     byte = 8
	statusDisconn     byte = 9
	statusTooMany     byte = 10
	statusTimeout     byte = 11
)

func parseDirected(b []byte) (id string, data []byte, err error) {
	idb, rest, ok := cutBytes(b)
	if !ok || len(idb) == 0 || len(idb) > maxIDLen {
		return "", nil, fmt.Errorf("%w: connection id", ErrBadEnvelope)
	}
	return string(idb), rest, nil
}

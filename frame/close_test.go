package frame

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseCloseCodes(t *testing.T) {
	// Every class of RFC 6455 §7.4 and the IANA registry.
	cases := []struct {
		code  CloseCode
		valid bool
	}{
		{0, false}, {999, false},
		{1000, true}, {1001, true}, {1002, true}, {1003, true},
		{1004, false}, {1005, false}, {1006, false},
		{1007, true}, {1008, true}, {1009, true}, {1010, true}, {1011, true},
		{1012, true}, {1013, true}, {1014, true},
		{1015, false}, {1016, false}, {2999, false},
		{3000, true}, {4999, true},
		{5000, false}, {65535, false},
	}
	for _, c := range cases {
		if c.code.ValidOnWire() != c.valid {
			t.Errorf("%d: ValidOnWire = %v", c.code, !c.valid)
		}
		for _, reason := range []string{"", "done"} {
			p := AppendClose(nil, c.code, reason)
			if c.code == 0 {
				p = []byte{0, 0} // AppendClose writes nothing for 0
			}
			code, r, err := ParseClose(p)
			if c.valid {
				if err != nil || code != c.code || string(r) != reason {
					t.Errorf("%d %q: ParseClose = %d %q %v", c.code, reason, code, r, err)
				}
				continue
			}
			if CloseStatus(err) != CloseProtocolError {
				t.Errorf("%d %q: ParseClose err = %v, want 1002", c.code, reason, err)
			}
		}
	}
}

func TestParseCloseShape(t *testing.T) {
	if code, r, err := ParseClose(nil); code != CloseNoStatus || r != nil || err != nil {
		t.Errorf("empty payload: %d %q %v", code, r, err)
	}
	if _, _, err := ParseClose([]byte{0x03}); CloseStatus(err) != CloseProtocolError {
		t.Errorf("1-byte payload: %v", err)
	}
	if _, _, err := ParseClose([]byte{0x03, 0xe8, 'a', 0xff}); CloseStatus(err) != CloseInvalidPayload {
		t.Errorf("bad UTF-8 reason: %v", err)
	}
	if _, _, err := ParseClose([]byte{0x03, 0xe8, 0xed, 0xa0, 0x80}); CloseStatus(err) != CloseInvalidPayload {
		t.Errorf("surrogate in reason: %v", err)
	}
	p := []byte{0x0b, 0xb8, 'x', 'y'}
	if _, r, _ := ParseClose(p); &r[0] != &p[2] {
		t.Error("reason does not alias the payload")
	}
}

func TestAppendCloseCutsReason(t *testing.T) {
	long := make([]byte, 0, 200)
	for len(long) < 200 {
		long = append(long, "€"...)
	}
	p := AppendClose(nil, CloseNormal, string(long))
	if len(p)-2 > MaxCloseReason || !ValidUTF8(p[2:]) {
		t.Fatalf("reason cut to %d bytes, valid %v", len(p)-2, ValidUTF8(p[2:]))
	}
	if len(p)-2 < MaxCloseReason-2 {
		t.Fatalf("reason cut too short: %d", len(p)-2)
	}
}

func TestCloseError(t *testing.T) {
	err := fmt.Errorf("read: %w", &CloseError{Code: CloseTooBig, Reason: "big"})
	if !errors.Is(err, &CloseError{Code: CloseTooBig}) || errors.Is(err, &CloseError{Code: CloseNormal}) {
		t.Error("errors.Is by code")
	}
	if !errors.Is(err, &CloseError{Code: CloseTooBig, Reason: "big"}) || errors.Is(err, &CloseError{Code: CloseTooBig, Reason: "other"}) {
		t.Error("errors.Is by code and reason")
	}
	if CloseStatus(err) != CloseTooBig || CloseStatus(errors.New("x")) != 0 || CloseStatus(nil) != 0 {
		t.Error("CloseStatus")
	}
	if CloseStatus(errors.Join(errors.New("x"), err)) != CloseTooBig {
		t.Error("CloseStatus through errors.Join")
	}
	if got := (&CloseError{Code: CloseNormal}).Error(); got != "websocket: close 1000 (normal closure)" {
		t.Errorf("Error() = %q", got)
	}
	if got := (&CloseError{Code: 4000, Reason: "app"}).Error(); got != "websocket: close 4000: app" {
		t.Errorf("Error() = %q", got)
	}
	// Every protocol error of the package is a *CloseError with a reason
	// that fits in a close frame.
	for _, e := range []*CloseError{errReservedBits, errReservedOpcode, errFragmentedControl, errControlTooLong,
		errLengthTopBit, errUnmaskedFromClient, errMaskedFromServer, errRSV1Control, errRSV1Continuation,
		errContinuationNoMessage, errDataMidMessage, errMalformedHeader, errFrameTooBig, errMessageTooBig,
		errInvalidUTF8, errCloseOneByte, errCloseBadCode, errCloseBadReason} {
		if !e.Code.ValidOnWire() || len(e.Reason) > MaxCloseReason {
			t.Errorf("%v: code not sendable or reason too long", e)
		}
	}
}

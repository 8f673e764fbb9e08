package compress

import (
	"errors"
	"testing"
)

func TestParseOffers(t *testing.T) {
	inv := Params{Err: ErrInvalidParams} // compared by errors.Is
	for _, tc := range []struct {
		values []string
		want   []Params
		err    error
	}{
		{[]string{"permessage-deflate; client_max_window_bits"}, []Params{{ClientMaxWindowBits: -1}}, nil},
		{[]string{"permessage-deflate"}, []Params{{}}, nil},
		{[]string{"permessage-deflate; client_no_context_takeover; client_max_window_bits"},
			[]Params{{ClientNoContextTakeover: true, ClientMaxWindowBits: -1}}, nil},
		{[]string{"permessage-deflate; server_max_window_bits=9"}, []Params{{ServerMaxWindowBits: 9}}, nil},
		{[]string{`permessage-deflate; server_max_window_bits="10"`}, []Params{{ServerMaxWindowBits: 10}}, nil},
		{[]string{`permessage-deflate; client_max_window_bits="1\5"`}, []Params{{ClientMaxWindowBits: 15}}, nil},
		{[]string{"permessage-deflate;server_no_context_takeover;client_no_context_takeover"},
			[]Params{{ServerNoContextTakeover: true, ClientNoContextTakeover: true}}, nil},
		{[]string{" \tpermessage-deflate ;  client_max_window_bits = 12 , x-webkit-deflate-frame"},
			[]Params{{ClientMaxWindowBits: 12}}, nil},
		{[]string{"permessage-deflate; server_max_window_bits=10; client_max_window_bits=8", "permessage-deflate"},
			[]Params{{ServerMaxWindowBits: 10, ClientMaxWindowBits: 8}, {}}, nil},
		{[]string{"foo, permessage-deflate; a=b, bar; x=\"y\"", "permessage-deflate"}, []Params{inv, {}}, nil},
		{[]string{", ,permessage-deflate,,", ""}, []Params{{}}, nil},
		{[]string{"Permessage-Deflate"}, nil, nil}, // another (unknown) extension
		{nil, nil, nil},
		// Invalid offers (declined by the server, RFC 7692 §5).
		{[]string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, []Params{inv}, nil},
		{[]string{"permessage-deflate; client_max_window_bits; client_max_window_bits=10"}, []Params{inv}, nil},
		{[]string{"permessage-deflate; server_max_window_bits"}, []Params{inv}, nil},
		{[]string{"permessage-deflate; server_max_window_bits=16"}, []Params{inv}, nil},
		{[]string{"permessage-deflate; server_max_window_bits=7"}, []Params{inv}, nil},
		{[]string{"permessage-deflate; server_max_window_bits=08"}, []Params{inv}, nil},
		{[]string{"permessage-deflate; client_max_window_bits=1a"}, []Params{inv}, nil},
		{[]string{"permessage-deflate; server_no_context_takeover=1"}, []Params{inv}, nil},
		{[]string{"permessage-deflate; client_no_context_takeover=\"\""}, nil, ErrInvalidHeader},
		{[]string{"permessage-deflate; Server_No_Context_Takeover"}, []Params{inv}, nil},
		// Malformed headers.
		{[]string{`permessage-deflate; client_max_window_bits="10`}, nil, ErrInvalidHeader},
		{[]string{"permessage-deflate;"}, nil, ErrInvalidHeader},
		{[]string{"permessage-deflate; =5"}, nil, ErrInvalidHeader},
		{[]string{"permessage-deflate client"}, nil, ErrInvalidHeader},
		{[]string{`permessage-deflate; a="b c"`}, nil, ErrInvalidHeader},
		{[]string{"permessage-deflate; a="}, nil, ErrInvalidHeader},
		{[]string{"permessage-deflate", "; x"}, nil, ErrInvalidHeader},
		{[]string{"permessage-deflate\x00"}, nil, ErrInvalidHeader},
	} {
		got, err := ParseOffers(tc.values)
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) {
			t.Errorf("%q: error %v, want %v", tc.values, err, tc.err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("%q: %d offers %v, want %d", tc.values, len(got), got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			g := got[i]
			if (w.Err == nil) != (g.Err == nil) || (w.Err != nil && !errors.Is(g.Err, ErrInvalidParams)) {
				t.Errorf("%q offer %d: Err %v, want %v", tc.values, i, g.Err, w.Err)
				continue
			}
			if w.Err == nil && g != w {
				t.Errorf("%q offer %d: %+v, want %+v", tc.values, i, g, w)
			}
		}
	}
}

func TestParseResponse(t *testing.T) {
	for _, tc := range []struct {
		values []string
		want   Params
		ok     bool
		err    error
	}{
		{nil, Params{}, false, nil},
		{[]string{""}, Params{}, false, nil},
		{[]string{"permessage-deflate"}, Params{}, true, nil},
		{[]string{"permessage-deflate; server_no_context_takeover; client_max_window_bits=10"},
			Params{ServerNoContextTakeover: true, ClientMaxWindowBits: 10}, true, nil},
		{[]string{"permessage-deflate; client_max_window_bits"}, Params{}, false, ErrInvalidParams},
		{[]string{"permessage-deflate; foo"}, Params{}, false, ErrInvalidParams},
		{[]string{"permessage-deflate; server_max_window_bits=16"}, Params{}, false, ErrInvalidParams},
		{[]string{"permessage-deflate, permessage-deflate"}, Params{}, false, ErrNegotiation},
		{[]string{"permessage-deflate", "permessage-deflate; server_no_context_takeover"}, Params{}, false, ErrNegotiation},
		{[]string{"x-webkit-deflate-frame"}, Params{}, false, ErrNegotiation},
		{[]string{"permessage-deflate; x=\"1"}, Params{}, false, ErrInvalidHeader},
	} {
		got, ok, err := ParseResponse(tc.values)
		if !errors.Is(err, tc.err) || (err == nil) != (tc.err == nil) || ok != tc.ok || got != tc.want {
			t.Errorf("%q: %+v, %v, %v; want %+v, %v, %v", tc.values, got, ok, err, tc.want, tc.ok, tc.err)
		}
	}
}

func TestParamsString(t *testing.T) {
	for _, tc := range []struct {
		p    Params
		want string
	}{
		{Params{}, "permessage-deflate"},
		{Params{ClientMaxWindowBits: -1}, "permessage-deflate; client_max_window_bits"},
		{Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 9, ClientMaxWindowBits: 15},
			"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits=15"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.p, got, tc.want)
		}
		back, err := ParseOffers([]string{tc.want})
		if err != nil || len(back) != 1 || back[0] != tc.p {
			t.Errorf("%q does not parse back: %v %v", tc.want, back, err)
		}
	}
	buf := make([]byte, 0, 128)
	p := Params{ServerNoContextTakeover: true, ClientNoContextTakeover: true, ServerMaxWindowBits: 10, ClientMaxWindowBits: 10}
	if n := testing.AllocsPerRun(100, func() { buf = p.AppendTo(buf[:0]) }); n != 0 {
		t.Errorf("AppendTo: %v allocs", n)
	}
}

// FuzzParseOffers: never panics; every valid offer prints to a header that
// parses back to the same Params; ParseResponse agrees on syntax errors.
func FuzzParseOffers(f *testing.F) {
	for _, s := range []string{
		"permessage-deflate; client_max_window_bits",
		"permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10, permessage-deflate",
		`x-foo; a="b\"c", permessage-deflate; client_max_window_bits="9"`,
		"permessage-deflate; server_max_window_bits",
		", ,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		offers, err := ParseOffers([]string{s})
		_, _, rerr := ParseResponse([]string{s})
		if err != nil {
			if !errors.Is(err, ErrInvalidHeader) {
				t.Fatalf("error %v does not wrap ErrInvalidHeader", err)
			}
			if rerr == nil {
				t.Fatalf("ParseOffers: %v but ParseResponse: %v", err, rerr)
			}
			return
		}
		for _, o := range offers {
			if o.Err != nil {
				if !errors.Is(o.Err, ErrInvalidParams) {
					t.Fatalf("offer error %v", o.Err)
				}
				continue
			}
			back, err := ParseOffers([]string{o.String()})
			if err != nil || len(back) != 1 || back[0] != o {
				t.Fatalf("%+v → %q → %+v, %v", o, o.String(), back, err)
			}
		}
		// Accept never answers with something our own client check rejects.
		for _, p := range allPresets {
			if resp, ok := p.Accept(offers); ok {
				var offer Params
				for _, o := range offers {
					if o.Err == nil {
						offer = o
						break
					}
				}
				if err := p.CheckResponse(offer, resp); err != nil {
					t.Fatalf("%v: offer %+v, response %q: %v", p, offer, resp, err)
				}
			}
		}
	})
}

package consumer

import (
	"maps"
	"net/url"
	"strconv"
	"strings"
)

// withURL returns o with Options.URL split into Host, Port, Path, TLS and
// Parameters (a copy of the caller's map), or an error wrapping
// ErrInvalidOptions for a URL that is not ws:// or wss://, or that
// conflicts with the other fields.
func withURL(o Options) (Options, error) {
	if o.URL == "" {
		return o, nil
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return o, invalid("URL: %v", err)
	}
	// Parameters may carry credentials: errors name the endpoint only.
	ru := *u
	ru.RawQuery, ru.Fragment = "", ""
	redacted := ru.Redacted()
	switch {
	case o.Host != "" || o.Port != 0 || o.Path != "":
		return o, invalid("URL %q is set together with Host, Port or Path", redacted)
	case len(o.Addrs) > 0:
		return o, invalid("URL %q is set together with Addrs (use Addrs with Path, TLS and Parameters)", redacted)
	case u.Opaque != "" || u.Hostname() == "":
		return o, invalid("URL %q has no host (want ws://host:port/path)", redacted)
	case u.User != nil:
		return o, invalid("URL %q holds user information: send credentials in Parameters or Header", redacted)
	case u.Fragment != "" || strings.HasSuffix(o.URL, "#"):
		return o, invalid("URL %q has a fragment", redacted)
	}
	port := 0
	switch strings.ToLower(u.Scheme) {
	case "ws":
		if o.TLS || o.TLSConfig != nil {
			return o, invalid("URL %q is ws:// but TLS is set (use wss://)", redacted)
		}
		port = 80
	case "wss":
		o.TLS = true
		port = 443
	default:
		return o, invalid("URL %q: scheme %q (want ws or wss)", redacted, u.Scheme)
	}
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return o, invalid("URL %q: port %q", redacted, p)
		}
	}
	o.Host, o.Port, o.Path = u.Hostname(), port, u.Path
	if o.Path == "" {
		o.Path = "/"
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return o, invalid("URL %q: query: %v", redacted, err)
	}
	if len(q) > 0 {
		params := make(map[string]string, len(o.Parameters)+len(q))
		maps.Copy(params, o.Parameters)
		for k, vs := range q {
			if len(vs) != 1 {
				return o, invalid("URL %q: parameter %q given %d times", redacted, k, len(vs))
			}
			if _, dup := params[k]; dup {
				return o, invalid("URL %q: parameter %q is also in Parameters", redacted, k)
			}
			params[k] = vs[0]
		}
		o.Parameters = params
	}
	return o, nil
}

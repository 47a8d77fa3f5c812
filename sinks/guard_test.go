package sinks

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/valyala/fasthttp"
)

// These tests never open a connection off this machine: public addresses are only
// classified, and host names other than localhost go through a fake resolver.

func TestGuardClassification(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		allow string
		want  string // refusal reason, "" for allowed
	}{
		{"127.0.0.1", "", "loopback address"},
		{"127.255.0.9", "", "loopback address"},
		{"::1", "", "loopback address"},
		{"10.1.2.3", "", "private address"},
		{"172.20.0.1", "", "private address"},
		{"172.32.0.1", "", ""}, // just outside 172.16/12
		{"192.168.1.1", "", "private address"},
		{"fd12:3456::1", "", "private address"},
		{"169.254.169.254", "", "link-local address (cloud metadata endpoint)"},
		{"169.254.1.1", "", "link-local address"},
		{"fe80::1", "", "link-local address"},
		{"fe80::1%eth0", "", "link-local address"},
		{"::ffff:127.0.0.1", "", "loopback address"},
		{"::ffff:169.254.169.254", "", "link-local address (cloud metadata endpoint)"},
		{"::ffff:10.0.0.1", "", "private address"},
		{"100.64.0.1", "", "shared address space (CGNAT)"},
		{"100.127.255.254", "", "shared address space (CGNAT)"},
		{"100.128.0.1", "", ""},
		{"0.0.0.0", "", "unspecified address"},
		{"0.1.2.3", "", "unspecified address"},
		{"::", "", "unspecified address"},
		{"224.0.0.1", "", "multicast address"},
		{"ff02::1", "", "multicast address"},
		{"255.255.255.255", "", "reserved address"},
		{"240.0.0.1", "", "reserved address"},
		{"fec0::1", "", "site-local address"},
		{"64:ff9b::7f00:1", "", "loopback address (NAT64)"},
		{"64:ff9b::a9fe:a9fe", "", "link-local address (cloud metadata endpoint) (NAT64)"},
		{"64:ff9b::808:808", "", ""},
		{"2002:7f00:1::1", "", "loopback address (6to4)"},
		{"2002:808:808::1", "", ""},
		{"::10.0.0.1", "", "IPv4-compatible IPv6 address"},

		// Benchmarking, IETF protocol assignments, Teredo and the other IPv6 forms that
		// embed an IPv4 address.
		{"198.18.0.1", "", "benchmarking address"},
		{"198.19.255.254", "", "benchmarking address"},
		{"198.17.255.255", "", ""}, // just below 198.18/15
		{"198.20.0.1", "", ""},     // just above
		{"2001:2::1", "", "benchmarking address"},
		{"192.0.0.1", "", "IETF protocol assignment address"},
		{"192.0.0.170", "", "IETF protocol assignment address"},
		{"192.0.1.1", "", ""},
		{"2001::1", "", "Teredo address"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "", "Teredo address"},
		{"2001:1::1", "", ""}, // outside 2001::/32
		{"2002:c612:1::1", "", "benchmarking address (6to4)"},
		{"2002:c000:1::1", "", "IETF protocol assignment address (6to4)"},
		{"2002:a00:1::1", "", "private address (6to4)"},
		{"2002:a9fe:a9fe::1", "", "link-local address (cloud metadata endpoint) (6to4)"},
		{"64:ff9b::a00:1", "", "private address (NAT64)"},
		{"64:ff9b::c612:1", "", "benchmarking address (NAT64)"},
		{"64:ff9b::c000:1", "", "IETF protocol assignment address (NAT64)"},
		{"64:ff9b::6440:1", "", "shared address space (CGNAT) (NAT64)"},
		{"64:ff9b:1::808:808", "", "local-use NAT64 address"},
		{"::ffff:0:a00:1", "", "private address (IPv4-translated)"},
		{"::ffff:0:808:808", "", ""},
		{"100::1", "", "discard-only address"},
		{"::ffff:198.18.0.1", "", "benchmarking address"},
		{"198.18.0.1", "198.18.0.0/15", ""},
		{"2001::1", "2001::/32", ""},
		{"8.8.8.8", "", ""},
		{"2001:4860::8888", "", ""},
		{"2001:4860:4860::8888", "", ""},

		// The allow-list wins, mapped forms included.
		{"127.0.0.1", "127.0.0.0/8", ""},
		{"::ffff:127.0.0.1", "127.0.0.0/8", ""},
		{"127.0.0.1", "::ffff:127.0.0.0/104", ""},
		{"::1", "127.0.0.0/8", "loopback address"},
		{"::1", "::1", ""},
		{"10.1.2.3", "10.1.2.3", ""},
		{"10.1.2.4", "10.1.2.3", "private address"},
		{"10.1.2.4", "192.168.0.0/16, 10.1.0.0/16", ""},
		{"fe80::1%eth0", "fe80::/10", ""},
		{"169.254.169.254", "10.0.0.0/8", "link-local address (cloud metadata endpoint)"},
	} {
		allow, err := ParseAllowList(tc.allow)
		if err != nil {
			t.Fatalf("ParseAllowList(%q): %v", tc.allow, err)
		}
		g := NewGuard(allow)
		if got := g.refusal(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("%s allow %q: refusal %q, want %q", tc.addr, tc.allow, got, tc.want)
		}
	}
}

func TestParseAllowList(t *testing.T) {
	got, err := ParseAllowList(" 10.0.0.0/8,127.0.0.1 , ::1,fd00::/8,::ffff:192.168.0.0/112,10.9.8.7/16,")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "127.0.0.1/32", "::1/128", "fd00::/8", "192.168.0.0/16", "10.9.0.0/16"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("item %d: %v, want %s", i, got[i], want[i])
		}
	}
	for _, s := range []string{"", " ", ",,"} {
		if l, err := ParseAllowList(s); err != nil || l != nil {
			t.Errorf("ParseAllowList(%q) = %v, %v; want nil, nil", s, l, err)
		}
	}
	for _, s := range []string{"localhost", "10.0.0.0/33", "10.0.0/8", "1.2.3", "fe80::1%eth0", "10.0.0.1,nope", "::1/", "/8"} {
		_, err := ParseAllowList(s)
		if err == nil || !strings.Contains(err.Error(), "--allow-destinations") {
			t.Errorf("ParseAllowList(%q) error = %v, want one naming --allow-destinations", s, err)
		}
	}
}

func TestGuardDial(t *testing.T) {
	g := NewGuard(nil)
	_, err := g.Dial("127.0.0.1:1")
	if !errors.Is(err, ErrDestinationRefused) || !errors.Is(err, ErrPermanent) {
		t.Fatalf("err = %v, want ErrDestinationRefused and ErrPermanent", err)
	}
	const want = "destination 127.0.0.1:1 refused: loopback address (allow it with --allow-destinations 127.0.0.1/32)"
	if err.Error() != want {
		t.Errorf("err = %q\nwant  %q", err, want)
	}
	_, err = g.Dial("[::ffff:169.254.169.254]:80")
	if !errors.Is(err, ErrDestinationRefused) || !strings.Contains(err.Error(), "--allow-destinations 169.254.169.254/32") {
		t.Errorf("mapped metadata address: err = %v", err)
	}
	if _, err = g.Dial("no-port"); err == nil || errors.Is(err, ErrPermanent) {
		t.Errorf("bad address: err = %v", err)
	}
}

// fakeResolver replaces g's lookups with a fixed table; unknown names fail.
func fakeResolver(g *Guard, table map[string][]string) {
	g.lookup = func(_ context.Context, host string) ([]netip.Addr, error) {
		ss, ok := table[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out, nil
	}
}

func TestGuardRefusesLoopbackDelivery(t *testing.T) {
	ts := startServer(t, nil)
	_, port, _ := net.SplitHostPort(ts.addr)
	ev := newEvent(t, "crud", "consumers", consumerData)
	p := newPool(t, PoolConfig{Guard: NewGuard(nil)})

	for _, tc := range []struct{ url, dest string }{
		{ts.url + "/hook", "destination " + ts.addr + " refused: "},
		{"http://localhost:" + port + "/hook", "destination localhost:" + port + " ("},
	} {
		s := mustCompile(t, webhookHook(t, tc.url, "", ""), p)
		// More attempts than the breaker threshold: a refusal is not the destination's
		// fault, so it never opens the breaker.
		for range DefaultBreakerThreshold + 2 {
			res := s.Deliver(context.Background(), ev, nil)
			if res.Delivered || res.Retryable || !errors.Is(res.Err, ErrDestinationRefused) || !errors.Is(res.Err, ErrPermanent) {
				t.Fatalf("%s: result = %+v, want a permanent refusal", tc.url, res)
			}
			msg := res.Err.Error()
			if !strings.Contains(msg, tc.dest) || !strings.Contains(msg, "loopback address (allow it with --allow-destinations ") {
				t.Errorf("%s: err = %q", tc.url, msg)
			}
		}
	}
	select {
	case r := <-ts.reqs:
		t.Fatalf("a refused delivery reached the receiver: %+v", r)
	default:
	}

	// Allowed: delivered, through a literal and a name.
	allow, err := ParseAllowList("127.0.0.0/8,::1")
	if err != nil {
		t.Fatal(err)
	}
	p = newPool(t, PoolConfig{Guard: NewGuard(allow)})
	for _, url := range []string{ts.url + "/hook", "http://localhost:" + port + "/hook"} {
		if res := mustCompile(t, webhookHook(t, url, "", ""), p).Deliver(context.Background(), ev, nil); !res.Delivered {
			t.Errorf("%s with 127.0.0.0/8 allowed: %+v", url, res)
		}
		ts.next(t)
	}
}

func TestGuardDialsTheAllowedAddress(t *testing.T) {
	// receiver.test resolves to a private address first, then to the receiver: the
	// refused address is skipped, and the one dialled is the checked IP literal.
	ts := startServer(t, nil)
	_, port, _ := net.SplitHostPort(ts.addr)
	g := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	fakeResolver(g, map[string][]string{"receiver.test": {"10.0.0.1", "::1", "127.0.0.1"}})
	var dialed atomic.Value
	p := newPool(t, PoolConfig{Guard: g, Dial: func(addr string) (net.Conn, error) {
		dialed.Store(addr)
		return fasthttp.Dial(addr)
	}})
	ev := newEvent(t, "crud", "consumers", consumerData)
	res := mustCompile(t, webhookHook(t, "http://receiver.test:"+port+"/hook", "", ""), p).Deliver(context.Background(), ev, nil)
	if !res.Delivered {
		t.Fatalf("result = %+v", res)
	}
	if got := dialed.Load(); got != ts.addr {
		t.Errorf("dialled %v, want %s", got, ts.addr)
	}
	if r := ts.next(t); r.host != "receiver.test:"+port {
		t.Errorf("Host = %q", r.host)
	}
}

func TestGuardChecksAtDialTime(t *testing.T) {
	// The name looks public when the hook is created and resolves to loopback when the
	// connection is made (DNS rebinding): the dial-time check refuses it.
	ts := startServer(t, nil)
	_, port, _ := net.SplitHostPort(ts.addr)
	g := NewGuard(nil)
	fakeResolver(g, map[string][]string{"rebind.test": {"192.0.2.10"}})
	url := "http://rebind.test:" + port + "/"
	if w := g.CheckURL(url); w != "" {
		t.Fatalf("CheckURL before rebinding: %q", w)
	}
	fakeResolver(g, map[string][]string{"rebind.test": {"127.0.0.1"}})
	p := newPool(t, PoolConfig{Guard: g})
	res := mustCompile(t, webhookHook(t, url, "", ""), p).Deliver(context.Background(), newEvent(t, "crud", "consumers", consumerData), nil)
	if res.Retryable || !errors.Is(res.Err, ErrDestinationRefused) ||
		!strings.Contains(res.Err.Error(), "destination rebind.test:"+port+" (127.0.0.1) refused: loopback address") {
		t.Fatalf("result = %+v", res)
	}
}

func TestGuardCheckURL(t *testing.T) {
	g := NewGuard([]netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")})
	fakeResolver(g, map[string][]string{
		"public.test":  {"192.0.2.1"},
		"mixed.test":   {"10.0.0.1", "192.0.2.1"},
		"private.test": {"10.0.0.1", "192.168.0.1"},
		"allowed.test": {"10.9.1.1"},
	})
	for _, tc := range []struct{ url, want string }{
		{"http://127.0.0.1:8080/x", "destination 127.0.0.1:8080 would be refused: loopback address (allow it with --allow-destinations 127.0.0.1/32)"},
		{"https://[::1]/x", "destination [::1]:443 would be refused: loopback address (allow it with --allow-destinations ::1/128)"},
		{"http://169.254.169.254/latest/meta-data", "destination 169.254.169.254:80 would be refused: link-local address (cloud metadata endpoint) (allow it with --allow-destinations 169.254.169.254/32)"},
		{"http://private.test/", "destination private.test:80 (10.0.0.1) would be refused: private address (allow it with --allow-destinations 10.0.0.1/32)"},
		{"http://public.test/", ""},
		{"http://mixed.test/", ""}, // Dial would use the public address
		{"http://allowed.test/", ""},
		{"http://10.9.3.4:9000/", ""},
		{"http://unknown.test/", ""}, // does not resolve: nothing to say
		{"ftp://127.0.0.1/", ""},
		{"::not a url", ""},
	} {
		if got := g.CheckURL(tc.url); got != tc.want {
			t.Errorf("CheckURL(%q) = %q\nwant %q", tc.url, got, tc.want)
		}
	}
	// localhost through the system resolver (/etc/hosts).
	if got := NewGuard(nil).CheckURL("http://localhost:1/"); !strings.Contains(got, "loopback address") {
		t.Errorf("CheckURL(localhost) = %q", got)
	}
}

func TestGuardTLS(t *testing.T) {
	// The Guard hands fasthttp a plain connection to the checked IP; fasthttp still
	// runs the TLS handshake over it, verifying the certificate when ssl_verify is on.
	cert := selfSignedCert(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	srv := &fasthttp.Server{Handler: func(*fasthttp.RequestCtx) {}, Logger: quietLogger{}}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Shutdown() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	g := NewGuard([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})
	fakeResolver(g, map[string][]string{"other.test": {"127.0.0.1"}})
	p := newPool(t, PoolConfig{Guard: g})
	ev := newEvent(t, "crud", "consumers", consumerData)
	for _, tc := range []struct {
		url       string
		verify    bool
		delivered bool
	}{
		{"https://" + ln.Addr().String() + "/", false, true},
		{"https://other.test:" + port + "/", false, true},
		{"https://other.test:" + port + "/", true, false}, // self-signed: verification still runs
	} {
		res := mustCompile(t, webhookHook(t, tc.url, `,"ssl_verify":`+strconv.FormatBool(tc.verify), ""), p).Deliver(context.Background(), ev, nil)
		if res.Delivered != tc.delivered {
			t.Errorf("%s ssl_verify=%v: %+v", tc.url, tc.verify, res)
		}
	}
}

type quietLogger struct{}

func (quietLogger) Printf(string, ...any) {}

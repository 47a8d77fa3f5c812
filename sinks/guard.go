package sinks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// ErrDestinationRefused is wrapped by the error of a delivery the SSRF Guard refused: the
// destination resolved only to addresses that are not public (loopback, private,
// link-local, …) and that the allow-list does not cover. Such an error also wraps
// ErrPermanent, so the delivery is dead-lettered at once rather than retried.
var ErrDestinationRefused = errors.New("destination refused")

// allowFlag names the command-line flag that feeds ParseAllowList; refusals tell the
// operator to use it.
const allowFlag = "--allow-destinations"

// Guard timeouts.
const (
	// DefaultGuardDialTimeout bounds resolving and connecting when the caller gives no
	// timeout (fasthttp passes the time left before the request's deadline).
	DefaultGuardDialTimeout = fasthttp.DefaultDialTimeout
	// checkURLTimeout bounds the DNS lookup of CheckURL, which runs on the Admin API's
	// request path.
	checkURLTimeout = 2 * time.Second
)

// Guard refuses connections to addresses a webhook must not reach from inside the
// network (SSRF): loopback, private, link-local (with the cloud metadata address
// 169.254.169.254), unspecified, multicast, shared CGNAT, benchmarking (198.18.0.0/15,
// 2001:2::/48), IETF protocol assignments (192.0.0.0/24), reserved, discard-only,
// Teredo (2001::/32) and local-use NAT64 (64:ff9b:1::/48), and the same IPv4 addresses
// written as IPv4-mapped, IPv4-translated, NAT64 (64:ff9b::/96) or 6to4 (2002::/16)
// IPv6 addresses; unless a prefix of the allow-list contains the address.
//
// It checks the addresses actually dialled: Dial resolves the host itself, at every new
// connection, and connects to an allowed IP literal, so neither fasthttp's DNS cache nor a
// DNS answer that changes after the hook was created (DNS rebinding) can bypass it. It
// keeps no DNS cache of its own: lookups happen only when a connection is opened, and
// connections are kept alive. Use it through PoolConfig.Guard.
//
// A Guard is immutable and safe for concurrent use.
type Guard struct {
	allow []netip.Prefix
	// lookup resolves a host name; net.DefaultResolver unless a test replaces it.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// NewGuard returns a Guard that lets through the addresses contained in a prefix of
// allow (see ParseAllowList) besides the public ones. allow may be nil.
func NewGuard(allow []netip.Prefix) *Guard {
	g := &Guard{lookup: lookupNetIP}
	for _, p := range allow {
		if p.IsValid() {
			g.allow = append(g.allow, normalizePrefix(p))
		}
	}
	return g
}

func lookupNetIP(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// ParseAllowList parses the value of --allow-destinations: comma-separated CIDR prefixes
// ("10.0.0.0/8", "fd00::/8") or single IP addresses ("127.0.0.1", a /32 or /128). Blank
// items are skipped; an empty s gives a nil list. IPv4-mapped IPv6 prefixes are turned
// into their IPv4 form, since the Guard compares IPv4-mapped addresses as IPv4.
func ParseAllowList(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		var p netip.Prefix
		if strings.IndexByte(item, '/') >= 0 {
			var err error
			if p, err = netip.ParsePrefix(item); err != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR prefix: %w", allowFlag, item, err)
			}
		} else {
			a, err := netip.ParseAddr(item)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not an IP address or CIDR prefix: %w", allowFlag, item, err)
			}
			if a.Zone() != "" {
				return nil, fmt.Errorf("%s: %q: zoned addresses are not supported", allowFlag, item)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, normalizePrefix(p))
	}
	return out, nil
}

// normalizePrefix masks p and rewrites an IPv4-mapped prefix (::ffff:10.0.0.0/104) as
// IPv4 (10.0.0.0/8).
func normalizePrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// Dial opens a TCP connection to addr ("host:port") if the Guard allows one of the
// addresses host resolves to, within DefaultGuardDialTimeout. See DialTimeout.
func (g *Guard) Dial(addr string) (net.Conn, error) {
	return g.DialTimeout(addr, 0)
}

// DialTimeout resolves the host of addr ("host:port"; an IP literal is not resolved),
// drops the addresses the Guard refuses, and connects to the first allowed one that
// answers, all within timeout (DefaultGuardDialTimeout when timeout <= 0). When every
// address is refused the error wraps ErrDestinationRefused and ErrPermanent and says
// which flag value would allow it. A failed lookup or connection is returned as is
// (retryable). It has the signature of fasthttp.DialFuncWithTimeout.
func (g *Guard) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return g.dial(addr, timeout, nil)
}

// dial is DialTimeout connecting through next (given the checked "ip:port") when next is
// not nil; next then bounds the connection time itself.
func (g *Guard) dial(addr string, timeout time.Duration, next fasthttp.DialFunc) (net.Conn, error) {
	if timeout <= 0 {
		timeout = DefaultGuardDialTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("cannot dial %s: %w", addr, err)
	}
	ips, err := g.resolve(ctx, host)
	if err != nil {
		return nil, err
	}
	var refused, lastErr error
	for _, ip := range ips {
		if reason := g.refusal(ip); reason != "" {
			if refused == nil {
				refused = g.refusedError(addr, host, ip, reason, "refused")
			}
			continue
		}
		target := net.JoinHostPort(ip.String(), port)
		var conn net.Conn
		if next != nil {
			conn, err = next(target)
		} else {
			var d net.Dialer
			conn, err = d.DialContext(ctx, "tcp", target)
		}
		if err == nil {
			return conn, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			break
		}
	}
	if lastErr != nil {
		return nil, lastErr
	}
	if refused == nil { // a resolver answering with no address at all
		return nil, fmt.Errorf("cannot dial %s: no address for %s", addr, host)
	}
	return nil, refused
}

// resolve returns the addresses of host, which may be an IP literal.
func (g *Guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a}, nil
	}
	ips, err := g.lookup(ctx, host)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve %s: %w", host, err)
	}
	return ips, nil
}

// CheckURL reports, for the Admin API to show when a hook is created or updated, whether
// deliveries to rawURL would be refused now: a human-readable warning, or "" when the
// destination is allowed, the URL is not an http(s) URL (Compile reports that) or the
// host does not resolve within a short timeout. The answer can change with DNS; Dial
// checks again at every connection.
func (g *Guard) CheckURL(rawURL string) (warning string) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	addr := fasthttp.AddMissingPort(u.Host, u.Scheme == "https")
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), checkURLTimeout)
	defer cancel()
	ips, err := g.resolve(ctx, host)
	if err != nil || len(ips) == 0 {
		return ""
	}
	for _, ip := range ips {
		if g.refusal(ip) == "" {
			return ""
		}
	}
	return g.refusedError(addr, host, ips[0], g.refusal(ips[0]), "would be refused").Error()
}

// refusal returns why the Guard refuses ip, "" when it is allowed.
func (g *Guard) refusal(ip netip.Addr) string {
	ip = ip.WithZone("").Unmap()
	reason := addrClass(ip)
	if reason == "" {
		return ""
	}
	for _, p := range g.allow {
		if p.Contains(ip) {
			return ""
		}
	}
	return reason
}

// refusedError builds the refusal, naming the flag value that would allow ip.
func (g *Guard) refusedError(addr, host string, ip netip.Addr, reason, verb string) error {
	ip = ip.WithZone("").Unmap()
	dest := addr
	if _, err := netip.ParseAddr(host); err != nil {
		dest = addr + " (" + ip.String() + ")" // a name: say what it resolved to
	}
	return &refusedError{msg: fmt.Sprintf("destination %s %s: %s (allow it with %s %s)",
		dest, verb, reason, allowFlag, netip.PrefixFrom(ip, ip.BitLen()))}
}

// refusedError is the error of a refused destination; it is both ErrDestinationRefused
// and ErrPermanent, with a message of its own.
type refusedError struct{ msg string }

func (e *refusedError) Error() string { return e.msg }

func (e *refusedError) Is(target error) bool {
	return target == ErrDestinationRefused || target == ErrPermanent
}

// Address blocks addrClass checks beyond what netip.Addr's methods know.
var (
	prefixCGNAT      = netip.MustParsePrefix("100.64.0.0/10")
	prefixReserved4  = netip.MustParsePrefix("240.0.0.0/4") // includes 255.255.255.255
	prefixThisNet    = netip.MustParsePrefix("0.0.0.0/8")
	prefixBenchmark4 = netip.MustParsePrefix("198.18.0.0/15") // RFC 2544
	prefixIETF4      = netip.MustParsePrefix("192.0.0.0/24")  // RFC 6890 protocol assignments
	prefixSiteLocal  = netip.MustParsePrefix("fec0::/10")
	prefixNAT64      = netip.MustParsePrefix("64:ff9b::/96")
	prefixNAT64Local = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215, not global
	prefix6to4       = netip.MustParsePrefix("2002::/16")
	prefixTeredo     = netip.MustParsePrefix("2001::/32")   // RFC 4380
	prefixBenchmark6 = netip.MustParsePrefix("2001:2::/48") // RFC 5180
	prefixDiscard6   = netip.MustParsePrefix("100::/64")    // RFC 6666
	prefixV4Compat   = netip.MustParsePrefix("::/96")
	prefixV4Trans    = netip.MustParsePrefix("::ffff:0:0:0/96") // RFC 2765 IPv4-translated
	metadataAddr     = netip.MustParseAddr("169.254.169.254")
)

// addrClass returns what kind of non-public address ip is ("loopback address", …), or ""
// for an address a webhook may reach. ip must be unzoned and unmapped.
func addrClass(ip netip.Addr) string {
	switch {
	case !ip.IsValid():
		return "invalid address"
	case ip.IsUnspecified(), prefixThisNet.Contains(ip):
		return "unspecified address"
	case ip.IsLoopback():
		return "loopback address"
	case ip.IsPrivate():
		return "private address"
	case ip == metadataAddr:
		return "link-local address (cloud metadata endpoint)"
	case ip.IsLinkLocalUnicast():
		return "link-local address"
	case ip.IsMulticast():
		return "multicast address"
	case prefixCGNAT.Contains(ip):
		return "shared address space (CGNAT)"
	case prefixReserved4.Contains(ip):
		return "reserved address"
	case prefixBenchmark4.Contains(ip), prefixBenchmark6.Contains(ip):
		return "benchmarking address"
	case prefixIETF4.Contains(ip):
		return "IETF protocol assignment address"
	case prefixSiteLocal.Contains(ip):
		return "site-local address"
	case prefixDiscard6.Contains(ip):
		return "discard-only address"
	case prefixNAT64Local.Contains(ip):
		// Local-use translation prefix: the operator's own network, and where the IPv4
		// address sits depends on the prefix length it chose.
		return "local-use NAT64 address"
	case prefixNAT64.Contains(ip), prefixV4Trans.Contains(ip):
		// The translator would reach the embedded IPv4 address (last 32 bits).
		form := " (NAT64)"
		if prefixV4Trans.Contains(ip) {
			form = " (IPv4-translated)"
		}
		b := ip.As16()
		if r := addrClass(netip.AddrFrom4([4]byte(b[12:16]))); r != "" {
			return r + form
		}
	case prefix6to4.Contains(ip):
		// 2002:AABB:CCDD::/48 routes to the IPv4 address AA.BB.CC.DD.
		b := ip.As16()
		if r := addrClass(netip.AddrFrom4([4]byte(b[2:6]))); r != "" {
			return r + " (6to4)"
		}
	case prefixTeredo.Contains(ip):
		// A Teredo address tunnels through a server and a client NAT whose IPv4
		// addresses it embeds (the client's obfuscated); no webhook needs one, and
		// either embedded address may be internal.
		return "Teredo address"
	case prefixV4Compat.Contains(ip):
		// Deprecated IPv4-compatible form (::10.0.0.1); :: and ::1 were handled above.
		return "IPv4-compatible IPv6 address"
	}
	return ""
}

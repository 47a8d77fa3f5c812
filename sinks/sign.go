package sinks

import (
	"sync"

	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Kong's X-Kong-Signature is HMAC-SHA1
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"github.com/valyala/fasthttp"
	"hash"
	"strconv"
	"strings"

	"github.com/eventhooks/eventhooks/hooks"
)

// Signature headers, as sent.
const (
	HeaderKongSignature    = "X-Kong-Signature"
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

var (
	headerKongSignature    = []byte(HeaderKongSignature)
	headerWebhookID        = []byte(HeaderWebhookID)
	headerWebhookTimestamp = []byte(HeaderWebhookTimestamp)
	headerWebhookSignature = []byte(HeaderWebhookSignature)
	dot                    = []byte{'.'}
)

// whsecPrefix marks a Standard Webhooks secret: base64 of the key follows.
const whsecPrefix = "whsec_"

// StandardKey returns the Standard Webhooks HMAC key of a hook secret: the base64-decoded
// part after "whsec_", or the secret's raw bytes when it has no such prefix. A whsec_
// secret that does not decode to at least one byte is an error wrapping ErrInvalidConfig.
func StandardKey(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, whsecPrefix)
	if !ok {
		return []byte(secret), nil
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		// Some generators drop the padding.
		key, err = base64.RawStdEncoding.DecodeString(enc)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: secret has the whsec_ prefix but is not base64: %w", ErrInvalidConfig, err)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: whsec_ secret is empty", ErrInvalidConfig)
	}
	return key, nil
}

// SignKong returns Kong's X-Kong-Signature value for body: "sha1=" and the lowercase hex
// HMAC-SHA1 keyed with the secret string as given (whsec_ prefix and all).
func SignKong(secret string, body []byte) string {
	s := signer{kong: hmac.New(sha1.New, []byte(secret))}
	return string(s.appendKong(nil, body))
}

// SignStandard returns the Standard Webhooks webhook-signature value:
// "v1," and the base64 HMAC-SHA256 keyed with key (see StandardKey) over
// msgID "." ts "." body, ts being the webhook-timestamp in unix seconds.
func SignStandard(key []byte, msgID string, ts int64, body []byte) string {
	s := signer{std: hmac.New(sha256.New, key)}
	return string(s.appendStandard(nil, []byte(msgID), strconv.AppendInt(nil, ts, 10), body))
}

// MessageID returns the webhook-id of ev for the hook hookID: "msg_" and 32 hex digits.
// It is stable across retries, restarts and replays of the same event to the same hook,
// and differs between hooks. The event's identity is its envelope id (with its source,
// as CloudEvents ids are unique per source) when it has one, else its record's topic,
// partition and offset, else (no record: admin test calls) its source, event, key and time.
//
// A retry or dead-letter path that re-reads an event from another topic must hand
// Deliver an Event whose ID or Record still names the original.
func MessageID(hookID string, ev *hooks.Event) string {
	var scratch []byte
	return string(AppendMessageID(nil, &scratch, hookID, ev))
}

// messageIDLen is len("msg_") + 32 hex digits.
const messageIDLen = 4 + 32

// AppendMessageID appends ev's webhook-id (see MessageID) to dst, using *scratch for
// the identity bytes.
func AppendMessageID(dst []byte, scratch *[]byte, hookID string, ev *hooks.Event) []byte {
	b := append((*scratch)[:0], hookID...)
	b = append(b, 0)
	switch {
	case ev == nil:
		b = append(b, 'n')
	case len(ev.ID) > 0:
		b = append(b, 'i', 0)
		b = append(b, ev.Source...)
		b = append(b, 0)
		b = append(b, ev.ID...)
	case ev.Record != nil:
		b = append(b, 'r', 0)
		b = append(b, ev.Record.Topic...)
		b = append(b, 0)
		b = binary.BigEndian.AppendUint32(b, uint32(ev.Record.Partition)) //nolint:gosec // bit pattern
		b = binary.BigEndian.AppendUint64(b, uint64(ev.Record.Offset))    //nolint:gosec // bit pattern
	default:
		b = append(b, 'e', 0)
		b = append(b, ev.Source...)
		b = append(b, 0)
		b = append(b, ev.Event...)
		b = append(b, 0)
		b = append(b, ev.Key...)
		b = append(b, 0)
		b = binary.BigEndian.AppendUint64(b, uint64(ev.Time.UnixNano())) //nolint:gosec // bit pattern
	}
	*scratch = b
	sum := sha256.Sum256(b)
	dst = append(dst, "msg_"...)
	return hex.AppendEncode(dst, sum[:16])
}

// signing is a sink's compiled secrets: a pool of signers, or nothing for a hook without a
// secret. Its zero value signs nothing.
type signing struct {
	signers *sync.Pool // *signer; nil: unsigned
}

// previousKey is the Standard Webhooks key of a previous secret and when it stops signing.
type previousKey struct {
	key       []byte
	expiresAt int64 // unix seconds
}

// setSecret prepares signing with secret, and with the previous secrets of a rotation
// (hooks.Hook.Secrets) until each expires; nil or "" leaves the sink unsigned. The keys
// are decoded once per hook version; a request only compares its time with each expiry.
func (sg *signing) setSecret(secret *string, secrets []hooks.Secret) error {
	if secret == nil || *secret == "" {
		return nil
	}
	key, err := StandardKey(*secret)
	if err != nil {
		return fmt.Errorf("config.secret: %w", err)
	}
	var prev []previousKey
	for _, p := range secrets {
		if p.ExpiresAt == nil || p.Value == "" {
			continue // the current secret, config.secret
		}
		k, err := StandardKey(p.Value)
		if err != nil {
			return fmt.Errorf("secrets (previous secret %s): %w", p.ID, err)
		}
		prev = append(prev, previousKey{key: k, expiresAt: *p.ExpiresAt})
	}
	sg.signers = &sync.Pool{New: func() any { return newSigner(*secret, key, prev...) }}
	return nil
}

// signed reports whether the sink signs its requests.
func (sg *signing) signed() bool { return sg.signers != nil }

// signInto sets the signature headers of one request of ev on req (index -1: the event's
// only request; see signer.signRequest for index and hasBody).
func (sg *signing) signInto(req *fasthttp.Request, hookID string, ev *hooks.Event, index int, unix int64, body []byte, hasBody bool) {
	if sg.signers == nil {
		return
	}
	s := sg.signers.Get().(*signer)
	setSignatures(req, s.signRequest(hookID, ev, index, unix, body, hasBody))
	sg.signers.Put(s) // the header values were copied into req
}

// signer holds the HMAC states of one sink; pooled per sink because hash states are not
// safe for concurrent use. Either mac may be nil when unused.
type signer struct {
	kong hash.Hash // HMAC-SHA1 keyed with the secret string
	std  hash.Hash // HMAC-SHA256 keyed with StandardKey(secret)
	prev []prevMAC // previous secrets of a rotation, newest first
	sum  []byte    // MAC output scratch
	id   []byte    // MessageID identity scratch
	hdr  []byte    // header values scratch
}

// prevMAC is the Standard Webhooks HMAC of a previous secret and its expiry.
type prevMAC struct {
	std       hash.Hash
	expiresAt int64 // unix seconds: signs requests of earlier seconds only
}

func newSigner(secret string, stdKey []byte, prev ...previousKey) *signer {
	s := &signer{
		kong: hmac.New(sha1.New, []byte(secret)),
		std:  hmac.New(sha256.New, stdKey),
		sum:  make([]byte, 0, sha256.Size),
		hdr:  make([]byte, 0, 256+64*len(prev)),
	}
	for _, p := range prev {
		s.prev = append(s.prev, prevMAC{std: hmac.New(sha256.New, p.key), expiresAt: p.expiresAt})
	}
	return s
}

// appendKong appends "sha1=<hex HMAC-SHA1(body)>".
func (s *signer) appendKong(dst, body []byte) []byte {
	s.kong.Reset()
	s.kong.Write(body)
	s.sum = s.kong.Sum(s.sum[:0])
	dst = append(dst, "sha1="...)
	return hex.AppendEncode(dst, s.sum)
}

// appendStandard appends "v1,<base64 HMAC-SHA256(id.ts.body)>" keyed with the current
// secret.
func (s *signer) appendStandard(dst, id, ts, body []byte) []byte {
	return s.appendStandardWith(s.std, dst, id, ts, body)
}

// appendStandardWith is appendStandard keyed by mac.
func (s *signer) appendStandardWith(mac hash.Hash, dst, id, ts, body []byte) []byte {
	mac.Reset()
	mac.Write(id)
	mac.Write(dot)
	mac.Write(ts)
	mac.Write(dot)
	mac.Write(body)
	s.sum = mac.Sum(s.sum[:0])
	dst = append(dst, "v1,"...)
	return base64.StdEncoding.AppendEncode(dst, s.sum)
}

// appendSignatures appends the webhook-signature value: the current secret's signature,
// then, space separated as Standard Webhooks allows, one per previous secret still
// signing at unix seconds now.
func (s *signer) appendSignatures(dst, id, ts, body []byte, now int64) []byte {
	dst = s.appendStandard(dst, id, ts, body)
	for i := range s.prev {
		if now < s.prev[i].expiresAt {
			dst = append(dst, ' ')
			dst = s.appendStandardWith(s.prev[i].std, dst, id, ts, body)
		}
	}
	return dst
}

// signatures are the four signature header values of one request, pointing into the
// signer's scratch: valid until the signer's next use. kong and std are nil for a
// request without a body (see signBodiless).
type signatures struct {
	id, ts, kong, std []byte
}

// signRequest computes every signature header of one request made for ev; hookID and ev
// give the webhook-id, unix is the attempt's time in seconds. Index -1 is the event's only
// request; for one of several (a lambda returning an array), index >= 0 appends
// "_<index>" to the webhook-id, so each request of the array has its own stable id. With hasBody false (GET, HEAD: the data is in the URL,
// which neither signature covers) only webhook-id and webhook-timestamp are computed:
// Kong sends no X-Kong-Signature without a body, and a webhook-signature over an empty
// body would let anyone who saw one request replay it with another query string.
func (s *signer) signRequest(hookID string, ev *hooks.Event, index int, unix int64, body []byte, hasBody bool) signatures {
	b := s.hdr[:0]
	b = AppendMessageID(b, &s.id, hookID, ev)
	if index >= 0 {
		b = append(b, '_')
		b = strconv.AppendInt(b, int64(index), 10)
	}
	idEnd := len(b)
	b = strconv.AppendInt(b, unix, 10)
	tsEnd := len(b)
	if !hasBody {
		s.hdr = b
		return signatures{id: b[:idEnd], ts: b[idEnd:tsEnd]}
	}
	b = s.appendKong(b, body)
	kongEnd := len(b)
	b = s.appendSignatures(b, b[:idEnd], b[idEnd:tsEnd], body, unix)
	s.hdr = b
	return signatures{id: b[:idEnd], ts: b[idEnd:tsEnd], kong: b[tsEnd:kongEnd], std: b[kongEnd:]}
}

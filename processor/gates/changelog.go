package gates

import (
	"errors"
	"strconv"

	"github.com/valyala/fastjson"

	"github.com/eventhooks/eventhooks/hooks"
)

// The changelog.
//
// Record key:  hookID 0x00 scope [fp] 0x00 entityKey
//
//	scope      'k' (per entity key) or 'h' (per hook; entityKey is then empty)
//	fp         16 lower-case hex digits, only in mode both (each fingerprint has its window)
//
// Hook ids are UUIDs (no NUL byte); the entity key is last and taken as is, so any bytes
// are fine in it, NULs included, and a record key alone (a tombstone has no value) says
// where the entry goes: which lane (EntityKeyOf) or the shared set (hook scope).
//
// Value (JSON, to be readable with any Kafka tool):
//
//	{"m":"snooze"|"change"|"both","t":<unix ms of the firing>,"w":<window ms>,"fp":"<16 hex>"}
//
// fp is a string because JSON tools lose integers beyond 2^53.

// Changelog decoding errors.
var (
	errBadStateKey   = errors.New("malformed gate state record key")
	errBadStateValue = errors.New("malformed gate state record value")
)

const (
	stateScopeKey  = 'k'
	stateScopeHook = 'h'
	// maxStateValueLen bounds encodeState's output.
	maxStateValueLen = len(`{"m":"snooze","t":-9223372036854775808,"w":-9223372036854775808,"fp":"0123456789abcdef"}`)
)

// gateState is the persisted part of an entry.
type gateState struct {
	mode   gateMode
	fired  int64 // unix ms
	window int64 // ms; 0 for on_change alone
	fp     uint64
}

// stateKey is a parsed record key; the byte slices point into it.
type stateKey struct {
	hookID    []byte
	hookScope bool
	hasFP     bool
	fp        uint64
	entityKey []byte
}

// appendStateKey appends the record key of the entry for (hook, key[, fp]) under spec.
func appendStateKey(dst []byte, spec *Spec, hookID string, key []byte, fp uint64) []byte {
	dst = append(dst, hookID...)
	dst = append(dst, 0)
	if spec.scope == hooks.ScopeHook {
		dst = append(dst, stateScopeHook)
	} else {
		dst = append(dst, stateScopeKey)
	}
	if spec.mode == gateBoth {
		dst = appendHex64(dst, fp)
	}
	dst = append(dst, 0)
	if spec.scope != hooks.ScopeHook {
		dst = append(dst, key...)
	}
	return dst
}

// parseStateKey parses a record key written by appendStateKey.
func parseStateKey(rk []byte) (k stateKey, ok bool) {
	i := 0
	for i < len(rk) && rk[i] != 0 {
		i++
	}
	if i == 0 || len(rk) < i+3 {
		return k, false
	}
	k.hookID = rk[:i]
	switch rk[i+1] {
	case stateScopeKey:
	case stateScopeHook:
		k.hookScope = true
	default:
		return k, false
	}
	rest := rk[i+2:]
	if rest[0] != 0 {
		if len(rest) < 17 || rest[16] != 0 {
			return k, false
		}
		if k.fp, ok = parseHex64(rest[:16]); !ok {
			return k, false
		}
		k.hasFP = true
		rest = rest[16:]
	}
	k.entityKey = rest[1:]
	if k.hookScope && len(k.entityKey) > 0 {
		return k, false
	}
	return k, true
}

// EntityKeyOf returns the entity key of a state record key, so that the partition worker
// can hand a restored record to the lane owning that key; nil when the record key is
// malformed. Hook-scoped records (IsHookScoped) go to the processor's Shared instead.
func EntityKeyOf(recordKey []byte) []byte {
	k, ok := parseStateKey(recordKey)
	if !ok {
		return nil
	}
	if k.entityKey == nil {
		return []byte{}
	}
	return k.entityKey
}

// IsHookScoped reports whether a state record key belongs to a hook-scoped entry.
func IsHookScoped(recordKey []byte) bool {
	k, ok := parseStateKey(recordKey)
	return ok && k.hookScope
}

// encodeState appends the JSON value of st to dst.
func encodeState(dst []byte, st gateState) []byte {
	dst = append(dst, `{"m":"`...)
	dst = append(dst, st.mode.String()...)
	dst = append(dst, `","t":`...)
	dst = strconv.AppendInt(dst, st.fired, 10)
	dst = append(dst, `,"w":`...)
	dst = strconv.AppendInt(dst, st.window, 10)
	dst = append(dst, `,"fp":"`...)
	dst = appendHex64(dst, st.fp)
	return append(dst, `"}`...)
}

// stateParsers parse changelog values during restore.
var stateParsers fastjson.ParserPool

// decodeState parses a value written by encodeState.
func decodeState(value []byte) (gateState, error) {
	p := stateParsers.Get()
	defer stateParsers.Put(p)
	v, err := p.ParseBytes(value)
	if err != nil {
		return gateState{}, errBadStateValue
	}
	var st gateState
	var ok bool
	if st.mode, ok = parseGateMode(v.GetStringBytes("m")); !ok {
		return gateState{}, errBadStateValue
	}
	t, w := v.Get("t"), v.Get("w")
	if t == nil || w == nil {
		return gateState{}, errBadStateValue
	}
	if st.fired, err = t.Int64(); err != nil {
		return gateState{}, errBadStateValue
	}
	if st.window, err = w.Int64(); err != nil || st.window < 0 || (st.window == 0) != (st.mode == gateChangeOnly) {
		return gateState{}, errBadStateValue
	}
	if st.fp, ok = parseHex64(v.GetStringBytes("fp")); !ok {
		return gateState{}, errBadStateValue
	}
	return st, nil
}

// hexDigits are the digits of appendHex64.
const hexDigits = "0123456789abcdef"

// appendHex64 appends x as 16 lower-case hex digits.
func appendHex64(dst []byte, x uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hexDigits[(x>>uint(shift))&0xf])
	}
	return dst
}

// parseHex64 parses exactly 16 lower-case hex digits.
func parseHex64(b []byte) (uint64, bool) {
	if len(b) != 16 {
		return 0, false
	}
	var x uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			x = x<<4 | uint64(c-'0')
		case 'a' <= c && c <= 'f':
			x = x<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return x, true
}

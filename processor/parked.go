package processor

import (
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers on retry and DLQ records. They follow the original record's headers, in this
// order, so tools can filter without parsing anything and the original is intact.
const (
	headerHookID   = "eh-hook-id"
	headerReason   = "eh-reason"
	headerDelivery = "eh-delivery" // the delivery's history, JSON (see appendJSON)
)

// parkedEntry is a retry-topic or DLQ record: the original event record (key, value and
// headers as they were), the hook it is for, and the delivery history. The original
// topic, partition and offset are kept so the webhook-id stays the same when the entry
// is retried or replayed.
type parkedEntry struct {
	HookID         string
	Reason         string
	Attempts       int
	LastStatus     int
	LastError      string
	FirstAttemptMs int64
	LastAttemptMs  int64
	DueMs          int64
	Topic          string
	Partition      int32
	Offset         int64
	TimestampMs    int64
	Key            []byte
	Value          []byte
	Headers        []kgo.RecordHeader // never appended to in place: shared with the record
	// Blocking says which count of its partition's blockSet the entry holds: an ordering
	// "key" delivery parked while its (hook, key) is blocked (see blocked.go).
	Blocking blockMark
	// Marks, on an entry for several hooks (HookID is then their ids joined by commas),
	// holds each hook's blocking mark as a digit, in the same order: the deliveries of one
	// event parked behind blocked keys of several hooks share one record.
	Marks string
	// Cursor, on a marker of a deferred hook (cursor.go), is its kind; Offset is then the
	// first offset the deferral covers and CursorAt where the marker says it got to.
	Cursor   markerKind
	CursorAt int64
}

// hookSep separates the hook ids of an entry parked for several hooks (ids are UUIDs).
const hookSep = ","

// each calls fn with the entry of each hook it is for: itself, or, for an entry of
// several hooks, a copy per hook with its own id and blocking mark.
func (e *parkedEntry) each(fn func(*parkedEntry)) {
	if e.Marks == "" {
		fn(e)
		return
	}
	ids := strings.Split(e.HookID, hookSep)
	for i, id := range ids {
		one := *e
		one.HookID, one.Marks, one.Blocking = id, "", blockNone
		if i < len(e.Marks) && blockMark(e.Marks[i]-'0') <= blockByHook {
			one.Blocking = blockMark(e.Marks[i] - '0')
		}
		fn(&one)
	}
}

func newEntry(r *kgo.Record, hookID string, now time.Time) *parkedEntry {
	return &parkedEntry{
		HookID: hookID, FirstAttemptMs: now.UnixMilli(), LastAttemptMs: now.UnixMilli(),
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, TimestampMs: r.Timestamp.UnixMilli(),
		Key: r.Key, Value: r.Value, Headers: r.Headers,
	}
}

// fail records one failed attempt.
func (e *parkedEntry) fail(status int, err error, reason string) *parkedEntry {
	e.Attempts++
	e.LastStatus = status
	if err != nil {
		e.LastError = err.Error()
	}
	if reason != "" {
		e.Reason = reason
	}
	return e
}

// original rebuilds the event record as it was first consumed.
func (e *parkedEntry) original() *kgo.Record {
	return &kgo.Record{
		Topic: e.Topic, Partition: e.Partition, Offset: e.Offset, Key: e.Key, Value: e.Value,
		Headers: e.Headers, Timestamp: time.UnixMilli(e.TimestampMs),
	}
}

// record encodes the entry as a retry-topic or DLQ record, keyed by the entity key: the
// original key, value and headers, then ours. Nothing of the event is copied or
// re-encoded, so parking costs the same whatever the event's size.
func (e *parkedEntry) record(topic string) *parkedRecord {
	pr := parkedRecords.Get().(*parkedRecord)
	hs := pr.headers[:0]
	if n := len(e.Headers) + 3; n > len(pr.headers) {
		hs = make([]kgo.RecordHeader, 0, n)
	}
	b := append(pr.values[:0], e.HookID...)
	id := len(b)
	b = append(b, e.Reason...)
	reason := len(b)
	b = e.appendJSON(b)
	hs = append(hs, e.Headers...)
	hs = append(hs,
		kgo.RecordHeader{Key: headerHookID, Value: b[:id:id]},
		kgo.RecordHeader{Key: headerReason, Value: b[id:reason:reason]},
		kgo.RecordHeader{Key: headerDelivery, Value: b[reason:]})
	// At the partition of the event: the retry topic is co-partitioned with the events
	// (the DLQ producer's partitioner ignores it).
	pr.rec = kgo.Record{Topic: topic, Partition: e.Partition, Key: e.Key, Value: e.Value, Headers: hs}
	return pr
}

// parkedRecord holds a parked record with room for its headers' values, so that parking
// (every event of a hook whose endpoint is down) allocates nothing in the steady state:
// records come from a pool and go back once produced.
type parkedRecord struct {
	rec     kgo.Record
	headers [5]kgo.RecordHeader // ours and up to two of the original's
	values  [512]byte           // hook id(s), reason and delivery history
}

var parkedRecords = sync.Pool{New: func() any { return new(parkedRecord) }}

// release returns pr to the pool: its record was acknowledged or given up on, and the
// producer is done with it (kgo touches a record no more once its promise ran).
func (pr *parkedRecord) release() {
	*pr = parkedRecord{}
	parkedRecords.Put(pr)
}

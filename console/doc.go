// Package console is the web console served at /ui on the Admin API's listener: the
// hooks with their recent throughput, success rate and breaker state, one hook's live
// deliveries, a delivery's attempts, hook create/edit with a test panel, and the dead
// letters with a re-drive button. Pages are server-rendered html/templates with a little
// vanilla JavaScript; every asset is embedded, nothing is loaded from elsewhere.
//
// It reads the hook store's snapshots and the delivery log, and changes nothing itself:
// every write goes through the Admin API's own JSON routes (/ui/api/… is the Admin API
// behind the console's session), so the API's validation, auth and counters apply.
// It must not consume Kafka or hold anything the processor waits on.
package console

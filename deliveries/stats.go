package deliveries

// Windows of Stats.
const (
	// rateWindowMs is the window of Stats.PerSecond.
	rateWindowMs = 60_000
	// BucketMs is the width of a Stats bucket, and Buckets how many there are.
	BucketMs = 60_000
	Buckets  = 30
)

// Stats sums up a hook's recent attempts for the console.
type Stats struct {
	// PerSecond is attempts per second over the last minute.
	PerSecond float64
	// Attempts, Delivered, Failed and Dead count the attempts of the last Buckets×BucketMs.
	Attempts, Delivered, Failed, Dead int
	// Last is the newest attempt and LastFailure the newest that was not delivered.
	Last, LastFailure *Attempt
	// Series is one bucket per BucketMs, oldest first, the last one holding now.
	Series []Bucket
}

// SuccessRate is Delivered/Attempts, and false when there were no attempts.
func (s Stats) SuccessRate() (float64, bool) {
	if s.Attempts == 0 {
		return 0, false
	}
	return float64(s.Delivered) / float64(s.Attempts), true
}

// Bucket is the attempts of one BucketMs.
type Bucket struct {
	StartMs  int64
	Attempts int
	Failures int
	// MeanMs and MaxMs are the attempts' durations.
	MeanMs, MaxMs float64
}

// Stats returns hook's figures as of nowMs.
func (x *Index) Stats(hookID string, nowMs int64) Stats {
	first := (nowMs/BucketMs - Buckets + 1) * BucketMs
	st := Stats{Series: make([]Bucket, Buckets)}
	for i := range st.Series {
		st.Series[i].StartMs = first + int64(i)*BucketMs
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	h := x.hooks[hookID]
	if h == nil {
		return st
	}
	recent := 0
	for i := len(h.seqs) - 1; i >= 0; i-- {
		a, ok := x.all.get(h.seqs[i])
		if !ok {
			continue
		}
		st.note(a)
		if a.AtMs < first {
			if st.LastFailure != nil {
				break
			}
			continue // still looking for the last failure
		}
		if a.AtMs > nowMs-rateWindowMs {
			recent++
		}
		st.count(a, &st.Series[min(int((a.AtMs-first)/BucketMs), Buckets-1)])
	}
	st.PerSecond = float64(recent) / (rateWindowMs / 1000)
	for i := range st.Series {
		if b := &st.Series[i]; b.Attempts > 0 {
			b.MeanMs /= float64(b.Attempts)
		}
	}
	return st
}

// note keeps a, met newest first, as Last and LastFailure when they are not set yet.
func (s *Stats) note(a *Attempt) {
	if s.Last == nil {
		c := *a
		s.Last = &c
	}
	if s.LastFailure == nil && a.Outcome != OutcomeDelivered {
		c := *a
		s.LastFailure = &c
	}
}

// count adds a to the totals and to b (MeanMs holds the sum until Stats divides it).
func (s *Stats) count(a *Attempt, b *Bucket) {
	s.Attempts++
	b.Attempts++
	switch a.Outcome {
	case OutcomeDelivered:
		s.Delivered++
	case OutcomeDeadLettered:
		s.Dead++
		b.Failures++
	default:
		s.Failed++
		b.Failures++
	}
	b.MeanMs += a.DurationMs
	b.MaxMs = max(b.MaxMs, a.DurationMs)
}

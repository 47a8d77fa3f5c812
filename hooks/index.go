package hooks

// Index maps (source, event) to the values subscribed to it, built once per change of the
// hook set so that Match is one or two map lookups and allocates nothing. T is whatever the
// caller compiled a hook into. An Index is immutable once built.
type Index[T any] struct {
	sources map[string]*sourceEntry[T]
	size    int
}

type sourceEntry[T any] struct {
	// all holds the hooks on every event of the source.
	all []T
	// byEvent holds, per event, the hooks on that event, its parent event (crud's
	// "consumers" for "consumers:create") and every event of the source.
	byEvent map[string][]T
}

// IndexEntry is one subscription handed to BuildIndex.
type IndexEntry[T any] struct {
	Source string
	// Event is "" for every event of the source.
	Event string
	Value T
}

// BuildIndex builds an index from entries, keeping their order within each match list.
func BuildIndex[T any](entries []IndexEntry[T]) *Index[T] {
	ix := &Index[T]{sources: map[string]*sourceEntry[T]{}, size: len(entries)}
	for _, e := range entries {
		se := ix.sources[e.Source]
		if se == nil {
			se = &sourceEntry[T]{byEvent: map[string][]T{}}
			ix.sources[e.Source] = se
		}
		if e.Event == "" {
			se.all = append(se.all, e.Value)
		} else {
			se.byEvent[e.Event] = nil // filled below, in entry order
		}
	}
	for src, se := range ix.sources {
		for ev := range se.byEvent {
			parent := ParentEvent(src, ev)
			var list []T
			for _, e := range entries {
				if e.Source == src && (e.Event == "" || e.Event == ev || (parent != "" && e.Event == parent)) {
					list = append(list, e.Value)
				}
			}
			se.byEvent[ev] = list
		}
	}
	return ix
}

// Match returns what is subscribed to source/event. The slice is shared: do not modify it.
func (ix *Index[T]) Match(source, event string) []T {
	se := ix.sources[source]
	if se == nil {
		return nil
	}
	if list, ok := se.byEvent[event]; ok {
		return list
	}
	if parent := ParentEvent(source, event); parent != "" {
		if list, ok := se.byEvent[parent]; ok {
			return list
		}
	}
	return se.all
}

// Len returns the number of entries the index was built from.
func (ix *Index[T]) Len() int { return ix.size }

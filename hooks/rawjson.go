package hooks

// Scanning valid JSON for the raw bytes of object members (fastjson parses into values but
// does not expose their source spans), for building envelopes from producers' bytes.
// Every function here assumes its input passed fastjson.ValidateBytes.

// objectMembers splits a valid JSON text into the members of its top-level object; ok
// is false when the text is not an object. b must have passed fastjson.ValidateBytes.
func objectMembers(b []byte) (ms []member, ok bool) {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipWS(b, i+1)
	if b[i] == '}' {
		return nil, true
	}
	for {
		end := skipString(b, i)
		name := b[i:end]
		i = skipWS(b, end) // at ':'
		i = skipWS(b, i+1)
		end = skipValue(b, i)
		ms = append(ms, member{name: name, value: b[i:end]})
		i = skipWS(b, end)
		if b[i] == '}' {
			return ms, true
		}
		i = skipWS(b, i+1) // past ','
	}
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"'.
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}

package scripting

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// The JSON scan: eddy.json's fields come from one pass over the record
// that builds nothing but the spans of the fields parse names. It accepts
// exactly the grammar fastjson.Parse accepts, or less: whatever it is not
// sure of (an escaped key or wanted string, a wanted object or array, a
// syntax error, NaN, deep nesting) it leaves to fastjson, which then gives
// the record its value or its error as before. So a record decodes to the
// same fields, or fails with the same message, by either path; the scan
// only skips building a tree of the fields no one reads.

// jsonKind is what scanJSON found for a wanted field.
type jsonKind uint8

const (
	jsonMissing jsonKind = iota
	jsonNull
	jsonTrue
	jsonFalse
	jsonString // raw holds the string's bytes, without quotes (no escapes)
	jsonNumber // raw holds the number's text, for fastfloat.ParseBestEffort
)

// jsonSpan is one wanted field of a scanned record.
type jsonSpan struct {
	kind jsonKind
	raw  []byte
}

// scanMaxDepth bounds the nesting the scan follows; deeper records go to
// fastjson (its own bound is 300).
const scanMaxDepth = 64

// scanJSON reads raw as one JSON object and sets out[i] to the first
// top-level field named names[i] (jsonMissing when there is none). ok is
// false when the record must go to fastjson instead.
func scanJSON(raw []byte, names []string, out []jsonSpan) (ok bool) {
	ok, _ = scanJSONText(raw, names, out, nil)
	return ok
}

// scanJSONText is scanJSON that also says whether every string of raw
// (key or value, at any depth) is printable ASCII: then none can hold a
// byte checkJSONStrings refuses, and its second pass over the record is
// not needed. (Outside strings a record the scan takes has nothing but
// ASCII punctuation, digits, letters of literals and whitespace.) shape,
// when not nil, is the top-level keys of the records scanned before
// (jsonShape); the scan checks raw's keys against them and keeps raw's.
func scanJSONText(raw []byte, names []string, out []jsonSpan, shape *jsonShape) (ok, plain bool) {
	for i := range out {
		out[i] = jsonSpan{}
	}
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return false, false
	}
	odd := false
	i, ok = scanObject(raw, i+1, 1, names, out, shape, &odd)
	if !ok {
		return false, false
	}
	return skipSpace(raw, i) == len(raw), !odd
}

// skipSpace is the index of the first byte from i that is not JSON
// whitespace (all four are at most ' ': one comparison passes any other).
func skipSpace(s []byte, i int) int {
	for i < len(s) && s[i] <= ' ' && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r') {
		i++
	}
	return i
}

// scanObject scans an object's members from i (just after its '{') and
// returns the index after its '}'. names, out and shape are only for the
// top level (nil below it).
func scanObject(s []byte, i, depth int, names []string, out []jsonSpan, shape *jsonShape, odd *bool) (int, bool) {
	i = skipSpace(s, i)
	if i < len(s) && s[i] == '}' {
		return i + 1, true
	}
	left := len(names) // wanted fields not found yet: none once all are
	for member := 0; ; member++ {
		i = skipSpace(s, i)
		if i >= len(s) || s[i] != '"' {
			return i, false
		}
		next, want, ok := scanKey(s, i+1, member, names, shape, odd)
		if !ok {
			return i, false
		}
		if want >= 0 && (left == 0 || out[want].kind != jsonMissing) {
			want = -1 // the first occurrence counts, as with fastjson's Get
		}
		i = skipSpace(s, next)
		if i >= len(s) || s[i] != ':' {
			return i, false
		}
		i = skipSpace(s, i+1)
		var span jsonSpan
		if i, span, ok = scanValue(s, i, depth, want >= 0, odd); !ok {
			return i, false
		}
		if want >= 0 {
			out[want] = span
			left--
		}
		i = skipSpace(s, i)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case ',':
			i++
		case '}':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// scanKey scans the key of an object's member whose text starts at
// kstart: the index after the key's closing quote, and at the top level
// (names not nil) the index of the name it is (-1 for none). The top
// level's keys are checked against shape's first, and learnt into it when
// they differ. Not ok for a key the scan leaves to fastjson: an escaped
// one at the top level, which fastjson compares unescaped.
func scanKey(s []byte, kstart, member int, names []string, shape *jsonShape, odd *bool) (next, want int, ok bool) {
	if names == nil {
		kend, _, ok := scanString(s, kstart, odd)
		return kend + 1, -1, ok
	}
	if next, want, ok = shape.match(s, kstart, member); ok {
		return next, want, true
	}
	keyOdd := false
	kend, esc, ok := scanString(s, kstart, &keyOdd)
	if !ok || esc {
		return 0, -1, false
	}
	*odd = *odd || keyOdd
	key := s[kstart:kend]
	want = nameIndex(names, key)
	shape.learn(member, key, want, !keyOdd)
	return kend + 1, want, true
}

// nameIndex is the index of key in names, -1 for none.
func nameIndex(names []string, key []byte) int {
	for j, n := range names {
		if len(n) == len(key) && n == unsafe.String(unsafe.SliceData(key), len(key)) {
			return j
		}
	}
	return -1
}

// jsonShape is the top-level keys of the last records one runtime
// scanned, in order, each with the index of its name in the scan's names.
// Line-delimited JSON mostly repeats its keys from record to record, so a
// key is checked against the one at its place before (a comparison of a
// word or two) instead of scanned and looked up. Only keys of printable
// ASCII without a backslash are kept: a record's key equal to one of them
// is such a key too, and the scan would have found the same end and the
// same name for it.
type jsonShape struct {
	keys []shapeKey
	text []byte // the keys' bytes with their closing quotes, one after the other
}

type shapeKey struct {
	start, n int // the key and its closing quote: text[start:start+n]
	want     int
	// head is the first 8 bytes of the key and quote (fewer for a
	// shorter key, the rest of head and mask zero); tail their last 8
	// when there are 9 to 16
	head, mask, tail uint64
}

// match checks the key at kstart against the shape's key number member:
// ok when s holds that key there, followed by its closing quote; next is
// the index after the quote.
func (sh *jsonShape) match(s []byte, kstart, member int) (next, want int, ok bool) {
	if sh == nil || member >= len(sh.keys) {
		return 0, -1, false
	}
	k := &sh.keys[member]
	next = kstart + k.n
	if len(s)-kstart < max(k.n, 8) || binary.LittleEndian.Uint64(s[kstart:])&k.mask != k.head {
		return 0, -1, false
	}
	switch {
	case k.n <= 8:
	case k.n <= 16: // the last 8 bytes, overlapping the first
		if binary.LittleEndian.Uint64(s[next-8:]) != k.tail {
			return 0, -1, false
		}
	default:
		if string(s[kstart:next]) != string(sh.text[k.start:k.start+k.n]) {
			return 0, -1, false
		}
	}
	return next, k.want, true
}

// learn makes key (its name's index want) the shape's key number member,
// forgetting those after it; a key that is not printable ASCII (clean
// false) is not kept, nor any after it in this record.
func (sh *jsonShape) learn(member int, key []byte, want int, clean bool) {
	if sh == nil || member > len(sh.keys) {
		return
	}
	if member < len(sh.keys) {
		sh.text = sh.text[:sh.keys[member].start]
		sh.keys = sh.keys[:member]
	}
	if !clean {
		return
	}
	start := len(sh.text)
	sh.text = append(append(sh.text, key...), '"')
	k := shapeKey{start: start, n: len(sh.text) - start, want: want}
	for j, c := range sh.text[start:min(start+8, len(sh.text))] {
		k.head |= uint64(c) << (8 * j)
		k.mask |= 0xff << (8 * j)
	}
	if k.n > 8 {
		k.tail = binary.LittleEndian.Uint64(sh.text[len(sh.text)-8:])
	}
	sh.keys = append(sh.keys, k)
}

// scanValue scans the value at i. For a wanted value it returns its span;
// a wanted object, array or escaped string is left to fastjson (not ok).
func scanValue(s []byte, i, depth int, want bool, odd *bool) (int, jsonSpan, bool) {
	if i >= len(s) {
		return i, jsonSpan{}, false
	}
	c := s[i]
	switch c {
	case '"':
		end, esc, ok := scanString(s, i+1, odd)
		if !ok || esc && want {
			return i, jsonSpan{}, false
		}
		return end + 1, jsonSpan{kind: jsonString, raw: s[i+1 : end : end]}, true
	case '{', '[':
		if want || depth >= scanMaxDepth {
			return i, jsonSpan{}, false
		}
		if c == '{' {
			end, ok := scanObject(s, i+1, depth+1, nil, nil, nil, odd)
			return end, jsonSpan{}, ok
		}
		end, ok := scanArray(s, i+1, depth+1, odd)
		return end, jsonSpan{}, ok
	case 't':
		return literal(s, i, "true", jsonTrue)
	case 'f':
		return literal(s, i, "false", jsonFalse)
	case 'n':
		return literal(s, i, "null", jsonNull)
	}
	// A number, as fastjson delimits one: a run of digits, signs, points
	// and exponents (it parses the text at GetFloat64). NaN and Inf are
	// left to fastjson.
	j := i
	for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == '-' || s[j] == 'e' || s[j] == 'E' || s[j] == '+') {
		j++
	}
	if j == i || j == i+1 && (c == '-' || c == '+') { // fastjson looks for NaN or Inf after a lone sign
		return i, jsonSpan{}, false
	}
	return j, jsonSpan{kind: jsonNumber, raw: s[i:j:j]}, true
}

func literal(s []byte, i int, word string, kind jsonKind) (int, jsonSpan, bool) {
	if len(s)-i < len(word) || string(s[i:i+len(word)]) != word {
		return i, jsonSpan{}, false
	}
	return i + len(word), jsonSpan{kind: kind}, true
}

func scanArray(s []byte, i, depth int, odd *bool) (int, bool) {
	i = skipSpace(s, i)
	if i < len(s) && s[i] == ']' {
		return i + 1, true
	}
	for {
		i = skipSpace(s, i)
		var ok bool
		if i, _, ok = scanValue(s, i, depth, false, odd); !ok {
			return i, false
		}
		i = skipSpace(s, i)
		if i >= len(s) {
			return i, false
		}
		switch s[i] {
		case ',':
			i++
		case ']':
			return i + 1, true
		default:
			return i, false
		}
	}
}

// scanString finds the closing quote of the string whose contents start
// at i: the first quote after an even run of backslashes, as fastjson
// finds it (a backslash takes the byte after it). esc says whether the
// string holds a backslash. It looks at eight bytes at a time for a quote,
// a backslash or a byte that is not printable ASCII (a control byte, or
// one of a multi-byte UTF-8 character: it sets *odd), and goes straight to
// the first such byte.
func scanString(s []byte, i int, odd *bool) (end int, esc, ok bool) {
	for {
		i = nextSpecial(s, i)
		if i >= len(s) {
			return 0, false, false
		}
		switch c := s[i]; {
		case c == '"':
			return i, esc, true
		case c == '\\':
			if i >= len(s)-1 {
				return 0, false, false
			}
			esc = true
			i += 2
		default:
			*odd = true
			i++
		}
	}
}

// nextSpecial is the index of the first byte from i that is a quote, a
// backslash, a control byte or not ASCII; len(s) when there is none.
func nextSpecial(s []byte, i int) int {
	const ones, highs, spaces = 0x0101010101010101, 0x8080808080808080, 0x2020202020202020
	for len(s)-i >= 8 {
		w := binary.LittleEndian.Uint64(s[i:])
		q, b := w^(ones*'"'), w^(ones*'\\')
		// A zero byte of q or b is a quote or backslash there; a high
		// bit of w, or of w-spaces where w's is clear, a byte that is
		// not printable ASCII. A borrow of a subtraction only runs
		// upwards from a byte that is found, so the lowest bit set
		// marks the first byte found, exactly.
		if m := ((q-ones)&^q | (b-ones)&^b | w | (w-spaces)&^w) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
		i += 8
	}
	for ; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return i
		}
	}
	return i
}

// spanTypeName names a scanned value's JSON type, as typeName does.
func spanTypeName(k jsonKind) string {
	switch k {
	case jsonMissing:
		return "missing"
	case jsonNull:
		return "null"
	case jsonTrue, jsonFalse:
		return "boolean"
	case jsonNumber:
		return "number"
	case jsonString:
		return "string"
	}
	return "unknown"
}

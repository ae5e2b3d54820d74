package connectors

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends r to dst as one JSON object whose keys keep the order of
// r.Fields. The key is not part of the object: sinks that need it read
// r.Key. It uses no reflection for the value types a Row may hold, so a sink
// writing millions of rows allocates only when dst grows.
func AppendJSON(dst []byte, r Row) []byte {
	dst = append(dst, '{')
	for i, f := range r.Fields {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, f.Name)
		dst = append(dst, ':')
		dst = AppendValue(dst, f.Value)
	}
	return append(dst, '}')
}

// AppendValue appends v to dst as JSON. Integral floats in the int64 range
// print without a decimal point (14199, not 14199.0 or 1.4199e+04) so counts
// computed in Lua, where every number is a float, read as integers; NaN and
// ±Inf, which JSON cannot carry, become null. Strings are escaped as JSON
// requires, with invalid UTF-8 replaced by U+FFFD. Map keys are sorted so the
// output is deterministic. A type outside the Row value types falls back to
// encoding/json, or to its quoted fmt form when even that fails.
func AppendValue(dst []byte, v any) []byte {
	switch v := v.(type) {
	case nil:
		return append(dst, "null"...)
	case bool:
		return strconv.AppendBool(dst, v)
	case string:
		return appendString(dst, v)
	case int64:
		return strconv.AppendInt(dst, v, 10)
	case int:
		return strconv.AppendInt(dst, int64(v), 10)
	case int32:
		return strconv.AppendInt(dst, int64(v), 10)
	case int16:
		return strconv.AppendInt(dst, int64(v), 10)
	case int8:
		return strconv.AppendInt(dst, int64(v), 10)
	case uint64:
		return strconv.AppendUint(dst, v, 10)
	case uint:
		return strconv.AppendUint(dst, uint64(v), 10)
	case uint32:
		return strconv.AppendUint(dst, uint64(v), 10)
	case uint16:
		return strconv.AppendUint(dst, uint64(v), 10)
	case uint8:
		return strconv.AppendUint(dst, uint64(v), 10)
	case float64:
		return appendFloat(dst, v, 64)
	case float32:
		return appendFloat(dst, float64(v), 32)
	case []any:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendValue(dst, e)
		}
		return append(dst, ']')
	case []string:
		dst = append(dst, '[')
		for i, e := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, e)
		}
		return append(dst, ']')
	case map[string]any:
		return appendMap(dst, v)
	case Row:
		return AppendJSON(dst, v)
	case *Row:
		if v == nil {
			return append(dst, "null"...)
		}
		return AppendJSON(dst, *v)
	case []Field:
		return AppendJSON(dst, Row{Fields: v})
	case time.Time:
		return appendString(dst, v.Format(time.RFC3339Nano))
	case time.Duration:
		return appendString(dst, v.String())
	case json.RawMessage:
		if json.Valid(v) {
			return append(dst, v...)
		}
		return appendString(dst, string(v))
	case []byte:
		return appendString(dst, string(v))
	case error:
		return appendString(dst, v.Error())
	}
	b, err := json.Marshal(v)
	if err != nil {
		return appendString(dst, fmt.Sprint(v))
	}
	return append(dst, b...)
}

// AppendFloat is AppendValue of a float64, without boxing it (AppendValue's
// argument escapes, so a float passed to it is an allocation).
func AppendFloat(dst []byte, f float64) []byte { return appendFloat(dst, f, 64) }

// appendFloat prints integral values as integers and everything else in the
// shortest form that reads back to the same float.
func appendFloat(dst []byte, f float64, bits int) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	// -2^63 is exact; 2^63 is the first float beyond the int64 range.
	if f == math.Trunc(f) && f >= -9223372036854775808 && f < 9223372036854775808 {
		return strconv.AppendInt(dst, int64(f), 10)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

func appendMap(dst []byte, m map[string]any) []byte {
	if m == nil {
		return append(dst, "null"...)
	}
	// Small maps sort on the stack; only big ones allocate.
	var arr [16]string
	keys := arr[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = AppendValue(dst, m[k])
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// needsEscape marks the ASCII bytes that cannot appear raw in a JSON string.
var needsEscape = func() (t [utf8.RuneSelf]bool) {
	for i := 0; i < 0x20; i++ {
		t[i] = true
	}
	t['"'] = true
	t['\\'] = true
	return t
}()

// appendString escapes as encoding/json does, except that <, > and & stay
// as they are: eddy writes data files, not HTML.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !needsEscape[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but end lines in JavaScript.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

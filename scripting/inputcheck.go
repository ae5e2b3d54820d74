package scripting

import (
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	lua "github.com/yuin/gopher-lua"
)

// Checks of what a pipeline reads: fields it aggregates that its parser
// never passes on (at load), and bytes JSON forbids inside strings (per
// record).

// checkProjected refuses a key or aggregate field the parser never
// passes on. With eddy.json or eddy.csv a record holds exactly the
// projected fields (filter and key cannot add any: the record table
// refuses new fields), so such a column would be nil for every record —
// eddy.sum of it 0 for every row. Other parsers (a Lua function, lines
// whose table filter may add to) are not checked: nothing is provable
// there.
func (p *Pipeline) checkProjected() error {
	names, known := p.recordFields()
	if !known || (p.steps.mapping == nil && p.Format != "json" && p.Format != "csv") {
		return nil
	}
	has := make(map[string]bool, len(names))
	for _, n := range names {
		has[n] = true
	}
	missing := func(where, name string) error {
		if p.steps.mapping != nil {
			return fmt.Errorf("%s: field %q is not one the map makes (it makes %s): add it to the map or fix the name",
				where, name, strings.Join(names, ", "))
		}
		return fmt.Errorf("%s: field %q is not one eddy.%s passes on (it parses %s): add it to the parse spec or fix the name",
			where, name, p.Format, fieldNames(p.Fields))
	}
	if !p.keyFunc {
		for _, k := range p.KeyColumns {
			if !has[k] {
				return missing("key", k)
			}
		}
	}
	for _, a := range p.Aggregates {
		for _, name := range []string{a.Field, a.By} {
			if name != "" && !has[name] {
				return missing("aggregate."+a.Name, name)
			}
		}
	}
	return nil
}

// readJSONOptions reads eddy.json's second argument: { invalid_utf8 =
// "reject" | "keep" }.
func (p *Pipeline) readJSONOptions(v lua.LValue) error {
	o, ok := v.(*lua.LTable)
	if !ok {
		return nil
	}
	var err error
	o.ForEach(func(k, v lua.LValue) {
		switch {
		case err != nil:
		case k.String() != "invalid_utf8":
			err = fmt.Errorf("eddy.json: unknown option %s (known: invalid_utf8)", k)
		case v.String() == "keep":
			p.jsonKeepInvalid = true
		case v.String() != "reject":
			err = fmt.Errorf("eddy.json: invalid_utf8 = %q: want \"reject\" (the default: such a record is a dead letter) or \"keep\"", v.String())
		}
	})
	return err
}

// invalidStringByte finds the first byte JSON does not allow inside a
// string of raw (already parsed as JSON): a byte that is not UTF-8, or a
// raw control character (U+0000 to U+001F must be escaped). It returns
// its offset and what it is, or -1.
func invalidStringByte(raw []byte) (int, string) {
	if printableASCII(raw) {
		return -1, "" // the common case
	}
	in := false
	for j := 0; j < len(raw); {
		c := raw[j]
		switch {
		case !in:
			// Outside strings the parser has checked every byte.
			in = c == '"'
			j++
		case c == '\\':
			j += 2
		case c == '"':
			in = false
			j++
		case c < 0x20:
			return j, fmt.Sprintf("a raw control byte 0x%02x", c)
		case c < utf8.RuneSelf:
			j++
		default:
			r, size := utf8.DecodeRune(raw[j:])
			if r == utf8.RuneError && size == 1 {
				return j, fmt.Sprintf("invalid UTF-8 (byte 0x%02x)", c)
			}
			j += size
		}
	}
	return -1, ""
}

// printableASCII says whether every byte of b is in 0x20..0x7f, eight
// bytes at a time: this runs on every JSON record.
func printableASCII(b []byte) bool {
	const highs, spaces = 0x8080808080808080, 0x2020202020202020
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		// A byte with its high bit set is not ASCII; w-spaces sets the high
		// bit of (at least the lowest) byte below 0x20 that w's has clear.
		if (w|(w-spaces)&^w)&highs != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c < 0x20 || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// checkJSONStrings is parseJSON's check of raw's strings.
func (rt *Runtime) checkJSONStrings(raw []byte) error {
	if rt.p.jsonKeepInvalid {
		return nil
	}
	if at, what := invalidStringByte(raw); at >= 0 {
		return fmt.Errorf("parse: %s at byte %d, inside a JSON string (eddy.json({…}, { invalid_utf8 = \"keep\" }) lets such records through)", what, at)
	}
	return nil
}

package scripting

// A Lua 5.1 pattern matcher (reference manual §5.4.1) that can be stopped:
// gopher-lua's never looks at the call's context, so a pattern that
// backtracks exponentially ran for minutes past every limit. This one
// counts its steps and asks every stepCheck steps whether the call must
// end.

const (
	maxCaptures = 32
	// maxMatchDepth bounds the matcher's recursion (one level per pattern
	// item that may backtrack), so a long pattern can't exhaust the Go stack.
	maxMatchDepth = 200
	stepCheck     = 1 << 10

	capUnfinished = -1
	capPosition   = -2
)

// patternError is a malformed pattern; matcher methods panic with it and
// run recovers it.
type patternError string

// stopMatch ends a match the call's stop asked to end.
type stopMatch struct{}

type capture struct{ init, len int }

// matcher matches one pattern against one subject. Positions are 0-based
// byte offsets; -1 means no match.
type matcher struct {
	src, pat string
	level    int
	capture  [maxCaptures]capture
	depth    int
	steps    int
	stopped  func() bool
}

// run calls fn, turning the matcher's panics into an error, or stop=true
// when the call's stop ended it.
func (m *matcher) run(fn func()) (stop bool, err error) {
	defer func() {
		switch r := recover().(type) {
		case nil:
		case patternError:
			err = errorString(r)
		case stopMatch:
			stop = true
		default:
			panic(r)
		}
	}()
	fn()
	return false, nil
}

type errorString string

func (e errorString) Error() string { return string(e) }

func (m *matcher) step() {
	m.steps++
	if m.steps%stepCheck == 0 && m.stopped != nil && m.stopped() {
		panic(stopMatch{})
	}
}

// reset readies the matcher for a match starting anywhere.
func (m *matcher) reset() { m.level, m.depth = 0, 0 }

// match matches pat[p:] at src[s:], returning the end of the match or -1.
func (m *matcher) match(s, p int) int {
	m.depth++
	if m.depth > maxMatchDepth {
		panic(patternError("pattern too complex"))
	}
	defer func() { m.depth-- }()
	for {
		m.step()
		if p == len(m.pat) {
			return s
		}
		switch m.pat[p] {
		case '(':
			if p+1 < len(m.pat) && m.pat[p+1] == ')' {
				return m.startCapture(s, p+2, capPosition)
			}
			return m.startCapture(s, p+1, capUnfinished)
		case ')':
			return m.endCapture(s, p+1)
		case '$':
			if p+1 == len(m.pat) {
				if s == len(m.src) {
					return s
				}
				return -1
			}
		case '%':
			if p+1 < len(m.pat) {
				switch c := m.pat[p+1]; {
				case c == 'b':
					if s = m.matchBalance(s, p+2); s == -1 {
						return -1
					}
					p += 4
					continue
				case c == 'f':
					var ok bool
					if p, ok = m.frontier(s, p+2); !ok {
						return -1
					}
					continue
				case c >= '0' && c <= '9':
					if s = m.matchCapture(s, c); s == -1 {
						return -1
					}
					p += 2
					continue
				}
			}
		}
		// a single character class, perhaps with a repetition
		ep := m.classEnd(p)
		ok := s < len(m.src) && m.single(m.src[s], p, ep)
		if ep < len(m.pat) {
			switch m.pat[ep] {
			case '?':
				if ok {
					if r := m.match(s+1, ep+1); r != -1 {
						return r
					}
				}
				p = ep + 1
				continue
			case '*':
				return m.maxExpand(s, p, ep)
			case '+':
				if !ok {
					return -1
				}
				return m.maxExpand(s+1, p, ep)
			case '-':
				return m.minExpand(s, p, ep)
			}
		}
		if !ok {
			return -1
		}
		s, p = s+1, ep
	}
}

// classEnd returns the end of the character class starting at pat[p].
func (m *matcher) classEnd(p int) int {
	c := m.pat[p]
	p++
	switch c {
	case '%':
		if p >= len(m.pat) {
			panic(patternError("malformed pattern (ends with '%')"))
		}
		return p + 1
	case '[':
		if p < len(m.pat) && m.pat[p] == '^' {
			p++
		}
		// the first character of a set is never its end: "[]]" is a set of ]
		for first := true; first || m.pat[p] != ']'; first = false {
			if p >= len(m.pat) {
				panic(patternError("malformed pattern (missing ']')"))
			}
			c := m.pat[p]
			p++
			if c == '%' {
				if p >= len(m.pat) {
					panic(patternError("malformed pattern (missing ']')"))
				}
				p++
			}
			if p >= len(m.pat) {
				panic(patternError("malformed pattern (missing ']')"))
			}
		}
		return p + 1
	}
	return p
}

// single says whether c matches the class pat[p:ep].
func (m *matcher) single(c byte, p, ep int) bool {
	switch m.pat[p] {
	case '.':
		return true
	case '%':
		return matchClass(c, m.pat[p+1])
	case '[':
		return m.inSet(c, p, ep-1)
	}
	return m.pat[p] == c
}

// inSet says whether c is in the set pat[p:end+1], "[...]".
func (m *matcher) inSet(c byte, p, end int) bool {
	want := true
	p++
	if m.pat[p] == '^' {
		want = false
		p++
	}
	for ; p < end; p++ {
		switch {
		case m.pat[p] == '%' && p+1 < end:
			p++
			if matchClass(c, m.pat[p]) {
				return want
			}
		case p+2 < end && m.pat[p+1] == '-':
			if m.pat[p] <= c && c <= m.pat[p+2] {
				return want
			}
			p += 2
		case m.pat[p] == c:
			return want
		}
	}
	return !want
}

// matchClass says whether c is in the class %cl (C locale).
func matchClass(c, cl byte) bool {
	var in bool
	switch cl | 0x20 {
	case 'a':
		in = isAlpha(c)
	case 'c':
		in = c < 32 || c == 127
	case 'd':
		in = c >= '0' && c <= '9'
	case 'l':
		in = c >= 'a' && c <= 'z'
	case 'p':
		in = c > 32 && c < 127 && !isAlpha(c) && !(c >= '0' && c <= '9')
	case 's':
		in = c == ' ' || (c >= '\t' && c <= '\r')
	case 'u':
		in = c >= 'A' && c <= 'Z'
	case 'w':
		in = isAlpha(c) || (c >= '0' && c <= '9')
	case 'x':
		in = (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'f')
	case 'z':
		in = c == 0
	default:
		return cl == c
	}
	if cl >= 'A' && cl <= 'Z' {
		return !in
	}
	return in
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func (m *matcher) maxExpand(s, p, ep int) int {
	n := 0
	for s+n < len(m.src) && m.single(m.src[s+n], p, ep) {
		m.step()
		n++
	}
	for ; n >= 0; n-- {
		if r := m.match(s+n, ep+1); r != -1 {
			return r
		}
	}
	return -1
}

func (m *matcher) minExpand(s, p, ep int) int {
	for {
		if r := m.match(s, ep+1); r != -1 {
			return r
		}
		if s >= len(m.src) || !m.single(m.src[s], p, ep) {
			return -1
		}
		s++
	}
}

func (m *matcher) startCapture(s, p, what int) int {
	if m.level >= maxCaptures {
		panic(patternError("too many captures"))
	}
	m.capture[m.level] = capture{init: s, len: what}
	m.level++
	r := m.match(s, p)
	if r == -1 {
		m.level--
	}
	return r
}

func (m *matcher) endCapture(s, p int) int {
	l := -1
	for i := m.level - 1; i >= 0; i-- {
		if m.capture[i].len == capUnfinished {
			l = i
			break
		}
	}
	if l < 0 {
		panic(patternError("invalid pattern capture"))
	}
	m.capture[l].len = s - m.capture[l].init
	r := m.match(s, p)
	if r == -1 {
		m.capture[l].len = capUnfinished
	}
	return r
}

// matchBalance matches %bxy at src[s:], pat[p:p+2] being xy.
func (m *matcher) matchBalance(s, p int) int {
	if p+1 >= len(m.pat) {
		panic(patternError("unbalanced pattern"))
	}
	if s >= len(m.src) || m.src[s] != m.pat[p] {
		return -1
	}
	open, close := m.pat[p], m.pat[p+1]
	depth := 1
	for i := s + 1; i < len(m.src); i++ {
		m.step()
		switch m.src[i] {
		case close:
			if depth--; depth == 0 {
				return i + 1
			}
		case open:
			depth++
		}
	}
	return -1
}

// frontier matches %f[set] at src[s:], p at its '['; it returns where the
// pattern goes on.
func (m *matcher) frontier(s, p int) (int, bool) {
	if p >= len(m.pat) || m.pat[p] != '[' {
		panic(patternError("missing '[' after '%f' in pattern"))
	}
	ep := m.classEnd(p)
	var prev, cur byte
	if s > 0 {
		prev = m.src[s-1]
	}
	if s < len(m.src) {
		cur = m.src[s]
	}
	return ep, !m.inSet(prev, p, ep-1) && m.inSet(cur, p, ep-1)
}

func (m *matcher) matchCapture(s int, c byte) int {
	l := int(c - '1')
	if l < 0 || l >= m.level || m.capture[l].len == capUnfinished {
		panic(patternError("invalid capture index"))
	}
	cp := m.src[m.capture[l].init : m.capture[l].init+m.capture[l].len]
	if len(m.src)-s >= len(cp) && m.src[s:s+len(cp)] == cp {
		return s + len(cp)
	}
	return -1
}

// captureValue is capture i of a match of src[s:e]: a string, or a
// position (1-based) for "()". With no captures, capture 0 is the match.
func (m *matcher) captureValue(i, s, e int) (str string, pos int, isPos bool) {
	if i >= m.level {
		if i != 0 {
			panic(patternError("invalid capture index"))
		}
		return m.src[s:e], 0, false
	}
	c := m.capture[i]
	switch c.len {
	case capUnfinished:
		panic(patternError("unfinished capture"))
	case capPosition:
		return "", c.init + 1, true
	}
	return m.src[c.init : c.init+c.len], 0, false
}

// captures is how many values a match gives: its captures, or the whole
// match when it has none and whole is set.
func (m *matcher) captures(whole bool) int {
	if m.level == 0 && whole {
		return 1
	}
	return m.level
}

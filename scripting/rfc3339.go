package scripting

import "time"

// rfc3339Millis is time.Parse(time.RFC3339Nano, s).UnixMilli(), the event
// time of a time string. Most streams write their times in UTC as
// 2024-03-01T00:00:05.000Z: that form is read here directly (time.Parse
// costs as much as scanning the rest of the record), and every other
// string, including each that is not a valid time, goes to time.Parse,
// so the results and errors are time.Parse's (TestRFC3339MillisAgrees).
func rfc3339Millis(s string) (int64, error) {
	if ms, ok := utcMillis(s); ok {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}

// utcMillis reads s when it is YYYY-MM-DDTHH:MM:SS, then optionally a dot
// and one to nine digits, then Z, with every field in its range; ok is
// false for anything else.
func utcMillis(s string) (ms int64, ok bool) {
	if len(s) < 20 || s[len(s)-1] != 'Z' || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' {
		return 0, false
	}
	year, ok1 := digits(s[0:4])
	month, ok2 := digits(s[5:7])
	day, ok3 := digits(s[8:10])
	hour, ok4 := digits(s[11:13])
	minute, ok5 := digits(s[14:16])
	sec, ok6 := digits(s[17:19])
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) || month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
		hour > 23 || minute > 59 || sec > 59 {
		return 0, false
	}
	frac := s[19 : len(s)-1]
	var fracMs int64
	if len(frac) > 0 {
		if frac[0] != '.' || len(frac) < 2 || len(frac) > 10 {
			return 0, false
		}
		f, ok := digits(frac[1:])
		if !ok {
			return 0, false
		}
		for range 10 - len(frac) {
			f *= 10 // to nanoseconds
		}
		fracMs = f / 1_000_000
	}
	secs := ((daysFromCivil(year, month, day)*24+hour)*60+minute)*60 + sec
	return secs*1000 + fracMs, true
}

// digits reads s, all ASCII digits, as a number.
func digits(s string) (int64, bool) {
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func daysIn(month, year int64) int64 {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to the date in the
// proleptic Gregorian calendar (as package time counts them).
func daysFromCivil(y, m, d int64) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	if y < 0 {
		era = (y - 399) / 400
	}
	yoe := y - era*400
	mp := (m + 9) % 12 // March is 0
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return era*146097 + doe - 719468
}

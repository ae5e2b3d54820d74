package connectors

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"

	"github.com/dustin/go-humanize"
)

// MaxRecordSizeParam is the URI parameter of line sources (dir:, file:,
// stdin) that bounds one record; DefaultMaxRecordSize is its default, and
// MaxRecordSizeLimit the largest value it takes.
const (
	MaxRecordSizeParam   = "max-record-size"
	DefaultMaxRecordSize = 16 << 20
	MaxRecordSizeLimit   = 1 << 30
)

// PreviewBytes is how much of a record longer than the maximum size is
// kept for its dead letter.
const PreviewBytes = 1 << 10

// ParseSize reads a byte size such as "16MiB", "512KiB", "1MB" or "4096".
// name (a flag or parameter) and the allowed range [min, max] go into the
// error.
func ParseSize(name, s string, min, max int64) (int64, error) {
	n, err := humanize.ParseBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a size such as 16MiB, 512KiB or 4096", name, s)
	}
	if n < uint64(min) || n > uint64(max) {
		return 0, fmt.Errorf("%s %s is outside the allowed range %s to %s", name, s, FormatSize(min), FormatSize(max))
	}
	return int64(n), nil
}

// FormatSize renders a byte count for people: "16 MiB", "512 B".
func FormatSize(n int64) string {
	if n < 0 {
		return strconv.FormatInt(n, 10) + " B"
	}
	return humanize.IBytes(uint64(n))
}

// MaxRecordSize reads the max-record-size parameter, DefaultMaxRecordSize
// when absent.
func (t Target) MaxRecordSize() (int, error) {
	s := t.Params.Get(MaxRecordSizeParam)
	if s == "" {
		return DefaultMaxRecordSize, nil
	}
	n, err := ParseSize("parameter "+MaxRecordSizeParam, s, 1, MaxRecordSizeLimit)
	return int(n), err
}

// TooLongError is the reason a record longer than the maximum record size
// goes to the dead letters. The record's Value holds only its first
// PreviewBytes.
type TooLongError struct {
	Size, Max int64
	// Offset is the record's byte offset in its file, -1 when unknown.
	Offset int64
}

func (e *TooLongError) Error() string {
	at := ""
	if e.Offset >= 0 {
		at = " at byte " + strconv.FormatInt(e.Offset, 10)
	}
	return fmt.Sprintf("record of %s (%d bytes)%s is longer than the maximum record size %s (max-record-size, --max-record-size); its first %s are kept here",
		FormatSize(e.Size), e.Size, at, FormatSize(e.Max), FormatSize(PreviewBytes))
}

// ReadLine returns the next line of r with its line end; at the end of
// the input it returns the last bytes with io.EOF. A line longer than max
// bytes (line end not counted) is read to its end but not kept: ReadLine
// returns its first PreviewBytes (without a line end), and its whole size in bytes (line end
// included) as tooLong, which is 0 for a line returned whole. Memory stays
// within max plus r's buffer however long the line. The slice is r's own
// unless the line outgrew r's buffer: copy it to keep it past the next
// read.
func ReadLine(r *bufio.Reader, max int) (line []byte, tooLong int64, err error) {
	line, err = r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		if v := TrimLineEnd(line); len(v) > max {
			return v[:min(len(v), PreviewBytes)], int64(len(line)), err
		}
		return line, 0, err
	}
	long := append([]byte(nil), line...)
	size := int64(len(line))
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = r.ReadSlice('\n')
		size += int64(len(line))
		if len(long) <= max+2 || len(long) < PreviewBytes {
			long = append(long, line...)
		}
	}
	if v := TrimLineEnd(long); len(v) > max {
		return append([]byte(nil), v[:min(len(v), PreviewBytes)]...), size, err
	}
	return long, 0, err
}

// TrimLineEnd strips the line end ("\n" or "\r\n") from raw.
func TrimLineEnd(raw []byte) []byte {
	n := len(raw)
	if n > 0 && raw[n-1] == '\n' {
		n--
		if n > 0 && raw[n-1] == '\r' {
			n--
		}
	}
	return raw[:n]
}

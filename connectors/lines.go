package connectors

import (
	"bufio"
	"errors"
)

// ReadLine returns the next line of r with its line end, however long the
// line; at the end of the input it returns the last bytes with io.EOF.
// The slice is r's own unless the line outgrew r's buffer: copy it to keep
// it past the next read.
func ReadLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	long := append([]byte(nil), line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = r.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
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

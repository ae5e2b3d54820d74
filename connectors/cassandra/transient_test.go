package cassandra

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

// A connection dropped mid-frame is worth a retry; a plain error is not.
func TestTransientDroppedConnection(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{errors.New("gocql: failed to read uncompressed frame, err: EOF"), true},
		{fmt.Errorf("write: %w", io.ErrUnexpectedEOF), true},
		{errors.New("unconfigured table weather"), false},
	} {
		if got := transient(tc.err); got != tc.want {
			t.Errorf("transient(%q) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

package main

import (
	"io"
	"os"
	"strconv"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/eddy-stream/eddy/actors"
)

// startProgress shows records read and the rate on w while a run goes on,
// when w is a terminal. It returns the function that stops it.
func startProgress(w io.Writer, enabled bool, st *actors.Stats) func() {
	f, ok := w.(*os.File)
	if !enabled || !ok || !term.IsTerminal(int(f.Fd())) {
		return func() {}
	}
	bar := progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("records"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("rec"),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionClearOnFinish(),
	)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				bar.Set64(st.Read.Load())
				bar.Finish()
				return
			case <-t.C:
				desc := "records (failed " + itoa(st.Failed.Load()) + ", checkpoints " + itoa(st.Checkpoints.Load())
				if n := st.Restoring.Load(); n > 0 {
					// A partition that moved here reads its changelog first.
					desc += ", restoring " + itoa(n) + " partition(s): " + itoa(st.RestoreDone.Load()) + "/" + itoa(st.RestoreTotal.Load()) + " changes"
				}
				bar.Describe(desc + ")")
				bar.Set64(st.Read.Load())
			}
		}
	}()
	return func() { close(done); <-stopped }
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

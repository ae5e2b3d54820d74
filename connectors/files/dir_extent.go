package files

import (
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/eddy-stream/eddy/connectors"
)

// dirExtent is what a dir: partition knows of its input, for readers on
// other goroutines (the progress line): files done and found, and bytes
// as stored on disk (compressed for .gz files).
type dirExtent struct {
	mu                    sync.Mutex
	filesDone, filesFound int64
	bytesDone, bytesCur   int64 // read of the files done, and of the current one
	bytesFound            int64
}

// Extent returns what the partition knows now.
func (x *dirExtent) Extent() connectors.Extent {
	x.mu.Lock()
	defer x.mu.Unlock()
	return connectors.Extent{FilesDone: x.filesDone, FilesFound: x.filesFound,
		BytesRead: x.bytesDone + x.bytesCur, BytesFound: x.bytesFound}
}

// restart is the extent after a Seek, before it opens a current file:
// the files done, of the sizes they have now (a deleted one counts 0).
func (x *dirExtent) restart(dir string, done []string) {
	var bytes int64
	for _, name := range done {
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil {
			bytes += st.Size()
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.filesDone, x.bytesDone, x.bytesCur = int64(len(done)), bytes, 0
	x.filesFound, x.bytesFound = x.filesDone, bytes
}

// found sets what a listing found: files of the given total size besides
// the ones done and the current one (of curSize, if any).
func (x *dirExtent) found(files, bytes int64, cur bool, curSize int64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.filesFound, x.bytesFound = x.filesDone+files, x.bytesDone+bytes
	if cur {
		x.filesFound++
		x.bytesFound += curSize
	}
}

// fileDone moves the current file's bytes to the files done.
func (x *dirExtent) fileDone() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.filesDone++
	x.bytesDone += x.bytesCur
	x.bytesCur = 0
}

func (x *dirExtent) read(n int) {
	x.mu.Lock()
	x.bytesCur += int64(n)
	x.mu.Unlock()
}

// counted counts the bytes read from the current file into x.
type counted struct {
	r io.Reader
	x *dirExtent
}

func (c counted) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.x.read(n)
	return n, err
}

package files

import (
	"bytes"
	"io"
	"sync/atomic"

	"github.com/eddy-stream/eddy/connectors"
)

// lineBlocks reads a plain file's lines into pooled blocks and hands out
// the lines as slices of them, copying nothing but a line a block's end
// cut (to the start of the next block). A batch holds the blocks its
// lines are in (batchMem.hold); a block goes back to its pool once the
// reader has moved past it and every batch holding it is released. Copying
// each line into its batch cost a sixth of eddy's CPU on the netflow run.
type lineBlocks struct {
	src  io.Reader
	pool *blockPool
	cur  *block
	r, w int // cur.buf[r:w] is read and not handed out
	eof  bool
	err  error // a read error, returned once the lines before it are out
}

// blockSize holds a few batches of typical lines (1024 lines of ~200
// bytes); a longer line gets a block of its own size.
const blockSize = 512 << 10

// readSize bounds one read of the file, as the 64 KiB buffer of the
// reader before: what is read ahead of the lines handed out is what a
// file truncated under the reader still delivers of its old content.
const readSize = 64 << 10

// spareBlocks bounds the released blocks a partition keeps.
const spareBlocks = 16

type block struct {
	buf  []byte
	refs atomic.Int32 // the reader while it reads into it, and each batch holding it
	pool *blockPool
}

// blockPool is a partition's released blocks of blockSize.
type blockPool struct {
	spare chan *block
	made  atomic.Int64 // blocks allocated, for tests
}

func newBlockPool() *blockPool { return &blockPool{spare: make(chan *block, spareBlocks)} }

// get takes a released block, or makes one, of at least size bytes; the
// reader holds it.
func (p *blockPool) get(size int) *block {
	var b *block
	if size <= blockSize {
		select {
		case b = <-p.spare:
		default:
		}
	}
	if b == nil {
		p.made.Add(1)
		b = &block{buf: make([]byte, max(size, blockSize)), pool: p}
	}
	b.refs.Store(1)
	return b
}

// unref lets go of one hold of b: the last one gives b back to its pool
// (a block larger than blockSize goes to the collector).
func (b *block) unref() {
	switch n := b.refs.Add(-1); {
	case n < 0:
		panic("files: a block was let go of more often than held")
	case n == 0 && len(b.buf) == blockSize:
		select {
		case b.pool.spare <- b:
		default: // enough spares
		}
	}
}

func newLineBlocks(src io.Reader, pool *blockPool) *lineBlocks {
	return &lineBlocks{src: src, pool: pool}
}

// next returns the next line with its line end, valid until mem is
// released; at the end of the file it returns the last bytes with io.EOF.
// A line longer than max (line end not counted) is read to its end but not
// kept: next returns a copy of its first connectors.PreviewBytes and its
// whole size (line end included) as tooLong, as connectors.ReadLine does.
func (lb *lineBlocks) next(mem *batchMem, max int) (line []byte, tooLong int64, err error) {
	for {
		if lb.cur != nil {
			data := lb.cur.buf[lb.r:lb.w]
			if j := bytes.IndexByte(data, '\n'); j >= 0 {
				lb.r += j + 1
				return lb.out(mem, data[:j+1:j+1], max), tooLongOf(data[:j+1], max), nil
			}
			if lb.eof || lb.err != nil {
				lb.r = lb.w
				err := lb.err
				if err == nil {
					err = io.EOF
				}
				if len(data) == 0 {
					return nil, 0, err
				}
				return lb.out(mem, data[:len(data):len(data)], max), tooLongOf(data, max), err
			}
			if lb.w-lb.r >= max+2 { // no line end yet, and too long even if "\r\n" comes next
				return lb.skipLong(mem)
			}
		}
		lb.fill(max)
	}
}

// out is line as next returns it: the line, held by mem, or the copied
// preview of a line longer than max.
func (lb *lineBlocks) out(mem *batchMem, line []byte, max int) []byte {
	if v := connectors.TrimLineEnd(line); len(v) > max {
		return mem.keep(v[:min(len(v), connectors.PreviewBytes)])
	}
	mem.hold(lb.cur)
	return line
}

func tooLongOf(line []byte, max int) int64 {
	if len(connectors.TrimLineEnd(line)) > max {
		return int64(len(line))
	}
	return 0
}

// skipLong reads past a line found longer than max before its end: it
// returns the preview connectors.ReadLine gives (the line's first
// PreviewBytes, without its line end when it is shorter) and the line's
// whole size.
func (lb *lineBlocks) skipLong(mem *batchMem) (preview []byte, size int64, err error) {
	var head []byte // the line's first PreviewBytes+2 bytes: its end is not in them when it is longer
	for {
		data := lb.cur.buf[lb.r:lb.w]
		j := bytes.IndexByte(data, '\n')
		if j >= 0 {
			data = data[:j+1]
		}
		head = append(head, data[:min(len(data), connectors.PreviewBytes+2-len(head))]...)
		size += int64(len(data))
		lb.r += len(data)
		switch {
		case j >= 0:
		case lb.err != nil:
			err = lb.err
		case lb.eof:
			err = io.EOF
		default:
			lb.fill(0)
			continue
		}
		v := connectors.TrimLineEnd(head)
		if int64(len(head)) < size {
			v = head
		}
		return mem.keep(v[:min(len(v), connectors.PreviewBytes)]), size, err
	}
}

// fill reads more of the file after what is read: into the current
// block's free end, or into a new block that starts with the current
// one's unfinished line (a block as large as that line needs, up to
// max+3 bytes: a line of more is too long once max+2 bytes of it are in).
func (lb *lineBlocks) fill(max int) {
	switch {
	case lb.cur == nil:
		lb.cur, lb.r, lb.w = lb.pool.get(blockSize), 0, 0
	case lb.w == len(lb.cur.buf):
		partial := lb.w - lb.r
		nb := lb.pool.get(min(2*partial, max+3))
		copy(nb.buf, lb.cur.buf[lb.r:lb.w])
		lb.cur.unref()
		lb.cur, lb.r, lb.w = nb, 0, partial
	}
	n, err := lb.src.Read(lb.cur.buf[lb.w:min(len(lb.cur.buf), lb.w+readSize)])
	lb.w += n
	switch {
	case err == io.EOF:
		lb.eof = true
	case err != nil:
		lb.err = err
	}
}

// atEnd says whether the file has nothing after what next returned.
func (lb *lineBlocks) atEnd() (bool, error) {
	for lb.cur == nil || lb.r == lb.w {
		if lb.eof {
			return true, nil
		}
		if lb.err != nil {
			return false, lb.err
		}
		if lb.cur != nil && lb.w == len(lb.cur.buf) {
			lb.cur.unref() // all handed out: read on in a new block
			lb.cur = nil
		}
		lb.fill(0)
	}
	return false, nil
}

// close lets go of the current block.
func (lb *lineBlocks) close() {
	if lb.cur != nil {
		lb.cur.unref()
		lb.cur = nil
	}
}

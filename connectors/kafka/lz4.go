package kafka

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sync/atomic"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// decompressor decodes the LZ4 frames of fetched batches straight into
// pooled buffers (bytePool), which franz-go hands back once every record
// of the batch is recycled. franz-go's own decoder streams a frame through
// lz4.Reader into a bytes.Buffer and then clones the result into fresh
// memory: on bench-kafka that clone (page faults on new memory, each of
// the ~700 batches of a million records) and the stream's copy were two
// thirds of the decompression and a fifth of eddy's CPU, all of it on the
// one goroutine that fetches every partition of a broker.
//
// Frames it does not handle (dependent blocks, a dictionary, a legacy or
// skippable frame, more than one frame) and any frame it fails on go to
// franz-go's decoder, whose verdict then stands: this one is a faster
// path, never a different answer.
type decompressor struct {
	fallback kgo.Decompressor
	pool     *bytePool
	// ratio is the last LZ4 batch's decompressed size over its compressed
	// size, times 16: the first guess at the next one's.
	ratio atomic.Int64
}

var _ kgo.Decompressor = (*decompressor)(nil)

func newDecompressor(pools *fetchPools) *decompressor {
	d := &decompressor{fallback: kgo.DefaultDecompressor(pools), pool: &pools.bytes}
	d.ratio.Store(4 << 4)
	return d
}

// maxBatchBytes bounds a batch's decompressed size, as franz-go's
// MaxDecompressBatchBytes does by default.
const maxBatchBytes = 1 << 30

// Decompress implements kgo.Decompressor.
func (d *decompressor) Decompress(src []byte, codec kgo.CompressionCodecType) ([]byte, error) {
	if codec != kgo.CodecLz4 {
		return d.fallback.Decompress(src, codec)
	}
	// At most 16 times the frame at first: a batch after one of zeros
	// would otherwise start with a buffer hundreds of times its size.
	guess := len(src)*int(min(d.ratio.Load(), 16<<4))>>4 + len(src)>>3 + 256
	out, err := decodeLZ4Frame(src, d.pool.get(min(guess, maxBatchBytes)), d.pool)
	if err != nil {
		d.pool.put(out)
		if errors.Is(err, kgo.ErrMaxDecompress) {
			return nil, err
		}
		return d.fallback.Decompress(src, codec)
	}
	if len(src) > 0 {
		d.ratio.Store(int64(len(out) << 4 / len(src)))
	}
	return out, nil
}

var (
	errLZ4Unhandled = errors.New("lz4: a frame the fast path leaves to franz-go")
	errLZ4Corrupt   = errors.New("lz4: corrupt frame")
)

// lz4Frame is a frame's descriptor (https://github.com/lz4/lz4/blob/dev/doc/lz4_Frame_format.md).
type lz4Frame struct {
	blockMax        int
	blockChecksum   bool
	contentChecksum bool
}

// parseLZ4Header reads a frame's header and returns the rest of src.
func parseLZ4Header(src []byte) (lz4Frame, []byte, error) {
	if len(src) < 7 || binary.LittleEndian.Uint32(src) != 0x184D2204 {
		return lz4Frame{}, nil, errLZ4Unhandled
	}
	flg, bd := src[4], src[5]
	const version, independent, blockSum, size, contentSum, dict = 0xC0, 0x20, 0x10, 0x08, 0x04, 0x01
	if flg&version != 0x40 || flg&independent == 0 || flg&dict != 0 || flg&0x02 != 0 || bd&0x8F != 0 {
		return lz4Frame{}, nil, errLZ4Unhandled
	}
	n := 6
	if flg&size != 0 {
		n += 8
	}
	if len(src) < n+1 || byte(xxh32(src[4:n])>>8) != src[n] {
		return lz4Frame{}, nil, errLZ4Unhandled
	}
	blockMax := 1 << (8 + 2*int(bd>>4))
	if blockMax < 64<<10 {
		return lz4Frame{}, nil, errLZ4Unhandled
	}
	return lz4Frame{blockMax, flg&blockSum != 0, flg&contentSum != 0}, src[n+1:], nil
}

// decodeLZ4Frame appends the content of the one frame src holds to dst,
// growing it through pool when a block does not fit.
func decodeLZ4Frame(src, dst []byte, pool *bytePool) ([]byte, error) {
	f, rest, err := parseLZ4Header(src)
	if err != nil {
		return dst, err
	}
	for {
		if len(rest) < 4 {
			return dst, errLZ4Corrupt
		}
		n := binary.LittleEndian.Uint32(rest)
		rest = rest[4:]
		if n == 0 {
			break
		}
		stored := n&(1<<31) != 0
		n &^= 1 << 31
		end := int(n)
		if f.blockChecksum {
			end += 4
		}
		if uint64(n) > uint64(f.blockMax) || end > len(rest) {
			return dst, errLZ4Corrupt
		}
		block := rest[:n]
		if f.blockChecksum && xxh32(block) != binary.LittleEndian.Uint32(rest[n:]) {
			return dst, errLZ4Corrupt
		}
		rest = rest[end:]
		if dst, err = appendLZ4Block(dst, block, stored, f.blockMax, pool); err != nil {
			return dst, err
		}
	}
	if f.contentChecksum {
		if len(rest) < 4 || xxh32(dst) != binary.LittleEndian.Uint32(rest) {
			return dst, errLZ4Corrupt
		}
		rest = rest[4:]
	}
	if len(rest) != 0 {
		return dst, errLZ4Unhandled // another frame follows
	}
	return dst, nil
}

// appendLZ4Block appends a block's content to dst. A compressed block is
// decoded into dst's spare capacity; when it does not fit, dst grows (to
// at most what the block can hold) and the block is decoded again.
func appendLZ4Block(dst, block []byte, stored bool, blockMax int, pool *bytePool) ([]byte, error) {
	most := blockMax
	if stored {
		most = len(block)
	}
	if len(dst)+most > maxBatchBytes {
		most = maxBatchBytes - len(dst)
	}
	for {
		if stored && cap(dst)-len(dst) >= len(block) {
			return append(dst, block...), nil
		}
		room := dst[len(dst):cap(dst)]
		if !stored {
			if n, err := lz4.UncompressBlock(block, room); err == nil {
				return dst[:len(dst)+n], nil
			}
		}
		if len(room) >= most {
			if len(dst)+most >= maxBatchBytes {
				return dst, kgo.ErrMaxDecompress
			}
			return dst, fmt.Errorf("%w: a block does not decode into its frame's block size", errLZ4Corrupt)
		}
		dst = pool.grow(dst, min(max(2*cap(dst), 4<<10), len(dst)+most))
	}
}

// xxh32 is the 32-bit xxHash of b with seed 0, the checksum of LZ4 frames
// (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md).
func xxh32(b []byte) uint32 {
	const p1, p2, p3, p4, p5 uint32 = 2654435761, 2246822519, 3266489917, 668265263, 374761393
	n := uint32(len(b))
	var h uint32
	if len(b) >= 16 {
		v1, v2, v3, v4 := p1, p2, uint32(0), uint32(0)
		v1 += p2
		v4 -= p1
		for ; len(b) >= 16; b = b[16:] {
			v1 = bits.RotateLeft32(v1+binary.LittleEndian.Uint32(b)*p2, 13) * p1
			v2 = bits.RotateLeft32(v2+binary.LittleEndian.Uint32(b[4:])*p2, 13) * p1
			v3 = bits.RotateLeft32(v3+binary.LittleEndian.Uint32(b[8:])*p2, 13) * p1
			v4 = bits.RotateLeft32(v4+binary.LittleEndian.Uint32(b[12:])*p2, 13) * p1
		}
		h = bits.RotateLeft32(v1, 1) + bits.RotateLeft32(v2, 7) + bits.RotateLeft32(v3, 12) + bits.RotateLeft32(v4, 18)
	} else {
		h = p5
	}
	h += n
	for ; len(b) >= 4; b = b[4:] {
		h = bits.RotateLeft32(h+binary.LittleEndian.Uint32(b)*p3, 17) * p4
	}
	for _, c := range b {
		h = bits.RotateLeft32(h+uint32(c)*p5, 11) * p1
	}
	h ^= h >> 15
	h *= p2
	h ^= h >> 13
	h *= p3
	h ^= h >> 16
	return h
}

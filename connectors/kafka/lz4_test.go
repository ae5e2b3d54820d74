package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/pierrec/lz4/v4"
	"github.com/twmb/franz-go/pkg/kgo"
)

// lz4Content is compressible JSON lines with enough variety to need
// literals and matches of every length.
func lz4Content(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"time":%d,"srcdevice":"Comp%06d","dstdevice":"Comp%03d","dstport":"%d","pad":"%s"}`+"\n",
			i*7919, i*104729%999983, i%97, i%65536, bytes.Repeat([]byte{'a' + byte(i%26)}, i%300))
	}
	return b.Bytes()[:n]
}

func writeLZ4Frame(t *testing.T, content []byte, opts ...lz4.Option) []byte {
	t.Helper()
	var b bytes.Buffer
	w := lz4.NewWriter(&b)
	if err := w.Apply(opts...); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(content); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// The fast path decodes what pierrec's writer (franz-go's producer) makes,
// with every block size and checksum option, to the bytes written, and
// never calls the fallback for them.
func TestLZ4FramesDecodeAsWritten(t *testing.T) {
	sizes := []int{0, 1, 15, 16, 17, 4 << 10, 64<<10 - 1, 64 << 10, 64<<10 + 1, 300 << 10, 5 << 20}
	for _, bs := range []lz4.BlockSize{lz4.Block64Kb, lz4.Block256Kb, lz4.Block1Mb, lz4.Block4Mb} {
		for _, blockSum := range []bool{false, true} {
			for _, sum := range []bool{false, true} {
				for _, n := range sizes {
					content := lz4Content(n)
					src := writeLZ4Frame(t, content, lz4.BlockSizeOption(bs), lz4.BlockChecksumOption(blockSum), lz4.ChecksumOption(sum))
					var pools fetchPools
					for _, guess := range []int{0, 4 << 10, 2 * n} {
						out, err := decodeLZ4Frame(src, pools.bytes.get(guess), &pools.bytes)
						if err != nil || !bytes.Equal(out, content) {
							t.Fatalf("block %v, block sums %v, sum %v, %d bytes, guess %d: %d bytes back, err %v", bs, blockSum, sum, n, guess, len(out), err)
						}
					}
				}
			}
		}
	}
	// A random, incompressible content is stored in uncompressed blocks.
	content := make([]byte, 200<<10)
	for i := range content {
		content[i] = byte(i*2654435761>>13 ^ i>>3)
	}
	src := writeLZ4Frame(t, content, lz4.BlockSizeOption(lz4.Block64Kb))
	var pools fetchPools
	if out, err := decodeLZ4Frame(src, nil, &pools.bytes); err != nil || !bytes.Equal(out, content) {
		t.Fatalf("incompressible content: %d bytes back, err %v", len(out), err)
	}
}

// A damaged frame is refused by the checksums (or by the block decoder),
// and through the decompressor it gets franz-go's own verdict: an error,
// never other bytes.
func TestLZ4DamageIsRefused(t *testing.T) {
	content := lz4Content(100 << 10)
	src := writeLZ4Frame(t, content, lz4.BlockChecksumOption(true), lz4.ChecksumOption(true))
	d := newDecompressor(newFetchPools())
	for _, at := range []int{5, 7, 11, 30, len(src) / 2, len(src) - 3} {
		bad := bytes.Clone(src)
		bad[at] ^= 0x20
		if out, err := decodeLZ4Frame(bad, nil, d.pool); err == nil {
			t.Errorf("byte %d damaged: the fast path decoded %d bytes", at, len(out))
		}
		if out, err := d.Decompress(bad, kgo.CodecLz4); err == nil {
			t.Errorf("byte %d damaged: the decompressor returned %d bytes", at, len(out))
		}
	}
	for _, cut := range []int{3, 7, len(src) / 2, len(src) - 1} {
		if out, err := d.Decompress(src[:cut], kgo.CodecLz4); err == nil {
			t.Errorf("cut at %d: the decompressor returned %d bytes", cut, len(out))
		}
	}
}

// Frames the fast path leaves alone (two frames back to back, a legacy
// frame) still decode, through franz-go's decoder; so do other codecs.
func TestLZ4UnhandledFramesFallBack(t *testing.T) {
	content := lz4Content(70 << 10)
	one := writeLZ4Frame(t, content)
	two := append(bytes.Clone(one), one...)
	legacy := writeLZ4Frame(t, content, lz4.LegacyOption(true))
	d := newDecompressor(newFetchPools())
	for name, c := range map[string]struct {
		src  []byte
		want []byte
	}{"two frames": {two, append(bytes.Clone(content), content...)}, "legacy": {legacy, content}} {
		if _, err := decodeLZ4Frame(c.src, nil, d.pool); !errors.Is(err, errLZ4Unhandled) {
			t.Errorf("%s: the fast path says %v, want errLZ4Unhandled", name, err)
		}
		want, err := io.ReadAll(lz4.NewReader(bytes.NewReader(c.src)))
		if err != nil || !bytes.Equal(want, c.want) {
			t.Fatalf("%s: pierrec's reader: %d bytes, %v", name, len(want), err)
		}
		if out, err := d.Decompress(c.src, kgo.CodecLz4); err != nil || !bytes.Equal(out, want) {
			t.Errorf("%s: %d bytes back, err %v", name, len(out), err)
		}
	}
}

// The checksum is xxHash32 (the spec's test values).
func TestXXH32(t *testing.T) {
	for in, want := range map[string]uint32{"": 0x02CC5D05, "a": 0x550D7456, "abc": 0x32D153FF,
		"Nobody inspects the spammish repetition": 0xE2293B2F} {
		if got := xxh32([]byte(in)); got != want {
			t.Errorf("xxh32(%q) = %#x, want %#x", in, got, want)
		}
	}
}

// A pooled buffer holds what was asked, is at most a quarter larger, and
// comes back for a later get of its class.
func TestBytePoolClasses(t *testing.T) {
	var bp bytePool
	for n := minPooled; n <= maxPooled; n = n*9/8 + 1 {
		c, size := classUp(n)
		if size < n || size > n+n/4+8 {
			t.Fatalf("class of %d bytes is %d bytes", n, size)
		}
		if classDown(size) != c {
			t.Fatalf("a buffer of %d bytes goes to class %d, not its own %d", size, classDown(size), c)
		}
		if d := classDown(size + 1); d != c {
			t.Fatalf("a buffer of %d bytes goes to class %d, want %d", size+1, d, c)
		}
	}
	b := bp.get(100 << 10)
	if cap(b) < 100<<10 {
		t.Fatalf("get(100 KiB) has capacity %d", cap(b))
	}
}

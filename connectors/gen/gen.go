package gen

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// BlockSize is how many lines share one random stream; a restart in the
// middle of a block regenerates the whole block.
const BlockSize = 1024

// Generator makes the lines of one kind of data.
type Generator interface {
	// Ext is the extension of the files WriteDir writes, ".json" or ".log".
	Ext() string
	// Lines returns a function that appends line i (without its newline)
	// to dst, drawing from r. It is called for the lines of one block in
	// index order, so state kept between calls (a Zipf built on r) is fine.
	// bad asks for a malformed line.
	Lines(r *rand.Rand) func(dst []byte, i int64, bad bool) []byte
}

var generators = map[string]Generator{
	"netflow": netflow{},
	"tshark":  tshark{},
	// seed 001's server logs and seed 004's weather API responses
	"serverlogs": serverlogs{},
	"weather":    weather{},
}

// Names lists the known generators, sorted.
func Names() []string {
	names := make([]string, 0, len(generators))
	for n := range generators {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Lookup returns the generator called name.
func Lookup(name string) (Generator, error) {
	g, ok := generators[name]
	if !ok {
		return nil, fmt.Errorf("unknown generator %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return g, nil
}

// block is BlockSize consecutive lines in one buffer.
type block struct {
	n    int64 // block number: lines n*BlockSize … (n+1)*BlockSize-1
	buf  []byte
	ends []int
}

// line returns line i of the block, capped so an append by the caller
// cannot overwrite the next line.
func (b *block) line(i int64) []byte {
	j := int(i - b.n*BlockSize)
	start := 0
	if j > 0 {
		start = b.ends[j-1]
	}
	return b.buf[start:b.ends[j]:b.ends[j]]
}

// makeBlock generates block n. The bad decision draws from the same stream
// before each line, so bad is part of what a checkpoint must match.
func makeBlock(g Generator, seed, n int64, bad float64, sizeHint int) *block {
	r := rand.New(rand.NewPCG(uint64(seed), uint64(n)))
	next := g.Lines(r)
	b := &block{n: n, buf: make([]byte, 0, sizeHint), ends: make([]int, 0, BlockSize)}
	for j := range int64(BlockSize) {
		isBad := bad > 0 && r.Float64() < bad
		b.buf = next(b.buf, n*BlockSize+j, isBad)
		b.ends = append(b.ends, len(b.buf))
	}
	return b
}

package gen

import (
	"fmt"
	"math/rand/v2"
	"net/url"
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
	"sensors": sensors{c: DefaultSensorsConfig()},
	"tshark":  tshark{},
	// seed 001's server logs and seed 004's weather API responses
	"serverlogs": serverlogs{},
	"weather":    weather{},
	// the Nexmark benchmark's persons, auctions and bids
	"nexmark": nexmark{c: DefaultNexmarkConfig()},
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

// Lookup returns the generator called name. A generator that takes
// parameters (gen:sensors) takes them as a query: "sensors?sensors=10".
func Lookup(name string) (Generator, error) {
	name, query, hasQuery := strings.Cut(name, "?")
	g, ok := generators[name]
	if !ok {
		return nil, fmt.Errorf("unknown generator %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	if !hasQuery {
		return g, nil
	}
	c, ok := g.(configurable)
	if !ok {
		return nil, fmt.Errorf("generator %s takes no parameters, got %q", name, query)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("generator %s: bad parameters %q: %w", name, query, err)
	}
	g, _, err = c.configure(q)
	return g, err
}

// configurable is a Generator that takes parameters besides seed, count,
// rate and bad. configure returns it set from the ones of q it knows, and
// those in canonical form, empty when all are defaults.
type configurable interface {
	configure(q url.Values) (g Generator, canonical string, err error)
}

// withParams appends to name the parameters of q its generator takes, so
// that they are part of the name every checkpoint position records.
func withParams(name string, q url.Values) (string, error) {
	c, ok := generators[name].(configurable)
	if !ok {
		return name, nil
	}
	_, canonical, err := c.configure(q)
	if err != nil || canonical == "" {
		return name, err
	}
	return name + "?" + canonical, nil
}

// seeded is a Generator whose lines depend on the seed itself, not only
// through each block's stream: structure that spans blocks, such as a
// sensor's silence, must be the same whichever block computes it.
type seeded interface {
	withSeed(seed int64) Generator
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
	if s, ok := g.(seeded); ok {
		g = s.withSeed(seed)
	}
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

package gen

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/eddy-stream/eddy/connectors"
)

// Write writes lines [from, from+count) of generator name with seed to w,
// each ending in "\n": exactly the records the gen:NAME source yields for
// those indexes.
func Write(w io.Writer, name string, seed, from, count int64, bad float64) error {
	g, err := Lookup(name)
	if err != nil {
		return err
	}
	if from < 0 || count < 0 {
		return fmt.Errorf("gen %s: from %d and count %d must not be negative", name, from, count)
	}
	if bad < 0 || bad > 1 {
		return fmt.Errorf("gen %s: bad=%g is outside [0, 1]", name, bad)
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	var b *block
	for i := from; i < from+count; i++ {
		if b == nil || i/BlockSize != b.n {
			b = makeBlock(g, seed, i/BlockSize, bad, 256*BlockSize)
		}
		bw.Write(b.line(i))
		if err := bw.WriteByte('\n'); err != nil {
			return fmt.Errorf("gen %s: %w", name, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("gen %s: %w", name, err)
	}
	return nil
}

// WriteDir writes count lines of generator name, split into files equal
// parts in index order, as part-00000.json, part-00001.json, … (.log for
// text generators) in dir, which is created if missing. Each file is
// written under a .tmp name and renamed when complete, so a dir: source
// reading dir meanwhile never sees half a file.
func WriteDir(dir, name string, seed, count int64, files int, bad float64) error {
	g, err := Lookup(name)
	if err != nil {
		return err
	}
	if files < 1 {
		return fmt.Errorf("gen %s: files=%d, want at least 1", name, files)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("gen %s: %w", name, err)
	}
	for k := range int64(files) {
		from, to := k*count/int64(files), (k+1)*count/int64(files)
		path := filepath.Join(dir, fmt.Sprintf("part-%05d%s", k, g.Ext()))
		if err := writeFile(path, name, seed, from, to-from, bad); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path, name string, seed, from, count int64, bad float64) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("gen %s: %w", name, err)
	}
	if err := Write(f, name, seed, from, count, bad); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("gen %s: %w", name, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("gen %s: %w", name, err)
	}
	return nil
}

// Stream writes the lines the gen:NAME source with c yields to w, at c.Rate
// lines per second when set, until c.Count lines are written (never, for
// 0) or ctx is done, which is not an error. Each batch is written out at
// once, so a reader of a pipe or a followed file sees lines as they come:
// `eddy gen NAME --rate R --out app.log` feeds a file: source.
func Stream(ctx context.Context, w io.Writer, name string, c Config) error {
	s, err := New(name, c)
	if err != nil {
		return err
	}
	defer s.Close()
	p := s.Partition
	bw := bufio.NewWriterSize(w, 256<<10)
	for {
		b, err := p.Read(ctx)
		if errors.Is(err, connectors.ErrEndOfInput) || ctx.Err() != nil {
			return bw.Flush()
		}
		if err != nil {
			return err
		}
		for _, r := range b.Records {
			bw.Write(r.Value)
			bw.WriteByte('\n')
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("gen %s: %w", name, err)
		}
	}
}

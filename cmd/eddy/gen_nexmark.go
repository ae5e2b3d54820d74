package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/eddy-stream/eddy/connectors/gen"
)

// nexmarkOut is where `eddy gen nexmark` writes its streams.
type nexmarkOut struct {
	out, brokers, prefix string
	files                int
}

// genNexmark writes the first events events of the Nexmark generator
// name: each stream to DIR/STREAM/ or to the topic PREFIX+STREAM, or the
// one stream name selects to stdout or a file.
func genNexmark(ctx context.Context, stdout io.Writer, name string, seed, events int64, bad float64, o nexmarkOut) error {
	parts, err := gen.NexmarkParts(name, events)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if err := writeNexmarkPart(ctx, stdout, p, seed, bad, o, len(parts)); err != nil {
			return err
		}
	}
	return nil
}

func writeNexmarkPart(ctx context.Context, stdout io.Writer, p gen.NexmarkPart, seed int64, bad float64, o nexmarkOut, streams int) error {
	switch {
	case o.prefix != "":
		q := url.Values{"count": {strconv.FormatInt(p.Count, 10)}, "seed": {strconv.FormatInt(seed, 10)}}
		if bad > 0 {
			q.Set("bad", strconv.FormatFloat(bad, 'g', -1, 64))
		}
		src := "gen:" + p.Name
		if strings.Contains(src, "?") {
			src += "&" + q.Encode()
		} else {
			src += "?" + q.Encode()
		}
		return produce(ctx, "kafka://"+o.brokers+"/"+o.prefix+p.Stream, src, "", "", false)
	case streams > 1 && (o.out == "-" || o.out == ""):
		return fmt.Errorf("gen nexmark writes three streams: give --out DIR/, --topic-prefix, or one stream (nexmark?stream=bid)")
	case streams > 1 || o.files > 0 || strings.HasSuffix(o.out, "/"):
		dir := o.out
		if streams > 1 {
			dir = filepath.Join(o.out, p.Stream)
		}
		return gen.WriteDir(dir, p.Name, seed, p.Count, max(o.files, 1), bad)
	case o.out == "-" || o.out == "":
		return gen.Write(stdout, p.Name, seed, 0, p.Count, bad)
	default:
		f, err := os.Create(o.out)
		if err != nil {
			return err
		}
		if err := gen.Write(f, p.Name, seed, 0, p.Count, bad); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
}

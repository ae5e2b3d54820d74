package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/eddy-stream/eddy/connectors/gen"
)

func genCmd() *cobra.Command {
	var (
		count, seed, from int64
		files             int
		bad               float64
		out               string
		nex               nexmarkOut
	)
	cmd := &cobra.Command{
		Use:   "gen NAME",
		Short: "write generated records (" + strings.Join(gen.Names(), ", ") + ")",
		Long: `Write the records of a built-in generator: exactly those the gen:NAME source yields for the
same seed, so a run on the files and a run on the generator give the same result.

--out - writes to stdout; --out FILE to one file; --out DIR/ (or with --files N) splits the
records into part-00000.json … in DIR, each file written whole and then renamed.

nexmark writes the Nexmark benchmark's persons, auctions and bids: --count is the number of
events, and each stream goes to DIR/person/, DIR/auction/ and DIR/bid/, or with
--topic-prefix P to the Kafka topics Pperson, Pauction and Pbid (which must exist).
'nexmark?stream=bid' writes one stream; event-rate=R (events per second of event time,
default 10000) and start=TIME set the events' times. See docs/nexmark.md.`,
		Example: `  eddy gen netflow --count 100000 --files 10 --out flows/
  eddy gen tshark --count 100 --bad 0.05 --out -
  eddy gen nexmark --count 100000 --files 4 --out nexmark/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if _, err := gen.Lookup(name); err != nil {
				return err
			}
			if count < 0 {
				return fmt.Errorf("--count %d: must not be negative", count)
			}
			if base, _, _ := strings.Cut(name, "?"); base == "nexmark" {
				if from != 0 {
					return fmt.Errorf("--from: gen nexmark always starts at event 0")
				}
				nex.out, nex.files = out, files
				return genNexmark(cmd.Context(), cmd.OutOrStdout(), name, seed, count, bad, nex)
			}
			if nex.prefix != "" {
				return fmt.Errorf("--topic-prefix: only gen nexmark writes to Kafka")
			}
			switch {
			case out == "-" || out == "":
				return gen.Write(cmd.OutOrStdout(), name, seed, from, count, bad)
			case files > 0 || strings.HasSuffix(out, "/"):
				return gen.WriteDir(out, name, seed, count, max(files, 1), bad)
			default:
				f, err := os.Create(out)
				if err != nil {
					return err
				}
				if err := gen.Write(f, name, seed, from, count, bad); err != nil {
					f.Close()
					return err
				}
				return f.Close()
			}
		},
	}
	fl := cmd.Flags()
	fl.Int64Var(&count, "count", 1000, "number of records")
	fl.Int64Var(&seed, "seed", 1, "random seed: the same seed gives the same records")
	fl.Int64Var(&from, "from", 0, "index of the first record (for a single file or stdout)")
	fl.IntVar(&files, "files", 0, "split into N files in the --out directory")
	fl.Float64Var(&bad, "bad", 0, "fraction of malformed records, 0 to 1")
	fl.StringVarP(&out, "out", "o", "-", "where to write: -, FILE, or DIR/")
	fl.StringVar(&nex.prefix, "topic-prefix", "", "nexmark: write each stream to the Kafka topic PREFIX+STREAM")
	fl.StringVar(&nex.brokers, "brokers", defaultBrokers(), "nexmark: the Kafka brokers for --topic-prefix")
	return cmd
}

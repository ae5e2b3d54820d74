package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

func replayCmd() *cobra.Command {
	cmd := runCmd()
	var fromCheckpoint uint64
	var fromSavepoint, fromOffset, fromTime string
	cmd.Use = "replay PIPELINE.lua (--from-checkpoint ID | --from-savepoint NAME | --from-offset earliest|N | --from-time RFC3339)"
	cmd.Short = "run a pipeline again from a checkpoint, a savepoint, an offset or a time"
	cmd.Long = `Replay runs a pipeline again from an earlier point, then on as eddy run does.

From a checkpoint or a savepoint (--state DIR names the pipeline's state directory): the
state directory gets a new checkpoint identical to that one, state and source positions,
and the run restores it. The checkpoints in between stay listed. The pipeline must not be
running on that directory.

From an offset or a time (Kafka sources only): the run starts with empty state, every
partition at that offset (earliest, or a number) or at the first record at or after that
time, in a consumer group of its own so a live run of the pipeline is not disturbed.
--state must then name a new or empty directory (or be left out: a temporary one).

Sinks are as for eddy run; --sink sends the replay's results elsewhere.`
	cmd.Example = `  eddy gen netflow --count 100000 --files 4 --out flows
  eddy run scripts/netflow_webservers.lua --source dir:flows --state netflow-state --until-idle
  eddy checkpoints list --state netflow-state
  eddy replay scripts/netflow_webservers.lua --state netflow-state --from-checkpoint 1 --until-idle
  eddy replay scripts/netflow_webservers.lua --source kafka://127.0.0.1:9092/flows --from-time 2026-11-25T08:00:00Z --until-idle --sink file:replayed.jsonl`
	fl := cmd.Flags()
	fl.Uint64Var(&fromCheckpoint, "from-checkpoint", 0, "restore this checkpoint of --state and run on from it")
	fl.StringVar(&fromSavepoint, "from-savepoint", "", "restore this savepoint of --state and run on from it")
	fl.StringVar(&fromOffset, "from-offset", "", "Kafka: start every partition at this offset (earliest or a number), with empty state")
	fl.StringVar(&fromTime, "from-time", "", "Kafka: start every partition at the first record at or after this RFC 3339 time, with empty state")
	inner := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		n := 0
		for _, set := range []bool{fromCheckpoint > 0, fromSavepoint != "", fromOffset != "", fromTime != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("replay needs exactly one of --from-checkpoint, --from-savepoint, --from-offset, --from-time")
		}
		dir, _ := c.Flags().GetString("state")
		if fromCheckpoint > 0 || fromSavepoint != "" {
			if err := rewind(dir, fromCheckpoint, fromSavepoint); err != nil {
				return err
			}
			// A replay is this node's: the changelog (newer than the
			// rewound state) must not bring the state forward again.
			if err := c.Flags().Set("changelog", "false"); err != nil {
				return err
			}
			return inner(c, args)
		}
		if err := emptyState(dir); err != nil {
			return err
		}
		src, err := replaySource(c, args[0], fromOffset, fromTime)
		if err != nil {
			return err
		}
		if err := c.Flags().Set("source", src); err != nil {
			return err
		}
		if err := c.Flags().Set("changelog", "false"); err != nil { // a replay group's own
			return err
		}
		txnSuffix = ".replay-" + strconv.FormatInt(time.Now().Unix(), 10)
		return inner(c, args)
	}
	return cmd
}

// rewind makes the checkpoint (or savepoint) the last one of dir.
func rewind(dir string, id uint64, savepoint string) error {
	store, err := openExisting(dir, "replay from a checkpoint needs --state DIR, the directory the pipeline ran with")
	if err != nil {
		return err
	}
	defer store.Close()
	if savepoint != "" {
		sp, err := store.Savepoint(savepoint)
		if err != nil {
			return fmt.Errorf("%s has no savepoint %q (eddy checkpoints list --state %s)", dir, savepoint, dir)
		}
		id = sp.ID
	}
	cp, err := store.Rewind(id)
	if errors.Is(err, state.ErrNoCheckpoint) {
		return fmt.Errorf("%s keeps no checkpoint %d (eddy checkpoints list --state %s)", dir, id, dir)
	}
	if err != nil {
		return err
	}
	slog.Info("replaying: the state and positions of checkpoint are restored as a new checkpoint", "from", id, "as", cp.ID)
	return nil
}

// emptyState refuses a state directory that holds checkpoints: a replay
// from an offset starts from nothing, and wiping a directory is the
// user's call.
func emptyState(dir string) error {
	if dir == "" {
		return nil
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	store, err := openState(dir)
	if err != nil {
		return err
	}
	defer store.Close()
	if _, err := store.Last(); !errors.Is(err, state.ErrNoCheckpoint) {
		return fmt.Errorf("a replay from an offset or a time starts with empty state, and %s holds checkpoints: give a new --state directory (or none)", dir)
	}
	return nil
}

// replaySource is the pipeline's Kafka source set to start at an offset
// or a time, ignoring committed offsets, in a group of its own.
func replaySource(c *cobra.Command, script, offset, at string) (string, error) {
	src, _ := c.Flags().GetString("source")
	if src == "" {
		p, err := scripting.Load(script)
		if err != nil {
			return "", err
		}
		src = p.Source
	}
	t, err := connectors.Parse(src)
	if err != nil {
		return "", err
	}
	if t.Scheme != "kafka" {
		return "", fmt.Errorf("--from-offset and --from-time replay Kafka sources; %s is %s: (replay it from a checkpoint instead)", src, t.Scheme)
	}
	q := t.Params
	group, _ := kafka.GroupOf(src)
	q.Set("group", group+".replay-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	q.Set("ignore-committed", "true")
	q.Del("start")
	q.Del("start-time")
	if at != "" {
		if _, err := time.Parse(time.RFC3339, at); err != nil {
			return "", fmt.Errorf("--from-time %q is not an RFC 3339 time such as 2026-01-02T15:04:05Z", at)
		}
		q.Set("start-time", at)
	} else {
		if offset != "earliest" {
			if n, err := strconv.ParseInt(offset, 10, 64); err != nil || n < 0 {
				return "", fmt.Errorf("--from-offset %q: want earliest or an offset", offset)
			}
		}
		q.Set("start", offset)
	}
	return "kafka://" + t.Host + "/" + t.Path + "?" + q.Encode(), nil
}

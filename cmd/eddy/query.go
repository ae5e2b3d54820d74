package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/eddy-stream/eddy/actors"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/eddy-stream/eddy/internal/statusapi"
)

func statusCmd() *cobra.Command {
	var addr string
	var asJSON bool
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "status [PIPELINE]",
		Short: "show a running pipeline's nodes, their partitions and lag, the last checkpoint, the state size",
		Long: `Show how a running pipeline stands: each node (every node of its cluster, when it runs
clustered), the partitions each reads with their position, lag and whether they are caught
up, and each node's last checkpoint and state size.

Without --http, eddy status asks a node of PIPELINE running on this machine (nodes serving
status register themselves in ` + "`$XDG_RUNTIME_DIR/eddy`" + `); PIPELINE may be left out when only
one pipeline runs. With --http HOST:PORT it asks that node, on any machine.`,
		Example: `  eddy run scripts/netflow_webservers.lua --source 'gen:netflow?count=0&rate=10000' --http 127.0.0.1:8080 &
  eddy status                              # the one pipeline running here
  eddy status netflow_webservers
  eddy status --http 127.0.0.1:8080 --json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			pipeline := ""
			if len(args) == 1 {
				pipeline = args[0]
			}
			body, err := ask(cmd.Context(), cf, addr, pipeline, "/status")
			if err != nil {
				return err
			}
			if asJSON {
				_, err := cmd.OutOrStdout().Write(body)
				return err
			}
			var v statusView
			if err := json.Unmarshal(body, &v); err != nil {
				return fmt.Errorf("the node's status: %w", err)
			}
			return v.print(cmd.OutOrStdout(), time.Now())
		},
	}
	cmd.Flags().StringVar(&addr, "http", "", "the --http address of any node of the pipeline (default: find one running on this machine)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON (GET /status)")
	addClientFlags(cmd.Flags(), &cf)
	return cmd
}

func queryCmd() *cobra.Command {
	var addr string
	var partial bool
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "query PIPELINE [KEY]",
		Short: "show a running pipeline's current result for a key, or its whole result table",
		Long: `Show a running pipeline's live result: the current rows of KEY (each of its windows, for a
windowed pipeline), or the whole result table shaped as a complete emit (order_by, limit).
On a cluster, every node's partial result is gathered and merged, so the answer is the
pipeline's whatever node reads which partition.

Without --http, eddy query asks a node of PIPELINE running on this machine. With --http
HOST:PORT it asks that node, on any machine; PIPELINE may then be left out (eddy query
--http ADDR [KEY]: a single argument that is not the node's pipeline is a key).

An answer that would miss part of the result table (a partition restoring from its
changelog, or without an owner while the cluster rebalances) is refused: eddy query names the
partitions and exits non-zero. With --partial it prints the rows it has and says on stderr
what they miss.`,
		Example: `  eddy run scripts/netflow_webservers.lua --source 'gen:netflow?count=0&rate=10000' --emit update --http 127.0.0.1:8080 &
  eddy query netflow_webservers                       # the top 20 as it stands
  eddy query netflow_webservers EnterpriseAppServer
  eddy query --http 127.0.0.1:8080 EnterpriseAppServer`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			pipeline, key := "", ""
			switch {
			case len(args) == 2:
				pipeline, key = args[0], args[1]
			case len(args) == 1 && addr == "":
				pipeline = args[0]
			case len(args) == 1:
				// --http ADDR ARG: the node's pipeline, else a key.
				name, err := pipelineAt(cmd.Context(), cf, addr)
				if err != nil {
					return err
				}
				if args[0] == name {
					pipeline = name
				} else {
					key = args[0]
				}
			}
			if addr != "" && pipeline != "" {
				name, err := pipelineAt(cmd.Context(), cf, addr)
				if err != nil {
					return err
				}
				if name != pipeline {
					return fmt.Errorf("the node at %s runs pipeline %q, not %q", addr, name, pipeline)
				}
			}
			path := "/state"
			if key != "" {
				path = statusapi.KeyPath(key)
			}
			return queryState(cmd, cf, addr, pipeline, path, partial)
		},
	}
	cmd.Flags().StringVar(&addr, "http", "", "the --http address of any node of the pipeline (default: find one running on this machine)")
	cmd.Flags().BoolVar(&partial, "partial", false, "print a partial answer (some partitions restoring or without an owner) instead of failing, saying on stderr what it misses")
	addClientFlags(cmd.Flags(), &cf)
	return cmd
}

// queryState prints the answer at path; one that misses part of the
// result table fails unless partial, and is printed with a warning then.
func queryState(cmd *cobra.Command, cf clientFlags, addr, pipeline, path string, partial bool) error {
	if !partial {
		body, err := ask(cmd.Context(), cf, addr, pipeline, path)
		if se := (*statusapi.StatusError)(nil); errors.As(err, &se) && se.Incomplete != "" {
			return fmt.Errorf("%s (eddy query --partial prints the rows there are)", se.Incomplete)
		}
		if err != nil {
			return err
		}
		_, err = cmd.OutOrStdout().Write(body)
		return err
	}
	var reason string
	body, err := askWith(cmd.Context(), cf, addr, pipeline, path+"?partial=1", func(c statusapi.Client, ctx context.Context, a, p string) (body []byte, err error) {
		body, reason, err = c.FetchState(ctx, a, p)
		return body, err
	})
	if err != nil {
		return err
	}
	if reason != "" {
		fmt.Fprintf(cmd.ErrOrStderr(), "eddy query: a partial answer: %s\n", reason)
	}
	_, err = cmd.OutOrStdout().Write(body)
	return err
}

// ask fetches path from the node at addr or, without one, from the first
// node of pipeline registered on this machine that answers.
func ask(ctx context.Context, cf clientFlags, addr, pipeline, path string) ([]byte, error) {
	return askWith(ctx, cf, addr, pipeline, path, statusapi.Client.Fetch)
}

// askWith is ask fetching with fetch, as a client with the token and CA
// of the flags or, for a node found on this machine, of its entry.
func askWith(ctx context.Context, cf clientFlags, addr, pipeline, path string, fetch func(c statusapi.Client, ctx context.Context, addr, path string) ([]byte, error)) ([]byte, error) {
	if addr != "" {
		c, err := cf.client(nil)
		if err != nil {
			return nil, err
		}
		return fetch(c, ctx, addr, path)
	}
	entries, err := statusapi.FindEntries(pipeline)
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, e := range entries {
		c, err := cf.client(&e)
		if err != nil {
			return nil, err
		}
		body, err := fetch(c, ctx, e.HTTP, path)
		if err == nil || !errors.Is(err, statusapi.ErrUnreachable) {
			return body, err
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

// pipelineAt is the pipeline the node at addr runs.
func pipelineAt(ctx context.Context, cf clientFlags, addr string) (string, error) {
	c, err := cf.client(nil)
	if err != nil {
		return "", err
	}
	body, err := c.Fetch(ctx, addr, "/status?local=1")
	if err != nil {
		return "", err
	}
	var st struct {
		Pipeline string `json:"pipeline"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return "", fmt.Errorf("the status at %s: %w", addr, err)
	}
	return st.Pipeline, nil
}

// statusView reads GET /status: a cluster's view (nodes) or, from a node
// that runs alone, its own status.
type statusView struct {
	Cluster string     `json:"cluster"`
	Nodes   []nodeView `json:"nodes"`
	nodeStatus
}

type nodeView struct {
	ID      string      `json:"id"`
	Address string      `json:"address"`
	HTTP    string      `json:"http"`
	Self    bool        `json:"self"`
	Status  *nodeStatus `json:"status"`
	Error   string      `json:"error"`
}

// nodeStatus is one node's own status, as GET /status?local=1 has it.
type nodeStatus = actors.Status

// print writes the status as two tables: the partitions of every node,
// then each node's checkpoint and state.
func (v *statusView) print(w io.Writer, now time.Time) error {
	nodes := v.Nodes
	if v.Cluster == "" {
		st := v.nodeStatus
		nodes = []nodeView{{Self: true, Status: &st}}
		fmt.Fprintf(w, "pipeline %s, one node (not clustered)\n\n", v.Pipeline)
	} else {
		pipeline := v.Pipeline
		for _, n := range nodes {
			if pipeline == "" && n.Status != nil {
				pipeline = n.Status.Pipeline
			}
		}
		fmt.Fprintf(w, "pipeline %s, cluster %s: %d node%s\n\n", pipeline, v.Cluster, len(nodes), plural(len(nodes)))
	}
	name := func(n nodeView) string {
		s := n.HTTP
		if s == "" {
			s = n.Address
		}
		if n.Status != nil && n.Status.Node != "" {
			// the node's name (--node), then where it answers
			s = strings.TrimSpace(n.Status.Node + " " + s)
		}
		if s == "" {
			s = "this node"
		} else if n.Self && v.Cluster != "" {
			s += " (this)"
		}
		return s
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPARTITION\tPOSITION\tLAG\tCAUGHT UP")
	for _, n := range nodes {
		switch {
		case n.Status == nil:
			fmt.Fprintf(tw, "%s\t(no answer: %s)\t\t\t\n", name(n), n.Error)
		case len(n.Status.Partitions) == 0:
			fmt.Fprintf(tw, "%s\t(none assigned)\t\t\t\n", name(n))
		}
		if n.Status == nil {
			continue
		}
		for _, p := range n.Status.Partitions {
			lag, up := "-", "no"
			if p.Lag != nil {
				lag = strconv.FormatInt(*p.Lag, 10)
			}
			if p.CaughtUp {
				up = "yes"
			}
			if p.Ended {
				up = "ended"
			}
			if p.Restoring {
				up = fmt.Sprintf("restoring (%d of %d changes)", p.Restored, p.ToRestore)
			}
			pos := p.Position
			if pos == "" {
				pos = "-"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name(n), p.ID, pos, lag, up)
		}
		for _, id := range n.Status.Standbys {
			fmt.Fprintf(tw, "%s\t%s\t(standby copy)\t\t\n", name(n), id)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tID\tRECORDS READ\tLAST CHECKPOINT\tKEYS\tSTATE SIZE")
	var total int64
	for _, n := range nodes {
		if n.Status == nil {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\n", name(n), orDash(n.ID))
			continue
		}
		st := n.Status
		cp, keys := "none yet", "-"
		if st.Checkpoint != nil {
			cp = fmt.Sprintf("#%d, %s ago (%s)", st.Checkpoint.ID, now.Sub(st.Checkpoint.Time).Round(time.Second), st.Checkpoint.Time.Local().Format("15:04:05"))
			keys = strconv.FormatInt(st.Checkpoint.Keys, 10)
		}
		total += st.StateBytes
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\n", name(n), orDash(n.ID), st.Read, cp, keys, bytesize(st.StateBytes))
	}
	if len(nodes) > 1 {
		fmt.Fprintf(tw, "total\t\t\t\t\t%s\n", bytesize(total))
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// bytesize renders n bytes as 512 B, 1.5 KiB, 20.0 MiB.
func bytesize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

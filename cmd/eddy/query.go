package main

import (
	"github.com/spf13/cobra"

	"github.com/eddy-stream/eddy/internal/statusapi"
)

func statusCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "status --http HOST:PORT",
		Short: "show a running pipeline's status: partitions, positions, last checkpoint, state size",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return statusapi.Get(cmd.Context(), addr, "/status", cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&addr, "http", "127.0.0.1:8080", "the --http address the pipeline runs with")
	return cmd
}

func queryCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{
		Use:   "query [KEY] --http HOST:PORT",
		Short: "show a running pipeline's current result for a key, or its whole result table",
		Example: `  eddy run scripts/netflow_webservers.lua --emit update --http 127.0.0.1:8080 &
  eddy query --http 127.0.0.1:8080                  # the top 20 as it stands
  eddy query EnterpriseAppServer --http 127.0.0.1:8080`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path := "/state"
			if len(args) == 1 {
				path = statusapi.KeyPath(args[0])
			}
			return statusapi.Get(cmd.Context(), addr, path, cmd.OutOrStdout())
		},
	}
	cmd.Flags().StringVar(&addr, "http", "127.0.0.1:8080", "the --http address the pipeline runs with")
	return cmd
}

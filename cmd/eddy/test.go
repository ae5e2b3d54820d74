package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/eddy-stream/eddy/internal/pipetest"
	"github.com/eddy-stream/eddy/scripting"
)

func testCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "test PIPELINE.lua...",
		Short: "run the inline tests of pipelines",
		Long: `Run each pipeline's inline tests (its tests table) on the real engine with in-memory
input and state, and show a diff for each test that fails. Exits non-zero when any fails.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			failed, total := 0, 0
			for _, path := range args {
				p, err := scripting.Load(path)
				if err != nil {
					return err
				}
				if len(p.Tests) == 0 {
					fmt.Fprintf(out, "%s: no tests\n", p.Script)
					continue
				}
				results, err := pipetest.Run(cmd.Context(), p)
				if err != nil {
					return err
				}
				for _, r := range results {
					total++
					if r.Passed() {
						fmt.Fprintf(out, "ok    %s: %s\n", p.Script, r.Name)
						continue
					}
					failed++
					fmt.Fprintf(out, "FAIL  %s: %s\n", p.Script, r.Name)
					for _, f := range r.Failures {
						fmt.Fprintf(out, "  %s\n", f)
					}
				}
			}
			fmt.Fprintf(out, "%d passed, %d failed\n", total-failed, failed)
			if failed > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
}

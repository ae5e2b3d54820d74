package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// versionText is what eddy --version and eddy version print: the module's
// version and, when the binary was built from a checkout, the VCS revision,
// whether the tree had uncommitted changes, and the commit's time.
func versionText(info *debug.BuildInfo, ok bool) string {
	if !ok || info == nil {
		return "eddy (no build information: built without module support)"
	}
	v := info.Main.Version
	if v == "" {
		v = "(devel)"
	}
	s := "eddy " + v
	settings := map[string]string{}
	for _, kv := range info.Settings {
		settings[kv.Key] = kv.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		var parts []string
		if settings["vcs.modified"] == "true" {
			rev += "+dirty"
		}
		parts = append(parts, settings["vcs"]+" "+rev)
		if t := settings["vcs.time"]; t != "" {
			parts = append(parts, t)
		}
		s += " (" + strings.Join(parts, ", ") + ")"
	}
	return s + " " + info.GoVersion
}

func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	return versionText(info, ok)
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "print eddy's version and the revision it was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintln(cmd.OutOrStdout(), buildVersion())
			return err
		},
	}
}

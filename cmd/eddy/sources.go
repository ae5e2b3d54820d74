package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// openSources opens a pipeline's several named sources as one partition
// (connectors.Merged). --source overrides them by name: NAME=URI, several
// separated by commas. It returns the URIs it opened, for the run's
// description.
func openSources(p *scripting.Pipeline, f runFlags) (string, connectors.Source, error) {
	if f.source != "" {
		for _, pair := range strings.Split(f.source, ",") {
			name, uri, ok := strings.Cut(pair, "=")
			if !ok || strings.ContainsAny(name, ":/") {
				return "", nil, fmt.Errorf("--source %s: %s reads several sources (%s): say which one with --source NAME=URI, such as --source %s=dir:DATA",
					f.source, p.Script, strings.Join(p.SourceNames(), ", "), p.SourceNames()[0])
			}
			if err := p.SetSourceURI(name, uri); err != nil {
				return "", nil, err
			}
		}
	}
	sources := map[string]connectors.Source{}
	var uris []string
	for _, s := range p.Sources {
		if s.URI == "" {
			return "", nil, fmt.Errorf("sources.%s names no uri: set it in the script or with --source %s=URI", s.Name, s.Name)
		}
		t, err := connectors.Parse(s.URI)
		if err != nil {
			return "", nil, fmt.Errorf("sources.%s: %w", s.Name, err)
		}
		if t.Scheme == "kafka" {
			return "", nil, fmt.Errorf("sources.%s: %s: a pipeline with several sources reads files, directories and generators for now, not Kafka topics (their partitions would have to be co-partitioned and move together between nodes)", s.Name, s.URI)
		}
		src, err := connectors.OpenSource(s.URI, connectors.Params{})
		if err != nil {
			return "", nil, fmt.Errorf("sources.%s: %w", s.Name, err)
		}
		sources[s.Name] = src
		uris = append(uris, s.Name+"="+s.URI)
	}
	m, err := connectors.NewMerged(context.Background(), sources)
	if err != nil {
		return "", nil, err
	}
	return strings.Join(uris, ","), connectors.Single{Partition: m}, nil
}

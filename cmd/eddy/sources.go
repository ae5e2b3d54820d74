package main

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/scripting"
)

// openSources opens a pipeline's several named sources as one partition
// (connectors.Merged). --source overrides them by name: NAME=URI, several
// separated by commas. Its kafka:// sources become one member of their
// consumer group reading all their topics. It returns the URIs it opened,
// for the run's description.
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
	var inputs []connectors.MergedInput
	var uris []string
	topics := &kafkaTopics{byTopic: map[string]string{}}
	for _, s := range p.Sources {
		if s.URI == "" {
			return "", nil, fmt.Errorf("sources.%s names no uri: set it in the script or with --source %s=URI", s.Name, s.Name)
		}
		uris = append(uris, s.Name+"="+s.URI)
		t, err := connectors.Parse(s.URI)
		if err != nil {
			return "", nil, fmt.Errorf("sources.%s: %w", s.Name, err)
		}
		if t.Scheme == "kafka" {
			if err := topics.add(s.Name, kafka.WithDefaultGroup(s.URI, p.Name)); err != nil {
				return "", nil, err
			}
			continue
		}
		src, err := connectors.OpenSource(s.URI, connectors.Params{})
		if err != nil {
			return "", nil, fmt.Errorf("sources.%s: %w", s.Name, err)
		}
		name := s.Name
		inputs = append(inputs, connectors.MergedInput{Source: src, Name: func(string) string { return name }})
	}
	if len(topics.byTopic) > 0 {
		src, err := connectors.OpenSource(topics.uri(), connectors.Params{})
		if err != nil {
			return "", nil, fmt.Errorf("sources %s: %w", strings.Join(topics.names(), ", "), err)
		}
		inputs = append(inputs, connectors.MergedInput{Source: src, Name: topics.nameOf})
	}
	m, err := connectors.NewMergedInputs(context.Background(), inputs)
	if err != nil {
		return "", nil, err
	}
	if len(topics.byTopic) > 0 {
		return strings.Join(uris, ","), inProcessKafka{connectors.Single{Partition: m}}, nil
	}
	return strings.Join(uris, ","), connectors.Single{Partition: m}, nil
}

// inProcessKafka is a pipeline's Kafka topics read whole by one process
// (stages, several sources): it keeps its state in --state only, with no
// changelog to move it to another node.
type inProcessKafka struct{ connectors.Single }

// kafkaTopics gathers a pipeline's kafka:// sources into one source of
// several topics: one member of one consumer group, which Merged needs to
// hold every partition of every topic.
type kafkaTopics struct {
	first   connectors.Target
	byTopic map[string]string // the source name of each topic
}

func (k *kafkaTopics) add(name, uri string) error {
	t, err := connectors.Parse(uri)
	if err != nil {
		return fmt.Errorf("sources.%s: %w", name, err)
	}
	if t.Path == "" || strings.Contains(t.Path, ",") {
		return fmt.Errorf("sources.%s: %s: name one topic per source", name, uri)
	}
	if len(k.byTopic) == 0 {
		k.first = t
	} else if t.Host != k.first.Host || t.Params.Encode() != k.first.Params.Encode() {
		return fmt.Errorf("sources.%s: %s: the kafka:// sources of a pipeline read from one cluster in one consumer group, with the same parameters: want kafka://%s/TOPIC?%s", name, uri, k.first.Host, k.first.Params.Encode())
	}
	if other, dup := k.byTopic[t.Path]; dup {
		return fmt.Errorf("sources.%s: topic %s is also sources.%s's", name, t.Path, other)
	}
	k.byTopic[t.Path] = name
	return nil
}

// uri is the one kafka:// source of all the topics.
func (k *kafkaTopics) uri() string {
	topics := make([]string, 0, len(k.byTopic))
	for t := range k.byTopic {
		topics = append(topics, t)
	}
	sort.Strings(topics)
	u := "kafka://" + k.first.Host + "/" + strings.Join(topics, ",")
	if q := url.Values(k.first.Params).Encode(); q != "" {
		u += "?" + q
	}
	return u
}

func (k *kafkaTopics) names() []string {
	var names []string
	for _, n := range k.byTopic {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// nameOf is the source name of a partition, by its topic (IDs read
// kafka:TOPIC/N).
func (k *kafkaTopics) nameOf(id string) string {
	topic := strings.TrimPrefix(id, "kafka:")
	if i := strings.LastIndexByte(topic, '/'); i >= 0 {
		topic = topic[:i]
	}
	return k.byTopic[topic]
}

// wholeKafka opens a one-source pipeline's kafka:// source as one
// partition holding all of its topics' partitions (connectors.Merged), for
// pipelines whose later stages must see every partition's rows: they run
// in one process, in-process between stages.
func wholeKafka(src connectors.Source) (connectors.Source, error) {
	m, err := connectors.NewMergedInputs(context.Background(), []connectors.MergedInput{{Source: src, Name: func(string) string { return "" }}})
	if err != nil {
		return nil, err
	}
	return inProcessKafka{connectors.Single{Partition: m}}, nil
}

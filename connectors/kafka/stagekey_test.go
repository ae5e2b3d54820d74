package kafka_test

import (
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// A sink with RowKey writes each row under the key RowKey gives (a stage's
// rows by the next stage's key), not the row's own, so rows of one next
// key reach one partition whatever their own keys.
func TestSinkRowKeyRekeysRows(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 4)
	conn, err := kafka.ParseConn(connectors.Target{Scheme: "kafka", Host: brokers[0], Path: topic})
	if err != nil {
		t.Fatal(err)
	}
	s, err := kafka.NewSink(kafka.SinkConfig{Conn: conn, Topic: topic, Format: "json",
		RowKey: func(r connectors.Row) string { w, _ := r.Get("window"); return w.(string) }})
	if err != nil {
		t.Fatal(err)
	}
	var rows []connectors.Row
	for i := range 40 {
		rows = append(rows, connectors.Row{Key: string(rune('a' + i%26)), Fields: []connectors.Field{{Name: "window", Value: []string{"w1", "w2"}[i%2]}}})
	}
	if err := s.Write(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	parts := map[string]map[int32]bool{}
	for _, r := range consumeAll(t, brokers, topic, len(rows)) {
		if parts[string(r.Key)] == nil {
			parts[string(r.Key)] = map[int32]bool{}
		}
		parts[string(r.Key)][r.Partition] = true
	}
	if len(parts) != 2 || len(parts["w1"]) != 1 || len(parts["w2"]) != 1 {
		t.Fatalf("keys and their partitions %v: want w1 and w2, each in one partition", parts)
	}
}

package all

// Kafka registers kafka:// as a source and a sink.
import _ "github.com/eddy-stream/eddy/connectors/kafka"

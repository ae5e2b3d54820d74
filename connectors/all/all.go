package all

// Kafka registers kafka:// as a source and a sink.
import _ "github.com/eddy-stream/eddy/connectors/kafka"

// Cassandra, MySQL and HTTP polling: the database sinks and lookups and the
// API source of issue 7.
import (
	_ "github.com/eddy-stream/eddy/connectors/cassandra"
	_ "github.com/eddy-stream/eddy/connectors/http"
	_ "github.com/eddy-stream/eddy/connectors/mysql"
)

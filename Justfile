# eddy's recipes. `just --list` shows them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# build the eddy binary into bin/
build:
    go build -o bin/eddy ./cmd/eddy

# the unit tests (servers' tests skip unless services are up; see `itest`)
test:
    go test ./...

# the netflow pipeline on 200k generated flows, top 20 on stdout
demo: build
    rm -rf /tmp/eddy-demo && ./bin/eddy gen netflow --count 200000 --files 8 --seed 7 --out /tmp/eddy-demo/flows
    ./bin/eddy run scripts/netflow_webservers.lua --source dir:/tmp/eddy-demo/flows --state /tmp/eddy-demo/state --until-idle --emit final

# throughput and latency of the netflow pipeline beside a plain-Go baseline
bench:
    go test ./actors -run '^$' -bench BenchmarkNetflow -benchtime 1x -timeout 30m -v

# ---- real servers (docs/services.md) ----

# start Kafka, Cassandra and MariaDB (then `source services/env.sh` for the tests)
services-up: kafka-up cassandra-up mysql-up

# stop what services-up started
services-down: kafka-down cassandra-down mysql-down

# start Kafka 4.4 (KRaft) on 127.0.0.1:9092, with TLS+SASL on 9094; a second run finds it running
kafka-up:
    bash services/kafka.sh up

# stop the kafka server that kafka-up started
kafka-down:
    bash services/kafka.sh down

# start Cassandra 5.0 with CQL on 127.0.0.1:9042; a second run finds it running
cassandra-up:
    bash services/cassandra.sh up

# stop the cassandra server that cassandra-up started
cassandra-down:
    bash services/cassandra.sh down

# start MariaDB on 127.0.0.1:3306 (user eddy/eddy); a second run finds it running
mysql-up:
    bash services/mysql.sh up

# stop the mysql server that mysql-up started
mysql-down:
    bash services/mysql.sh down

# the tests with every server up and nothing skipped (starts them if needed; a skip fails)
itest: services-up
    source services/env.sh && go test -json -count=1 -timeout 30m ./... | go run ./internal/testsummary

# event-time windows: 10,000 sensors, 1-minute windows, beside a plain-Go baseline
bench-windows:
    go test ./actors -run '^$' -bench BenchmarkWindows -benchtime 1x -timeout 30m -v

# the Nexmark queries of scripts/nexmark on 1M generated events (EDDY_BENCH_EVENTS=N): events/s and per core beside a plain-Go reference and Flink's published figures, rows checked equal
bench-nexmark:
    go test ./scripts/nexmark -run '^$' -bench BenchmarkNexmark -benchtime 1x -timeout 60m

# the netflow top 20 in eddy and in Spark (pyspark from PyPI into .cache/pyspark, local[2], batch and streaming) on the same 1M and 10M generated records: results compared, wall and in-engine times side by side (needs a JDK 17+; EDDY_SPARK_SIZES sets the sizes)
bench-spark:
    bash bench/spark/bench.sh

# the netflow pipeline on a pre-filled 1M-record topic beside a plain franz-go loop, then latency at 20k records/s (starts Kafka if needed); EDDY_BENCH_ROUNDS=N measures both sides N times in turn
bench-kafka: kafka-up
    source services/env.sh && go test ./connectors/kafka -run '^$' -bench BenchmarkKafkaNetflow -benchtime 1x -timeout 30m -v

# the netflow pipeline on 1 and 2 `eddy run` processes, each pinned to a core of its own (taskset), over an 8-partition topic (1M records): records/s, CPU s, cores used; a partition's cost at rest and the changelog's bytes per record (the sizing inputs of docs/cluster.md); then the restore of a moved 10M-key partition from its changelog; EDDY_BENCH_RECORDS / EDDY_BENCH_KEYS / EDDY_BENCH_ROUNDS (3) set the sizes, EDDY_BENCH_GOMEMLIMIT the nodes' GOMEMLIMIT (10M keys need ~13 GiB without one), EDDY_BENCH_BROKER_PID pins a broker of your own to the cores left (starts Kafka if needed)
bench-cluster: kafka-up
    source services/env.sh && go test ./connectors/kafka -run '^$' -bench BenchmarkCluster -benchtime 1x -timeout 45m -v

# rows/s into MariaDB (1M rows) and Cassandra (200k: ~6k rows/s on 2 cores) through eddy's sinks beside plain-Go loops with the same driver and batching; EDDY_BENCH_ROWS=N sets both
bench-sinks: mysql-up cassandra-up
    source services/env.sh && EDDY_BENCH_ROWS=${EDDY_BENCH_ROWS:-1000000} go test ./connectors/mysql -run '^$' -bench BenchmarkSink -benchtime 1x -timeout 60m
    source services/env.sh && EDDY_BENCH_ROWS=${EDDY_BENCH_ROWS:-1000000} go test ./connectors/cassandra -run '^$' -bench BenchmarkSink -benchtime 1x -timeout 60m

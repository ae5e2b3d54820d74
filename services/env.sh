# shellcheck shell=bash
# Where the servers of services/*.sh listen, for eddy's tests:
#
#   source services/env.sh
#
# To test against servers of your own instead, export these yourself and
# don't source this file (docs/services.md).
export EDDY_KAFKA_BROKERS=127.0.0.1:9092
export EDDY_CASSANDRA_HOSTS=127.0.0.1:9042
export EDDY_MYSQL_DSN='eddy:eddy@tcp(127.0.0.1:3306)/eddy'

# The same broker's SASL_SSL listener (services/kafka.sh): TLS verified with
# the CA the recipe made, then a SCRAM-SHA-512 or a PLAIN login. The tests of
# eddy's TLS and SASL options read these; EDDY_KAFKA_DIR and
# EDDY_KAFKA_SECURE_PORT point them at a private instance of the recipe.
export EDDY_KAFKA_SECURE_BROKERS=127.0.0.1:${EDDY_KAFKA_SECURE_PORT:-9094}
EDDY_KAFKA_CA=${EDDY_KAFKA_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.cache/kafka}/tls/ca.pem
export EDDY_KAFKA_CA
export EDDY_KAFKA_SCRAM_USER=eddy-scram
export EDDY_KAFKA_SCRAM_PASSWORD=eddy-scram-secret
export EDDY_KAFKA_PLAIN_USER=eddy-plain
export EDDY_KAFKA_PLAIN_PASSWORD=eddy-plain-secret

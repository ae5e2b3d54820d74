# shellcheck shell=bash
# Where the servers of services/*.sh listen, for eddy's tests:
#
#   source services/env.sh
#
# To test against servers of your own instead, export these three yourself and
# don't source this file (docs/services.md).
export EDDY_KAFKA_BROKERS=127.0.0.1:9092
export EDDY_CASSANDRA_HOSTS=127.0.0.1:9042
export EDDY_MYSQL_DSN='eddy:eddy@tcp(127.0.0.1:3306)/eddy'

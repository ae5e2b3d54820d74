#!/usr/bin/env bash
# `just bench-spark`: the netflow top 20 (scripts/netflow_webservers.lua) in
# eddy and in Spark (batch and Structured Streaming, local[2]) on the same
# generated files, 1M and 10M records (EDDY_SPARK_SIZES overrides), their
# results compared line by line; wall and in-engine times side by side.
# pyspark comes from PyPI into the git-ignored .cache/pyspark venv; Spark
# needs a JDK (17 or later) on PATH.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
venv=.cache/pyspark
pyspark_version=4.3.0
data=.cache/bench-spark

command -v java >/dev/null || { echo "bench-spark: no java on PATH (Spark needs a JDK 17+)" >&2; exit 1; }
if ! "$venv/bin/python" -c "import pyspark, sys; sys.exit(pyspark.__version__ != '$pyspark_version')" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "pyspark==$pyspark_version"
fi
go build -o bin/eddy ./cmd/eddy

# secs CMD...: runs CMD, its stdout to $out, and sets $took to its wall seconds
secs() {
    local t0 t1
    t0=$(date +%s.%N)
    "$@" > "$out"
    t1=$(date +%s.%N)
    took=$(echo "$t1 - $t0" | bc)
}

eddy_run() { # DIR
    rm -rf "$data/state"
    bin/eddy run scripts/netflow_webservers.lua --source "dir:$1" --state "$data/state" --until-idle --emit final
}

# eddy's start and end (Badger, a final checkpoint) on one record, taken off
# its wall for the in-engine time, as the JVM's and session's start are off
# Spark's.
mkdir -p "$data/one"
echo '{"dstdevice":"Comp1","dstport":"80"}' > "$data/one/part-00000.json"
out=$data/one.out
secs eddy_run "$data/one"
startup=$took

printf '\n%-10s %-22s %10s %12s %s\n' records engine wall in-engine "top 20"
for n in ${EDDY_SPARK_SIZES:-1000000 10000000}; do
    dir=$data/flows-$n
    if [ ! -f "$dir/.done" ]; then
        rm -rf "$dir"
        bin/eddy gen netflow --count "$n" --files 16 --seed 7 --out "$dir" > /dev/null
        touch "$dir/.done"
    fi
    cat "$dir"/part-* > /dev/null # both engines read from the page cache
    out=$data/eddy-$n.out
    secs eddy_run "$dir"
    eddy_wall=$took
    printf '%-10s %-22s %9.2fs %11.2fs %s\n' "$n" eddy "$eddy_wall" "$(echo "$eddy_wall - $startup" | bc)" "$(wc -l < "$out") rows"
    for mode in batch streaming; do
        out=$data/spark-$mode-$n.log
        # Spark's own log goes to a file beside its output
        if ! secs "$venv/bin/python" bench/spark/netflow.py "$root/$dir" "$mode" "$data/spark-$mode-$n.out" 2> "$data/spark-$mode-$n.err"; then
            tail -20 "$data/spark-$mode-$n.err" >&2
            exit 1
        fi
        engine=$(tail -1 "$out" | sed -n 's/^in-engine //p')
        if cmp -s "$data/eddy-$n.out" "$data/spark-$mode-$n.out"; then same="equal to eddy's"; else same="DIFFERS from eddy's"; fi
        printf '%-10s %-22s %9.2fs %11.2fs %s\n' "$n" "spark $mode" "$took" "$engine" "$same"
        if [ "$same" != "equal to eddy's" ]; then
            diff "$data/eddy-$n.out" "$data/spark-$mode-$n.out" | head >&2
            exit 1
        fi
        printf '%-10s %-22s %10s %11.1fx %s\n' "" "  eddy faster by" "$(echo "scale=1; $took / $eddy_wall" | bc)x" "$(echo "scale=3; $engine / ($eddy_wall - $startup)" | bc)" "(wall, in-engine)"
    done
done

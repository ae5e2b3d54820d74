"""The netflow query of scripts/netflow_webservers.lua in Spark, for `just bench-spark`.

    netflow.py DIR MODE OUT

DIR holds the JSON-lines files `eddy gen netflow` wrote; MODE is batch
(spark.read) or streaming (Structured Streaming, availableNow, complete
mode into a memory table). Spark runs local[2] with 2 shuffle partitions
and an explicit schema (no inference pass). The top 20 go to OUT in eddy's
output form, one JSON object a line, so the recipe can compare them; the
last line on stdout is the in-engine time: from the query's start to its
rows in hand, leaving out the JVM's and the session's start.
"""

import json
import sys
import time

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField, StructType

FIELDS = ["time", "duration", "srcdevice", "dstdevice", "protocol", "srcport",
          "dstport", "srcpackets", "dstpackets", "srcbytes", "dstbytes"]
SCHEMA = StructType([StructField(f, StringType()) for f in FIELDS])


def top20(df):
    return (df.where(F.col("dstport").isin("80", "443"))
              .groupBy("dstdevice").count())


def main():
    src, mode, out = sys.argv[1], sys.argv[2], sys.argv[3]
    spark = (SparkSession.builder.master("local[2]").appName("eddy-bench-netflow")
             .config("spark.sql.shuffle.partitions", "2")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "2g")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    start = time.monotonic()
    if mode == "batch":
        counts = top20(spark.read.schema(SCHEMA).json(src))
    elif mode == "streaming":
        q = (top20(spark.readStream.schema(SCHEMA).json(src))
             .writeStream.outputMode("complete").format("memory").queryName("netflow")
             .trigger(availableNow=True).start())
        q.awaitTermination()
        counts = spark.table("netflow")
    else:
        sys.exit(f"mode {mode!r}: want batch or streaming")
    rows = counts.orderBy(F.col("count").desc(), F.col("dstdevice")).limit(20).collect()
    took = time.monotonic() - start
    with open(out, "w") as f:
        for r in rows:
            f.write(json.dumps({"dstdevice": r["dstdevice"], "count": r["count"]}, separators=(",", ":")) + "\n")
    spark.stop()
    print(f"in-engine {took:.3f}")


if __name__ == "__main__":
    main()

package cassandra

import (
	"fmt"
	"math"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/eddy-stream/eddy/connectors"
)

// toCQL converts a Row value (nil, bool, int64, float64, string, []any,
// map[string]any) to what gocql marshals into a column of type typ.
func toCQL(typ string, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch typ {
	case "int", "bigint", "smallint", "tinyint", "varint", "counter":
		n, err := whole(v)
		if err != nil {
			return nil, err
		}
		switch typ {
		case "int":
			if n < math.MinInt32 || n > math.MaxInt32 {
				return nil, fmt.Errorf("%d does not fit an int", n)
			}
			return int32(n), nil
		case "smallint":
			if n < math.MinInt16 || n > math.MaxInt16 {
				return nil, fmt.Errorf("%d does not fit a smallint", n)
			}
			return int16(n), nil
		case "tinyint":
			if n < math.MinInt8 || n > math.MaxInt8 {
				return nil, fmt.Errorf("%d does not fit a tinyint", n)
			}
			return int8(n), nil
		}
		return n, nil
	case "double", "float":
		var f float64
		switch v := v.(type) {
		case float64:
			f = v
		case int64:
			f = float64(v)
		default:
			return nil, fmt.Errorf("%s is not a number", connectors.AppendValue(nil, v))
		}
		if typ == "float" {
			return float32(f), nil
		}
		return f, nil
	case "text", "varchar", "ascii":
		if s, ok := v.(string); ok {
			return s, nil
		}
		return string(connectors.AppendValue(nil, v)), nil
	case "boolean":
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("%s is not a boolean", connectors.AppendValue(nil, v))
	case "timestamp":
		switch v := v.(type) {
		case string:
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return nil, fmt.Errorf("%q is not an RFC 3339 time", v)
			}
			return t, nil
		case int64:
			return time.Unix(v, 0), nil
		case float64:
			sec, frac := math.Modf(v)
			return time.Unix(int64(sec), int64(frac*1e9)), nil
		}
		return nil, fmt.Errorf("%s is not a time (RFC 3339 text or Unix seconds)", connectors.AppendValue(nil, v))
	case "uuid", "timeuuid":
		if s, ok := v.(string); ok {
			u, err := gocql.ParseUUID(s)
			if err != nil {
				return nil, fmt.Errorf("%q is not a UUID", s)
			}
			return u, nil
		}
		return nil, fmt.Errorf("%s is not a UUID", connectors.AppendValue(nil, v))
	}
	if strings.HasPrefix(typ, "frozen<") || strings.HasPrefix(typ, "list<") || strings.HasPrefix(typ, "set<") || strings.HasPrefix(typ, "map<") {
		return v, nil
	}
	return v, nil
}

func whole(v any) (int64, error) {
	switch v := v.(type) {
	case int64:
		return v, nil
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 {
			return int64(v), nil
		}
		return 0, fmt.Errorf("%v is not a whole number", v)
	}
	return 0, fmt.Errorf("%s is not a whole number", connectors.AppendValue(nil, v))
}

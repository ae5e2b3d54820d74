package gen_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/gen"
)

func TestServerLogsConformance(t *testing.T) {
	connectortest.TestSource(t, open("gen:serverlogs?count=3000&seed=5&bad=0.01"), connectortest.SourceOptions{})
}

// TestServerLogsMix checks the logs hold what seed 001's classification
// needs: well-formed logs of known users on their own device, logs from
// another device, unknown accounts, and each kind of schema breakage.
func TestServerLogsMix(t *testing.T) {
	var buf bytes.Buffer
	if err := gen.Write(&buf, "serverlogs", 1, 0, 20000, 0); err != nil {
		t.Fatal(err)
	}
	users := map[float64]string{}
	for _, u := range gen.ServerLogUsers() {
		users[float64(u.AccountID)] = u.Device
	}
	if len(users) != gen.ServerLogAccounts {
		t.Fatalf("%d users, want %d", len(users), gen.ServerLogAccounts)
	}
	counts := map[string]int{}
	for _, line := range bytes.Split(bytes.TrimSuffix(buf.Bytes(), []byte("\n")), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		kind := ""
		for _, f := range gen.ServerLogFields {
			v, ok := m[f]
			switch {
			case !ok:
				kind = "missing"
			case v == nil:
				kind = "null"
			default:
				_, isNum := v.(float64)
				_, isStr := v.(string)
				wantNum := f == "account_id" || f == "status_code" || f == "bytes"
				if (wantNum && !isNum) || (!wantNum && !isStr) {
					kind = "wrong type"
				}
			}
		}
		if kind == "" {
			dev, known := users[m["account_id"].(float64)]
			switch {
			case !known:
				kind = "unknown account"
			case dev != m["device"]:
				kind = "other device"
			default:
				kind = "good"
			}
		}
		counts[kind]++
	}
	t.Logf("%v", counts)
	for kind, lo := range map[string]int{"good": 15000, "other device": 1500, "unknown account": 100, "missing": 300, "null": 300, "wrong type": 300} {
		if counts[kind] < lo {
			t.Errorf("%d %s logs in 20000, want at least %d", counts[kind], kind, lo)
		}
	}
}

func TestServerLogsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	gen.Write(&a, "serverlogs", 9, 1000, 3000, 0.05)
	gen.Write(&b, "serverlogs", 9, 1000, 3000, 0.05)
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same seed and range gave different logs")
	}
	var c bytes.Buffer
	gen.Write(&c, "serverlogs", 10, 1000, 3000, 0.05)
	if bytes.Equal(a.Bytes(), c.Bytes()) {
		t.Fatal("another seed gave the same logs")
	}
}

package connectors_test

import (
	"fmt"

	"github.com/eddy-stream/eddy/connectors"
)

func ExampleAppendJSON() {
	row := connectors.Row{Fields: []connectors.Field{
		{Name: "dstdevice", Value: "EnterpriseAppServer"},
		{Name: "count", Value: 14199.0}, // Lua numbers are floats
		{Name: "ports", Value: []any{"80", int64(443)}},
	}}
	fmt.Println(string(connectors.AppendJSON(nil, row)))
	// Output: {"dstdevice":"EnterpriseAppServer","count":14199,"ports":["80",443]}
}

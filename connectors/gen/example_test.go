package gen_test

import (
	"os"

	"github.com/eddy-stream/eddy/connectors/gen"
)

func ExampleWrite() {
	// Lines 0-1 of gen:netflow?seed=1, exactly as the source yields them.
	_ = gen.Write(os.Stdout, "netflow", 1, 0, 2, 0)
	// Output:
	// {"time":"172800","duration":"0","srcdevice":"Comp526967","dstdevice":"Comp592129","protocol":"6","srcport":"Port47172","dstport":"443","srcpackets":"25","dstpackets":"12","srcbytes":"3600","dstbytes":"16764"}
	// {"time":"172800","duration":"0","srcdevice":"Comp654859","dstdevice":"Comp627878","protocol":"6","srcport":"Port16746","dstport":"Port55329","srcpackets":"14","dstpackets":"3","srcbytes":"3822","dstbytes":"1674"}
}

// Package all is imported for its side effect: it registers every
// connector's URI schemes, so cmd/eddy gets them all with one import.
//
//	import _ "github.com/eddy-stream/eddy/connectors/all"
package all

import (
	_ "github.com/eddy-stream/eddy/connectors/discard"
	_ "github.com/eddy-stream/eddy/connectors/files"
	_ "github.com/eddy-stream/eddy/connectors/gen"
	_ "github.com/eddy-stream/eddy/connectors/stdio"
)

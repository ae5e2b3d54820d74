package connectors

// Extent is how much of its input a source has read, out of what it has
// found so far: files, and bytes as stored. A source whose input grows (a
// directory that gets new files) reports what it knows now.
type Extent struct {
	FilesDone, FilesFound int64
	BytesRead, BytesFound int64
}

// Measured is a source that tells its Extent while it runs, for progress
// displays. Extent is safe to call from any goroutine.
type Measured interface {
	Extent() Extent
}

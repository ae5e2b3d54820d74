package files

// BlockSize is blockSize, for tests.
const BlockSize = blockSize

// BlocksMade is how many blocks s's partition has made.
func BlocksMade(s *DirSource) int64 { return s.p.blocks.made.Load() }

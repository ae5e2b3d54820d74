// Package gen is the room for built-in data generators: the gen:NAME source
// and the files `eddy gen` writes. Record i of a generator is a pure
// function of (seed, i) — lines are made in blocks of BlockSize from a PCG
// seeded by (seed, block) — so a restart at any position, a Write of a
// range and a WriteDir of the same count all yield the very same lines, and
// a test can compute a pipeline's expected result from them independently.
package gen

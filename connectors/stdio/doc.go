// Package stdio is the room for the process's standard streams: the stdin
// source (lines as records) and the stdout and stderr sinks (JSON lines;
// stderr is the default dead-letter output).
//
// Stdin cannot be rewound, so it is at-least-once at best: its position is
// a line count, and a restart from a checkpoint skips that many lines of
// whatever the new stdin holds, which is right only when the same input is
// piped in again. Within one process the engine can still rewind a failed
// partition: stdin keeps the last RewindBytes of lines it handed out and
// replays them. The sinks are at-least-once across a crash, like every
// non-transactional sink: rows written after the last checkpoint are
// written again.
package stdio

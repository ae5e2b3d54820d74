// Package scripting is eddy's Lua runtime: it loads a pipeline file into a
// Pipeline (the validated, Go-side description of what the script asks
// for), and gives every actor its own sandboxed Runtime that runs the
// script's functions.
//
// It is the only package that imports gopher-lua. A pipeline file is
// compiled once; each Runtime runs the compiled chunk in its own LState, so
// no LState is ever shared between goroutines.
//
// The sandbox keeps base (without dofile, loadfile and require), string,
// table and math, and adds json, time, log and the eddy table of parse
// formats and aggregates. Every call runs under two limits (limits.go,
// memory.go): a watchdog stops a call that runs longer than the call
// timeout, and each LState may hold at most the memory limit, checked
// before allocating wherever the size is known (strings, `..` through a
// rewrite of the compiled chunk, unpack, json) and by measuring the state
// when the process heap grows. Pattern matching is eddy's own (pattern.go)
// so that limits and Pipeline.Interrupt can stop it.
package scripting

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
// formats and aggregates. A watchdog stops any call that runs longer than
// the pipeline's call timeout with an error naming the script and line.
package scripting

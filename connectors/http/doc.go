// Package http is the room for HTTP APIs: the http:// and https:// poll
// source, which GETs a URL every interval and makes each response body a
// record (or, with split=array, each element of a JSON array).
//
// A URL whose parameter names a list (each=id with id=1,2,3) is one
// partition per value, each polled on its own. The API key comes from the
// environment variable key-env names and is added as the parameter
// key-param names; it never appears in partition ids, positions, logs or
// errors. A position is the last poll's time, its ETag and Last-Modified,
// so a restart sends If-None-Match / If-Modified-Since and does not emit an
// unchanged response again. An API can't be rewound: the source gives the
// API's current answer, and is at-least-once across a crash (a response
// polled after the last checkpoint may be polled and emitted again).
package http

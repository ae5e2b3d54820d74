package gen

import (
	"math/rand/v2"
	"strconv"
	"sync"
)

// serverlogs makes JSON web-server logs for seed 001's pipeline, which sorts
// them into bad (schema or null), suspicious (device differs from the
// users table's) and good. About 8% break the schema (a missing field, a
// null, a wrong type), 10% come from a device other than the account's,
// and 1% from an account the users table lacks. Which is which is decided
// by r alone, so a log is the same for the same (seed, index).
type serverlogs struct{}

func (serverlogs) Ext() string { return ".json" }

// ServerLogAccounts is how many accounts the logs come from: account ids
// 1000 … 1000+ServerLogAccounts-1, every one in ServerLogUsers.
const ServerLogAccounts = 500

// ServerLogDevices are the devices of users and logs.
var ServerLogDevices = []string{"mobile", "desktop", "tablet"}

// ServerLogFields are the fields of a well-formed log, in order.
var ServerLogFields = []string{"request_id", "timestamp", "account_id", "device", "ip", "method", "request", "status_code", "bytes"}

// ServerLogUser is one row of the users table the logs are checked
// against.
type ServerLogUser struct {
	AccountID int64
	Name      string
	Device    string
}

// ServerLogUsers returns the users table the logs refer to. It does not
// depend on the seed: a generator's lines draw only from their block's
// random stream, so the table every seed's logs are checked against is
// fixed.
func ServerLogUsers() []ServerLogUser {
	return serverLogUsers()
}

var serverLogUsers = sync.OnceValue(func() []ServerLogUser {
	users := make([]ServerLogUser, ServerLogAccounts)
	for k := range users {
		id := int64(1000 + k)
		users[k] = ServerLogUser{AccountID: id, Name: "user" + strconv.FormatInt(id, 10), Device: serverLogDevice(id)}
	}
	return users
})

// serverLogDevice is an account's own device.
func serverLogDevice(account int64) string {
	return ServerLogDevices[(uint64(account)*2654435761>>7)%uint64(len(ServerLogDevices))]
}

var serverLogPaths = []string{"/", "/login", "/logout", "/api/orders", "/api/orders/42", "/api/cart", "/static/app.js", "/static/site.css", "/search?q=shoes", "/account/settings"}

var serverLogMethods = []string{"GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"}

var serverLogStatus = []int{200, 200, 200, 200, 200, 200, 201, 204, 301, 304, 400, 401, 403, 404, 404, 500, 502, 503}

// ServerLogStart is the timestamp of log 0: 2020-05-01 00:00:00 UTC.
const ServerLogStart = 1588291200

type serverLog struct {
	requestID       string
	time            int64
	account         int64
	device, ip      string
	method, request string
	status, bytes   int64
}

func (serverlogs) Lines(r *rand.Rand) func([]byte, int64, bool) []byte {
	return func(b []byte, i int64, bad bool) []byte {
		l := serverLog{time: ServerLogStart + i/20}
		l.requestID = strconv.FormatUint(r.Uint64(), 16)
		l.account = 1000 + int64(r.IntN(ServerLogAccounts))
		if r.IntN(100) == 0 {
			l.account = 9000 + int64(r.IntN(100)) // not in the users table
		}
		l.device = serverLogDevice(l.account)
		if r.IntN(10) == 0 {
			for l.device == serverLogDevice(l.account) {
				l.device = ServerLogDevices[r.IntN(len(ServerLogDevices))]
			}
		}
		l.ip = strconv.Itoa(10+r.IntN(200)) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(r.IntN(256)) + "." + strconv.Itoa(1+r.IntN(254))
		l.method = serverLogMethods[r.IntN(len(serverLogMethods))]
		l.request = serverLogPaths[r.IntN(len(serverLogPaths))]
		l.status = int64(serverLogStatus[r.IntN(len(serverLogStatus))])
		l.bytes = int64(r.ExpFloat64() * 4000)
		if l.status == 204 || l.status == 304 {
			l.bytes = 0
		}
		start := len(b)
		breakage, field := -1, -1
		if r.IntN(100) < 8 {
			breakage, field = r.IntN(3), r.IntN(len(ServerLogFields))
		}
		b = l.append(b, breakage, field)
		if bad {
			// A line cut short, as a log shipper writes when it dies.
			b = b[:len(b)-1-r.IntN((len(b)-start)/2)]
		}
		return b
	}
}

// Breakages of a log's schema.
const (
	breakMissing = iota // the field is left out
	breakNull           // the field is null
	breakType           // the field has the wrong JSON type
)

func (l *serverLog) append(b []byte, breakage, field int) []byte {
	b = append(b, '{')
	n := 0
	for k, name := range ServerLogFields {
		if k == field && breakage == breakMissing {
			continue
		}
		if n > 0 {
			b = append(b, ',')
		}
		n++
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
		if k == field && breakage == breakNull {
			b = append(b, "null"...)
			continue
		}
		wrong := k == field && breakage == breakType
		switch name {
		case "request_id":
			b = appendStr(b, l.requestID, wrong)
		case "timestamp":
			if wrong {
				b = strconv.AppendInt(b, l.time, 10)
			} else {
				b = appendRFC3339(b, l.time)
			}
		case "account_id":
			b = appendInt(b, l.account, wrong)
		case "device":
			b = appendStr(b, l.device, wrong)
		case "ip":
			b = appendStr(b, l.ip, wrong)
		case "method":
			b = appendStr(b, l.method, wrong)
		case "request":
			b = appendStr(b, l.request, wrong)
		case "status_code":
			b = appendInt(b, l.status, wrong)
		case "bytes":
			b = appendInt(b, l.bytes, wrong)
		}
	}
	return append(b, '}')
}

// appendStr writes s as a JSON string, or, wrong, as a list holding it.
func appendStr(b []byte, s string, wrong bool) []byte {
	if wrong {
		b = append(b, '[')
	}
	b = strconv.AppendQuote(b, s)
	if wrong {
		b = append(b, ']')
	}
	return b
}

// appendInt writes n as a JSON number, or, wrong, as a string.
func appendInt(b []byte, n int64, wrong bool) []byte {
	if wrong {
		b = append(b, '"')
	}
	b = strconv.AppendInt(b, n, 10)
	if wrong {
		b = append(b, '"')
	}
	return b
}

func appendRFC3339(b []byte, t int64) []byte {
	// Fixed-width UTC without the time package's allocation: the logs are
	// all in 2020, well inside what civil() handles.
	days, secs := t/86400, t%86400
	y, m, d := civil(days)
	b = append(b, '"')
	b = appendPad(b, y, 4)
	b = append(b, '-')
	b = appendPad(b, m, 2)
	b = append(b, '-')
	b = appendPad(b, d, 2)
	b = append(b, 'T')
	b = appendPad(b, secs/3600, 2)
	b = append(b, ':')
	b = appendPad(b, secs/60%60, 2)
	b = append(b, ':')
	b = appendPad(b, secs%60, 2)
	return append(b, 'Z', '"')
}

func appendPad(b []byte, n int64, width int) []byte {
	s := strconv.FormatInt(n, 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// civil converts days since 1970-01-01 to a date (Howard Hinnant's
// algorithm).
func civil(days int64) (y, m, d int64) {
	z := days + 719468
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y = yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d = doy - (153*mp+2)/5 + 1
	m = mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	return y, m, d
}

package main

import "testing"

// The page never shows a secret of a URI.
func TestMaskURI(t *testing.T) {
	for _, tc := range []struct {
		name, uri, want string
	}{
		{"no secret", "gen:netflow?count=10", "gen:netflow?count=10"},
		{"plain word", "stdout", "stdout"},
		{"password parameter", "kafka://h:9092/t?sasl=scram-sha-512&user=u&password=hunter2", "kafka://h:9092/t?sasl=scram-sha-512&user=u&password=***"},
		{"password file shows", "mysql://u@h:3306/db/t?password-file=/run/pw", "mysql://u@h:3306/db/t?password-file=/run/pw"},
		{"user and password", "cassandra://u:hunter2@h:9042/ks/t", "cassandra://u:***@h:9042/ks/t"},
		{"token", "http://h/x?api_token=abc&a=1", "http://h/x?api_token=***&a=1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := maskURI(tc.uri); got != tc.want {
				t.Errorf("maskURI(%q) = %q, want %q", tc.uri, got, tc.want)
			}
		})
	}
}

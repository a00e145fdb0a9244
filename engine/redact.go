package engine

import (
	"net/url"
	"strings"
)

// RedactURL returns raw with any credentials replaced by "xxxxx", so a camera
// URL can be logged or returned by the API. A URL that does not parse is
// replaced whole: it might hold a secret in a shape we cannot see.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparseable url>"
	}
	if u.User == nil {
		return raw
	}
	u.User = url.User("xxxxx")
	return u.String()
}

// redactSecrets removes every occurrence of the credentials of raw (a camera
// URL) from msg: error messages of the RTSP stack may echo the URL or parts of
// it, and secrets never reach logs.
func redactSecrets(msg, raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return msg
	}
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, url.QueryEscape(p), "xxxxx")
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	msg = strings.ReplaceAll(msg, u.User.String()+"@", "xxxxx@")
	return msg
}

package engine

import "github.com/understudy-nvr/understudy/engine/catalog"

// RedactURL returns raw with any credentials replaced by "xxxxx", so a camera
// URL can be logged, printed or returned by the API: the userinfo and the
// values of credential-like parameters in the query and the path
// (see catalog.RedactURL). A URL that does not parse is replaced whole: it
// might hold a secret in a shape we cannot see.
func RedactURL(raw string) string { return catalog.RedactURL(raw) }

// redactSecrets removes every occurrence of the credentials of raw (a camera
// URL) from msg: error messages of the RTSP stack may echo the URL or parts of
// it, and secrets never reach logs.
func redactSecrets(msg, raw string) string { return catalog.RedactSecrets(msg, raw) }

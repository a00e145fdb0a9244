package main

import (
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/understudy-nvr/understudy/engine"
	"github.com/understudy-nvr/understudy/engine/catalog"
)

// ctlDefaultServer is the API address ctl talks to when neither --server nor
// UNDERSTUDY_SERVER says otherwise.
const ctlDefaultServer = "http://127.0.0.1:7480" // serve's default --listen

// parseCtlTime parses a time expression of ctl (engine.ParseTime): now is
// the reference for the relative forms, so that several flags of one
// command agree on what "now" is.
func parseCtlTime(s string, now time.Time) (time.Time, error) { return engine.ParseTime(s, now) }

// fmtCtlRetention prints a retention the way --retention reads it: whole
// days as "30d", anything else as a Go duration.
func fmtCtlRetention(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

// normaliseCtlServer turns an --server value into the base URL of the API:
// "http://HOST:PORT" or "https://HOST:PORT" (an optional path prefix kept,
// without trailing slash); a bare "HOST:PORT" means http.
func normaliseCtlServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty server address")
	}
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	// The address is never echoed whole: an operator who puts a password in
	// it (http://user:pw@host) must not see it in a terminal log. Errors say
	// what is wrong and show at most scheme://host.
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("bad server address: %s", catalog.DescribeURLError(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", errors.New("bad server address: scheme must be http or https")
	}
	if u.Host == "" || u.Hostname() == "" {
		return "", errors.New("bad server address: no host")
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("bad server address %s://%s: want scheme://HOST:PORT (no user, query or fragment)", u.Scheme, u.Host)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return "", fmt.Errorf("bad server address %s://%s: bad port", u.Scheme, u.Host)
		}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}

// ctlLabels is a repeatable --label k=v flag.
type ctlLabels map[string]string

func (l ctlLabels) String() string {
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

func (l ctlLabels) Set(s string) error {
	k, v, err := parseCtlLabel(s)
	if err != nil {
		return err
	}
	if _, dup := l[k]; dup {
		return fmt.Errorf("label %q given twice", k)
	}
	l[k] = v
	return nil
}

// parseCtlLabel splits "key=value"; the key must be non-empty, the value may
// be empty and may contain '='.
func parseCtlLabel(s string) (key, value string, err error) {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return "", "", fmt.Errorf("bad label %q: want key=value", s)
	}
	k = strings.TrimSpace(k)
	if k == "" {
		return "", "", fmt.Errorf("bad label %q: empty key", s)
	}
	return k, v, nil
}

// ctlTimeFlag is a --from / --to flag read by parseCtlTime against a shared
// reference time.
type ctlTimeFlag struct {
	now *time.Time
	t   time.Time
	set bool
}

func (f *ctlTimeFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return f.t.Format(time.RFC3339Nano)
}

func (f *ctlTimeFlag) Set(s string) error {
	t, err := parseCtlTime(s, *f.now)
	if err != nil {
		return err
	}
	f.t, f.set = t, true
	return nil
}

// ctlDurationFlag is a duration flag read by engine.ParseDuration.
type ctlDurationFlag struct {
	d   time.Duration
	set bool
}

func (f *ctlDurationFlag) String() string {
	if f == nil || !f.set {
		return ""
	}
	return fmtCtlRetention(f.d)
}

func (f *ctlDurationFlag) Set(s string) error {
	d, err := engine.ParseDuration(s)
	if err != nil {
		return err
	}
	f.d, f.set = d, true
	return nil
}

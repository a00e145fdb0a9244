package catalog

import (
	"errors"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// Mask stands in for a secret in every displayed URL and message.
const Mask = "xxxxx"

// unparseableURL is the whole display form of a URL that does not parse:
// we cannot tell which part of it is a secret, so none of it is shown.
const unparseableURL = "<unparseable url>"

// secretNameSuffixes are the parameter names whose values RedactURL hides,
// compared case-insensitively as suffixes of the name with '_', '-' and '.'
// removed, so api_key, X-Api-Key, access_token, camPassword and the
// "admin_password" that XMeye-style paths (user=admin_password=…) run
// together all match. User names (user, username, login) stay visible: they
// are not secrets, and an operator needs them to tell which account a camera
// uses. A false positive only hides a harmless value from a display.
var secretNameSuffixes = []string{
	"password", "passwd", "pass", "pwd", "token", "auth", "key", "secret",
	"signature", "sig", "credential", "credentials",
}

// isSecretName reports whether a parameter name (as it appears in a URL,
// maybe percent-encoded) names a credential.
func isSecretName(raw string) bool {
	name, err := url.QueryUnescape(raw)
	if err != nil {
		name = raw
	}
	name = strings.ToLower(name)
	name = strings.NewReplacer("_", "", "-", "", ".", "", " ", "").Replace(name)
	for _, s := range secretNameSuffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// isNameByte reports whether c may be part of a parameter name.
func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '-' || c == '.' || c == '%' || c == '+' || c == '~'
}

// maskParams replaces the value of every credential-like name=value in s (a
// raw query, path or fragment) with Mask and returns the result and the
// values it hid, as they appeared in s. A value runs to the next '&' or ';'
// or the end of s: in a path it may hold a '/', and hiding too much of a
// display is better than showing the tail of a password. openEnd says the
// value of a credential-like name (maybe empty) runs to the end of s: an
// unescaped '?' or '#' in the password may have cut it there, and the
// caller hides what follows too.
func maskParams(s string) (masked string, secrets []string, openEnd bool) {
	var (
		b    strings.Builder
		last int
	)
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			continue
		}
		j := i
		for j > 0 && isNameByte(s[j-1]) {
			j--
		}
		if j == i || !isSecretName(s[j:i]) {
			continue
		}
		end := i + 1
		for end < len(s) && s[end] != '&' && s[end] != ';' {
			end++
		}
		if end == len(s) {
			openEnd = true
		}
		if end == i+1 {
			continue // empty value: nothing to hide
		}
		secrets = append(secrets, s[i+1:end])
		b.WriteString(s[last : i+1])
		b.WriteString(Mask)
		last = end
		i = end - 1
	}
	if last == 0 {
		return s, secrets, openEnd
	}
	b.WriteString(s[last:])
	return b.String(), secrets, openEnd
}

// RedactURL returns the form of a camera URL that may be displayed, logged
// or returned by the API: the userinfo becomes "xxxxx@", and the value of
// every credential-like parameter (password, pwd, token, key, auth, secret,
// signature, …, see secretNameSuffixes) in the query, in name=value path
// segments (rtsp://host/user=admin&password=x&channel=1) and in the fragment
// becomes "xxxxx". User names in parameters stay. A string that does not
// parse as a URL, or has no //host part (admin:pw@host/x parses with
// "admin" as its scheme), is replaced whole: it may hold a secret in a shape
// we cannot see.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || atAfterHost(raw) {
		return unparseableURL
	}
	rest := raw
	var b strings.Builder
	if u.Scheme != "" {
		b.WriteString(u.Scheme)
		b.WriteByte(':')
		rest = raw[len(u.Scheme)+1:]
	}
	if strings.HasPrefix(rest, "//") {
		b.WriteString("//")
		if u.User != nil {
			b.WriteString(Mask + "@")
		}
		b.WriteString(u.Host)
	}
	p, _, cut := maskParams(u.EscapedPath())
	b.WriteString(p)
	if u.ForceQuery || u.RawQuery != "" {
		q, _, _ := maskParams(u.RawQuery)
		if cut {
			q = Mask // the rest of a password that held a '?'
		}
		b.WriteByte('?')
		b.WriteString(q)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		// RTSP has no fragments: a '#' is most likely a piece of a
		// password, and nothing after it is shown.
		b.WriteString("#" + Mask)
	}
	return b.String()
}

// atAfterHost reports whether raw has an '@' after its authority: most
// likely a password with a '/', '?' or '#' that ended the userinfo early,
// so that url.Parse takes the user name and the start of the password for
// host and port (rtsp://admin:1234#5@cam has host "admin:1234"). Such a URL
// parses but its structure is not what the user meant.
func atAfterHost(raw string) bool {
	rest := raw
	if i := strings.Index(raw, "//"); i >= 0 {
		rest = raw[i+2:]
		end := strings.IndexAny(rest, "/?#")
		if end < 0 {
			return false
		}
		rest = rest[end:]
	}
	return strings.Contains(rest, "@")
}

// urlSecrets returns the secrets of raw, each in every spelling a message
// may use (as written, decoded, re-encoded), longest first.
func urlSecrets(raw string) []string {
	var found []string
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || atAfterHost(raw) {
		// The structure is unknown: take what looks like userinfo (between
		// "//" or the start and the last '@'), the password in it and its
		// pieces between URL delimiters (net/url's errors quote those), and
		// every credential-like parameter anywhere.
		rest := raw
		if i := strings.Index(rest, "//"); i >= 0 {
			rest = rest[i+2:]
		}
		if i := strings.LastIndexByte(rest, '@'); i > 0 {
			ui := rest[:i]
			found = append(found, ui)
			if k := strings.IndexByte(ui, ':'); k >= 0 {
				pw := ui[k+1:]
				found = append(found, pw)
				found = append(found, strings.FieldsFunc(pw, func(r rune) bool { return strings.ContainsRune("/?#@[]", r) })...)
			}
		}
		_, ps, _ := maskParams(raw)
		found = append(found, ps...)
	} else {
		if u.User != nil {
			// A user name alone may be a token (rtsp://TOKEN@host): hide it
			// like RedactURL does. With a password, hide the password, also
			// in the escaping of userinfo.
			if p, ok := u.User.Password(); ok && p != "" {
				found = append(found, p)
				if _, esc, ok := strings.Cut(u.User.String(), ":"); ok {
					found = append(found, esc)
				}
			} else {
				found = append(found, u.User.Username())
			}
		}
		cut := false
		for _, part := range []string{u.EscapedPath(), u.RawQuery, u.EscapedFragment()} {
			if cut {
				found = append(found, part) // the rest of a cut password
			}
			_, ps, c := maskParams(part)
			found = append(found, ps...)
			cut = c
		}
	}
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		if s != "" && s != Mask && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	for _, s := range found {
		add(s)
		for _, dec := range []func(string) (string, error){url.QueryUnescape, url.PathUnescape} {
			if d, err := dec(s); err == nil {
				add(d)
				add(url.QueryEscape(d))
				add(url.PathEscape(d))
			}
		}
		add(url.QueryEscape(s))
		add(url.PathEscape(s))
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// RedactSecrets removes the secrets of raw (a camera URL) from msg: error
// messages of the RTSP stack and of net/url may echo the URL, a part of it
// or a decoded credential. The URL itself becomes its RedactURL form, then
// every remaining spelling of each secret becomes Mask.
func RedactSecrets(msg, raw string) string {
	if raw == "" || msg == "" {
		return msg
	}
	msg = strings.ReplaceAll(msg, raw, RedactURL(raw))
	for _, s := range urlSecrets(raw) {
		msg = strings.ReplaceAll(msg, s, Mask)
	}
	return msg
}

// DescribeURLError says what is wrong in a URL that url.Parse rejected,
// without quoting any of it: the *url.Error of net/url repeats the whole
// input and its inner error a piece of it ("invalid port \":pa\" after
// host" shows the start of a password). The most common cause is a
// password with an unescaped '?', '/', '#', '@' or '%', so the hints say
// how to escape it.
func DescribeURLError(err error) string {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) {
		msg = ue.Err.Error()
	}
	switch {
	case strings.HasPrefix(msg, "invalid port"):
		return "bad port after the host (a '?', '/', '#' or '@' in a password ends the host early: percent-encode it, e.g. '?' as %3F)"
	case strings.HasPrefix(msg, "invalid URL escape"):
		return "bad percent-escape ('%' must start %XX; write a literal '%' as %25)"
	case strings.HasPrefix(msg, "invalid character") && strings.Contains(msg, "host name"):
		return "invalid character in the host"
	case strings.Contains(msg, "missing ']'") || strings.Contains(msg, "IPv6") || strings.Contains(msg, "invalid IP"):
		return "bad IPv6 host (write it as [addr]:port)"
	case strings.Contains(msg, "missing protocol scheme") || strings.Contains(msg, "first path segment in URL cannot contain colon"):
		return "no scheme (want rtsp://host[:port]/path)"
	case strings.Contains(msg, "control character"):
		return "contains a control character"
	}
	return "does not parse as a URL"
}

// ParseCameraURL parses the URL a recorder connects to, credentials
// included (rtsp[s]://[user[:password]@]host[:port]/path[?query]). Its
// errors say what is wrong without quoting the URL or any part of it: the
// URL may hold a password, and a URL that does not parse cannot be
// redacted.
func ParseCameraURL(raw string) (*url.URL, error) {
	bad := func(msg string) (*url.URL, error) { return nil, errors.New("invalid url: " + msg) }
	if raw == "" {
		return bad("empty")
	}
	for _, r := range raw {
		if r < 0x20 || r == 0x7f || r == ' ' {
			return bad("contains a space or a control character (percent-encode a space as %20)")
		}
	}
	i := strings.Index(raw, "://")
	if i <= 0 || !validScheme(raw[:i]) {
		return bad("no scheme (want rtsp://host[:port]/path)")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad(DescribeURLError(err))
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return bad("scheme must be rtsp or rtsps")
	}
	if u.Hostname() == "" {
		return bad("no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("port must be between 1 and 65535")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return bad("port must not be empty after ':'")
	}
	if atAfterHost(raw) {
		return bad("'@' after the host (a '/', '?' or '#' in a password ends the user info early: percent-encode it, e.g. '/' as %2F, or an '@' in the path as %40)")
	}
	if strings.Contains(raw, "#") {
		return bad("contains '#' (RTSP URLs have no fragment: percent-encode a '#' in a password as %23)")
	}
	return u, nil
}

// validScheme reports whether s is a URL scheme: a letter, then letters,
// digits, '+', '-' or '.'.
func validScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		case i > 0 && (c >= '0' && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return s != ""
}

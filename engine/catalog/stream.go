package catalog

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Defaults and limits of a stream definition.
const (
	// DefaultReplicas is R when a stream does not set it: one home and one
	// replica, the smallest R that survives the loss of a recorder.
	DefaultReplicas = 2
	// MaxWeight bounds a stream's load weight (placement's bound).
	MaxWeight = 1 << 24
	// MaxScopeLen bounds the scope's text.
	MaxScopeLen = 256
	// MinReplicas and MaxReplicas bound R.
	MinReplicas, MaxReplicas = 1, 5
	// DefaultArchiveRetention is how long the home archive keeps a stream
	// when the stream does not say.
	DefaultArchiveRetention = 30 * 24 * time.Hour
	// MinArchiveRetention and MaxArchiveRetention bound the retention
	// (10 years of 365 days).
	MinArchiveRetention, MaxArchiveRetention = time.Hour, 10 * 365 * 24 * time.Hour

	// MaxIDLen is the longest stream id, in bytes.
	MaxIDLen = 128
	// MaxURLLen is the longest stream URL, in bytes.
	MaxURLLen = 2048
	// MaxCredentialLen bounds the username and the password, in bytes.
	MaxCredentialLen = 256
	// MaxLabels is the most labels a stream may carry.
	MaxLabels = 64
	// MaxLabelKeyLen and MaxLabelValueLen bound a label, in bytes.
	MaxLabelKeyLen, MaxLabelValueLen = 63, 256
)

// Stream is one camera feed that the cluster records.
//
// Username and Password are write-only outside the node: the catalog keeps
// them (the recorder needs them, and replication carries them to the other
// recorders), but the API never returns them, and every printed or logged
// form of a Stream (String, Format, LogValue, encoding/json) leaves them out.
type Stream struct {
	// ID names the stream: 1..128 bytes of [A-Za-z0-9._-], not starting with
	// '.', so it is safe as a directory name.
	ID string
	// URL is the rtsp:// or rtsps:// URL of the camera, without credentials:
	// Normalize moves userinfo found in a URL into Username and Password.
	// Credentials a camera takes in the query or the path
	// (?password=…, /user=admin&password=…&channel=1) stay here, as the
	// recorder needs them; every displayed form masks them (RedactURL).
	URL string
	// Username and Password authenticate to the camera; see RecordingURL.
	Username string `json:"-"`
	Password string `json:"-"`
	// Replicas is R, the number of recorders of the stream (the home plus
	// R-1 replicas): 1..5, default 2 (DefaultReplicas).
	Replicas int
	// ArchiveRetention is how long the home archive keeps the stream:
	// 1h..10y, default 30 days (DefaultArchiveRetention).
	ArchiveRetention time.Duration
	// Labels are free-form key/value pairs: at most 64, keys 1..63 bytes of
	// [a-z0-9._/-], values at most 256 bytes of UTF-8.
	Labels map[string]string
	// Enabled says whether the cluster records the stream. A disabled stream
	// keeps its definition and its archive.
	Enabled bool
	// Weight is the stream's load weight in placement (its bitrate in
	// Mbit/s, say): 1..MaxWeight; 0 means 1 (see LoadWeight).
	Weight int
	// Scope keeps the copies under a failure-domain prefix ("zone=hq");
	// empty: anywhere. StrictScope places only the copies the scope can
	// hold when it has fewer live nodes than Replicas.
	Scope       string
	StrictScope bool
	// CreateTime and UpdateTime are set by the catalog on Create and Update.
	CreateTime, UpdateTime time.Time
}

// FieldError is a validation error of one field of a Stream (or of a List
// request). Field is the field name as the API spells it (id, url,
// username, password, replicas, archive_retention, labels, page_size,
// page_token), so the API can answer invalid_argument naming it.
type FieldError struct {
	Field string
	Msg   string
}

// Error returns "field: msg".
func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// Normalize moves credentials found in the URL into Username and Password
// (they replace any set before: a URL with userinfo is the newest word of
// the user) and applies the defaults of Replicas and ArchiveRetention when
// they are zero. A URL that does not parse is left alone for Validate to
// report.
func (s *Stream) Normalize() {
	if s.Replicas == 0 {
		s.Replicas = DefaultReplicas
	}
	if s.ArchiveRetention == 0 {
		s.ArchiveRetention = DefaultArchiveRetention
	}
	if !strings.Contains(s.URL, "@") {
		return
	}
	u, err := url.Parse(s.URL)
	if err != nil || u.User == nil {
		return
	}
	s.Username = u.User.Username()
	s.Password, _ = u.User.Password()
	u.User = nil
	s.URL = u.String()
}

// Validate checks every field and returns the first problem as a
// *FieldError naming the field. It does not apply defaults (see Normalize):
// Replicas 0 is an error here.
func (s Stream) Validate() error {
	if err := ValidateID(s.ID); err != nil {
		return err
	}
	if err := validateURL(s.URL); err != nil {
		return err
	}
	if err := validateCredential("username", s.Username); err != nil {
		return err
	}
	if err := validateCredential("password", s.Password); err != nil {
		return err
	}
	if s.Password != "" && s.Username == "" {
		return fieldErr("username", "required when a password is set")
	}
	if s.Replicas < MinReplicas || s.Replicas > MaxReplicas {
		return fieldErr("replicas", "must be between %d and %d, got %d", MinReplicas, MaxReplicas, s.Replicas)
	}
	if s.ArchiveRetention < MinArchiveRetention || s.ArchiveRetention > MaxArchiveRetention {
		return fieldErr("archive_retention", "must be between 1h and 10y (87600h), got %s", s.ArchiveRetention)
	}
	if s.Weight < 0 || s.Weight > MaxWeight {
		return fieldErr("weight", "must be between 1 and %d (0: 1), got %d", MaxWeight, s.Weight)
	}
	if err := validateScope(s.Scope); err != nil {
		return err
	}
	if s.StrictScope && s.Scope == "" {
		return fieldErr("strict_scope", "needs a scope")
	}
	return validateLabels(s.Labels)
}

// LoadWeight is the stream's weight in placement: Weight, 1 when unset.
func (s Stream) LoadWeight() int { return max(s.Weight, 1) }

// validateScope checks a scope: empty, or key=value pairs joined by '/'
// (as a node's failure domain is written), each key and value 1..63 bytes
// of [A-Za-z0-9._-].
func validateScope(scope string) error {
	if scope == "" {
		return nil
	}
	if len(scope) > MaxScopeLen {
		return fieldErr("scope", "must be at most %d bytes, got %d", MaxScopeLen, len(scope))
	}
	for _, part := range strings.Split(scope, "/") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || !scopeWord(k) || !scopeWord(v) {
			return fieldErr("scope", "%q is not key=value[/key=value...] (such as zone=hq or zone=eu/rack=3)", scope)
		}
	}
	return nil
}

func scopeWord(w string) bool {
	if w == "" || len(w) > 63 {
		return false
	}
	for i := 0; i < len(w); i++ {
		c := w[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ValidateID checks a stream id: 1..128 bytes of [A-Za-z0-9._-], no leading
// '.' (so neither "." nor ".."). Such an id is safe as a path element and as
// a Pebble key suffix.
func ValidateID(id string) error {
	if id == "" {
		return fieldErr("id", "must not be empty")
	}
	if len(id) > MaxIDLen {
		return fieldErr("id", "must be at most %d bytes, got %d", MaxIDLen, len(id))
	}
	if id[0] == '.' {
		return fieldErr("id", "must not start with '.'")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			r, _ := utf8.DecodeRuneInString(id[i:])
			return fieldErr("id", "invalid character %q at byte %d: allowed are A-Z a-z 0-9 . _ -", r, i)
		}
	}
	return nil
}

func validateURL(raw string) error {
	if raw == "" {
		return fieldErr("url", "must not be empty")
	}
	if len(raw) > MaxURLLen {
		return fieldErr("url", "must be at most %d bytes, got %d", MaxURLLen, len(raw))
	}
	if !utf8.ValidString(raw) {
		return fieldErr("url", "must be valid UTF-8")
	}
	for _, r := range raw {
		if r < 0x20 || r == 0x7f || r == ' ' {
			return fieldErr("url", "must not contain spaces or control characters")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL, and its inner error a piece of it, which
		// may be a password: say only what is wrong.
		return fieldErr("url", "invalid: %s", DescribeURLError(err))
	}
	if u.Scheme != "rtsp" && u.Scheme != "rtsps" {
		return fieldErr("url", "scheme must be rtsp or rtsps")
	}
	if u.Opaque != "" {
		return fieldErr("url", "must be of the form rtsp://host[:port]/path")
	}
	if u.User != nil {
		return fieldErr("url", "must not contain credentials (set username and password)")
	}
	if atAfterHost(raw) {
		// Most likely user info cut short by a '/', '?' or '#' in the
		// password: the URL would be stored and shown with the password
		// taken for a host, port or path.
		return fieldErr("url", "must not contain '@' after the host (percent-encode it as %%40)")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fieldErr("url", "must not contain a fragment")
	}
	host := u.Hostname()
	if host == "" {
		return fieldErr("url", "host must not be empty")
	}
	if strings.HasPrefix(u.Host, "[") {
		if net.ParseIP(host) == nil {
			return fieldErr("url", "invalid IPv6 address %q", host)
		}
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fieldErr("url", "port must be between 1 and 65535")
		}
	} else if strings.HasSuffix(u.Host, ":") {
		return fieldErr("url", "port must not be empty after ':'")
	}
	return nil
}

func validateCredential(field, v string) error {
	if len(v) > MaxCredentialLen {
		return fieldErr(field, "must be at most %d bytes", MaxCredentialLen)
	}
	if !utf8.ValidString(v) {
		return fieldErr(field, "must be valid UTF-8")
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f {
			return fieldErr(field, "must not contain control characters")
		}
	}
	return nil
}

func validateLabels(labels map[string]string) error {
	if len(labels) > MaxLabels {
		return fieldErr("labels", "at most %d labels, got %d", MaxLabels, len(labels))
	}
	for k, v := range labels {
		if err := validateLabelKey(k); err != nil {
			return err
		}
		if len(v) > MaxLabelValueLen {
			return fieldErr("labels", "value of %q must be at most %d bytes, got %d", k, MaxLabelValueLen, len(v))
		}
		if !utf8.ValidString(v) {
			return fieldErr("labels", "value of %q must be valid UTF-8", k)
		}
		// Control characters (NUL, ESC sequences) would reach operators'
		// terminals through ctl and logs.
		for i, r := range v {
			if unicode.IsControl(r) {
				return fieldErr("labels", "value of %q: control character U+%04X at byte %d", k, r, i)
			}
		}
	}
	return nil
}

func validateLabelKey(k string) error {
	if k == "" {
		return fieldErr("labels", "key must not be empty")
	}
	if len(k) > MaxLabelKeyLen {
		return fieldErr("labels", "key must be at most %d bytes, got %d", MaxLabelKeyLen, len(k))
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '/' || c == '-') {
			return fieldErr("labels", "key %q: invalid character at byte %d: allowed are a-z 0-9 . _ / -", k, i)
		}
	}
	return nil
}

// RecordingURL returns the URL with Username and Password inserted as
// userinfo, for the recorder's RTSP client only: never log it or return it
// from the API.
func (s Stream) RecordingURL() string {
	if s.Username == "" {
		return s.URL
	}
	u, err := url.Parse(s.URL)
	if err != nil {
		return s.URL // Validate rejects such a stream; nothing better to do
	}
	if s.Password != "" {
		u.User = url.UserPassword(s.Username, s.Password)
	} else {
		u.User = url.User(s.Username)
	}
	return u.String()
}

// HasCredentials reports whether a username (and maybe a password) is set.
func (s Stream) HasCredentials() bool { return s.Username != "" || s.Password != "" }

// Redacted returns a copy of s without Username and Password and with the
// URL in its RedactURL form (credentials in the query or path masked): the
// form the API returns.
func (s Stream) Redacted() Stream {
	s.Username, s.Password = "", ""
	s.URL = RedactURL(s.URL)
	return s
}

// Clone returns a deep copy (Labels is copied; an empty map becomes nil,
// the form a decoded entry has).
func (s Stream) Clone() Stream {
	if len(s.Labels) == 0 {
		s.Labels = nil
	} else {
		l := make(map[string]string, len(s.Labels))
		for k, v := range s.Labels {
			l[k] = v
		}
		s.Labels = l
	}
	return s
}

func (s Stream) credentialsWord() string {
	if s.HasCredentials() {
		return "redacted"
	}
	return "none"
}

// String prints the stream without its credentials, the URL redacted.
func (s Stream) String() string {
	return fmt.Sprintf("Stream{ID:%q URL:%q Credentials:%s Replicas:%d ArchiveRetention:%s Labels:%v Enabled:%t Weight:%d Scope:%q StrictScope:%t CreateTime:%s UpdateTime:%s}",
		s.ID, RedactURL(s.URL), s.credentialsWord(), s.Replicas, s.ArchiveRetention, s.Labels, s.Enabled, s.Weight, s.Scope, s.StrictScope,
		s.CreateTime.Format(time.RFC3339Nano), s.UpdateTime.Format(time.RFC3339Nano))
}

// Format prints the redacted form for every verb (%d or %x on a struct
// would otherwise print the raw fields, the password included).
func (s Stream) Format(f fmt.State, verb rune) { formatRedacted(f, verb, s.String()) }

func formatRedacted(f fmt.State, verb rune, str string) {
	if verb == 'v' && f.Flag('#') {
		str = "catalog." + str
	}
	_, _ = io.WriteString(f, str)
}

// LogValue logs the stream without its credentials, the URL redacted.
func (s Stream) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", s.ID),
		slog.String("url", RedactURL(s.URL)),
		slog.String("credentials", s.credentialsWord()),
		slog.Int("replicas", s.Replicas),
		slog.Duration("archive_retention", s.ArchiveRetention),
		slog.Int("labels", len(s.Labels)),
		slog.Bool("enabled", s.Enabled),
	)
}

// MarshalJSON encodes the stream without its credentials (the fields are
// tagged "-") and with the URL redacted. JSON is a display form here, never
// the catalog's storage: see EncodeEntry.
func (s Stream) MarshalJSON() ([]byte, error) {
	type plain Stream // no methods: no recursion
	p := plain(s)
	p.URL = RedactURL(s.URL)
	return json.Marshal(p)
}

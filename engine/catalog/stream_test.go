package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func validStream() Stream {
	return Stream{
		ID:               "cam-1",
		URL:              "rtsp://192.0.2.10:554/stream1",
		Replicas:         2,
		ArchiveRetention: 30 * 24 * time.Hour,
		Labels:           map[string]string{"site": "garage", "k8s.io/zone": "a"},
		Enabled:          true,
	}
}

func manyLabels(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[fmt.Sprintf("l%d", i)] = "v"
	}
	return m
}

func TestStreamValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Stream)
		field  string // "" = valid
		msg    string // substring of the error
	}{
		{"valid", func(*Stream) {}, "", ""},
		{"rtsps", func(s *Stream) { s.URL = "rtsps://cam.example/live" }, "", ""},
		{"ipv6", func(s *Stream) { s.URL = "rtsp://[2001:db8::1]:8554/a" }, "", ""},
		{"id 128 bytes", func(s *Stream) { s.ID = strings.Repeat("a", 128) }, "", ""},
		{"id all classes", func(s *Stream) { s.ID = "Az09._-x" }, "", ""},
		{"no labels", func(s *Stream) { s.Labels = nil }, "", ""},
		{"64 labels", func(s *Stream) { s.Labels = manyLabels(64) }, "", ""},
		{"label value 256", func(s *Stream) { s.Labels = map[string]string{"a": strings.Repeat("v", 256)} }, "", ""},
		{"label key 63", func(s *Stream) { s.Labels = map[string]string{strings.Repeat("k", 63): ""} }, "", ""},
		{"username only", func(s *Stream) { s.Username = "admin" }, "", ""},
		{"retention 1h", func(s *Stream) { s.ArchiveRetention = time.Hour }, "", ""},
		{"retention 10y", func(s *Stream) { s.ArchiveRetention = MaxArchiveRetention }, "", ""},
		{"replicas 1", func(s *Stream) { s.Replicas = 1 }, "", ""},
		{"replicas 5", func(s *Stream) { s.Replicas = 5 }, "", ""},

		{"id empty", func(s *Stream) { s.ID = "" }, "id", "must not be empty"},
		{"id dot", func(s *Stream) { s.ID = "." }, "id", "must not start with '.'"},
		{"id dotdot", func(s *Stream) { s.ID = ".." }, "id", "must not start with '.'"},
		{"id leading dot", func(s *Stream) { s.ID = ".hidden" }, "id", "must not start with '.'"},
		{"id slash", func(s *Stream) { s.ID = "a/b" }, "id", "invalid character"},
		{"id backslash", func(s *Stream) { s.ID = `a\b` }, "id", "invalid character"},
		{"id space", func(s *Stream) { s.ID = "a b" }, "id", "invalid character"},
		{"id unicode", func(s *Stream) { s.ID = "camé" }, "id", "invalid character 'é' at byte 3"},
		{"label NUL", func(s *Stream) { s.Labels = map[string]string{"k": "a\x00b"} }, "labels", "control character U+0000"},
		{"label ESC", func(s *Stream) { s.Labels = map[string]string{"k": "a\x1b[31m"} }, "labels", "control character U+001B"},
		{"id nul", func(s *Stream) { s.ID = "a\x00" }, "id", "invalid character"},
		{"id too long", func(s *Stream) { s.ID = strings.Repeat("a", 129) }, "id", "at most 128"},
		{"url empty", func(s *Stream) { s.URL = "" }, "url", "must not be empty"},
		{"url http", func(s *Stream) { s.URL = "http://cam/x" }, "url", "scheme must be rtsp or rtsps"},
		{"url no scheme", func(s *Stream) { s.URL = "cam/x" }, "url", "scheme must be rtsp or rtsps"},
		{"url no host", func(s *Stream) { s.URL = "rtsp:///x" }, "url", "host must not be empty"},
		{"url opaque", func(s *Stream) { s.URL = "rtsp:cam" }, "url", "rtsp://host"},
		{"url port 0", func(s *Stream) { s.URL = "rtsp://cam:0/x" }, "url", "port must be between"},
		{"url port big", func(s *Stream) { s.URL = "rtsp://cam:70000/x" }, "url", "port must be between"},
		{"url port empty", func(s *Stream) { s.URL = "rtsp://cam:/x" }, "url", "port must not be empty"},
		{"url port letters", func(s *Stream) { s.URL = "rtsp://cam:ab/x" }, "url", "invalid"},
		{"url space", func(s *Stream) { s.URL = "rtsp://cam/a b" }, "url", "spaces or control"},
		{"url newline", func(s *Stream) { s.URL = "rtsp://cam/a\nb" }, "url", "spaces or control"},
		{"url fragment", func(s *Stream) { s.URL = "rtsp://cam/a#f" }, "url", "fragment"},
		{"url credentials", func(s *Stream) { s.URL = "rtsp://u:p@cam/a" }, "url", "must not contain credentials"},
		{"url bad escape", func(s *Stream) { s.URL = "rtsp://cam/%zz" }, "url", "invalid"},
		{"url too long", func(s *Stream) { s.URL = "rtsp://cam/" + strings.Repeat("a", MaxURLLen) }, "url", "at most"},
		{"url bad utf8", func(s *Stream) { s.URL = "rtsp://cam/\xff" }, "url", "UTF-8"},
		{"password without user", func(s *Stream) { s.Password = "pw" }, "username", "required"},
		{"username control", func(s *Stream) { s.Username = "a\tb" }, "username", "control"},
		{"password too long", func(s *Stream) { s.Username, s.Password = "u", strings.Repeat("p", 257) }, "password", "at most"},
		{"password bad utf8", func(s *Stream) { s.Username, s.Password = "u", "\xfe" }, "password", "UTF-8"},
		{"replicas 0", func(s *Stream) { s.Replicas = 0 }, "replicas", "must be between 1 and 5"},
		{"replicas 6", func(s *Stream) { s.Replicas = 6 }, "replicas", "must be between 1 and 5"},
		{"replicas negative", func(s *Stream) { s.Replicas = -1 }, "replicas", "must be between 1 and 5"},
		{"retention short", func(s *Stream) { s.ArchiveRetention = time.Hour - 1 }, "archive_retention", "between 1h and 10y"},
		{"retention long", func(s *Stream) { s.ArchiveRetention = MaxArchiveRetention + 1 }, "archive_retention", "between 1h and 10y"},
		{"retention zero", func(s *Stream) { s.ArchiveRetention = 0 }, "archive_retention", "between"},
		{"65 labels", func(s *Stream) { s.Labels = manyLabels(65) }, "labels", "at most 64"},
		{"label key empty", func(s *Stream) { s.Labels = map[string]string{"": "v"} }, "labels", "key must not be empty"},
		{"label key upper", func(s *Stream) { s.Labels = map[string]string{"Site": "v"} }, "labels", "invalid character"},
		{"label key space", func(s *Stream) { s.Labels = map[string]string{"a b": "v"} }, "labels", "invalid character"},
		{"label key 64", func(s *Stream) { s.Labels = map[string]string{strings.Repeat("k", 64): "v"} }, "labels", "at most 63"},
		{"label value 257", func(s *Stream) { s.Labels = map[string]string{"a": strings.Repeat("v", 257)} }, "labels", "at most 256"},
		{"label value bad utf8", func(s *Stream) { s.Labels = map[string]string{"a": "\xff"} }, "labels", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validStream()
			tt.mutate(&s)
			err := s.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate() = %v, want a *FieldError for %s", err, tt.field)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Fatalf("Validate() = %q, want field %q with %q", err, tt.field, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), tt.field+": ") {
				t.Fatalf("Error() = %q does not start with the field", err)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name               string
		in                 Stream
		url, user, pass    string
		replicas           int
		retention          time.Duration
		validAfter         bool
		recordingURLPrefix string
	}{
		{
			name: "user and password move out of the URL",
			in:   Stream{ID: "a", URL: "rtsp://admin:s3cr%40t@cam.local:554/ch1?subtype=0"},
			url:  "rtsp://cam.local:554/ch1?subtype=0", user: "admin", pass: "s3cr@t",
			replicas: 2, retention: DefaultArchiveRetention, validAfter: true,
			recordingURLPrefix: "rtsp://admin:s3cr%40t@cam.local:554/ch1",
		},
		{
			name: "user only",
			in:   Stream{ID: "a", URL: "rtsps://viewer@cam/x", Replicas: 3, ArchiveRetention: time.Hour},
			url:  "rtsps://cam/x", user: "viewer", replicas: 3, retention: time.Hour, validAfter: true,
			recordingURLPrefix: "rtsps://viewer@cam/x",
		},
		{
			name: "URL credentials replace earlier ones",
			in:   Stream{ID: "a", URL: "rtsp://new:pw2@cam/x", Username: "old", Password: "pw1"},
			url:  "rtsp://cam/x", user: "new", pass: "pw2", replicas: 2, retention: DefaultArchiveRetention, validAfter: true,
			recordingURLPrefix: "rtsp://new:pw2@cam/x",
		},
		{
			name: "no credentials in URL keeps the fields",
			in:   Stream{ID: "a", URL: "rtsp://cam/x", Username: "u", Password: "p"},
			url:  "rtsp://cam/x", user: "u", pass: "p", replicas: 2, retention: DefaultArchiveRetention, validAfter: true,
			recordingURLPrefix: "rtsp://u:p@cam/x",
		},
		{
			name: "unparseable URL left for Validate",
			in:   Stream{ID: "a", URL: "rtsp://u:p@cam:bad/%zz"},
			url:  "rtsp://u:p@cam:bad/%zz", replicas: 2, retention: DefaultArchiveRetention, validAfter: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.in
			s.Normalize()
			if s.URL != tt.url || s.Username != tt.user || s.Password != tt.pass {
				t.Fatalf("Normalize: url %q user %q pass %q, want %q %q %q", s.URL, s.Username, s.Password, tt.url, tt.user, tt.pass)
			}
			if s.Replicas != tt.replicas || s.ArchiveRetention != tt.retention {
				t.Fatalf("defaults: replicas %d retention %s", s.Replicas, s.ArchiveRetention)
			}
			err := s.Validate()
			if (err == nil) != tt.validAfter {
				t.Fatalf("Validate after Normalize = %v, want valid=%t", err, tt.validAfter)
			}
			if err != nil && strings.Contains(err.Error(), "u:p") {
				t.Fatalf("error %q leaks the credentials", err)
			}
			if tt.validAfter && !strings.HasPrefix(s.RecordingURL(), tt.recordingURLPrefix) {
				t.Fatalf("RecordingURL() = %q, want prefix %q", s.RecordingURL(), tt.recordingURLPrefix)
			}
		})
	}
}

// TestSecretsNeverPrinted checks every way a Stream or an Entry is usually
// printed or logged.
func TestSecretsNeverPrinted(t *testing.T) {
	s := validStream()
	s.URL = "rtsp://camuser:Hunter2Pw@cam/x"
	s.Normalize()
	if s.Username != "camuser" || s.Password != "Hunter2Pw" {
		t.Fatalf("credentials not moved: %q %q", s.Username, s.Password)
	}
	e := Entry{ID: s.ID, Version: Version{WallMS: 1, Node: "n1"}, Stream: s}
	type wrapper struct {
		S Stream
		P *Stream
		E Entry
	}
	w := wrapper{S: s, P: &s, E: e}

	var outputs []string
	for _, v := range []any{s, &s, e, &e, w} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%q", "%t", "%10.3f"} {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
		outputs = append(outputs, fmt.Sprint(v), fmt.Sprintln(v))
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(j))
	}
	for _, mk := range []func(*bytes.Buffer) slog.Handler{
		func(b *bytes.Buffer) slog.Handler { return slog.NewJSONHandler(b, nil) },
		func(b *bytes.Buffer) slog.Handler { return slog.NewTextHandler(b, nil) },
	} {
		var buf bytes.Buffer
		log := slog.New(mk(&buf))
		log.Info("x", "stream", s, "ptr", &s, "entry", e, "wrapped", w)
		log.Info("x", slog.Any("stream", s), slog.Any("entry", &e))
		outputs = append(outputs, buf.String())
	}
	for _, out := range outputs {
		for _, secret := range []string{"camuser", "Hunter2Pw"} {
			if strings.Contains(out, secret) {
				t.Errorf("output leaks %q: %s", secret, out)
			}
		}
	}
	// The redacted forms still say what the stream is.
	if !strings.Contains(fmt.Sprint(s), "cam-1") || !strings.Contains(fmt.Sprint(s), "Credentials:redacted") {
		t.Errorf("String() = %s", s)
	}
	if got := s.RecordingURL(); got != "rtsp://camuser:Hunter2Pw@cam/x" {
		t.Errorf("RecordingURL() = %q", got)
	}
	if r := s.Redacted(); r.HasCredentials() || r.ID != s.ID {
		t.Errorf("Redacted() = %+v", r)
	}
}

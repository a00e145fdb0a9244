package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"testing"
)

// TestRedactURL: the display form of a camera URL masks the userinfo and
// the value of every credential-like parameter, in the query, in name=value
// path segments and in the fragment, whatever the case or the encoding, and
// keeps everything else, user names included.
func TestRedactURL(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		secrets  []string
	}{
		{"rtsp://h/x", "rtsp://h/x", nil},
		{"rtsp://h:554/cam?channel=1&subtype=0", "rtsp://h:554/cam?channel=1&subtype=0", nil},
		{"rtsp://u:p@h:554/x", "rtsp://xxxxx@h:554/x", []string{":p@"}},
		{"rtsp://TokenOnly@h/x", "rtsp://xxxxx@h/x", []string{"TokenOnly"}},
		{"rtsp://host/cam?user=admin&password=QueryPw_Leak", "rtsp://host/cam?user=admin&password=xxxxx", []string{"QueryPw_Leak"}},
		{"rtsp://host/user=admin&password=xyzPathPw&channel=1&stream=0.sdp",
			"rtsp://host/user=admin&password=xxxxx&channel=1&stream=0.sdp", []string{"xyzPathPw"}},
		// XMeye-style paths run the parameters together with '_'.
		{"rtsp://h:554/user=admin_password=tlJwpbo6_channel=1_stream=0.sdp?real_stream",
			"rtsp://h:554/user=admin_password=xxxxx?xxxxx", []string{"tlJwpbo6"}},
		{"rtsp://h/cam?PassWord=MixedCase1&PWD=Upper2&Api_Key=k3y&access_token=t0k&X-Signature=s1g&sig=s2&auth=au7h&secret=s3c&passwd=pw4&pass=pw5&apikey=ak6",
			"rtsp://h/cam?PassWord=xxxxx&PWD=xxxxx&Api_Key=xxxxx&access_token=xxxxx&X-Signature=xxxxx&sig=xxxxx&auth=xxxxx&secret=xxxxx&passwd=xxxxx&pass=xxxxx&apikey=xxxxx",
			[]string{"MixedCase1", "Upper2", "k3y", "t0k", "s1g", "s2", "au7h", "s3c", "pw4", "pw5", "ak6"}},
		// Encoded values and names: the mask covers the whole value.
		{"rtsp://h/cam?password=p%40ss%2Fw%3Fd&x=1", "rtsp://h/cam?password=xxxxx&x=1", []string{"p%40ss", "p@ss", "w%3Fd"}},
		{"rtsp://h/cam?pass%77ord=EncName", "rtsp://h/cam?pass%77ord=xxxxx", []string{"EncName"}},
		// A value with a raw '/' in a path segment is hidden to its end.
		{"rtsp://h/password=ab/cd&channel=1", "rtsp://h/password=xxxxx&channel=1", []string{"ab/cd", "cd&"}},
		// Matrix-style and fragment parameters.
		{"rtsp://h/cam;token=MatrixTok/x", "rtsp://h/cam;token=xxxxx", []string{"MatrixTok"}},
		{"rtsp://h/cam?a=b#key=FragKey", "rtsp://h/cam?a=b#xxxxx", []string{"FragKey"}},
		// An unescaped '?' or '#' cuts a password short: the rest is hidden.
		{"rtsp://h/user=a&password=Cut1?Cut2", "rtsp://h/user=a&password=xxxxx?xxxxx", []string{"Cut1", "Cut2"}},
		{"rtsp://h/cam?password=#Cut3", "rtsp://h/cam?password=#xxxxx", []string{"Cut3"}},
		// Both: userinfo and query.
		{"rtsps://admin:Both1@h/cam?token=Both2", "rtsps://xxxxx@h/cam?token=xxxxx", []string{"Both1", "Both2"}},
		// Empty values are left alone; user names stay.
		{"rtsp://h/cam?username=ops&password=", "rtsp://h/cam?username=ops&password=", nil},
		// URLs that do not parse, or have no //host, are replaced whole.
		{"rtsp://admin:Zq?ss2@127.0.0.1:7610/cam/0", "<unparseable url>", []string{"Zq", "ss2", "admin"}},
		{"admin:NoSchemePw@127.0.0.1:7610/cam/0", "<unparseable url>", []string{"NoSchemePw"}},
		{"rtsp://admin:50%pw@h/", "<unparseable url>", []string{"50%pw"}},
		{"rtsp://h/cam?password=bad\x7fctl", "<unparseable url>", []string{"bad"}},
		{"rtsp:opaque?password=OpaquePw", "<unparseable url>", []string{"OpaquePw"}},
		// A '#', '/' or '?' in a password cuts the user info short: net/url
		// then takes "admin:1234" for host and port and parses the rest.
		{"rtsp://admin:1234#5@cam/x", "<unparseable url>", []string{"1234"}},
		{"rtsp://admin:9876/x@cam/x", "<unparseable url>", []string{"9876"}},
	} {
		got := RedactURL(tt.in)
		if got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for _, s := range tt.secrets {
			if strings.Contains(got, s) {
				t.Errorf("RedactURL(%q) = %q leaks %q", tt.in, got, s)
			}
		}
	}
}

// TestRedactSecrets: an error message that quotes the URL, a part of it or
// a decoded secret loses every secret.
func TestRedactSecrets(t *testing.T) {
	for _, tt := range []struct {
		raw, msg string
		secrets  []string
	}{
		{"rtsp://u:Hunter2@h/x", `describe rtsp://u:Hunter2@h/x: 401`, []string{"Hunter2"}},
		{"rtsp://u:p%3Fw@h/x", `auth for u:p?w failed, sent u:p%3Fw`, []string{"p?w", "p%3Fw"}},
		{"rtsp://h/cam?user=admin&password=QueryPw_Leak", `describe rtsp://h/cam?user=admin&password=QueryPw_Leak: EOF`, []string{"QueryPw_Leak"}},
		// The camera's Content-Base differs from the URL given: the value is
		// still found.
		{"rtsp://h/cam?password=QueryPw_Leak", `setup rtsp://h:554/cam?password=QueryPw_Leak/trackID=0: 454`, []string{"QueryPw_Leak"}},
		{"rtsp://h/cam?password=a%20b%2Fc", `bad password "a b/c" or a+b%2Fc`, []string{"a b/c", "a+b%2Fc", "a%20b"}},
		{"rtsp://h/user=admin&password=PathPw9&channel=1", `GET /user=admin&password=PathPw9&channel=1`, []string{"PathPw9"}},
		{"rtsp://admin:Zq?ss2@127.0.0.1:7610/cam/0", `parse "rtsp://admin:Zq?ss2@127.0.0.1:7610/cam/0": invalid port ":Zq"`, []string{"Zq"}},
		{"rtsp://TokenOnly@h/x", `connect TokenOnly@h: refused`, []string{"TokenOnly"}},
	} {
		got := RedactSecrets(tt.msg, tt.raw)
		for _, s := range tt.secrets {
			if strings.Contains(got, s) {
				t.Errorf("RedactSecrets(%q, %q) = %q leaks %q", tt.msg, tt.raw, got, s)
			}
		}
		if !strings.Contains(got, Mask) && !strings.Contains(got, unparseableURL) {
			t.Errorf("RedactSecrets(%q, %q) = %q, no mask", tt.msg, tt.raw, got)
		}
	}
	if got := RedactSecrets("connection refused", "rtsp://h/x"); got != "connection refused" {
		t.Errorf("a message without secrets changed: %q", got)
	}
}

// TestParseCameraURL: bad camera URLs get an error saying what is wrong,
// which quotes no part of the URL.
func TestParseCameraURL(t *testing.T) {
	for _, tt := range []struct {
		in, want string
		secret   string
	}{
		{"rtsp://admin:Zq?ss2@127.0.0.1:7610/cam/0", "bad port", "Zq"},
		{"admin:NoSchemePw@127.0.0.1:7610/cam/0", "no scheme", "NoSchemePw"},
		{"127.0.0.1:7610/cam/0?password=NoScheme2", "no scheme", "NoScheme2"},
		{"rtsp://admin:50%pw@h/", "percent-escape", "50%pw"},
		{"rtsp://admin:sp ace@h/", "space", "sp ace"},
		{"rtsp://admin:ha#sh@h/", "bad port", "ha"},
		{"rtsp://h/cam?password=ab#cd", "'#'", "ab"},
		{"http://admin:HttpPw@h/", "scheme must be rtsp", "HttpPw"},
		{"rtsp://admin:1234/5@cam/x", "'@' after the host", "1234"},
		{"rtsp://admin:NoHost@/x", "no host", "NoHost"},
		{"rtsp://h:99999/x?token=PortTok", "port must be", "PortTok"},
		{"", "empty", ""},
	} {
		_, err := ParseCameraURL(tt.in)
		if err == nil {
			t.Errorf("ParseCameraURL(%q) accepted it", tt.in)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseCameraURL(%q) = %v, want it to say %q", tt.in, err, tt.want)
		}
		if tt.secret != "" && strings.Contains(err.Error(), tt.secret) {
			t.Errorf("ParseCameraURL(%q) = %v leaks %q", tt.in, err, tt.secret)
		}
	}
	for _, ok := range []string{"rtsp://u:p%3Fw@h:554/cam/0", "rtsps://h/cam?user=a&password=b", "rtsp://[::1]:8554/x"} {
		if _, err := ParseCameraURL(ok); err != nil {
			t.Errorf("ParseCameraURL(%q) = %v", ok, err)
		}
	}
	// Validate, the API's check, does not echo a piece of the password
	// either (net/url's "invalid port \":pa\"" did).
	s := Stream{ID: "c", URL: "rtsp://h:Zq?ss2@x/", Replicas: 2, ArchiveRetention: DefaultArchiveRetention}
	if err := s.Validate(); err == nil || strings.Contains(err.Error(), "Zq") || !strings.Contains(err.Error(), "bad port") {
		t.Errorf("Validate() = %v, want a bad port that quotes nothing", err)
	}
}

// TestQuerySecretsNeverPrinted: a stream whose camera takes its password
// in the query keeps it in URL (RecordingURL has it) but no printed,
// logged or JSON form shows it.
func TestQuerySecretsNeverPrinted(t *testing.T) {
	s := validStream()
	s.URL = "rtsp://cam/x?user=admin&password=QueryPw_Leak"
	s.Normalize()
	e := Entry{ID: s.ID, Version: Version{WallMS: 1, Node: "n1"}, Stream: s}
	var outputs []string
	for _, v := range []any{s, &s, e, &e, s.Redacted()} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
			outputs = append(outputs, fmt.Sprintf(verb, v))
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(j))
	}
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "stream", s, "entry", e)
	slog.New(slog.NewTextHandler(&buf, nil)).Info("x", "stream", &s)
	outputs = append(outputs, buf.String())
	for _, out := range outputs {
		if strings.Contains(out, "QueryPw_Leak") || strings.Contains(out, hexOf("QueryPw_Leak")) {
			t.Errorf("output leaks the query password: %s", out)
		}
	}
	if !strings.Contains(fmt.Sprint(s), "user=admin&password=xxxxx") {
		t.Errorf("String() = %s, want the redacted URL", s)
	}
	if got := s.RecordingURL(); !strings.Contains(got, "password=QueryPw_Leak") {
		t.Errorf("RecordingURL() = %q lost the password", got)
	}
}

func hexOf(s string) string { return fmt.Sprintf("%x", s) }

// FuzzRedactURL: whatever the URL, a password put in its query, its path
// or its userinfo never shows in the display form.
func FuzzRedactURL(f *testing.F) {
	f.Add("h", "cam/0", "password", "S3cr3t")
	f.Add("h:554", "user=admin", "PWD", "a/b?c")
	f.Add("[::1]", "", "api_key", "%zz")
	f.Fuzz(func(t *testing.T, host, path, name, secret string) {
		if len(secret) < 4 || strings.ContainsAny(secret, "&;") || !isSecretName(url.QueryEscape(name)) {
			return
		}
		// A marker makes a leak unmistakable: without it a short secret
		// such as "000?" is found in any display of the path "000" and a
		// query, a coincidence rather than a leak.
		const marker = "Zs3cr3tZ"
		if strings.Contains(host+path+name, marker) {
			return
		}
		secret = marker + secret
		forms := []string{secret, url.QueryEscape(secret), url.PathEscape(secret)}
		// What is shown on purpose: the host and path as displayed without
		// any secret (re-encoded: "0 0" shows as "0%200"), the name, the
		// mask.
		around := "rtsp://admin:@/?=" + host + path + RedactURL("rtsp://"+host+"/"+path) +
			url.QueryEscape(name) + Mask + unparseableURL
		for _, f := range forms {
			if strings.Contains(around, f) {
				return // the secret is also a piece of what is shown on purpose
			}
		}
		for _, raw := range []string{
			"rtsp://" + host + "/" + path + "?" + url.QueryEscape(name) + "=" + url.QueryEscape(secret),
			"rtsp://" + host + "/" + path + "?" + url.QueryEscape(name) + "=" + secret,
			"rtsp://" + host + "/" + url.QueryEscape(name) + "=" + url.PathEscape(secret),
			"rtsp://admin:" + secret + "@" + host + "/" + path,
			"rtsp://admin:" + url.QueryEscape(secret) + "@" + host + "/" + path,
		} {
			got := RedactURL(raw)
			for _, f := range forms {
				if strings.Contains(got, f) {
					t.Fatalf("RedactURL(%q) = %q leaks %q", raw, got, f)
				}
			}
		}
	})
}

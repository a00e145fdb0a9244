package engine

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"google.golang.org/protobuf/encoding/protojson"

	understudyv1 "github.com/understudy-nvr/understudy/proto/understudy/v1"
	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// post sends a Connect unary call as JSON, the way curl would, and returns
// the status and body.
func post(t *testing.T, url, procedure, auth, encoding string, body []byte) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", url+procedure, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestRequestLimits: what an integrator's client (or anyone reaching the
// port) can send. An unauthenticated request is refused before its body is
// read; bodies and decompressed messages are bounded; a misspelt field or
// an unknown enum name is an error, not silently dropped; the bearer
// scheme is case-insensitive.
func TestRequestLimits(t *testing.T) {
	n, srv := testNode(t, nil)
	const create = "/understudy.v1.StreamService/CreateStream"
	big := []byte(`{"stream":{"id":"` + strings.Repeat("a", 4<<20) + `"}}`)

	// No token: unauthenticated, without reading 4 MiB first (connect would
	// say resource_exhausted had it looked at the body).
	if code, body := post(t, srv.URL, create, "", "", big); code != 401 || !strings.Contains(body, "unauthenticated") {
		t.Errorf("no token, 4 MiB body: %d %s", code, body)
	}
	if code, body := post(t, srv.URL, create, "Basic YWRtaW46eA==", "", []byte(`{}`)); code != 401 || !strings.Contains(body, "Bearer scheme") {
		t.Errorf("basic auth: %d %s", code, body)
	}
	// A token, but a body over the limit, plain or as a compression bomb
	// (64 MiB of JSON in ~64 KiB of gzip).
	if code, body := post(t, srv.URL, create, "Bearer "+testAdmin, "", big); code != 429 && !strings.Contains(body, "resource_exhausted") {
		t.Errorf("4 MiB body: %d %s", code, body)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(`{"stream":{"id":"`))
	zw.Write(bytes.Repeat([]byte("a"), 64<<20))
	zw.Write([]byte(`"}}`))
	zw.Close()
	if code, body := post(t, srv.URL, create, "Bearer "+testAdmin, "gzip", gz.Bytes()); !strings.Contains(body, "resource_exhausted") {
		t.Errorf("gzip bomb: %d %s", code, body)
	}
	// Misspelt fields and unknown enum names.
	for _, c := range []struct{ name, procedure, body, want string }{
		{"typo credential", create, `{"stream":{"id":"cam9","url":"rtsp://h/x","credential":{"username":"u","password":"p"}}}`, "credential"},
		{"typo enable", create, `{"stream":{"id":"cam9","url":"rtsp://h/x","enable":true}}`, "enable"},
		{"unknown enum", "/understudy.v1.RecordingService/ListSegments", `{"streamId":"cam9","class":"SEGMENT_CLASS_BUFFERX"}`, "SEGMENT_CLASS_BUFFERX"},
	} {
		code, body := post(t, srv.URL, c.procedure, "bearer "+testAdmin, "", []byte(c.body))
		if code != 400 || !strings.Contains(body, "invalid_argument") || !strings.Contains(body, c.want) {
			t.Errorf("%s: %d %s", c.name, code, body)
		}
		if strings.Contains(body, `"p"`) {
			t.Errorf("%s: the password is echoed: %s", c.name, body)
		}
	}
	if _, err := n.catalog.Get("cam9"); err == nil {
		t.Error("a rejected request created cam9")
	}
	// The well-spelt request works, with the scheme in lower case.
	if code, body := post(t, srv.URL, create, "bearer "+testAdmin, "", []byte(`{"stream":{"id":"cam9","url":"rtsp://h/x","enabled":true}}`)); code != 200 {
		t.Errorf("valid request: %d %s", code, body)
	}
	forged := `{"streamId":"cam9","start":"2026-01-01T00:00:00Z","end":"2026-01-01T01:00:00Z","pageToken":"c` + strings.Repeat("A", 100<<10) + `"}`
	if code, body := post(t, srv.URL, "/understudy.v1.RecordingService/ListSegments", "Bearer "+testRead, "", []byte(forged)); code != 400 || !strings.Contains(body, "page_token") {
		t.Errorf("forged 100 KiB page token: %d %.200s", code, body)
	}
	// The Go client (binary protobuf) is unaffected.
	if _, err := understudyv1connect.NewStreamServiceClient(client(testAdmin), srv.URL).GetStream(context.Background(), connect.NewRequest(&understudyv1.GetStreamRequest{Id: "cam9"})); err != nil {
		t.Errorf("GetStream over protobuf: %v", err)
	}
}

// TestSlowRequestBody: a client trickling a request body loses its
// connection after the read timeout instead of holding it (and a file
// descriptor the recorder needs) for as long as it likes.
func TestSlowRequestBody(t *testing.T) {
	old := requestReadTimeout
	requestReadTimeout = 500 * time.Millisecond
	t.Cleanup(func() { requestReadTimeout = old })
	n := runNode(t, Config{ID: "n1", DataDir: t.TempDir(), Listen: "127.0.0.1:0", AdminToken: testAdmin})
	conn, err := net.Dial("tcp", n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /understudy.v1.StreamService/ListStreams HTTP/1.1\r\nHost: x\r\n"+
		"Content-Type: application/json\r\nAuthorization: Bearer "+testAdmin+"\r\nContent-Length: 1000\r\n\r\n{")
	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		// Keep trickling; the server must give up on us.
		if _, err := io.WriteString(conn, " "); err != nil {
			break
		}
		buf := make([]byte, 512)
		conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := conn.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				if time.Since(start) > 15*time.Second {
					t.Fatal("the server still reads a trickling body after 15 s")
				}
				continue
			}
			break // closed by the server
		}
		// A response (408 or an error) ends it too; the connection closes next.
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("connection held %v", d)
	}
}

// TestUpdateMaskWildcardOverJSON: UpdateStream documents the mask "*" (all
// fields); a JSON client (curl, connect-web in a browser) can send it too,
// though protojson takes "*" for an invalid path.
func TestUpdateMaskWildcardOverJSON(t *testing.T) {
	_, srv := testNode(t, nil)
	auth := "Bearer " + testAdmin
	if code, body := post(t, srv.URL, "/understudy.v1.StreamService/CreateStream", auth, "",
		[]byte(`{"stream":{"id":"cam1","url":"rtsp://10.0.0.1/a","replicas":2,"labels":{"site":"north"},"enabled":true}}`)); code != 200 {
		t.Fatalf("create: %d %s", code, body)
	}
	for _, key := range []string{"updateMask", "update_mask"} {
		code, body := post(t, srv.URL, "/understudy.v1.StreamService/UpdateStream", auth, "",
			[]byte(`{"stream":{"id":"cam1","url":"rtsp://10.0.0.2/b","replicas":3}, "`+key+`": "*"}`))
		if code != 200 {
			t.Fatalf("%s \"*\": %d %s", key, code, body)
		}
		var resp understudyv1.UpdateStreamResponse
		if err := protojson.Unmarshal([]byte(body), &resp); err != nil {
			t.Fatal(err)
		}
		s := resp.GetStream()
		if s.GetUrl() != "rtsp://10.0.0.2/b" || s.GetReplicas() != 3 || len(s.GetLabels()) != 0 || s.GetEnabled() {
			t.Errorf("%s \"*\": url %q replicas %d labels %v enabled %v; want every field replaced", key, s.GetUrl(), s.GetReplicas(), s.GetLabels(), s.GetEnabled())
		}
	}
	// Other bad paths, and "*" among others, are still refused.
	for _, mask := range []string{`"colour"`, `"*,url"`, `"url,*"`} {
		code, body := post(t, srv.URL, "/understudy.v1.StreamService/UpdateStream", auth, "",
			[]byte(`{"stream":{"id":"cam1","url":"rtsp://10.0.0.3/c"},"updateMask":`+mask+`}`))
		if code != 400 || !strings.Contains(body, "invalid_argument") {
			t.Errorf("mask %s: %d %s, want invalid_argument", mask, code, body)
		}
	}
}

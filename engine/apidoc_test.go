package engine

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAPIDoc: docs/API.md names every service and method of the .proto
// files, each with a curl and a grpcurl example, and its unary curl
// examples (and the export URL) work against a live node as written.
func TestAPIDoc(t *testing.T) {
	b, err := os.ReadFile("../docs/API.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	protos, err := filepath.Glob("../proto/understudy/v1/*.proto")
	if err != nil || len(protos) == 0 {
		t.Fatalf("no .proto files: %v", err)
	}
	svcRe := regexp.MustCompile(`(?m)^service (\w+) \{`)
	rpcRe := regexp.MustCompile(`(?m)^\s*rpc (\w+)\(`)
	methods := 0
	for _, p := range protos {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, loc := range svcRe.FindAllStringSubmatchIndex(string(src), -1) {
			svc := string(src[loc[2]:loc[3]])
			body := string(src[loc[1]:])
			body = body[:strings.Index(body, "\n}")]
			if !strings.Contains(doc, "\n## "+svc+"\n") {
				t.Errorf("docs/API.md has no section for %s", svc)
			}
			for _, m := range rpcRe.FindAllStringSubmatch(body, -1) {
				methods++
				head := "\n### " + svc + "." + m[1] + "\n"
				i := strings.Index(doc, head)
				if i < 0 {
					t.Errorf("docs/API.md does not document %s.%s", svc, m[1])
					continue
				}
				sec := doc[i+len(head):]
				if j := strings.Index(sec, "\n#"); j >= 0 {
					sec = sec[:j]
				}
				path := "/understudy.v1." + svc + "/" + m[1]
				if !strings.Contains(sec, "curl ") || !strings.Contains(sec, `"$SERVER`+path+`"`) {
					t.Errorf("%s.%s: no curl example calling %s", svc, m[1], path)
				}
				if !strings.Contains(sec, "grpcurl ") || !strings.Contains(sec, "understudy.v1."+svc+"/"+m[1]) {
					t.Errorf("%s.%s: no grpcurl example", svc, m[1])
				}
			}
		}
	}
	if methods < 12 {
		t.Errorf("found %d methods in the .proto files: the parser is broken", methods)
	}

	// Run the unary examples, deletes last.
	_, srv := testNode(t, nil)
	exRe := regexp.MustCompile(`(?m)^curl .*-H 'Content-Type: application/json' -d '([^']*)' "\$SERVER(/understudy\.v1\.\w+/\w+)"$`)
	var deletes, runs [][]string
	for _, m := range exRe.FindAllStringSubmatch(doc, -1) {
		if strings.HasSuffix(m[2], "/DeleteStream") {
			deletes = append(deletes, m)
		} else {
			runs = append(runs, m)
		}
	}
	if len(runs)+len(deletes) < 10 {
		t.Fatalf("found %d unary curl examples, want one per unary method", len(runs)+len(deletes))
	}
	call := func(method, url, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testAdmin)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(out)
	}
	for _, m := range runs {
		code, out := call("POST", srv.URL+m[2], m[1])
		if strings.Contains(m[1], `"forget":true`) {
			// A lone node keeps no registry: the forget example names a
			// node it does not know.
			if code != http.StatusNotFound || !strings.Contains(out, "not a known node") {
				t.Errorf("example %s %s: %d %s, want 404 not a known node", m[2], m[1], code, out)
			}
			continue
		}
		if code != http.StatusOK {
			t.Errorf("example %s %s: %d %s", m[2], m[1], code, out)
			continue
		}
		if strings.Contains(out, `"secret"`) {
			t.Errorf("example %s answers the camera password: %s", m[2], out)
		}
		t.Logf("%s: %.200s", m[2], out)
	}
	// The export URL as documented: accepted (nothing is recorded on this
	// node, so 404 "nothing recorded", not a 400 about the times).
	urlRe := regexp.MustCompile(`"\$SERVER(/v1/export\?[^"]+)"`)
	um := urlRe.FindStringSubmatch(doc)
	if um == nil {
		t.Fatal("docs/API.md has no export URL example")
	}
	if code, out := call("GET", srv.URL+um[1], ""); code != http.StatusNotFound || !strings.Contains(out, "nothing recorded") {
		t.Errorf("GET %s: %d %q, want 404 nothing recorded", um[1], code, out)
	}
	for _, m := range deletes {
		if code, out := call("POST", srv.URL+m[2], m[1]); code != http.StatusOK {
			t.Errorf("example %s %s: %d %s", m[2], m[1], code, out)
		}
	}
}

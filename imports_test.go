package understudy_test

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/understudy-nvr/understudy"

// allowed is the package table of docs/ARCHITECTURE.md: for each top-level
// package, the module packages and third-party module prefixes its non-test
// code may import (the standard library is always allowed). Sub-packages
// inherit the rules of their top-level package; a few get a wider rule of
// their own, keyed by their full path below the module.
var allowed = map[string][]string{
	"placement": {},
	// The dry-run tool reads YAML topologies; the pure algorithm above it
	// stays stdlib-only.
	"placement/dryrun": {"placement", "gopkg.in/yaml.v3"},
	"segment":          {"github.com/bluenviron/mediacommon", "github.com/cockroachdb/pebble"},
	"replica":          {"segment"},
	"backfill":         {"segment", "replica", "proto"},
	"engine": {"placement", "segment", "replica", "backfill", "proto",
		"github.com/bluenviron/gortsplib", "github.com/bluenviron/mediacommon",
		"github.com/pion/", // RTP/RTCP packet types of gortsplib's API
		"github.com/cockroachdb/pebble", "github.com/hashicorp/memberlist",
		"connectrpc.com/", "google.golang.org/protobuf", "github.com/klauspost/compress",
		"github.com/prometheus/", "gopkg.in/yaml.v3", "golang.org/x/net"},
	// The API server: handlers, HTTP mux, auth and federation. It reaches
	// the node through its interface (api.Node), never package engine,
	// and leaves sessions, RTSP and gossip to the node.
	"engine/api": {"placement", "segment", "proto",
		"connectrpc.com/", "google.golang.org/protobuf", "github.com/klauspost/compress", "github.com/prometheus/"},
	// The recording session: camera to segment writer, nothing of the
	// cluster, the API or gossip.
	"engine/session": {"segment", "github.com/bluenviron/gortsplib", "github.com/bluenviron/mediacommon", "github.com/pion/"},
	"proto":          {"connectrpc.com/", "google.golang.org/protobuf"},
	"cmd":            {"engine", "placement", "segment", "chaos", "bench", "proto", "connectrpc.com/", "google.golang.org/protobuf"},
	"chaos":          {"*"},
	"bench":          {"*"},
}

// importedOnlyBy lists packages that only some packages may import.
var importedOnlyBy = map[string][]string{
	"chaos": {"cmd", "chaos", "bench"}, // bench: the failover run starts its cluster with chaos/harness
	"bench": {"bench", "cmd"},          // `understudy bench` runs it
}

// importedOnlyWithin lists sub-packages that, inside their own top-level
// package too, only the packages listed (and their own sub-packages) may
// import: the API is the composition root's, and nothing it serves (the
// sessions, the catalog, the cluster, the reconciler) depends on it.
var importedOnlyWithin = map[string][]string{
	"engine/api": {"engine"},
}

// within reports whether rel is pkg or one of its sub-packages.
func within(rel, pkg string) bool {
	return rel == pkg || strings.HasPrefix(rel, pkg+"/")
}

func topLevel(rel string) string {
	if i := strings.IndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return rel
}

func rulesFor(rel string) ([]string, bool) {
	for p := rel; p != ""; {
		if r, ok := allowed[p]; ok {
			return r, true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return nil, false
}

func isStdlib(path string) bool {
	first := path
	if i := strings.IndexByte(path, '/'); i >= 0 {
		first = path[:i]
	}
	return !strings.Contains(first, ".")
}

// TestImportGraph keeps the package table of docs/ARCHITECTURE.md true: it lists
// the imports of every package of the module and fails on any edge the table
// does not allow.
func TestImportGraph(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	problems, n := checkImports(out)
	if n == 0 {
		t.Fatal("go list found no packages")
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestImportRulesCatchViolations: the checker itself flags the edges the
// table forbids.
func TestImportRulesCatchViolations(t *testing.T) {
	listing := strings.Join([]string{
		module + "/placement fmt " + module + "/segment",
		module + "/segment github.com/bluenviron/gortsplib/v4",
		module + "/engine " + module + "/chaos/camsim",
		module + "/segment " + module + "/bench",
		module + "/newthing fmt",
		module + "/engine " + module + "/segment github.com/hashicorp/memberlist",
		module + "/engine " + module + "/engine/api",
		module + "/engine/session " + module + "/engine/api",
		module + "/engine/cluster " + module + "/engine/api/sub",
		module + "/engine/api " + module + "/engine/catalog github.com/hashicorp/memberlist",
		module + "/engine/api/sub " + module + "/engine/api",
	}, "\n")
	problems, _ := checkImports([]byte(listing))
	if len(problems) != 8 {
		t.Fatalf("want 8 violations, got %d: %v", len(problems), problems)
	}
	all := strings.Join(problems, "\n")
	for _, want := range []string{"engine/session imports engine/api:", "engine/cluster imports engine/api/sub:",
		"engine/api imports github.com/hashicorp/memberlist,"} {
		if !strings.Contains(all, want) {
			t.Errorf("no violation %q among %v", want, problems)
		}
	}
}

// checkImports reads `go list` lines (package, then its imports) and returns
// every edge the package table does not allow, and the number of packages.
func checkImports(listing []byte) (problems []string, n int) {
	sc := bufio.NewScanner(bytes.NewReader(listing))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || fields[0] == module {
			continue
		}
		n++
		rel := strings.TrimPrefix(fields[0], module+"/")
		if strings.HasPrefix(rel, "internal/") {
			continue
		}
		rules, ok := rulesFor(rel)
		if !ok {
			problems = append(problems, fmt.Sprintf("package %s is not in the package table of docs/ARCHITECTURE.md", rel))
			continue
		}
		for _, imp := range fields[1:] {
			if isStdlib(imp) {
				continue
			}
			if strings.HasPrefix(imp, module+"/") {
				target := strings.TrimPrefix(imp, module+"/")
				top := topLevel(target)
				if bad, only := onlyWithin(rel, target); bad {
					problems = append(problems, fmt.Sprintf("%s imports %s: nothing but %v may import it", rel, target, only))
					continue
				}
				if top == topLevel(rel) {
					continue // a package may use its own sub-packages
				}
				if only, ok := importedOnlyBy[top]; ok && !contains(only, topLevel(rel)) {
					problems = append(problems, fmt.Sprintf("%s imports %s: nothing but %v may import %s", rel, target, only, top))
					continue
				}
				if !allows(rules, top, true) {
					problems = append(problems, fmt.Sprintf("%s imports %s, which the package table does not allow", rel, target))
				}
				continue
			}
			if !allows(rules, imp, false) {
				problems = append(problems, fmt.Sprintf("%s imports %s, which the package table does not allow", rel, imp))
			}
		}
	}
	return problems, n
}

// onlyWithin reports whether importedOnlyWithin forbids rel to import
// target, and who may.
func onlyWithin(rel, target string) (bool, []string) {
	for pkg, only := range importedOnlyWithin {
		if !within(target, pkg) || within(rel, pkg) {
			continue
		}
		if !slices.Contains(only, rel) {
			return true, only
		}
	}
	return false, nil
}

func allows(rules []string, imp string, internal bool) bool {
	for _, r := range rules {
		if r == "*" {
			return true
		}
		if internal && r == imp {
			return true
		}
		if !internal && strings.Contains(r, ".") && strings.HasPrefix(imp, r) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

package engine

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"
)

// metricName matches the Understudy metrics a PromQL expression names.
var metricName = regexp.MustCompile(`\bunderstudy_[a-z0-9_]+\b`)

// registeredMetrics is the set of metric names a node registers.
func registeredMetrics(t *testing.T) map[string]bool {
	t.Helper()
	n, _ := testNode(t, nil)
	families, err := n.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, f := range families {
		out[f.GetName()] = true
	}
	return out
}

// checkExprs fails for an expression that names no Understudy metric or
// one the node does not register.
func checkExprs(t *testing.T, file string, exprs []string, known map[string]bool) {
	t.Helper()
	if len(exprs) == 0 {
		t.Fatalf("%s: no expression found", file)
	}
	for _, e := range exprs {
		names := metricName.FindAllString(e, -1)
		if len(names) == 0 {
			t.Errorf("%s: %q names no understudy metric", file, e)
		}
		for _, name := range names {
			if !known[name] {
				t.Errorf("%s: %q names %s, which no node serves", file, e, name)
			}
		}
	}
}

// TestExampleAlertsAndDashboard: the example Prometheus rules and the
// Grafana dashboard parse, and every metric they name is registered.
func TestExampleAlertsAndDashboard(t *testing.T) {
	known := registeredMetrics(t)
	if !known[MetricStreamsByState] {
		t.Fatalf("%s not registered", MetricStreamsByState)
	}

	const rules = "../examples/prometheus/understudy-alerts.yml"
	b, err := os.ReadFile(rules)
	if err != nil {
		t.Fatal(err)
	}
	var rf struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&rf); err != nil {
		t.Fatalf("%s: %v", rules, err)
	}
	var exprs, alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("%s: rule %+v lacks alert, expr, severity or summary", rules, r)
			}
			if slices.Contains(alerts, r.Alert) {
				t.Errorf("%s: alert %s twice", rules, r.Alert)
			}
			alerts = append(alerts, r.Alert)
			exprs = append(exprs, r.Expr)
		}
	}
	checkExprs(t, rules, exprs, known)
	// The example: an alert on a camera unreachable for 5 min.
	found := false
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.For == "5m" && regexp.MustCompile(`state="camera_unreachable"`).MatchString(r.Expr) {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("%s: no alert on a camera unreachable for 5m", rules)
	}

	const dash = "../examples/grafana/understudy-dashboard.json"
	b, err = os.ReadFile(dash)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", dash, err)
	}
	if d.Title == "" || d.UID == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: no title, uid or panels", dash)
	}
	exprs = nil
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("%s: panel %q has no query", dash, p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	checkExprs(t, dash, exprs, known)
}

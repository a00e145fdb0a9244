package dryrun

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// WriteJSON prints the report as one indented JSON object.
func WriteJSON(w io.Writer, r *Report) error {
	c := *r
	c.Nodes = make([]NodeRow, len(r.Nodes))
	for i, n := range r.Nodes {
		n.Target, n.BalancePct = round(n.Target, 2), round(n.BalancePct, 2)
		c.Nodes[i] = n
	}
	c.Scenarios = make([]Scenario, len(r.Scenarios))
	for i, s := range r.Scenarios {
		s.MoveRatio, s.ElapsedMS = round(s.MoveRatio, 4), round(s.ElapsedMS, 3)
		c.Scenarios[i] = s
	}
	if c.Scenarios == nil {
		c.Scenarios = []Scenario{}
	}
	c.MaxOverFairCopies, c.MaxOverFairHomes = round(c.MaxOverFairCopies, 4), round(c.MaxOverFairHomes, 4)
	c.ElapsedMS = round(c.ElapsedMS, 3)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&c)
}

// WriteTable prints the report as aligned text tables.
func WriteTable(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "placement: %d nodes, %d streams, %d copies, level %s, epsilon %.2f, overload %.2f\n\n",
		len(r.Nodes), r.Streams, r.Copies, r.Level, r.Epsilon, r.Overload)
	fmt.Fprintln(tw, "node\tdomain\tweight\tstate\ttarget\tassigned\tbalance %\thomes\t")
	for _, n := range r.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%.2f\t%d\t%+.2f\t%d\t\n", n.ID, n.Domain, n.Weight, n.State, n.Target, n.Copies, n.BalancePct, n.Homes)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\ndispersion, outermost tier first (streams whose copies share a domain; avoidable: enough domains to spread them):")
	fmt.Fprintln(tw, "tier\tdomains\tshared\tavoidable\t")
	for _, t := range r.Tiers {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t\n", t.Tier, t.Domains, t.Shared, t.Avoidable)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Scopes) > 0 {
		fmt.Fprintln(w, "\nscopes (outside: copies placed outside a preferred scope short of nodes; short: strict streams with fewer than R copies; shared/avoidable per tier, within the scope):")
		head := "scope\tstreams\tstrict\tnodes\toutside\tshort\t"
		for _, t := range r.Tiers {
			head += t.Tier + "\t"
		}
		fmt.Fprintln(tw, head)
		for _, sc := range r.Scopes {
			name := sc.Scope
			if name == "" {
				name = "(none)"
			}
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t", name, sc.Streams, sc.Strict, sc.Nodes, sc.Outside, sc.Short)
			for _, t := range sc.Tiers {
				fmt.Fprintf(tw, "%d/%d\t", t.Shared, t.Avoidable)
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "\nmax/fair copies %.4f, homes %.4f; failure-domain violations at %s: %d; placed in %.3f ms\n",
		r.MaxOverFairCopies, r.MaxOverFairHomes, r.Level, r.DispersionViolations, r.ElapsedMS)
	if len(r.Scenarios) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nscenarios:")
	fmt.Fprintln(tw, "scenario\tcopies moved\toptimal\tratio\thomes moved\tnew home w/o copy\tfailed homes to a holder\tunder-replicated\tmax/fair copies\tmax/fair homes\tms\t")
	for _, s := range r.Scenarios {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.3f\t%d\t%d\t%d/%d\t%d\t%.4f\t%.4f\t%.3f\t\n", s.Name, s.CopiesMoved, s.OptimalMoves, s.MoveRatio,
			s.HomesMoved, s.NewHomeWithoutCopy, s.FailoverToCopy, s.HomesFailedOver, s.UnderReplicated, s.MaxOverFairCopies, s.MaxOverFairHomes, s.ElapsedMS)
	}
	return tw.Flush()
}

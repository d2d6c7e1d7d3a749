package main

// drover diff: two environments compared group by group.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"drover"
	"drover/report"
)

// surveyEnv reads every host of one environment, group by group.
func (a *app) surveyEnv(ctx context.Context, f specFlags, envName string) (*drover.Spec, report.EnvSurvey, error) {
	f.env = envName
	e, err := a.open(f, nil)
	if err != nil {
		return nil, report.EnvSurvey{}, err
	}
	defer e.close()
	st, err := e.runner.Status(ctx)
	if err != nil {
		return nil, report.EnvSurvey{}, err
	}
	return e.spec, report.Survey(e.spec.Groups, st.Hosts), nil
}

func (a *app) diffCmd() *cobra.Command {
	var f specFlags
	var asJSON bool
	c := &cobra.Command{
		Use:   "diff ENV-A ENV-B",
		Short: "Compare release, version and config per group between two environments",
		Long: `diff surveys the hosts of two environments of one drover.yaml (environments:)
and compares, group by group, which releases, versions and config hashes they
run. Config is rendered per host, so hosts with their own vars differ in config
hash by design; the comparison says whether the sets are the same. The last
line says whether both run one and the same release on every host, by release
ID (the content hash: the same version built twice is not the same release).
Use "" for the top-level fleet without an environment.`,
		Example: `  drover diff staging production
  drover diff staging production --json | jq '.groups[] | select(.differs != [])'`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) != 2 {
				return &usageError{fmt.Errorf("diff takes two environment names, got %d arguments", len(args))}
			}
			if f.env != "" {
				return &usageError{fmt.Errorf("diff takes its environments as arguments, not --env")}
			}
			specA, surveyA, err := a.surveyEnv(c.Context(), f, args[0])
			if err != nil {
				return err
			}
			_, surveyB, err := a.surveyEnv(c.Context(), f, args[1])
			if err != nil {
				return err
			}
			d := report.Diff(specA.Service, args[0], args[1], surveyA, surveyB)
			if d.Unreachable > 0 {
				a.exit(drover.ExitNeedsPerson)
			}
			if asJSON {
				return writeJSON(a.stdout, d)
			}
			side := func(s *report.EnvSide, m func(*report.EnvSide) map[string]int) string {
				if s == nil {
					return "(no such group)"
				}
				var parts []string
				for _, k := range keysOf(m(s)) {
					n := m(s)[k]
					k = termSafe(k)
					if k != "-" && len(k) > 20 && !strings.Contains(k, ".") {
						parts = append(parts, fmt.Sprintf("%s…×%d", k[:8], n))
						continue
					}
					parts = append(parts, fmt.Sprintf("%s×%d", k, n))
				}
				if s.Unreachable > 0 {
					parts = append(parts, fmt.Sprintf("%d unreachable", s.Unreachable))
				}
				return strings.Join(parts, ", ")
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "GROUP\tVERSION %s\tVERSION %s\tRELEASE %s\tRELEASE %s\tCONFIG %s\tCONFIG %s\tDIFFERS\n", args[0], args[1], args[0], args[1], args[0], args[1])
			differ := 0
			for _, g := range d.Groups {
				versions := func(s *report.EnvSide) map[string]int { return s.Versions }
				releases := func(s *report.EnvSide) map[string]int { return s.Releases }
				configs := func(s *report.EnvSide) map[string]int { return s.ConfigHashes }
				what := "same"
				if len(g.Differs) > 0 {
					what = strings.Join(g.Differs, ", ")
					differ++
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", g.Group, side(g.A, versions), side(g.B, versions),
					side(g.A, releases), side(g.B, releases), side(g.A, configs), side(g.B, configs), what)
			}
			tw.Flush()
			fmt.Fprintf(a.stdout, "%d of %d groups differ between %s and %s\n", differ, len(d.Groups), args[0], args[1])
			fmt.Fprintln(a.stdout, sameReleaseLine(d))
			return nil
		},
	}
	f.add(c)
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func keysOf(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sameReleaseLine says whether a and b run the same release.
func sameReleaseLine(d report.EnvDiff) string {
	side := func(env, rel string) string {
		if rel == "" {
			return env + " runs no one release"
		}
		return env + " runs " + rel
	}
	if d.SameRelease {
		return fmt.Sprintf("%s and %s run the same release, %s", d.A, d.B, d.ReleaseA)
	}
	return fmt.Sprintf("not the same release: %s, %s", side(d.A, d.ReleaseA), side(d.B, d.ReleaseB))
}

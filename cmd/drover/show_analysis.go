package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"drover"
)

// analysisEvals are the evaluations a journal holds, in order.
func analysisEvals(journal []drover.JournalEntry) []drover.AnalysisEval {
	var out []drover.AnalysisEval
	for _, j := range journal {
		if j.Analysis != nil {
			out = append(out, *j.Analysis)
		}
	}
	return out
}

// printAnalyses prints a deploy's canary analysis evaluations, as the
// journal kept them, as one table: when, which group and analysis, how it
// came out, and whether it was the group's verdict or the result that
// halted the deploy. The dashboard's canary chart marks the same ones.
func printAnalyses(w io.Writer, evs []drover.AnalysisEval) {
	if len(evs) == 0 {
		return
	}
	fmt.Fprintf(w, "\ncanary analysis: %s\n", plural(len(evs), "evaluation"))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  TIME\tGROUP\tANALYSIS\tKIND\tRESULT\tWHEN\tSEEN")
	for _, e := range evs {
		result := e.Status
		if e.Status != drover.AnalysisPass {
			result = strings.ToUpper(result)
		}
		when := "watch"
		if e.Verdict {
			when = "verdict"
		}
		if e.Halted {
			when += ", HALTED the deploy"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.At.Local().Format("15:04:05.000"), termSafe(e.Group), termSafe(e.Name), e.Kind, result, when, oneLine(termSafe(e.Message), 120))
	}
	tw.Flush()
}

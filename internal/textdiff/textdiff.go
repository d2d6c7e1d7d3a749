// Package textdiff produces unified diffs of small text files, such as a
// host's live config against the one a deploy would render. It uses the
// longest-common-subsequence table, quadratic in lines: fine for config
// files, not for large data.
package textdiff

import (
	"fmt"
	"strings"
)

// Unified returns a unified diff from a to b with n lines of context, or ""
// when they are equal.
func Unified(aName, bName, a, b string, n int) string {
	if a == b {
		return ""
	}
	al, bl := lines(a), lines(b)
	ops := diff(al, bl)
	var out strings.Builder
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", aName, bName)
	// Group ops into hunks: runs of changes with up to n lines of context.
	i := 0
	for i < len(ops) {
		// Find the next change.
		for i < len(ops) && ops[i].kind == ' ' {
			i++
		}
		if i == len(ops) {
			break
		}
		start := max(i-n, 0)
		end := i
		for end < len(ops) {
			if ops[end].kind != ' ' {
				end++
				continue
			}
			// Count the run of equal lines.
			j := end
			for j < len(ops) && ops[j].kind == ' ' {
				j++
			}
			if j == len(ops) || j-end > 2*n {
				end = min(end+n, len(ops))
				break
			}
			end = j
		}
		aStart, bStart := ops[start].ai, ops[start].bi
		aLen, bLen := 0, 0
		for _, o := range ops[start:end] {
			if o.kind != '+' {
				aLen++
			}
			if o.kind != '-' {
				bLen++
			}
		}
		fmt.Fprintf(&out, "@@ -%s +%s @@\n", rng(aStart, aLen), rng(bStart, bLen))
		for _, o := range ops[start:end] {
			out.WriteByte(o.kind)
			out.WriteString(o.text)
			out.WriteByte('\n')
			if o.noEOL {
				out.WriteString("\\ No newline at end of file\n")
			}
		}
		i = end
	}
	return out.String()
}

func rng(start, n int) string {
	if n == 0 {
		return fmt.Sprintf("%d,0", start)
	}
	if n == 1 {
		return fmt.Sprintf("%d", start+1)
	}
	return fmt.Sprintf("%d,%d", start+1, n)
}

type line struct {
	text  string
	noEOL bool
}

func lines(s string) []line {
	if s == "" {
		return nil
	}
	parts := strings.Split(s, "\n")
	noEOL := parts[len(parts)-1] != ""
	if !noEOL {
		parts = parts[:len(parts)-1]
	}
	out := make([]line, len(parts))
	for i, p := range parts {
		out[i] = line{text: p}
	}
	out[len(out)-1].noEOL = noEOL
	return out
}

type op struct {
	kind   byte // ' ', '-', '+'
	text   string
	noEOL  bool
	ai, bi int // positions in a and b before this op
}

func diff(a, b []line) []op {
	// lcs[i][j] = length of the LCS of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var ops []op
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			ops = append(ops, op{' ', a[i].text, a[i].noEOL, i, j})
			i++
			j++
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			ops = append(ops, op{'-', a[i].text, a[i].noEOL, i, j})
			i++
		default:
			ops = append(ops, op{'+', b[j].text, b[j].noEOL, i, j})
			j++
		}
	}
	return ops
}

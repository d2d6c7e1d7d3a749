package rollout

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strings"
	"testing"

	"drover"
)

// TestNoteKindsComplete: NoteKinds lists every NoteKind constant declared
// in this package, found by parsing its source, so a test that walks
// NoteKinds (the runner's TestEmitNoteKinds) sees a new kind the day it
// is added.
func TestNoteKindsComplete(t *testing.T) {
	fs := token.NewFileSet()
	pkgs, err := parser.ParseDir(fs, ".", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var declared []NoteKind
	for name, f := range pkgs["rollout"].Files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, sp := range g.Specs {
				vs := sp.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "NoteKind" {
					for i := range vs.Names {
						lit := vs.Values[i].(*ast.BasicLit).Value
						declared = append(declared, NoteKind(strings.Trim(lit, `"`)))
					}
				}
			}
		}
	}
	if len(declared) == 0 {
		t.Fatal("found no NoteKind constants")
	}
	for _, k := range declared {
		if !slices.Contains(NoteKinds, k) {
			t.Errorf("NoteKinds lacks %q", k)
		}
	}
	if len(NoteKinds) != len(declared) {
		t.Errorf("NoteKinds has %d kinds, the source declares %d", len(NoteKinds), len(declared))
	}
}

// TestVerdictsAreOutcomes: every verdict is the drover outcome of the same
// name, so the root's one table gives its exit code and words; the exit
// codes are the README's.
func TestVerdictsAreOutcomes(t *testing.T) {
	exit := map[Verdict]int{Succeeded: 0, RolledBack: 1, Halted: 1, NeedsPerson: 3, Partial: 4, Running: 3}
	for _, v := range append(slices.Clone(Verdicts), Running) {
		o := drover.OutcomeOf(string(v))
		if v != Running && o.Outcome != string(v) {
			t.Errorf("verdict %q has no outcome row (got %q)", v, o.Outcome)
		}
		if o.Exit != exit[v] || o.Verdict == "" || o.ExitWords == "" || o.Label == "" {
			t.Errorf("verdict %q: %+v, want exit %d and words", v, o, exit[v])
		}
	}
	if len(Verdicts) != len(exit)-1 {
		t.Errorf("Verdicts %v: the test knows %d", Verdicts, len(exit)-1)
	}
}

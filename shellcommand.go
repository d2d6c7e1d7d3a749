package drover

import (
	"fmt"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"

	"mvdan.cc/sh/v3/syntax"
)

// This file makes shell injection through template values structurally
// impossible. A command template (hooks, validate, command checks, rotation
// hooks, smoke and invariant commands, hooks.replace) is text/template over
// shell; quoting a value is not enough on its own, because the author may
// have put the value inside double quotes, where `$(touch /tmp/pwned)`
// runs however it is quoted. So every command template is parsed as shell
// before any value meets it: each template action is replaced by a unique
// placeholder word, the result is parsed with mvdan.cc/sh/v3/syntax, and
// every placeholder must stand as (part of) an unquoted literal word part —
// an argument, an assignment's value, a redirection's target, a case
// pattern, a for list item — never inside quotes, a here-document,
// ${...}, arithmetic or backquotes, and never after a backslash or as a
// name. At render time the output of every action, whatever it is (a
// string, a number, a map key from range, printf's result), is quoted with
// syntax.Quote, so it is exactly one word part. Templates with {{if}},
// {{with}} and {{range}} are checked in every shape they can take (each
// branch; a range body 0, 1 and 2 times).

// commandShapeError says where a command template puts a value where
// quoting cannot keep it one word, and how to write it instead.
type commandShapeError struct {
	action string // the action as written, e.g. {{.Host.Vars.label}}
	where  string // "inside double quotes", ...
	hint   string
	// commandName: the value would name the program, a reason of its own.
	commandName bool
}

// maxShapes bounds the branch shapes one template is checked in: each
// {{if}} doubles them.
const maxShapes = 256

// CheckCommandTemplate parses text as a command template and reports, as
// an EINVALID *Error with a hint, a template that does not parse or that
// puts a value where quoting cannot keep it one word. Config loading calls
// it for every command template, so the refusal names file:line; the
// renderers call it too (cached), so no command is built from a template
// that has not passed it.
func CheckCommandTemplate(text string) error {
	return compileCommand("check", text).err
}

// compileCommand parses, checks and rewrites a command template: every
// printing action gets a final quoting command appended to its pipeline
// (what html/template does for HTML), so no action output reaches the
// shell unquoted.
func compileCommand(name, text string) cachedTemplate {
	return templates.get(parsedKey{name: name, text: text, command: true}, func() (*template.Template, error) {
		return compileCommandUncached(name, text)
	})
}

func compileCommandUncached(name, text string) (*template.Template, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(commandFuncs).Parse(text)
	if err != nil {
		return nil, Errorf(EINVALID, "template does not parse: %v", err).
			WithHint("fix the template syntax: actions look like {{.Host.Vars.port}}; see text/template")
	}
	if len(t.Templates()) > 1 {
		return nil, Errorf(EINVALID, "{{define}} and {{block}} are not allowed in a command").
			WithHint("write the command out, or put it in a script in the release and call that")
	}
	var c checker
	if err := c.collect(t.Tree.Root); err != nil {
		return nil, err
	}
	forced, err := c.check(t.Tree.Root, text)
	if err != nil {
		return nil, err
	}
	for i, a := range c.actions {
		fn := "droverWord"
		if forced[i] {
			fn = "droverWordPart"
		}
		a.Pipe.Cmds = append(a.Pipe.Cmds, &parse.CommandNode{
			NodeType: parse.NodeCommand,
			Pos:      a.Pos,
			Args:     []parse.Node{parse.NewIdentifier(fn).SetTree(nil).SetPos(a.Pos)},
		})
	}
	return t, nil
}

// commandFuncs are the funcs of command templates. quote is the identity:
// every action's output is quoted anyway, and quoting twice would put the
// quotes into the value.
var commandFuncs = template.FuncMap{
	"quote":          func(s string) string { return s },
	"droverWord":     func(v any) (string, error) { return quoteWord(v, false) },
	"droverWordPart": func(v any) (string, error) { return quoteWord(v, true) },
}

// quoteWord quotes the output of one action for sh. A value that shares
// its word with the author's text (h{{.X}}) is always quoted (part), so
// that it cannot complete a keyword (f + i), a tilde prefix or an
// assignment, and so is one right before a redirection; a value that is a
// whole word of its own is left bare when syntax.Quote finds nothing to
// quote, to keep commands readable.
func quoteWord(v any, part bool) (string, error) {
	return quoteString(fmt.Sprint(v), part)
}

// quoteString is quoteWord of a string.
func quoteString(s string, part bool) (string, error) {
	q, err := syntax.Quote(s, syntax.LangPOSIX)
	if err != nil {
		if !utf8.ValidString(s) {
			return "", fmt.Errorf("the value is not valid UTF-8, which sh cannot be given portably; fix the value")
		}
		return "", fmt.Errorf("the value holds a control character (a newline, a tab or a NUL), which sh cannot be given portably; remove it, or put it in a config file and read that")
	}
	if part && q == s {
		q = "'" + s + "'"
	}
	return q, nil
}

// piece is one part of a template shape: author text, or the output of
// action (an index into checker.actions).
type piece struct {
	text   string
	action int
}

type checker struct {
	actions []*parse.ActionNode
	ids     map[*parse.ActionNode]int
	src     string // the shape being checked
}

// collect numbers the printing actions of the tree and refuses the nodes
// a shape cannot be worked out for.
func (c *checker) collect(n parse.Node) error {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return nil
		}
		for _, x := range n.Nodes {
			if err := c.collect(x); err != nil {
				return err
			}
		}
	case *parse.ActionNode:
		if len(n.Pipe.Decl) == 0 && !n.Pipe.IsAssign {
			if c.ids == nil {
				c.ids = map[*parse.ActionNode]int{}
			}
			c.ids[n] = len(c.actions)
			c.actions = append(c.actions, n)
		}
	case *parse.IfNode:
		return c.branch(&n.BranchNode)
	case *parse.WithNode:
		return c.branch(&n.BranchNode)
	case *parse.RangeNode:
		return c.branch(&n.BranchNode)
	case *parse.TemplateNode:
		return Errorf(EINVALID, "%s is not allowed in a command", n).
			WithHint("write the command out, or put it in a script in the release and call that")
	case *parse.BreakNode, *parse.ContinueNode:
		return Errorf(EINVALID, "%s is not allowed in a command", n).
			WithHint("use {{if}} inside the {{range}} instead")
	}
	return nil
}

func (c *checker) branch(b *parse.BranchNode) error {
	if err := c.collect(b.List); err != nil {
		return err
	}
	return c.collect(b.ElseList)
}

// shapes returns every sequence of text and action outputs n can produce.
func (c *checker) shapes(n parse.Node) ([][]piece, error) {
	switch n := n.(type) {
	case *parse.ListNode:
		out := [][]piece{nil}
		if n == nil {
			return out, nil
		}
		for _, x := range n.Nodes {
			xs, err := c.shapes(x)
			if err != nil {
				return nil, err
			}
			if out, err = product(out, xs); err != nil {
				return nil, err
			}
		}
		return out, nil
	case *parse.TextNode:
		return [][]piece{{{text: string(n.Text), action: -1}}}, nil
	case *parse.ActionNode:
		if id, ok := c.ids[n]; ok {
			return [][]piece{{{action: id}}}, nil
		}
		return [][]piece{nil}, nil
	case *parse.IfNode:
		return c.either(n.List, n.ElseList)
	case *parse.WithNode:
		return c.either(n.List, n.ElseList)
	case *parse.RangeNode:
		// A range body runs any number of times: 0 (or the else), 1 and 2
		// cover every junction — body after nothing, after itself.
		body, err := c.shapes(n.List)
		if err != nil {
			return nil, err
		}
		none, err := c.shapes(n.ElseList)
		if err != nil {
			return nil, err
		}
		twice, err := product(body, body)
		if err != nil {
			return nil, err
		}
		return capShapes(append(append(none, body...), twice...))
	}
	return [][]piece{nil}, nil
}

func (c *checker) either(a, b *parse.ListNode) ([][]piece, error) {
	x, err := c.shapes(a)
	if err != nil {
		return nil, err
	}
	y, err := c.shapes(b)
	if err != nil {
		return nil, err
	}
	return capShapes(append(x, y...))
}

func product(a, b [][]piece) ([][]piece, error) {
	if len(a)*len(b) > maxShapes {
		return nil, errTooManyShapes()
	}
	out := make([][]piece, 0, len(a)*len(b))
	for _, x := range a {
		for _, y := range b {
			out = append(out, append(append([]piece(nil), x...), y...))
		}
	}
	return out, nil
}

func capShapes(s [][]piece) ([][]piece, error) {
	if len(s) > maxShapes {
		return nil, errTooManyShapes()
	}
	return s, nil
}

func errTooManyShapes() error {
	return Errorf(EINVALID, "the command has more than %d {{if}}/{{range}} shapes to check", maxShapes).
		WithHint("simplify it, or put the logic in a script in the release and pass it the values as arguments")
}

// check parses every shape of the template as shell and returns, for each
// action, whether it ever shares a word with other text (then its value
// is always quoted).
func (c *checker) check(root *parse.ListNode, text string) ([]bool, error) {
	shapes, err := c.shapes(root)
	if err != nil {
		return nil, err
	}
	prefix := placeholderPrefix(text)
	forced := make([]bool, len(c.actions))
	for _, shape := range shapes {
		var b strings.Builder
		for _, p := range shape {
			if p.action < 0 {
				b.WriteString(p.text)
			} else {
				b.WriteString(placeholder(prefix, p.action))
			}
		}
		if err := c.checkShape(b.String(), prefix, forced); err != nil {
			return nil, err
		}
	}
	return forced, nil
}

// placeholderPrefix returns a prefix for placeholder words found nowhere
// in text, so a placeholder is always an action.
func placeholderPrefix(text string) string {
	p := "drvA"
	for strings.Contains(text, p) {
		p += "A"
	}
	return p
}

// placeholder is the word standing for action id while checking: letters
// and digits only, ending in a letter so that action 1 is not a prefix of
// action 10.
func placeholder(prefix string, id int) string {
	return prefix + strconv.Itoa(id) + "Z"
}

// parseShell parses a command as drover's hosts will run it. bash's
// grammar is used because it is a superset of the POSIX sh commands are
// run with, so a template using a bashism on a host whose sh is bash
// still loads; every construct a placeholder may stand in means the same
// in both.
func parseShell(src string) (*syntax.File, error) {
	return syntax.NewParser(syntax.Variant(syntax.LangBash), syntax.KeepComments(true)).Parse(strings.NewReader(src), "")
}

// checkShape parses one shape and checks every placeholder in it.
func (c *checker) checkShape(src, prefix string, forced []bool) error {
	c.src = src
	f, err := parseShell(src)
	if err != nil {
		msg := err.Error()
		for i, a := range c.actions {
			msg = strings.ReplaceAll(msg, placeholder(prefix, i), a.String())
		}
		return Errorf(EINVALID, "not a valid shell command: %s", msg).
			WithHint("fix the shell syntax; drover parses every command with a POSIX/bash parser before running it")
	}
	found := make([]int, len(c.actions))
	var stack []syntax.Node
	var bad *commandShapeError
	syntax.Walk(f, func(n syntax.Node) bool {
		if n == nil {
			stack = stack[:len(stack)-1]
			return true
		}
		if bad != nil {
			return false // no f(nil) follows a false
		}
		switch n := n.(type) {
		case *syntax.Lit:
			c.checkLit(n, stack, prefix, found, forced, &bad)
		case *syntax.SglQuoted:
			if id := c.firstIn(n.Value, prefix); id >= 0 {
				bad = c.shapeErr(id, "inside single quotes",
					"close the quotes before it and open them after: write "+c.requote(n, id, prefix, "'")+" instead of "+c.unplace(c.span(n), prefix)+"; drover quotes every value itself")
			}
		case *syntax.Comment:
			// A value in a comment is harmless: quoted, it has no newline
			// to end the comment with.
			for i := range c.actions {
				found[i] += strings.Count(n.Text, placeholder(prefix, i))
			}
		}
		stack = append(stack, n)
		return true
	})
	if bad != nil {
		why := ", where quoting cannot keep a value one word (a value like $(touch /tmp/pwned) would run)"
		if bad.commandName {
			why = ""
		}
		return Errorf(EINVALID, "%s is %s%s", bad.action, bad.where, why).WithHint(bad.hint)
	}
	for i := range c.actions {
		if want := strings.Count(src, placeholder(prefix, i)); found[i] < want {
			return Errorf(EINVALID, "%s stands where a quoted word cannot", c.actions[i]).
				WithHint("use the value as a whole argument (cmd " + c.actions[i].String() + ") or as part of one (--name=" + c.actions[i].String() + ")")
		}
	}
	return nil
}

// firstIn returns the first action whose placeholder is in s, or -1.
func (c *checker) firstIn(s, prefix string) int {
	if !strings.Contains(s, prefix) {
		return -1
	}
	for i := range c.actions {
		if strings.Contains(s, placeholder(prefix, i)) {
			return i
		}
	}
	return -1
}

func (c *checker) shapeErr(id int, where, hint string) *commandShapeError {
	return &commandShapeError{action: c.actions[id].String(), where: where, hint: hint}
}

// checkLit checks the placeholders in one literal: allowed only when the
// literal is a part of a word that stands where a quoted word means the
// same thing — not a name, not in double quotes, ${...}, arithmetic, a
// here-document or backquotes, not after a backslash.
func (c *checker) checkLit(l *syntax.Lit, stack []syntax.Node, prefix string, found []int, forced []bool, bad **commandShapeError) {
	id := c.firstIn(l.Value, prefix)
	if id < 0 {
		return
	}
	a := c.actions[id].String()
	parent := stack[len(stack)-1]
	word, isWord := parent.(*syntax.Word)
	if !isWord {
		switch parent.(type) {
		case *syntax.DblQuoted:
			*bad = c.shapeErr(id, "inside double quotes",
				"close the quotes before it and open them after: write "+c.requote(parent, id, prefix, `"`)+" instead of "+c.unplace(c.span(parent), prefix)+
					"; drover quotes every value itself")
		case *syntax.Assign:
			*bad = c.shapeErr(id, "a variable's name", "write the name yourself and use the value on the right: NAME="+a)
		case *syntax.FuncDecl:
			*bad = c.shapeErr(id, "a function's name", "write the name yourself")
		case *syntax.WordIter:
			*bad = c.shapeErr(id, "a loop variable's name", "write the name yourself: for x in "+a)
		case *syntax.ParamExp:
			*bad = c.shapeErr(id, "part of a parameter expansion (${...} or $name)", "assign it first (V="+a+"; then use \"$V\"), or write the name yourself")
		default:
			*bad = c.shapeErr(id, "where a quoted word cannot stand", "use the value as a whole argument (cmd "+a+") or as part of one (--name="+a+")")
		}
		return
	}
	// A value that is the whole command name would let inventory data
	// choose the program — eval, sh, let — and so turn every other value
	// into code.
	if call, ok := stack[len(stack)-2].(*syntax.CallExpr); ok && len(call.Args) > 0 && call.Args[0] == word && len(word.Parts) == 1 && isPlaceholder(l.Value, prefix) {
		*bad = c.shapeErr(id, "the name of the command to run, which would let the value choose the program (eval, sh)",
			"write the program in the template and pass the value as an argument: bin/run "+a+"; if the program differs per host, ship a script in the release that chooses it")
		(*bad).commandName = true
		return
	}
	// Which construct holds the word? The nearest quoting context decides:
	// $(...) starts a new one (quotes work inside it even within double
	// quotes), backquotes never do (their backslashes are processed first).
outer:
	for i := len(stack) - 2; i >= 0; i-- {
		switch p := stack[i].(type) {
		case *syntax.CmdSubst:
			if p.Backquotes || backquoted(stack[:i]) {
				*bad = c.shapeErr(id, "inside backquotes", "use $(...) instead of backquotes: $(cmd "+a+")")
				return
			}
			break outer
		case *syntax.ProcSubst:
			if backquoted(stack[:i]) {
				*bad = c.shapeErr(id, "inside backquotes", "use $(...) instead of backquotes: $(cmd "+a+")")
				return
			}
			break outer
		case *syntax.DblQuoted:
			*bad = c.shapeErr(id, "inside double quotes",
				"close the quotes before it and open them after: write "+c.requote(p, id, prefix, `"`)+" instead of "+c.unplace(c.span(p), prefix)+"; drover quotes every value itself")
			return
		case *syntax.ParamExp:
			*bad = c.shapeErr(id, "inside a parameter expansion (${...})", "assign it first (V="+a+"; then use \"${V:-...}\")")
			return
		case *syntax.ArithmExp, *syntax.ArithmCmd, *syntax.BinaryArithm, *syntax.UnaryArithm, *syntax.ParenArithm, *syntax.CStyleLoop, *syntax.LetClause:
			*bad = c.shapeErr(id, "inside arithmetic", "assign it first and let the shell check it: V="+a+"; then $((V + 1))")
			return
		case *syntax.Redirect:
			if p.Hdoc == word || (p.Op == syntax.Hdoc || p.Op == syntax.DashHdoc) && p.Word == word {
				*bad = c.shapeErr(id, "in a here-document", "print it instead: printf '%s\\n' "+a+" | cmd")
				return
			}
		case *syntax.Assign:
			if p.Naked && p.Name == nil && p.Value == word {
				*bad = c.shapeErr(id, "an argument of declare/export/local, which would let it name any variable",
					"write the name yourself: export NAME="+a)
				return
			}
		case *syntax.ExtGlob, *syntax.BraceExp:
			*bad = c.shapeErr(id, "inside a pattern", "use the value as a whole argument")
			return
		}
	}
	// After a backslash, the value's opening quote would be escaped.
	for i := range c.actions {
		ph := placeholder(prefix, i)
		for rest, off := l.Value, 0; ; {
			j := strings.Index(rest, ph)
			if j < 0 {
				break
			}
			at := off + j
			n := 0
			for k := at - 1; k >= 0 && l.Value[k] == '\\'; k-- {
				n++
			}
			if n%2 == 1 {
				*bad = c.shapeErr(i, "right after a backslash", "remove the backslash: the value is quoted already")
				return
			}
			found[i]++
			// Quoted whenever it shares its word, and when a redirection
			// follows it at once: a bare 2 before >out would become the
			// redirection's file descriptor.
			end := int(l.Pos().Offset()) + at + len(ph)
			if len(word.Parts) > 1 || l.Value != ph || end < len(c.src) && (c.src[end] == '<' || c.src[end] == '>') {
				forced[i] = true
			}
			rest, off = rest[j+len(ph):], at+len(ph)
		}
	}
}

// span is the source text of n in the shape being checked.
func (c *checker) span(n syntax.Node) string {
	from, to := int(n.Pos().Offset()), int(n.End().Offset())
	if from < 0 || to > len(c.src) || from > to {
		return ""
	}
	return c.src[from:to]
}

// requote is the quoted string n with the quotes closed around action id:
// "label: X" becomes "label: "X — the fix the error suggests.
func (c *checker) requote(n syntax.Node, id int, prefix, q string) string {
	s := c.span(n)
	s = strings.ReplaceAll(s, placeholder(prefix, id), q+placeholder(prefix, id)+q)
	s = strings.TrimPrefix(s, q+q)
	s = strings.TrimSuffix(s, q+q)
	return c.unplace(s, prefix)
}

// unplace puts the actions back in place of their placeholders.
func (c *checker) unplace(s, prefix string) string {
	for i, a := range c.actions {
		s = strings.ReplaceAll(s, placeholder(prefix, i), a.String())
	}
	return s
}

// isPlaceholder reports whether s is exactly one placeholder.
func isPlaceholder(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok || !strings.HasSuffix(rest, "Z") {
		return false
	}
	_, err := strconv.Atoi(strings.TrimSuffix(rest, "Z"))
	return err == nil
}

func backquoted(stack []syntax.Node) bool {
	for _, n := range stack {
		if c, ok := n.(*syntax.CmdSubst); ok && c.Backquotes {
			return true
		}
	}
	return false
}

package config

import (
	"encoding/json"
	"testing"
)

// The expectations are what Python 3.11's ast.literal_eval gives (through
// Ansible's INI plugin: text when it raises), printed as JSON.
func TestPyValueIsLiteralEval(t *testing.T) {
	const text = "<TEXT>"
	cases := map[string]string{
		"5": "5", "-5": "-5", "+5": "5", "0": "0", "00": "0", "010": text, "0x1F": "31", "0o17": "15", "0b101": "5",
		"1_000": "1000", "1__0": text, "_1": text, "1_": text, "0.5": "0.5", ".5": "0.5", "5.": "5", "1e3": "1000",
		"-1.5e-3": "-0.0015", "1E+2": "100", "True": "true", "False": "false", "None": "null", "true": text, "yes": text,
		"'a b'": `"a b"`, `"x\ty"`: `"x\ty"`, "'it''s'": `"its"`, "[1, 'x']": `[1,"x"]`, "[1,]": "[1]", "[]": "[]",
		"(1, 2)": "[1,2]", "(1)": "1", "(1,)": "[1]", "()": "[]", "{'a': 1, 'b': [None]}": `{"a":1,"b":[null]}`, "{}": "{}",
		"{1: 2}": `{"1":2}`, "5 # c": "5", "hello # c": text, " 5": "5", "5 ": "5", "[1, 2": text, "'open": text,
		"1.2.3": text, "0x": text, "inf": text, "-True": text, "- 5": "-5", "18446744073709551615": "18446744073709551615",
		"-9223372036854775808": "-9223372036854775808", "abc": text, "{'a': 1,}": `{"a":1}`, "u'x'": `"x"`, "b'x'": text, "1j": text,
		`r'a\d'`: `"a\\d"`, "[[1, [2]], {'k': (3,)}]": `[[1,[2]],{"k":[3]}]`,
	}
	for in, want := range cases {
		got := pyValue(in)
		var g string
		if s, ok := got.(string); ok && s == in && want == text {
			continue
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		g = string(b)
		if g != want {
			t.Errorf("pyValue(%q) = %s, want %s", in, g, want)
		}
	}
}

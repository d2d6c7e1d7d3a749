package config

import (
	"reflect"
	"testing"
	"time"

	"drover"
)

// promoEnvs is a file with staging and prod on their own hosts.
const promoEnvs = top + `groups: [{name: all, hosts: ['*']}]
environments:
  staging:
    hosts: [{name: s1, address: /s/1}, {name: s2, address: /s/2}]
  qa:
    hosts: [{name: q1, address: /q/1}]
  prod:
    hosts: [{name: p1, address: /p/1}]
`

func TestConfig_Parse_Requires(t *testing.T) {
	doc := promoEnvs + "    requires: {env: staging, soak: 30m}\n"
	s, err := Parse("drover.yaml", []byte(doc), "prod")
	if err != nil {
		t.Fatal(err)
	}
	want := &drover.Requirement{Env: "staging", Soak: 30 * time.Minute, Hosts: []string{"s1", "s2"}}
	if !reflect.DeepEqual(s.Requires, want) || s.RequiredBy != nil {
		t.Fatalf("prod requires %+v, required by %v", s.Requires, s.RequiredBy)
	}
	s, err = Parse("drover.yaml", []byte(doc), "staging")
	if err != nil {
		t.Fatal(err)
	}
	if s.Requires != nil || !reflect.DeepEqual(s.RequiredBy, []string{"prod"}) {
		t.Fatalf("staging requires %+v, required by %v", s.Requires, s.RequiredBy)
	}
	// Without soak: success there is enough.
	s, err = Parse("drover.yaml", []byte(promoEnvs+"    requires: {env: staging}\n"), "prod")
	if err != nil || s.Requires == nil || s.Requires.Soak != 0 {
		t.Fatalf("requires without soak: %+v %v", s, err)
	}
	// Nothing configured, nothing changes.
	s, err = Parse("drover.yaml", []byte(promoEnvs), "prod")
	if err != nil || s.Requires != nil || s.RequiredBy != nil {
		t.Fatalf("no requires: %+v %v", s, err)
	}
}

func TestConfig_Validate_Requires(t *testing.T) {
	runErrCases(t, []errCase{
		{"no env", promoEnvs + "    requires: {soak: 30m} # <-\n", "prod", "environments.prod.requires.env: required"},
		{"unknown env", promoEnvs + "    requires: {env: stagin} # <-\n", "prod", `environments.prod.requires.env: unknown environment "stagin"`},
		{"itself", promoEnvs + "    requires: {env: prod} # <-\n", "prod", "prod cannot require itself"},
		{"bad soak", promoEnvs + "    requires: {env: staging, soak: 30} # <-\n", "prod", `environments.prod.requires.soak: "30" is not a duration`},
		{"negative soak", promoEnvs + "    requires: {env: staging, soak: -5m} # <-\n", "prod", `"-5m" must be more than 0`},
		{"unknown key", promoEnvs + "    requires: {env: staging, soaks: 5m} # <-\n", "prod", `unknown key "soaks" in environments.prod.requires`},
		// Reported while deploying an environment the mistake is not in.
		{"checked from another env", promoEnvs + "    requires: {env: nope} # <-\n", "staging", `unknown environment "nope"`},
		{"cycle", top + `groups: [{name: all, hosts: ['*']}]
environments:
  staging:
    hosts: [{name: s1, address: /s/1}]
    requires: {env: prod}
  prod:
    hosts: [{name: p1, address: /p/1}]
    requires: {env: staging} # <-
`, "prod", "a cycle, prod → staging → prod"},
	})
}

package config

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"drover"
	"drover/notify"
)

const obsFleet = "hosts: [{name: h01, address: /f/h01}]\ngroups: [{name: all, hosts: [\"*\"]}]\n"

func TestConfig_Validate_Observability(t *testing.T) {
	runErrCases(t, []errCase{
		{"store", top + "store: etcd3 # <-\n" + obsFleet, "", `store: "etcd3" is not a store`},
		{"log format", top + "log:\n  format: xml # <-\n" + obsFleet, "", `log.format: "xml" is not a log format`},
		{"log file ~user", top + "log:\n  file: ~bob/x.log # <-\n" + obsFleet, "", "log.file"},
		{"ask_message type", top + "ask_message: maybe # <-\n" + obsFleet, "", "ask_message"},
		{"webhook url required", top + "webhooks:\n  - events: [start] # <-\n" + obsFleet, "", "webhooks[0].url: required"},
		{"webhook url relative", top + "webhooks:\n  - url: /hook # <-\n" + obsFleet, "", "not an absolute http(s) URL"},
		{"webhook url scheme", top + "webhooks:\n  - url: ftp://x/hook # <-\n" + obsFleet, "", "not an absolute http(s) URL"},
		{"webhook url credentials", top + "webhooks:\n  - url: https://u:secret@x/hook # <-\n" + obsFleet, "", "holds a user name or password"},
		{"webhook event", top + "webhooks:\n  - url: https://x/hook\n    events: [start, done] # <-\n" + obsFleet, "", `"done" is not a webhook event`},
		{"webhook timeout", top + "webhooks:\n  - url: https://x/hook\n    timeout: 5 # <-\n" + obsFleet, "", `webhooks[0].timeout: "5" is not a duration`},
		{"webhook header name", top + "webhooks:\n  - url: https://x/hook\n    headers: {\"X Bad\": v} # <-\n" + obsFleet, "", "is not an HTTP header name"},
		{"webhook header reserved", top + "webhooks:\n  - url: https://x/hook\n    headers: {idempotency-key: v} # <-\n" + obsFleet, "", "Idempotency-Key is set by drover"},
		{"webhook header signature", top + "webhooks:\n  - url: https://x/hook\n    headers: {x-hub-signature-256: v} # <-\n" + obsFleet, "", "X-Hub-Signature-256 is set by drover"},
		{"webhook unknown key", top + "webhooks:\n  - url: https://x/hook\n    retries: 3 # <-\n" + obsFleet, "", "retries"},
	})
}

func TestConfig_ObservabilityDefaults(t *testing.T) {
	s, err := ParseConfig("drover.yaml", []byte(top+obsFleet), "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Store != drover.StoreSQLite || !s.AskMessage || s.Log != (notify.LogConfig{Format: "json"}) || len(s.Webhooks) != 0 {
		t.Errorf("defaults: store %q ask_message %v log %+v webhooks %+v", s.Store, s.AskMessage, s.Log, s.Webhooks)
	}
}

func TestConfig_ObservabilitySet(t *testing.T) {
	dir := t.TempDir()
	doc := top + `store: file
ask_message: false
log: {file: logs/drover.log, format: text}
webhooks:
  - url: https://hooks.example.com/drover?x=1
    events: [finish, halt, finish]
    timeout: 2s
    headers: {Authorization: "Bearer ${TOKEN}"}
  - url: http://127.0.0.1:9/all
` + obsFleet
	s, err := ParseConfig(filepath.Join(dir, "drover.yaml"), []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	if s.Store != drover.StoreFile || s.AskMessage {
		t.Errorf("store %q ask_message %v", s.Store, s.AskMessage)
	}
	if want := (notify.LogConfig{File: filepath.Join(dir, "logs/drover.log"), Format: "text"}); s.Log != want {
		t.Errorf("log %+v, want %+v (relative to the config file)", s.Log, want)
	}
	want := []notify.Webhook{
		{URL: "https://hooks.example.com/drover?x=1", Events: []string{"finish", "halt"}, Timeout: 2 * time.Second, Headers: map[string]string{"Authorization": "Bearer ${TOKEN}"}},
		{URL: "http://127.0.0.1:9/all", Timeout: notify.DefaultTimeout},
	}
	if !reflect.DeepEqual(s.Webhooks, want) {
		t.Errorf("webhooks\n got %+v\nwant %+v", s.Webhooks, want)
	}
	// log.file "-" is standard output, not a file named "-".
	s, err = ParseConfig(filepath.Join(dir, "drover.yaml"), []byte(top+"log: {file: \"-\"}\n"+obsFleet), "")
	if err != nil || s.Log.File != "-" {
		t.Errorf("log.file -: %+v, %v", s.Log, err)
	}
}

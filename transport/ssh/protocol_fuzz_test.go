package ssh

import (
	"encoding/json"
	"testing"

	"drover"
)

// FuzzParseResponse feeds arbitrary host output to the controller's
// response decoder: a compromised host writes whatever it likes.
// Properties: no panic; an accepted response speaks this protocol
// version, and an error in it becomes a *drover.Error with a code.
func FuzzParseResponse(f *testing.F) {
	f.Add([]byte(`{"v":1,"ready":true}`))
	f.Add([]byte("login banner\n{\"v\":1,\"state\":{\"current\":\"releases/v1\"}}\n"))
	f.Add([]byte(`{"v":1,"error":{"code":"EFAILED","message":"m","hint":"h","cause":"c"}}`))
	f.Add([]byte(`{"v":1,"exec":{"exit_code":3,"output":"\u001b]52;c;cHduZWQ=\u0007"}}`))
	f.Add([]byte(`{"v":1,"data":"aGVsbG8=","removed":["a","b"],"relay_url":"http://10.0.0.1:41000/x"}`))
	f.Add([]byte(`{"v":2}`))
	f.Fuzz(func(t *testing.T, out []byte) {
		r, err := parseResponse(out)
		if err != nil {
			return
		}
		if r.V != ProtocolVersion {
			t.Fatalf("accepted protocol version %d", r.V)
		}
		if r.Error != nil && r.Error.err().Code == "" {
			t.Fatal("a wire error without a code")
		}
	})
}

// FuzzDecodeRequest feeds arbitrary request lines to the host's decoder.
// Properties: no panic; a refusal is EINVALID; an accepted request's vars
// hold YAML's number types, never json.Number (the host would render
// config files unlike the controller and every config hash would differ).
func FuzzDecodeRequest(f *testing.F) {
	for _, req := range []Request{
		{Op: OpState},
		{Op: OpStage, Stage: &drover.StageRequest{DeployID: "d1", ConfigFiles: []drover.ConfigFile{{Template: "a.tmpl", Dest: "a", Mode: 0o600}},
			Data: drover.TemplateData{Host: drover.TemplateHost{Name: "h01", Vars: map[string]any{"port": uint64(8080), "neg": int64(-1), "f": 1.5, "m": map[string]any{"l": []any{uint64(1), "x"}}}}}}},
	} {
		line, err := encodeRequest(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(line)
	}
	f.Add([]byte(`{"v":1,"op":"stage","stage":{"Data":{"Host":{"Vars":{"big":1e400,"n":-0,"x":1.0}}}}}`))
	f.Add([]byte(`{"v":7}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := decodeRequest(line)
		if err != nil {
			if drover.ErrorCode(err) != drover.EINVALID {
				t.Fatalf("refusal code %q: %v", drover.ErrorCode(err), err)
			}
			return
		}
		if req.Stage != nil {
			var check func(v any)
			check = func(v any) {
				switch x := v.(type) {
				case json.Number:
					t.Fatalf("json.Number %s left in vars", x)
				case map[string]any:
					for _, e := range x {
						check(e)
					}
				case []any:
					for _, e := range x {
						check(e)
					}
				}
			}
			check(req.Stage.Data.Host.Vars)
		}
	})
}

package main

// End-to-end tests of issue 7: drover converge over a local fleet whose
// hosts fail at random for their first attempts, a host that never
// recovers and is replaced once, hosts from a dynamic inventory script,
// and two services deployed in one run, each with its own verdict.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"drover/internal/localfleet"
	"drover/internal/sshfleet"
)

// flakyScript fails a restart on host $1 until the counter file
// counts/$1 exceeds need/$1 (no need file: never fails), and only for
// version $2 = $3, so the restore path back to nothing is not counted —
// unless anyver/$1 exists: then the restore path fails too.
const flakyScript = `#!/bin/sh
dir=$(dirname "$0")
host=$1
[ "$2" = "$3" ] || [ -f "$dir/anyver/$host" ] || exit 0
[ -f "$dir/need/$host" ] || exit 0
n=$(cat "$dir/counts/$host" 2>/dev/null || echo 0)
n=$((n+1))
echo "$n" > "$dir/counts/$host"
need=$(cat "$dir/need/$host")
if [ "$n" -le "$need" ]; then
  echo "flaky: $host attempt $n of $need failing" >&2
  exit 1
fi
`

// flakyFleet makes a fleet of n hosts in one group that tolerates every
// host failing (so a round restores failed hosts rather than rolling back
// the rest), with a before_restart hook that fails per need (host →
// failing attempts) for version want.
func flakyFleet(t *testing.T, n int, want string, need map[string]int, extra string) (*localfleet.Fleet, string) {
	t.Helper()
	dir := t.TempDir()
	ctl := filepath.Join(dir, "ctl")
	for _, d := range []string{"need", "counts", "anyver"} {
		if err := os.MkdirAll(filepath.Join(ctl, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for h, k := range need {
		if err := os.WriteFile(filepath.Join(ctl, "need", h), []byte(fmt.Sprint(k)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	script := filepath.Join(ctl, "flaky.sh")
	if err := os.WriteFile(script, []byte(flakyScript), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := localfleet.New(localfleet.Options{
		Dir: filepath.Join(dir, "fleet"), Hosts: n,
		Groups:     fmt.Sprintf("groups:\n  - name: all\n    hosts: [\"*\"]\n    batch: 2\n    failure_limit: %d\n", n),
		ExtraHooks: fmt.Sprintf("before_restart: %q", "sh "+script+" {{.Host.Name}} {{.Release.Version}} "+want),
		ExtraYAML:  extra,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	return f, ctl
}

// TestE2EConvergeFlakyHostsFromInventory: hosts come from an inventory
// script; three of them fail their first 1–3 restarts (seeded); converge
// deploys again to those only, with a retried restart step, until every
// host serves the release.
func TestE2EConvergeFlakyHostsFromInventory(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 7))
	need := map[string]int{}
	for _, h := range []string{"h02", "h03", "h04"} {
		need[h] = 1 + rng.IntN(3)
	}
	f, ctl := flakyFleet(t, 4, "1.0", need, `converge: {max_attempts: 5, wait: 100ms, max_wait: 400ms}
retry:
  steps:
    restart: {attempts: 2, backoff: 50ms, max_backoff: 100ms, on: [exit]}
`)
	// Move the hosts out of drover.yaml into an inventory script.
	cfg, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	text := string(cfg)
	start, end := strings.Index(text, "\nhosts:\n"), strings.Index(text, "\ngroups:\n")
	if start < 0 || end < start {
		t.Fatalf("no hosts block in:\n%s", text)
	}
	var hosts []string
	for _, h := range f.Hosts {
		hosts = append(hosts, fmt.Sprintf(`{"name": %q, "address": %q, "vars": {"port": %d}, "groups": ["web"]}`, h.Name, h.Dir, h.Port))
	}
	inv := filepath.Join(ctl, "inventory.sh")
	script := "#!/bin/sh\ncat <<'EOF'\n{\"hosts\": [\n  " + strings.Join(hosts, ",\n  ") + "\n]}\nEOF\n"
	if err := os.WriteFile(inv, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	text = text[:start] + "\ninventory: {command: " + fmt.Sprintf("%q", inv) + ", timeout: 10s}" + text[end:]
	text = strings.Replace(text, `hosts: ["*"]`, `hosts: ["@web"]`, 1)
	if err := os.WriteFile(f.Config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	// A first release everywhere, so a failed host is restored to a
	// running service (before_restart only fails for 1.0).
	mustExit(t, deploy(t, f, writeRelease(t, f, "0.9", true), "--yes"), 0)
	src := writeRelease(t, f, "1.0", true)
	r := runDrover(t, "converge", "-c", f.Config, "--release", src, "--yes")
	mustExit(t, r, 0)
	wantServing(t, f, "1.0", nil)
	if !strings.Contains(r.stdout, "round 1/5: 4 of 4 hosts not on 1.0 (h01 h02 h03 h04); deploying") {
		t.Errorf("no first round line:\n%s", r)
	}
	if !strings.Contains(r.stdout, "round 2/5: ") || !strings.Contains(r.stdout, "converged in ") {
		t.Errorf("want a second round and a converged summary (needs %v):\n%s", need, r)
	}
	if strings.Contains(r.stdout, "h01); deploying") && strings.Contains(r.stdout, "round 2/5: 4 of 4") {
		t.Errorf("round 2 deployed to hosts already on the release:\n%s", r)
	}
	// Each flaky host was tried exactly need+1 times in all.
	for h, k := range need {
		b, err := os.ReadFile(filepath.Join(ctl, "counts", h))
		if err != nil || strings.TrimSpace(string(b)) != fmt.Sprint(k+1) {
			t.Errorf("%s restarted %q times (%v), want %d", h, b, err, k+1)
		}
	}

	// A broken inventory stops the run before anything is touched.
	before := hostsDigest(t, f)
	if err := os.WriteFile(inv, []byte("#!/bin/sh\necho '{\"hosts\": [{\"name\": \"h01\"' ; echo oops >&2; exit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r = runDrover(t, "converge", "-c", f.Config, "--release", writeRelease(t, f, "2.0", true), "--yes")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "inventory command") || !strings.Contains(r.stderr, "JSON ends early at line 2:1") {
		t.Errorf("want the inventory command and the JSON position named:\n%s", r)
	}
	if d := diffDigests(before, hostsDigest(t, f)); len(d) > 0 {
		t.Errorf("a bad inventory changed hosts: %v", d)
	}
}

// TestE2EConvergeReplacesHostThatNeverRecovers: h03 fails every restart;
// after replace_after rounds its replace hook runs once, on this machine,
// and converge gives up with exit 3 naming it.
func TestE2EConvergeReplacesHostThatNeverRecovers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	log := filepath.Join(dir, "replaced.log")
	f, _ := flakyFleet(t, 3, "1.0", map[string]int{"h03": 1000},
		"converge: {max_attempts: 3, wait: 100ms, max_wait: 200ms, replace_after: 2}\n")
	cfg, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(cfg), "\nhooks:\n", "\nhooks:\n  replace: "+fmt.Sprintf("%q", "echo {{.Host.Name}} >> "+log)+"\n", 1)
	if err := os.WriteFile(f.Config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	mustExit(t, deploy(t, f, writeRelease(t, f, "0.9", true), "--yes"), 0)
	r := runDrover(t, "converge", "-c", f.Config, "--release", writeRelease(t, f, "1.0", true), "--yes")
	mustExit(t, r, 3)
	b, err := os.ReadFile(log)
	if err != nil || string(b) != "h03\n" {
		t.Fatalf("replace hook log %q (%v), want h03 once\n%s", b, err, r)
	}
	for _, want := range []string{"round 3/3: 1 of 3 hosts not on 1.0 (h03); deploying", "did not converge in 3 rounds", "replaced h03", "exit 3"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	got := f.Versions(context.Background())
	if got["h01"] != "1.0" || got["h02"] != "1.0" || got["h03"] != "0.9" {
		t.Errorf("serving %v, want h01 and h02 on 1.0 and h03 back on 0.9", got)
	}
}

// TestE2EMultiServiceDeploy: two services in one run, in parallel, each
// with its own lock and verdict; the run exits with the worst. A bad
// config among them stops the run before anything is touched.
func TestE2EMultiServiceDeploy(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	var fleets []*localfleet.Fleet
	used := map[int]bool{}
	for _, svc := range []string{"alpha", "beta"} {
		for try := 0; ; try++ {
			f, err := localfleet.New(localfleet.Options{Dir: filepath.Join(base, fmt.Sprint(svc, try)), Hosts: 2, Service: svc,
				Groups: "groups:\n  - name: all\n    hosts: [\"*\"]\n    batch: 1\n    failure_limit: 0\n"})
			if err != nil {
				t.Fatal(err)
			}
			clash := false
			for _, h := range f.Hosts {
				clash = clash || used[h.Port]
			}
			if clash && try < 5 {
				continue
			}
			for _, h := range f.Hosts {
				used[h.Port] = true
			}
			t.Cleanup(f.Stop)
			fleets = append(fleets, f)
			break
		}
	}
	// One release for both; it is unhealthy for beta only.
	src := writeRelease(t, fleets[0], "3.0", true)
	tmpl := filepath.Join(src, "hello.conf.tmpl")
	b, err := os.ReadFile(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "health = ok", `health = {{if eq .Service "beta"}}fail{{else}}ok{{end}}`, 1)
	if err := os.WriteFile(tmpl, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}

	bad := filepath.Join(base, "bad.yaml")
	if err := os.WriteFile(bad, []byte("service: gamma\ndeploy_root: /srv/g\nhosts: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := hostsDigest(t, fleets[0])
	r := runDrover(t, "deploy", "-c", fleets[0].Config, "-c", bad, "--release", src, "--yes")
	mustExit(t, r, 2)
	if !strings.Contains(r.stderr, "bad.yaml") {
		t.Errorf("the bad config is not named:\n%s", r)
	}
	if d := diffDigests(before, hostsDigest(t, fleets[0])); len(d) > 0 {
		t.Errorf("a bad config among several changed hosts: %v", d)
	}

	r = runDrover(t, "deploy", "-c", fleets[0].Config, "-c", fleets[1].Config, "--release", src, "--yes", "--parallel", "2")
	mustExit(t, r, 1) // beta rolled back: worse than alpha's success
	for _, want := range []string{"[alpha] ", "[beta] ", "== alpha (" + fleets[0].Config + "): exit 0", "== beta (" + fleets[1].Config + "): exit 1", "2 services: exit 1"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	wantServing(t, fleets[0], "3.0", nil)
	for h, v := range fleets[1].Versions(context.Background()) {
		if v == "3.0" {
			t.Errorf("beta %s serves 3.0 after its rollback", h)
		}
	}
}

// convergeConfig puts a replace hook (when given) into f's drover.yaml
// and sets the group's failure limit.
func convergeConfig(t *testing.T, f *localfleet.Fleet, replace string, limit int) {
	t.Helper()
	cfg, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	text := string(cfg)
	if replace != "" {
		text = strings.Replace(text, "\nhooks:\n", "\nhooks:\n  replace: "+fmt.Sprintf("%q", replace)+"\n", 1)
	}
	text = regexp.MustCompile(`failure_limit: \d+`).ReplaceAllString(text, fmt.Sprintf("failure_limit: %d", limit))
	if err := os.WriteFile(f.Config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestE2EConvergeStuckHostKeepsGoing is issue 19's fleet: five hosts,
// replace_after 2, a group failure limit of 3. h03 fails to start 1.0
// once; h04 never starts it until its replace hook re-provisions it; h05's
// restart fails twice in a row — its 1.0 start in round 1 and then its
// restore to 0.9 — so round 1 leaves it stuck. Host trouble keeps the
// loop going: round 2 deploys to h05 again through the full deploy path,
// round 3 replaces h04, and the fleet converges with exit 0; the JSON
// summary says so truthfully.
func TestE2EConvergeStuckHostKeepsGoing(t *testing.T) {
	t.Parallel()
	f, ctl := flakyFleet(t, 5, "1.0", map[string]int{"h03": 1, "h04": 1000},
		"converge: {max_attempts: 6, wait: 100ms, max_wait: 200ms, replace_after: 2, boot_timeout: 5s}\n")
	convergeConfig(t, f, "rm -f "+filepath.Join(ctl, "need")+"/{{.Host.Name}}", 3)
	mustExit(t, deploy(t, f, writeRelease(t, f, "0.9", true), "--yes"), 0)
	os.Remove(filepath.Join(ctl, "counts", "h03"))
	os.Remove(filepath.Join(ctl, "counts", "h04"))
	// h05's restart hook itself fails its next two runs, whatever the
	// release: the 1.0 start, then the restore to 0.9.
	stuck := filepath.Join(ctl, "stuck.sh")
	if err := os.WriteFile(stuck, []byte(`#!/bin/sh
[ "$1" = h05 ] || exit 0
n=$(cat "$0.count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$0.count"
[ $n -gt 2 ] || { echo "h05 restart $n fails" >&2; exit 1; }
`), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(f.Config)
	text := strings.Replace(string(cfg), `restart: "bin/restart {{.Root}}"`, fmt.Sprintf(`restart: "sh %s {{.Host.Name}} && bin/restart {{.Root}}"`, stuck), 1)
	if text == string(cfg) {
		t.Fatalf("no restart hook to wrap in:\n%s", cfg)
	}
	if err := os.WriteFile(f.Config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	r := runDrover(t, "converge", "-c", f.Config, "--release", writeRelease(t, f, "1.0", true), "--yes", "--output", "json")
	mustExit(t, r, 0)
	wantServing(t, f, "1.0", nil)
	res := convergeResult(t, r)
	if !res.Converged || res.End != "converged" || res.Rounds != 3 || len(res.On) != 5 || len(res.Left) != 0 {
		t.Fatalf("result %+v\n%s", res, r)
	}
	if len(res.Replaced) != 1 || res.Replaced[0].Host != "h04" || res.Replaced[0].Round != 3 || res.Replaced[0].By == "" {
		t.Fatalf("replaced %+v", res.Replaced)
	}
	// Round 1 left h05 stuck (its deploy needed a person) and converge
	// went on.
	if !strings.Contains(r.stdout, "stuck (h05)") || !strings.Contains(r.stdout, "round 2/6: 3 of 5 hosts not on 1.0 (h03 h04 h05); deploying") {
		t.Errorf("want round 1 to leave h05 stuck and round 2 to retry it:\n%s", r)
	}
	if b, _ := os.ReadFile(stuck + ".count"); strings.TrimSpace(string(b)) != "3" {
		t.Errorf("h05's restart ran %q times, want 3 (start, restore, start)", b)
	}
}

// convergeJSON is the result line of `drover converge --output json`.
type convergeJSON struct {
	Converged bool     `json:"converged"`
	End       string   `json:"end"`
	Rounds    int      `json:"rounds"`
	On        []string `json:"on_release"`
	Left      []struct {
		Host   string `json:"host"`
		Cause  string `json:"cause"`
		Rounds int    `json:"rounds"`
	} `json:"not_on_release"`
	Replaced []struct {
		Host  string `json:"host"`
		Round int    `json:"round"`
		By    string `json:"by"`
	} `json:"replaced"`
	ExitCode int `json:"exit_code"`
}

func convergeResult(t *testing.T, r result) convergeJSON {
	t.Helper()
	for _, line := range strings.Split(r.stdout, "\n") {
		if strings.Contains(line, `"kind":"result"`) && strings.Contains(line, `"operation":"converge"`) {
			var v convergeJSON
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			return v
		}
	}
	t.Fatalf("no converge result line:\n%s", r)
	return convergeJSON{}
}

// TestE2EConvergeBadReleaseStopsInRoundOne: a release that fails on most
// hosts halts round 1 past the failure limit; converge stops there with
// exit 1 — no second round spreads it — and every host is back on 0.9.
func TestE2EConvergeBadReleaseStopsInRoundOne(t *testing.T) {
	t.Parallel()
	f, _ := flakyFleet(t, 4, "1.0", map[string]int{"h01": 1000, "h02": 1000, "h03": 1000},
		"converge: {max_attempts: 5, wait: 100ms, max_wait: 200ms}\n")
	convergeConfig(t, f, "", 1)
	mustExit(t, deploy(t, f, writeRelease(t, f, "0.9", true), "--yes"), 0)
	r := runDrover(t, "converge", "-c", f.Config, "--release", writeRelease(t, f, "1.0", true), "--yes")
	mustExit(t, r, 1)
	for _, want := range []string{"converge stopped in round 1", "failure limit", "exit 1: the release was halted"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	if strings.Contains(r.stdout, "round 2/") {
		t.Errorf("a second round ran after the release halted:\n%s", r)
	}
	wantServing(t, f, "0.9", nil)
}

// TestE2EConvergeHostNeverComesRight: without a replace hook, a host that
// never starts the release ends converge with exit 3 naming only it, with
// its last cause and the rounds it was tried in.
func TestE2EConvergeHostNeverComesRight(t *testing.T) {
	t.Parallel()
	f, _ := flakyFleet(t, 3, "1.0", map[string]int{"h02": 1000},
		"converge: {max_attempts: 2, wait: 100ms, max_wait: 200ms}\n")
	mustExit(t, deploy(t, f, writeRelease(t, f, "0.9", true), "--yes"), 0)
	r := runDrover(t, "converge", "-c", f.Config, "--release", writeRelease(t, f, "1.0", true), "--yes")
	mustExit(t, r, 3)
	for _, want := range []string{"did not converge in 2 rounds", "1 of 3 hosts not on 1.0 (h02)", "not on the release (last cause, rounds tried):",
		"flaky: h02 attempt 2", "(2 rounds)", "exit 3: did not converge: needs a person (h02)"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	for _, h := range []string{"h01", "h03"} {
		if regexp.MustCompile(`(?m)^  ` + h + ` `).MatchString(r.stdout) {
			t.Errorf("%s is listed as not on the release:\n%s", h, r)
		}
	}
	got := f.Versions(context.Background())
	if got["h01"] != "1.0" || got["h03"] != "1.0" || got["h02"] != "0.9" {
		t.Errorf("serving %v", got)
	}
}

// TestE2EConvergeSSHHostDownThenReplaced: over real sshd, h03's sshd is
// stopped. Rounds 1 and 2 deploy around it (not answering is host
// trouble, not a reason to halt the release); after replace_after 2
// rounds its replace hook runs, and the "new VM" takes a moment to boot —
// the test starts its sshd a second after the hook — so converge waits for
// it (converge.boot_timeout), deploys to it and converges with exit 0.
func TestE2EConvergeSSHHostDownThenReplaced(t *testing.T) {
	t.Parallel()
	f := startSSHFleet(t, droverHeld(sshfleet.Options{Dir: t.TempDir(), Hosts: 3,
		Groups:    "groups:\n  - name: all\n    hosts: [\"*\"]\n    batch: 2\n    failure_limit: 1\n",
		ExtraYAML: "converge: {max_attempts: 4, wait: 100ms, max_wait: 200ms, replace_after: 2, boot_timeout: 20s}\n"}))
	flag := filepath.Join(t.TempDir(), "replaced")
	cfg, err := os.ReadFile(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(cfg), "\nhooks:\n", "\nhooks:\n  replace: "+fmt.Sprintf("%q", "echo {{.Host.Name}} >> "+flag)+"\n", 1)
	if err := os.WriteFile(f.Config, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Down("h03"); err != nil {
		t.Fatal(err)
	}
	// The replacement boots a second after its replace hook ran.
	ctx, cancel := context.WithCancel(context.Background())
	booted := make(chan error, 1)
	go func() {
		for {
			if _, err := os.Stat(flag); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				booted <- ctx.Err()
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
		time.Sleep(time.Second)
		booted <- f.Up("h03")
	}()
	r := runDrover(t, "converge", "-c", f.Config, "--release", sshRelease(t, f, "1.0.0"), "--yes")
	cancel()
	if err := <-booted; err != nil {
		t.Fatalf("h03 never came back: %v\n%s", err, r)
	}
	mustExit(t, r, 0)
	sshServing(t, f, "1.0.0", nil)
	for _, want := range []string{
		"round 1/4: 3 of 3 hosts not on 1.0.0 (h01 h02 h03); deploying",
		"round 1: not deploying to h03, it does not answer",
		"round 2/4: 1 of 3 hosts not on 1.0.0 (h03); deploying",
		"round 3/4: 1 of 3 hosts not on 1.0.0 (h03); deploying",
		"h03 does not answer yet after its replace",
		"h03 answers after its replace",
		"converged in 3 rounds",
		"h03        round 3: replaced, at 127.0.0.1:",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r)
		}
	}
	if b, _ := os.ReadFile(flag); string(b) != "h03\n" {
		t.Errorf("replace hook ran for %q, want h03 once", b)
	}
}

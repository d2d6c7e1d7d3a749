package main

// End-to-end: adopting a fleet another tool deployed (issue 20). Hosts laid
// out by the real Capistrano (Debian's capistrano, over its local backend)
// and by a real Ansible playbook (Debian's ansible, over the test's sshd),
// then a first drover deploy that fails must put every host back on
// exactly the release that was serving, and after a good deploy `drover
// rollback` must go back to it. The other layouts are built directly, the
// way those tools leave them, to keep the suite quick.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"drover/examples/hello"
	"drover/internal/localfleet"
	"drover/internal/sshfleet"
)

// adoptGroups puts every host in one batch that may not fail: a broken
// release fails on all of them at once, and every host is switched and
// must be put back.
const adoptGroups = `groups:
  - name: all
    hosts: ["h*"]
    batch: "100%"
    allow_all_at_once: true
    failure_limit: 0
`

// fastChecks shortens the fleet's check timeouts from 10s to 4s: the
// broken release fails its health check by timing out, and the sample
// service is up in well under a second.
func fastChecks(t *testing.T, config string) {
	t.Helper()
	b, err := os.ReadFile(config)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.ReplaceAll(string(b), "timeout: 10s", "timeout: 4s")
	if s == string(b) {
		t.Fatalf("%s has no check timeout of 10s to shorten", config)
	}
	if err := os.WriteFile(config, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// needTool fails (never skips) when a tool the test drives is missing:
// scripts/deps.sh installs it.
func needTool(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is not installed (Debian package %s; run scripts/deps.sh): %v", name, pkg, err)
	}
}

func runTool(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// helloConf is the config the other tool rendered for a host.
func helloConf(host string, port int, version string) string {
	return fmt.Sprintf("port = %d\nversion = %s\nmessage = hello from %s\nhealth = ok\n", port, version, host)
}

// capDeploy deploys version 1.4.2 of the sample service with the real
// Capistrano to each deploy root, as a team would have before drover:
// a git repository, linked_files for the host's config in shared/, a
// restart task after publishing. It returns host -> the current link.
func capDeploy(t *testing.T, roots map[string]string, ports map[string]int) map[string]string {
	t.Helper()
	needTool(t, "cap", "capistrano")
	needTool(t, "git", "git")
	dir := t.TempDir()
	repo := filepath.Join(dir, "repo")
	if err := hello.WriteRelease(repo, "1.4.2", true); err != nil {
		t.Fatal(err)
	}
	gitEnv := []string{"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.invalid", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.invalid", "HOME=" + dir}
	runTool(t, repo, gitEnv, "git", "init", "-q", "-b", "main")
	runTool(t, repo, gitEnv, "git", "add", "-A")
	runTool(t, repo, gitEnv, "git", "commit", "-q", "-m", "1.4.2")
	app := filepath.Join(dir, "app")
	files := map[string]string{
		"Capfile": `require "capistrano/setup"
require "capistrano/deploy"
require "capistrano/scm/git"
install_plugin Capistrano::SCM::Git
`,
		"config/deploy.rb": `set :application, "hello"
set :repo_url, ENV.fetch("CAP_REPO")
set :branch, "main"
set :linked_files, %w[hello.conf]
set :keep_releases, 3
set :sshkit_backend, SSHKit::Backend::Local
set :log_level, :warn
namespace :hello do
  task :restart do
    on roles(:app) do
      execute "#{current_path}/bin/restart", fetch(:deploy_to)
    end
  end
end
after "deploy:publishing", "hello:restart"
`,
		"config/deploy/production.rb": `set :deploy_to, ENV.fetch("CAP_ROOT")
server "localhost", roles: %w[app]
`,
	}
	for name, content := range files {
		p := filepath.Join(app, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{}
	for host, root := range roots {
		shared := filepath.Join(root, "shared")
		os.MkdirAll(shared, 0o755)
		if err := os.WriteFile(filepath.Join(shared, "hello.conf"), []byte(helloConf(host, ports[host], "1.4.2")), 0o644); err != nil {
			t.Fatal(err)
		}
		runTool(t, app, append(gitEnv, "CAP_REPO="+repo, "CAP_ROOT="+root), "cap", "production", "deploy")
		link, err := os.Readlink(filepath.Join(root, "current"))
		if err != nil || !strings.HasPrefix(link, filepath.Join(root, "releases")+"/") {
			t.Fatalf("%s: Capistrano left current -> %q (%v)", host, link, err)
		}
		if _, err := os.Stat(filepath.Join(root, "state.json")); err == nil {
			t.Fatalf("%s has a state.json before drover ever ran", host)
		}
		links[host] = link
	}
	return links
}

// wantLinks asserts every host's current is exactly the link another tool
// made.
func wantLinks(t *testing.T, roots, links map[string]string) {
	t.Helper()
	for host, root := range roots {
		if got, err := os.Readlink(filepath.Join(root, "current")); err != nil || got != links[host] {
			t.Errorf("%s: current -> %q (%v), want %q", host, got, err, links[host])
		}
	}
}

func wantOutput(t *testing.T, r result, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(r.stdout+r.stderr, w) {
			t.Errorf("output lacks %q:\n%s", w, r)
		}
	}
}

// foreignRoundTrip is the migration as a team lives it, on a fleet whose
// hosts serve 1.4.2 from another tool's release (links holds each host's
// exact current link): plan shows the foreign release; a first deploy that
// fails puts every host back on it, serving it; a good deploy, then
// rollback, goes back to it again.
func foreignRoundTrip(t *testing.T, config string, roots, links map[string]string, serving func(v string), bad, good string) {
	t.Helper()
	slot := func(host string) string { return filepath.Base(links[host]) }
	r := runDrover(t, "plan", "-c", config, "--release", bad)
	mustExit(t, r, 0)
	for host := range roots {
		wantOutput(t, r, fmt.Sprintf("%s foreign releases/%s -> 2.0.0", pad(host), slot(host)))
	}

	r = runDrover(t, "deploy", "-c", config, "--release", bad, "--yes")
	mustExit(t, r, 1)
	for host := range roots {
		wantOutput(t, r, "restored to foreign releases/"+slot(host))
	}
	if strings.Contains(r.stdout+r.stderr, "restored to none") || strings.Contains(r.stdout+r.stderr, "previous release") {
		t.Errorf("the words do not name the foreign release:\n%s", r)
	}
	wantLinks(t, roots, links)
	serving("1.4.2")
	// The journal names what each host had before: the foreign release.
	r = runDrover(t, "history", "-c", config, "--json", "-n", "1")
	var rows []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rows); err != nil || len(rows) != 1 {
		t.Fatalf("history --json: %v\n%s", err, r)
	}
	r = runDrover(t, "show", "-c", config, rows[0].ID)
	mustExit(t, r, 0)
	for host := range roots {
		wantOutput(t, r, "before: foreign releases/"+slot(host))
	}

	r = runDrover(t, "deploy", "-c", config, "--release", good, "--yes")
	mustExit(t, r, 0)
	serving("2.0.0")
	r = runDrover(t, "status", "-c", config)
	mustExit(t, r, 0)
	for host := range roots {
		wantOutput(t, r, slot(host)+" (foreign)")
	}

	r = runDrover(t, "rollback", "-c", config, "--yes")
	mustExit(t, r, 0)
	for host := range roots {
		wantOutput(t, r, "back on foreign releases/"+slot(host))
	}
	wantLinks(t, roots, links)
	serving("1.4.2")
	r = runDrover(t, "status", "-c", config, "--json")
	mustExit(t, r, 0)
	if n := strings.Count(r.stdout, `"foreign": {`); n != len(roots) {
		t.Errorf("status --json shows %d foreign current releases, want %d:\n%s", n, len(roots), r.stdout)
	}
	for host, root := range roots {
		if _, err := os.Stat(filepath.Join(root, "current", "bin", "restart")); err != nil {
			t.Errorf("%s: the foreign release is gone: %v", host, err)
		}
	}
}

// waitServing waits up to 10s for every host to serve v: another tool's
// restart returns before the service listens.
func waitServing(t *testing.T, versions func(context.Context) map[string]string, v string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		got := versions(ctx)
		cancel()
		ok := true
		for _, g := range got {
			ok = ok && g == v
		}
		if ok || time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// badRelease is version 2.0.0 of the sample service, failing its health
// check everywhere.
func badRelease(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "2.0.0-bad")
	if err := hello.WriteRelease(dir, "2.0.0", false); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pad lays a host name out as printPlan does.
func pad(host string) string { return fmt.Sprintf("~ %-10s", host) }

// TestE2EAdoptCapistranoLocal: two local hosts deployed by the real
// Capistrano (current -> /abs/releases/<timestamp>, no state.json).
func TestE2EAdoptCapistranoLocal(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 2, Groups: adoptGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	fastChecks(t, f.Config)
	roots, ports := map[string]string{}, map[string]int{}
	for _, h := range f.Hosts {
		roots[h.Name], ports[h.Name] = f.DeployRoot(h.Name), h.Port
	}
	links := capDeploy(t, roots, ports)
	serving := func(v string) { t.Helper(); wantServing(t, f, v, nil) }
	// Capistrano's restart task returns before the service listens.
	waitServing(t, func(ctx context.Context) map[string]string { return f.Versions(ctx) }, "1.4.2")
	serving("1.4.2")
	foreignRoundTrip(t, f.Config, roots, links, serving, badRelease(t), writeRelease(t, f, "2.0.0", true))
}

// ansibleLiveDir is a playbook that deploys the way many do: the release
// copied into current as a plain directory, the config templated next to
// it, the service restarted.
const ansibleLiveDir = `- name: deploy hello into a live directory
  hosts: fleet
  gather_facts: false
  tasks:
    - name: current
      ansible.builtin.file:
        path: "{{ root }}/current"
        state: directory
        mode: "0755"
    - name: the release, unpacked into current
      ansible.builtin.unarchive:
        src: "{{ bundle }}"
        dest: "{{ root }}/current"
    - name: the host's config
      ansible.builtin.copy:
        dest: "{{ root }}/current/hello.conf"
        content: "port = {{ port }}\nversion = 1.4.2\nmessage = hello from {{ inventory_hostname }}\nhealth = ok\n"
    - name: restart
      ansible.builtin.command:
        cmd: "bin/restart {{ root }}"
        chdir: "{{ root }}/current"
      environment:
        DROVER_BIN: "{{ drover_bin }}"
`

// ansibleDeploy runs the playbook over the fleet's sshd.
func ansibleDeploy(t *testing.T, f *sshfleet.Fleet, src string) {
	t.Helper()
	needTool(t, "ansible-playbook", "ansible")
	dir := t.TempDir()
	var inv strings.Builder
	inv.WriteString("[fleet]\n")
	for _, h := range f.Hosts {
		fmt.Fprintf(&inv, "%s ansible_host=127.0.0.1 ansible_port=%d root=%s port=%d\n", h.Name, h.SSHPort, strconv.Quote(h.Root), h.Port)
	}
	fmt.Fprintf(&inv, "[fleet:vars]\nansible_user=%s\nansible_ssh_private_key_file=%s\n", currentUser(), strconv.Quote(f.Identity))
	fmt.Fprintf(&inv, "ansible_ssh_common_args=\"-o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o ControlMaster=no\"\n", f.KnownHosts)
	cfg := "[defaults]\nhost_key_checking = True\ninterpreter_python = /usr/bin/python3\nretry_files_enabled = False\nnocows = 1\n[ssh_connection]\npipelining = True\n"
	for name, content := range map[string]string{"inventory.ini": inv.String(), "ansible.cfg": cfg, "deploy.yml": ansibleLiveDir} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	bundle := filepath.Join(dir, "hello.tar.gz")
	runTool(t, src, nil, "tar", "czf", bundle, ".")
	runTool(t, dir, []string{"ANSIBLE_CONFIG=" + filepath.Join(dir, "ansible.cfg"), "ANSIBLE_HOME=" + filepath.Join(dir, "home"), "ANSIBLE_LOCAL_TEMP=" + filepath.Join(dir, "tmp")},
		"ansible-playbook", "-i", "inventory.ini", "deploy.yml", "-e", "bundle="+bundle, "-e", "drover_bin="+droverBin)
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	out, err := exec.Command("id", "-un").Output()
	if err != nil {
		return "root"
	}
	return strings.TrimSpace(string(out))
}

// TestE2EAdoptAnsibleSSH: two hosts over sshd deployed by a real Ansible
// playbook that leaves current a live directory. deploy and plan refuse
// them, naming the host and `drover adopt`; adopt makes current a link
// without touching the running service; then the round trip.
func TestE2EAdoptAnsibleSSH(t *testing.T) {
	t.Parallel()
	f := startSSHFleet(t, droverHeld(sshfleet.Options{Dir: t.TempDir(), Hosts: 2, Groups: adoptGroups}))
	fastChecks(t, f.Config)
	src, err := f.WriteRelease("1.4.2", true)
	if err != nil {
		t.Fatal(err)
	}
	ansibleDeploy(t, f, src)
	serving := func(v string) { t.Helper(); sshServing(t, f, v, nil) }
	waitServing(t, f.Versions, "1.4.2")
	serving("1.4.2")
	bad := badRelease(t)
	good := sshRelease(t, f, "2.0.0")

	before := sshDigest(t, f)
	for _, args := range [][]string{{"plan"}, {"deploy", "--yes"}} {
		r := runDrover(t, append(args, "-c", f.Config, "--release", bad)...)
		mustExit(t, r, 2)
		wantOutput(t, r, "host h01", "host h02", "current is a live directory", "drover adopt")
	}
	if d := diffDigests(before, sshDigest(t, f)); len(d) > 0 {
		t.Fatalf("a refused deploy changed hosts:\n%s", strings.Join(d, "\n"))
	}

	pids := map[string]string{}
	for _, h := range f.Hosts {
		b, _ := os.ReadFile(filepath.Join(h.Root, "run", "hello.pid"))
		pids[h.Name] = string(b)
	}
	r := runDrover(t, "adopt", "-c", f.Config, "--yes")
	mustExit(t, r, 0)
	roots, links := map[string]string{}, map[string]string{}
	for _, h := range f.Hosts {
		roots[h.Name] = h.Root
		link, err := os.Readlink(filepath.Join(h.Root, "current"))
		if err != nil || !strings.HasPrefix(link, "releases/foreign-") {
			t.Fatalf("%s: after adopt current -> %q (%v)\n%s", h.Name, link, err, r)
		}
		links[h.Name] = link
		wantOutput(t, r, h.Name+": adopted: current -> "+link)
		if b, _ := os.ReadFile(filepath.Join(h.Root, "run", "hello.pid")); string(b) != pids[h.Name] {
			t.Errorf("%s: adopt restarted the service (pid %q -> %q)", h.Name, pids[h.Name], b)
		}
	}
	serving("1.4.2")
	r = runDrover(t, "adopt", "-c", f.Config, "--yes")
	mustExit(t, r, 0)
	wantOutput(t, r, "h01: current is already a link")
	foreignRoundTrip(t, f.Config, roots, links, serving, bad, good)
}

// TestE2EAdoptCapistranoLayoutSSH: the Capistrano layout, built directly
// (an absolute current link into releases/<timestamp>, no state.json), on
// hosts reached over sshd: the survey reads it with a shell command, and a
// first deploy that fails puts every host back on that exact link, serving
// the release again.
func TestE2EAdoptCapistranoLayoutSSH(t *testing.T) {
	t.Parallel()
	f := startSSHFleet(t, droverHeld(sshfleet.Options{Dir: t.TempDir(), Hosts: 2, Groups: adoptGroups}))
	fastChecks(t, f.Config)
	roots, links := map[string]string{}, map[string]string{}
	for _, h := range f.Hosts {
		rel := filepath.Join(h.Root, "releases", "20260101120000")
		if err := hello.WriteRelease(rel, "1.4.2", true); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rel, "hello.conf"), []byte(helloConf(h.Name, h.Port, "1.4.2")), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(rel, filepath.Join(h.Root, "current")); err != nil {
			t.Fatal(err)
		}
		runTool(t, h.Root, []string{"DROVER_BIN=" + droverBin}, "current/bin/restart", h.Root)
		roots[h.Name], links[h.Name] = h.Root, rel
	}
	waitServing(t, f.Versions, "1.4.2")

	r := runDrover(t, "deploy", "-c", f.Config, "--release", badRelease(t), "--yes")
	mustExit(t, r, 1)
	// The host's own line and the summary's say the same.
	wantOutput(t, r, "h01: restored to foreign releases/20260101120000", "h02: restored to foreign releases/20260101120000")
	if n := strings.Count(r.stdout, "failed, restored to foreign releases/20260101120000"); n != 2 {
		t.Errorf("the summary names the foreign release for %d hosts, want 2:\n%s", n, r)
	}
	wantLinks(t, roots, links)
	sshServing(t, f, "1.4.2", nil)
}

// TestE2EAdoptLiveDirectoryLocal: the layout the Ansible playbook leaves
// (current a live directory), built directly on a local fleet: deploy
// refuses, naming each host and `drover adopt`; adopt links current
// without restarting the service; a first deploy that fails then puts
// every host back on the adopted release, serving it.
func TestE2EAdoptLiveDirectoryLocal(t *testing.T) {
	t.Parallel()
	f, err := localfleet.New(localfleet.Options{Dir: t.TempDir(), Hosts: 2, Groups: adoptGroups})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	fastChecks(t, f.Config)
	roots := map[string]string{}
	for _, h := range f.Hosts {
		root := f.DeployRoot(h.Name)
		cur := filepath.Join(root, "current")
		if err := hello.WriteRelease(cur, "1.4.2", true); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cur, "hello.conf"), []byte(helloConf(h.Name, h.Port, "1.4.2")), 0o644); err != nil {
			t.Fatal(err)
		}
		runTool(t, root, nil, "current/bin/restart", root)
		roots[h.Name] = root
	}
	waitServing(t, func(ctx context.Context) map[string]string { return f.Versions(ctx) }, "1.4.2")
	bad := badRelease(t)

	before := hostsDigest(t, f)
	r := runDrover(t, "deploy", "-c", f.Config, "--release", bad, "--yes")
	mustExit(t, r, 2)
	wantOutput(t, r, "host h01", "host h02", "current is a live directory", "drover adopt")
	if d := diffDigests(before, hostsDigest(t, f)); len(d) > 0 {
		t.Fatalf("a refused deploy changed hosts:\n%s", strings.Join(d, "\n"))
	}

	r = runDrover(t, "adopt", "-c", f.Config, "--yes")
	mustExit(t, r, 0)
	links := map[string]string{}
	for host, root := range roots {
		link, err := os.Readlink(filepath.Join(root, "current"))
		if err != nil || !strings.HasPrefix(link, "releases/foreign-") {
			t.Fatalf("%s: after adopt current -> %q (%v)\n%s", host, link, err, r)
		}
		links[host] = link
	}
	wantServing(t, f, "1.4.2", nil)

	r = runDrover(t, "deploy", "-c", f.Config, "--release", bad, "--yes")
	mustExit(t, r, 1)
	for host := range roots {
		wantOutput(t, r, host+": restored to foreign "+links[host])
	}
	wantLinks(t, roots, links)
	wantServing(t, f, "1.4.2", nil)
}

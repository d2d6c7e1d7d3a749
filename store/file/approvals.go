package file

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"drover"
)

var _ drover.Approvals = (*Store)(nil)

// Approvals live beside the deploy they are about:
//
//	<dir>/<escaped key>/deploys/<id>.approvals    JSON lines, one approvalLine each
//
// Any drover process of the service writes there — the deploy asking, and
// `drover approve` / `drover abort` from a second terminal or a CI job —
// so the file is append-only and never truncated: each entry is one small
// O_APPEND write of "\n<json>\n", fsynced. Unlike the journal (one writer,
// the lock holder), a writer here cannot cut off a torn last line — it may
// be another process's write in progress — so every entry starts with its
// own newline instead: a fragment left by a crash ends there and stays a
// line of its own, which readers skip, and the next entry stays whole.
const approvalsExt = ".approvals"

// approvalLine is a request or a decision.
type approvalLine struct {
	Request  *drover.ApprovalRequest  `json:"request,omitempty"`
	Decision *drover.ApprovalDecision `json:"decision,omitempty"`
}

// RequestApproval records that a deploy waits for a person at a gate.
func (s *Store) RequestApproval(ctx context.Context, r drover.ApprovalRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if r.Gate == "" {
		return drover.Errorf(drover.EINVALID, "approval request of deploy %s names no gate", r.DeployID)
	}
	if r.At.IsZero() {
		r.At = s.now()
	}
	return s.appendApproval(r.DeployID, approvalLine{Request: &r})
}

// Decide records a decision about a deploy.
func (s *Store) Decide(ctx context.Context, d drover.ApprovalDecision) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch {
	case d.Verdict == drover.VerdictApprove && d.Gate == "":
		return drover.Errorf(drover.EINVALID, "approval of deploy %s names no gate", d.DeployID)
	case d.Verdict != drover.VerdictApprove && d.Verdict != drover.VerdictAbort:
		return drover.Errorf(drover.EINVALID, "decision %q about deploy %s: want %s or %s", d.Verdict, d.DeployID, drover.VerdictApprove, drover.VerdictAbort)
	}
	dd, err := s.deploysDir(d.DeployID)
	if err != nil {
		return err
	}
	rec, err := readRecord(dd, d.DeployID)
	if err != nil {
		return err
	}
	if !rec.Finished.IsZero() {
		return drover.Errorf(drover.EINVALID, "deploy %s already finished (%s at %s); nothing to %s", d.DeployID, rec.Outcome, rec.Finished.Format("2006-01-02 15:04:05"), d.Verdict)
	}
	if d.At.IsZero() {
		d.At = s.now()
	}
	return s.appendApproval(d.DeployID, approvalLine{Decision: &d})
}

func (s *Store) appendApproval(id string, l approvalLine) error {
	dd, err := s.deploysDir(id)
	if err != nil {
		return err
	}
	line, err := json.Marshal(l)
	if err != nil {
		return internal("encode approval of "+id, err)
	}
	path := filepath.Join(dd, id+approvalsExt)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return internal("open approvals of "+id, err)
	}
	entry := append(append([]byte{'\n'}, line...), '\n')
	_, err = f.Write(entry)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// The first line created the file: make its name durable too.
		err = syncDir(dd)
	}
	if err != nil {
		return internal("append approval of "+id, err)
	}
	return nil
}

// readApprovals returns the whole lines of a deploy's approvals file.
func readApprovals(dd, id string) ([]approvalLine, error) {
	data, err := os.ReadFile(filepath.Join(dd, id+approvalsExt))
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, internal("read approvals of "+id, err)
	}
	var out []approvalLine
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // a torn last line: never acknowledged
		}
		var l approvalLine
		// Blank lines separate entries; a torn fragment does not parse.
		if err := json.Unmarshal(data[:i], &l); err == nil && (l.Request != nil || l.Decision != nil) {
			out = append(out, l)
		}
		data = data[i+1:]
	}
	return out, nil
}

// Decision returns the decision that applies to a deploy's gate.
func (s *Store) Decision(ctx context.Context, deployID, gate string) (*drover.ApprovalDecision, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dd, err := s.deploysDir(deployID)
	if err != nil {
		return nil, err
	}
	lines, err := readApprovals(dd, deployID)
	if err != nil {
		return nil, err
	}
	return decisionOf(lines, gate), nil
}

// decisionOf is an abort, whichever came first, else the first approval
// of gate: an abort always wins, so a deploy someone asked to stop never
// goes on because an approval was typed a moment earlier.
func decisionOf(lines []approvalLine, gate string) *drover.ApprovalDecision {
	var approve *drover.ApprovalDecision
	for _, l := range lines {
		d := l.Decision
		switch {
		case d == nil:
		case d.Verdict == drover.VerdictAbort:
			return d
		case gate != "" && d.Verdict == drover.VerdictApprove && d.Gate == gate && approve == nil:
			approve = d
		}
	}
	return approve
}

// Pending lists the undecided gates of unfinished deploys of key.
func (s *Store) Pending(ctx context.Context, key string) ([]drover.ApprovalRequest, error) {
	open, err := s.Unfinished(ctx, key)
	if err != nil {
		return nil, err
	}
	kd, err := s.keyDir(key)
	if err != nil {
		return nil, err
	}
	dd := filepath.Join(kd, "deploys")
	var out []drover.ApprovalRequest
	for _, d := range open {
		lines, err := readApprovals(dd, d.ID)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, l := range lines {
			r := l.Request
			if r == nil || seen[r.Gate] || decisionOf(lines, r.Gate) != nil {
				continue
			}
			seen[r.Gate] = true
			out = append(out, *r)
		}
	}
	slices.SortStableFunc(out, func(a, b drover.ApprovalRequest) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return strings.Compare(a.DeployID, b.DeployID)
	})
	return out, nil
}

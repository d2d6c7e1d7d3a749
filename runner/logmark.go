package runner

import (
	"context"
	"fmt"

	"drover"
)

// markLogs asks the host, just before the restart hook, where the file of
// each log check stands, so that the check after the restart reads only
// the lines the restarted service wrote. Without the mark an absent:
// true check would fail on the previous release's errors, and a "listening
// on" check would pass on the previous process's line.
//
// A mark that cannot be taken (the file is unreadable) is not a failure
// here: the check after the restart meets the same problem and says so.
func (x *executor) markLogs(ctx context.Context, h drover.Host, restoring bool) error {
	var logs []drover.CheckSpec
	for _, c := range x.spec.Checks {
		if c.Type == "log" {
			logs = append(logs, c)
		}
	}
	if len(logs) == 0 {
		return nil
	}
	conn, err := x.conns.get(ctx, h.Name)
	if err != nil {
		return err
	}
	data := x.data(h, restoring)
	for _, c := range logs {
		rc, err := drover.RenderCheck(c, data)
		if err != nil {
			return err
		}
		rc.Mark = true
		res, err := conn.Check(ctx, rc)
		if err != nil {
			return fmt.Errorf("check %s: marking the log before the restart: %w", c.Name, err)
		}
		x.mu.Lock()
		if x.logMarks == nil {
			x.logMarks = map[string]*drover.LogPosition{}
		}
		x.logMarks[h.Name+"\x00"+c.Name] = res.Position
		x.mu.Unlock()
	}
	return nil
}

// logMark is the position markLogs took for host's check, or nil (the
// check then counts lines from when it starts).
func (x *executor) logMark(host, check string) *drover.LogPosition {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.logMarks[host+"\x00"+check]
}

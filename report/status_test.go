package report

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"drover"
)

// A deploy that never finished is running only while the lock's recorded
// holder is that deploy and its process lives on this machine.
func TestDeployStatus(t *testing.T) {
	host, _ := os.Hostname()
	open := drover.DeployRecord{ID: "d-1"}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		d      drover.DeployRecord
		holder *drover.LockOwner
		err    error
		want   string
	}{
		{"finished", drover.DeployRecord{ID: "d-1", Finished: time.Now(), Outcome: drover.OutcomeRolledBack}, nil, nil, drover.OutcomeRolledBack},
		{"no holder", open, nil, nil, StatusInterrupted},
		{"holder is another deploy", open, &drover.LockOwner{PID: os.Getpid(), Machine: host, DeployID: "d-2"}, nil, StatusInterrupted},
		{"live holder", open, &drover.LockOwner{PID: os.Getpid(), Machine: host, DeployID: "d-1"}, nil, StatusRunning},
		{"dead holder", open, &drover.LockOwner{PID: dead.ProcessState.Pid(), Machine: host, DeployID: "d-1"}, nil, StatusInterrupted},
		{"other machine", open, &drover.LockOwner{PID: 1, Machine: host + "-elsewhere", DeployID: "d-1"}, nil, StatusUnknown},
		{"store cannot tell", open, nil, ErrNoLockHolder, StatusUnknown},
	} {
		if got := DeployStatus(tt.d, tt.holder, tt.err); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

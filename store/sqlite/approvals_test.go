package sqlite_test

import (
	"testing"

	"drover"
	"drover/store/storetest"
)

func TestApprovalsContract(t *testing.T) {
	storetest.RunApprovalsContract(t, func(t *testing.T) drover.Store { return open(t) })
}

package drover

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Error codes: the one vocabulary every package uses for failures, mapped
// once (errorCodes) to exit codes (ExitCode), HTTP statuses (HTTPStatus)
// and the names drover server's answers carry (WireCode).
const (
	// EINVALID: bad input or usage; nothing was touched. Exit 2.
	EINVALID = "invalid"
	// ENOTFOUND: a named thing (release, host, deploy) does not exist. Exit 2.
	ENOTFOUND = "not_found"
	// ELOCKED: another deploy holds the lock. Exit 5.
	ELOCKED = "locked"
	// EUNREACHABLE: a host could not be reached. Exit 3.
	EUNREACHABLE = "unreachable"
	// EFAILED: a step ran and failed (a check, a hook, a validation).
	EFAILED = "failed"
	// ETIMEOUT: a step did not finish in time.
	ETIMEOUT = "timeout"
	// EINTERNAL: a bug or an environment problem. Exit 3: a person looks.
	EINTERNAL = "internal"
	// EUNAUTHORIZED: no credentials, or ones nobody issued (drover server). Exit 2.
	EUNAUTHORIZED = "unauthorized"
	// EFORBIDDEN: the credentials do not allow this action (a viewer
	// starting a deploy, a token scoped to another service). Exit 2.
	EFORBIDDEN = "forbidden"
)

// Exit codes of the drover command; see the README.
const (
	ExitOK          = 0 // every targeted host is on the new release
	ExitRolledBack  = 1 // the deploy halted; the fleet is back where it started
	ExitUsage       = 2 // bad input or usage; nothing was touched
	ExitNeedsPerson = 3 // rollback incomplete or hosts unreachable
	ExitPartial     = 4 // finished within the failure limit; listed hosts failed and were restored
	ExitLocked      = 5 // another deploy holds the lock
)

// Error is a failure with a code, where it happened and what to try.
type Error struct {
	Code string
	// Where names the place: "drover.yaml:12", "host h03", "host h03 step check".
	Where string
	// Message says what was wrong.
	Message string
	// Hint says what to try; may be empty.
	Hint string
	// Err is the underlying cause, if any.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Where != "" {
		b.WriteString(e.Where)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	if e.Err != nil {
		if e.Message != "" {
			b.WriteString(": ")
		}
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given code and formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// At returns a copy of e with Where set.
func (e *Error) At(where string) *Error { c := *e; c.Where = where; return &c }

// WithHint returns a copy of e with Hint set.
func (e *Error) WithHint(hint string) *Error { c := *e; c.Hint = hint; return &c }

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorHint returns the hint of the first *Error in err's chain that has one.
func ErrorHint(err error) string {
	for err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return ""
		}
		if e.Hint != "" {
			return e.Hint
		}
		err = e.Err
	}
	return ""
}

// errorCodes maps every error code, once, to its exit code, its HTTP
// status and its name on the wire.
var errorCodes = []struct {
	code, wire string
	exit       int
	status     int
}{
	{EINVALID, "EINVALID", ExitUsage, http.StatusBadRequest},
	{ENOTFOUND, "ENOTFOUND", ExitUsage, http.StatusNotFound},
	{ELOCKED, "ELOCKED", ExitLocked, http.StatusConflict},
	{EUNAUTHORIZED, "EUNAUTHORIZED", ExitUsage, http.StatusUnauthorized},
	{EFORBIDDEN, "EFORBIDDEN", ExitUsage, http.StatusForbidden},
	{EFAILED, "EFAILED", ExitNeedsPerson, http.StatusBadGateway},
	{EUNREACHABLE, "EUNREACHABLE", ExitNeedsPerson, http.StatusBadGateway},
	{ETIMEOUT, "ETIMEOUT", ExitNeedsPerson, http.StatusGatewayTimeout},
	{EINTERNAL, "EINTERNAL", ExitNeedsPerson, http.StatusInternalServerError},
}

// errorCodeRow is code's row; EINTERNAL's for a code this build does not
// know.
func errorCodeRow(code string) (wire string, exit, status int) {
	for _, c := range errorCodes {
		if c.code == code {
			return c.wire, c.exit, c.status
		}
	}
	return "EINTERNAL", ExitNeedsPerson, http.StatusInternalServerError
}

// ExitCode maps an error returned before or instead of a deploy verdict to
// the command's exit code.
func ExitCode(err error) int {
	if err == nil {
		return ExitOK
	}
	_, exit, _ := errorCodeRow(ErrorCode(err))
	return exit
}

// HTTPStatus is the status drover server answers an error code with.
func HTTPStatus(code string) int {
	_, _, status := errorCodeRow(code)
	return status
}

// WireCode is code's name in drover server's error answers.
func WireCode(code string) string {
	wire, _, _ := errorCodeRow(code)
	return wire
}

// CodeOfWire is the error code of a wire name; EINTERNAL for one this
// build does not know.
func CodeOfWire(wire string) string {
	for _, c := range errorCodes {
		if c.wire == wire {
			return c.code
		}
	}
	return EINTERNAL
}

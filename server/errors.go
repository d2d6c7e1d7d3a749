package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"drover"
)

// This file maps drover's error vocabulary to HTTP, once, both ways: the
// server answers every failure with the status of its code and a JSON body
// naming what was wrong, where and what to try; the client turns that body
// back into a *drover.Error with the same code, so `drover deploy
// --server` exits with the same code as a local deploy would.

// codes lists every drover error code with its wire name and HTTP status.
var codes = []struct {
	code, wire string
	status     int
}{
	{drover.EINVALID, "EINVALID", http.StatusBadRequest},
	{drover.ENOTFOUND, "ENOTFOUND", http.StatusNotFound},
	{drover.ELOCKED, "ELOCKED", http.StatusConflict},
	{drover.EUNAUTHORIZED, "EUNAUTHORIZED", http.StatusUnauthorized},
	{drover.EFORBIDDEN, "EFORBIDDEN", http.StatusForbidden},
	{drover.EFAILED, "EFAILED", http.StatusBadGateway},
	{drover.EUNREACHABLE, "EUNREACHABLE", http.StatusBadGateway},
	{drover.ETIMEOUT, "ETIMEOUT", http.StatusGatewayTimeout},
	{drover.EINTERNAL, "EINTERNAL", http.StatusInternalServerError},
}

// HTTPStatus is the status a drover error code is answered with.
func HTTPStatus(code string) int {
	for _, c := range codes {
		if c.code == code {
			return c.status
		}
	}
	return http.StatusInternalServerError
}

func wireCode(code string) string {
	for _, c := range codes {
		if c.code == code {
			return c.wire
		}
	}
	return "EINTERNAL"
}

// codeOfWire is the drover code of a wire name; EINTERNAL for one this
// build does not know.
func codeOfWire(wire string) string {
	for _, c := range codes {
		if c.wire == wire {
			return c.code
		}
	}
	return drover.EINTERNAL
}

// ErrorBody is the JSON of every error answer.
type ErrorBody struct {
	Error ErrorJSON `json:"error"`
}

// ErrorJSON is one error on the wire.
type ErrorJSON struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Where   string `json:"where,omitempty"`
	Hint    string `json:"hint,omitempty"`
}

// toError is the wire form of err. The message of an error that is not a
// *drover.Error is kept: it names what failed (a path, a host); internal
// details that could leak secrets never reach errors (tokens are not
// formatted into any error).
func toError(err error) ErrorJSON {
	j := ErrorJSON{Code: wireCode(drover.ErrorCode(err)), Message: err.Error(), Hint: drover.ErrorHint(err)}
	var de *drover.Error
	if errors.As(err, &de) && de.Where != "" {
		j.Where = de.Where
		// Error() starts with Where; the field says it once.
		j.Message = (&drover.Error{Message: de.Message, Err: de.Err}).Error()
	}
	return j
}

// FromErrorJSON turns an error answer back into a *drover.Error.
func FromErrorJSON(j ErrorJSON) *drover.Error {
	return &drover.Error{Code: codeOfWire(j.Code), Message: j.Message, Where: j.Where, Hint: j.Hint}
}

// writeError answers with err's status and JSON.
func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, HTTPStatus(drover.ErrorCode(err)), ErrorBody{Error: toError(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

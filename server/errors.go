package server

import (
	"encoding/json"
	"errors"
	"net/http"

	"drover"
)

// This file maps drover's error vocabulary (error.go holds the one table
// of codes, statuses and wire names) to HTTP, both ways: the
// server answers every failure with the status of its code and a JSON body
// naming what was wrong, where and what to try; the client turns that body
// back into a *drover.Error with the same code, so `drover deploy
// --server` exits with the same code as a local deploy would.

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
	j := ErrorJSON{Code: drover.WireCode(drover.ErrorCode(err)), Message: err.Error(), Hint: drover.ErrorHint(err)}
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
	return &drover.Error{Code: drover.CodeOfWire(j.Code), Message: j.Message, Where: j.Where, Hint: j.Hint}
}

// writeError answers with err's status and JSON.
func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, drover.HTTPStatus(drover.ErrorCode(err)), ErrorBody{Error: toError(err)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

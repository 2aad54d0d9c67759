package api

import (
	"context"
	"errors"
	"net/http"
)

// Code is an error's stable code, the part of an error response programs
// test. Codes are only ever added.
type Code string

// The error codes.
const (
	CodeBadKey           Code = "bad_key"            // the key or ID parameter is missing, doubled or malformed
	CodeBadRequest       Code = "bad_request"        // any other malformed request
	CodeTooLarge         Code = "too_large"          // a body or query string over its bound
	CodeUnauthorized     Code = "unauthorized"       // no bearer token, or a wrong one
	CodeNotFound         Code = "not_found"          // no such value, route or record
	CodeNoPeers          Code = "no_peers"           // the node knows no other node to ask
	CodeQuorumNotReached Code = "quorum_not_reached" // a put was accepted by fewer nodes than asked
	CodeTimeout          Code = "timeout"            // the nodes asked did not answer in time
	CodeUnavailable      Code = "unavailable"        // the node is stopping, or too busy for this request
	CodeInternal         Code = "internal"           // a bug
	CodeInvalidRecord    Code = "invalid_record"     // a record envelope that breaks its kind's rules (bad signature, a typed rule...): the message names the field
	CodeConflict         Code = "conflict"           // a compare-and-swap put found another sequence than the one expected
)

// Codes lists every error code.
func Codes() []Code {
	return []Code{CodeBadKey, CodeBadRequest, CodeTooLarge, CodeUnauthorized, CodeNotFound,
		CodeNoPeers, CodeQuorumNotReached, CodeTimeout, CodeUnavailable, CodeInternal, CodeInvalidRecord, CodeConflict}
}

// Status is the HTTP status the API answers c with.
func (c Code) Status() int {
	switch c {
	case CodeBadKey, CodeBadRequest:
		return http.StatusBadRequest
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeNotFound:
		return http.StatusNotFound
	case CodeNoPeers, CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeQuorumNotReached:
		return http.StatusBadGateway
	case CodeTimeout:
		return http.StatusGatewayTimeout
	case CodeInvalidRecord:
		return http.StatusUnprocessableEntity
	case CodeConflict:
		return http.StatusConflict
	}
	return http.StatusInternalServerError
}

// Sentinel errors, one per code a Backend reports. errors.Is matches them
// against an *Error with their code too, so that a program tests a client's
// error and a backend's the same way.
var (
	ErrNotFound    = errors.New("not found")
	ErrNoPeers     = errors.New("no peers to ask")
	ErrQuorum      = errors.New("quorum not reached")
	ErrTimeout     = errors.New("no answer in time")
	ErrUnavailable = errors.New("unavailable")
	ErrBadRequest  = errors.New("bad request")
	ErrTooLarge    = errors.New("too large")
	ErrBadKey      = errors.New("bad key")
	ErrAuth        = errors.New("unauthorized")
	ErrInvalid     = errors.New("invalid record")
	ErrConflict    = errors.New("compare-and-swap conflict")
)

var sentinels = map[Code]error{
	CodeNotFound: ErrNotFound, CodeNoPeers: ErrNoPeers, CodeQuorumNotReached: ErrQuorum,
	CodeTimeout: ErrTimeout, CodeUnavailable: ErrUnavailable, CodeBadRequest: ErrBadRequest,
	CodeTooLarge: ErrTooLarge, CodeBadKey: ErrBadKey, CodeUnauthorized: ErrAuth,
	CodeInvalidRecord: ErrInvalid, CodeConflict: ErrConflict,
}

// Error is an API error: what the server sends as
// {"error":{"code":...,"message":...}}, and what the client returns.
type Error struct {
	Status  int // the HTTP status (set by the client)
	Code    Code
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return e.Message
}

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// codeOf maps an error from a Backend to its code.
func codeOf(err error) Code {
	var ae *Error
	if errors.As(err, &ae) && ae.Code != "" {
		return ae.Code
	}
	// No peers before not found: a get with nobody to ask wraps both.
	for _, c := range []Code{CodeInvalidRecord, CodeConflict, CodeNoPeers, CodeQuorumNotReached, CodeTimeout, CodeNotFound,
		CodeUnavailable, CodeBadKey, CodeBadRequest, CodeTooLarge, CodeUnauthorized} {
		if errors.Is(err, sentinels[c]) {
			return c
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return CodeTimeout
	}
	if errors.Is(err, context.Canceled) {
		return CodeUnavailable
	}
	return CodeInternal
}

package sessiond

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
)

// Error codes. They are part of the API: clients branch on them, so they
// never change meaning.
const (
	CodeInvalidJSON          = "invalid_json"
	CodeInvalidRequest       = "invalid_request"
	CodeBodyTooLarge         = "body_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeUnauthorized         = "unauthorized"
	CodeSessionNotFound      = "session_not_found"
	CodeSessionExpired       = "session_expired"
	CodeSessionRevoked       = "session_revoked"
	CodeInvalidToken         = "invalid_token"
	CodeVersionConflict      = "version_conflict"
	CodeDataTooLarge         = "data_too_large"
	CodeSessionLimit         = "session_limit"
	CodeStoreFull            = "store_full"
	CodeStoreUnavailable     = "store_unavailable"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeInternal             = "internal_error"
)

// ErrorBody is the JSON body of every error response:
// {"error": {"code": "...", "message": "..."}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of ErrorBody.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// WriteJSON writes v as the JSON response with status. Every response of the
// API is private to its caller, hence Cache-Control: no-store.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a programming error reaches this: the API's types marshal.
		WriteError(w, http.StatusInternalServerError, CodeInternal, "response could not be encoded")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// WriteError writes the error body with status, code and message. message
// is shown to API clients: it must never hold a token or a stack trace.
func WriteError(w http.ResponseWriter, status int, code, message string) {
	b, _ := json.Marshal(ErrorBody{Error: ErrorDetail{Code: code, Message: message}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// RequestError is an error that knows its HTTP status and API code. DecodeJSON
// returns it; WriteErr writes it as is.
type RequestError struct {
	Status  int
	Code    string
	Message string
}

func (e *RequestError) Error() string { return e.Code + ": " + e.Message }

// WriteErr answers err: a *RequestError with its own status and code, a
// sessionkit error with the status and code documented for it, anything else
// with a 500 that does not reveal the error. notFoundStatus is the status for
// sessionkit.ErrNotFound: 404 where the caller named a handle, 401 where it
// presented a token.
func WriteErr(w http.ResponseWriter, err error, notFoundStatus int) {
	var re *RequestError
	if errors.As(err, &re) {
		WriteError(w, re.Status, re.Code, re.Message)
		return
	}
	status, code, msg := classify(err, notFoundStatus)
	WriteError(w, status, code, msg)
}

// classify maps the Manager's errors to the API.
func classify(err error, notFoundStatus int) (status int, code, msg string) {
	switch {
	case errors.Is(err, sessionkit.ErrStore):
		// Checked first: a store error may wrap anything; fail closed.
		return http.StatusServiceUnavailable, CodeStoreUnavailable, "the session store is unavailable"
	case errors.Is(err, sessionkit.ErrMalformed):
		return http.StatusUnauthorized, CodeInvalidToken, "the token is malformed"
	case errors.Is(err, sessionkit.ErrNotFound):
		return notFoundStatus, CodeSessionNotFound, "no such session"
	case errors.Is(err, sessionkit.ErrExpired):
		return http.StatusUnauthorized, CodeSessionExpired, "the session has expired"
	case errors.Is(err, sessionkit.ErrRevoked):
		return http.StatusUnauthorized, CodeSessionRevoked, "the session was revoked"
	case errors.Is(err, sessionkit.ErrConflict):
		return http.StatusConflict, CodeVersionConflict, "the session changed since the given version"
	case errors.Is(err, sessionkit.ErrDataTooLarge):
		return http.StatusRequestEntityTooLarge, CodeDataTooLarge, "the session data exceeds the configured limit"
	case errors.Is(err, sessionkit.ErrLimit):
		return http.StatusConflict, CodeSessionLimit, "the subject has the maximum number of sessions"
	case errors.Is(err, sessionkit.ErrInvalid):
		return http.StatusBadRequest, CodeInvalidRequest, err.Error()
	case errors.Is(err, sessionkit.ErrStoreFull):
		return http.StatusServiceUnavailable, CodeStoreFull, "the session store is full"
	default:
		return http.StatusInternalServerError, CodeInternal, "internal error"
	}
}

// DecodeJSON reads the request body as exactly one JSON value into v. It
// rejects a content type other than application/json (a missing one is
// accepted, for curl users), a body over limit bytes, malformed JSON, wrong
// types, unknown fields and trailing data. The errors are *RequestError;
// answer them with WriteErr. limit <= 0 means 64 KiB.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !jsonLike(mt) {
			return &RequestError{http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, "the body must be application/json"}
		}
	}
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		return decodeError(err)
	}
	// Every body is one JSON object: null, a bare value or an array would
	// otherwise decode as an empty request.
	if trimmed := bytes.TrimLeft(body, " \t\r\n"); len(trimmed) > 0 && trimmed[0] != '{' {
		return &RequestError{http.StatusBadRequest, CodeInvalidJSON, "the body must be a JSON object"}
	}
	if err := checkDuplicateKeys(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	// Exactly one value: anything but whitespace after it is an error.
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		return &RequestError{http.StatusBadRequest, CodeInvalidJSON, "the body has data after the JSON value"}
	}
	return nil
}

// checkDuplicateKeys refuses an object that names a member twice: decoders
// disagree on which one wins, so the request is ambiguous. Syntax errors
// are left to the decoder, which reports them with their offset.
func checkDuplicateKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		keys   map[string]bool
		object bool
		key    bool // the next string token in an object is a key
	}
	var stack []frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		top := len(stack) - 1
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{', '[':
				if top >= 0 && stack[top].object {
					stack[top].key = true
				}
				stack = append(stack, frame{object: t == '{', key: t == '{'})
			default:
				stack = stack[:top]
			}
			continue
		case string:
			if top >= 0 && stack[top].object && stack[top].key {
				if stack[top].keys == nil {
					stack[top].keys = make(map[string]bool)
				}
				if stack[top].keys[t] {
					return &RequestError{http.StatusBadRequest, CodeInvalidJSON, fmt.Sprintf("the member %q appears twice", t)}
				}
				stack[top].keys[t] = true
				stack[top].key = false
				continue
			}
		}
		if top >= 0 && stack[top].object {
			stack[top].key = true
		}
	}
}

// jsonLike accepts JSON media types and the types that command-line
// clients send by default (curl -d labels its body form-urlencoded); the
// body must parse as JSON whatever its label. Callers authenticate with a
// header, not a cookie, so a cross-site form cannot use this leniency.
func jsonLike(mt string) bool {
	switch mt {
	case "application/json", "application/x-www-form-urlencoded", "text/plain":
		return true
	}
	return strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")
}

// jsonType names the JSON type that decodes into t, so error messages speak
// of the API rather than of Go types.
func jsonType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct, reflect.Pointer:
		return "an object"
	}
	return "another type"
}

func decodeError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &mbe):
		return &RequestError{http.StatusRequestEntityTooLarge, CodeBodyTooLarge, fmt.Sprintf("the body exceeds %d bytes", mbe.Limit)}
	case errors.Is(err, io.EOF):
		return &RequestError{http.StatusBadRequest, CodeInvalidJSON, "the body is empty"}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &RequestError{http.StatusBadRequest, CodeInvalidJSON, "the body ends inside a JSON value"}
	case errors.As(err, &se):
		return &RequestError{http.StatusBadRequest, CodeInvalidJSON, fmt.Sprintf("malformed JSON at byte %d", se.Offset)}
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		return &RequestError{http.StatusBadRequest, CodeInvalidJSON, fmt.Sprintf("%s: expected %s, got %s", field, jsonType(te.Type), te.Value)}
	default:
		// Unknown fields and other decoder complaints. Their text names a
		// field, never a value, so it is safe to show.
		return &RequestError{http.StatusBadRequest, CodeInvalidJSON, "invalid JSON: " + err.Error()}
	}
}

// Session is the JSON form of a session, as in every response that returns
// one. It never holds a token or a token hash.
type Session struct {
	Handle           string                     `json:"handle"`
	Subject          string                     `json:"subject"`
	AuthLevel        int                        `json:"auth_level"`
	CreatedAt        time.Time                  `json:"created_at"`
	AuthenticatedAt  *time.Time                 `json:"authenticated_at"`
	LastSeenAt       time.Time                  `json:"last_seen_at"`
	IdleDeadline     time.Time                  `json:"idle_deadline"`
	AbsoluteDeadline time.Time                  `json:"absolute_deadline"`
	Client           sessionkit.Client          `json:"client"`
	Data             map[string]json.RawMessage `json:"data"`
	Version          uint64                     `json:"version"`
}

// SessionJSON converts a record to its API form: times in UTC with second
// precision (RFC 3339), a zero authentication time as null, data as an
// object even when empty. Client is the client that created the session.
func SessionJSON(r *sessionkit.Record) Session {
	s := Session{
		Handle:           r.Handle,
		Subject:          r.Subject,
		AuthLevel:        r.AuthLevel,
		CreatedAt:        utc(r.CreatedAt),
		LastSeenAt:       utc(r.LastSeenAt),
		IdleDeadline:     utc(r.IdleDeadline),
		AbsoluteDeadline: utc(r.AbsoluteDeadline),
		Client:           r.Client,
		Data:             r.Data,
		Version:          r.Version,
	}
	if !r.AuthenticatedAt.IsZero() {
		t := utc(r.AuthenticatedAt)
		s.AuthenticatedAt = &t
	}
	if s.Data == nil {
		s.Data = map[string]json.RawMessage{}
	}
	return s
}

func utc(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

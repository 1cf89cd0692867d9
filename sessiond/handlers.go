package sessiond

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
)

//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3.1 document of the server's own routes;
// Server.OpenAPI adds its extensions' routes.
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }

// Documented is implemented by extensions whose routes belong in the
// served OpenAPI document: OpenAPIPaths returns a JSON object of path items
// keyed by path, which may refer to the base document's components.
type Documented interface {
	OpenAPIPaths() []byte
}

// mergeOpenAPI adds each documented extension's path items to base.
func mergeOpenAPI(base []byte, exts []Extension) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(base, &doc); err != nil {
		return nil, err
	}
	var paths map[string]json.RawMessage
	if err := json.Unmarshal(doc["paths"], &paths); err != nil {
		return nil, err
	}
	for _, e := range exts {
		d, ok := e.(Documented)
		if !ok {
			continue
		}
		var more map[string]json.RawMessage
		if err := json.Unmarshal(d.OpenAPIPaths(), &more); err != nil {
			return nil, fmt.Errorf("sessiond: an extension's OpenAPI paths: %w", err)
		}
		for p, item := range more {
			if _, dup := paths[p]; dup {
				return nil, fmt.Errorf("sessiond: OpenAPI path %s documented twice", p)
			}
			paths[p] = item
		}
	}
	var err error
	if doc["paths"], err = json.Marshal(paths); err != nil {
		return nil, err
	}
	return json.MarshalIndent(doc, "", " ")
}

// OpenAPI returns the document this server serves: its own routes and its
// documented extensions'.
func (s *Server) OpenAPI() []byte { return append([]byte(nil), s.doc...) }

func (s *Server) mountRoutes() {
	key := func(h http.HandlerFunc) http.HandlerFunc { return s.requireKey(h).ServeHTTP }
	s.handle("GET /healthz", s.healthz)
	s.handle("GET /readyz", s.readyz)
	s.handle("GET /openapi.json", s.openapi)
	s.handle("GET /v1/auth", s.forwardAuth)
	s.handle("POST /v1/sessions", key(s.create))
	s.handle("POST /v1/sessions/verify", key(s.verify))
	s.handle("POST /v1/sessions/renew", key(s.renew))
	s.handle("POST /v1/sessions/logout", key(s.logout))
	s.handle("GET /v1/sessions/{handle}", key(s.get))
	s.handle("PATCH /v1/sessions/{handle}", key(s.patch))
	s.handle("DELETE /v1/sessions/{handle}", key(s.revoke))
	s.handle("GET /v1/subjects/{subject}/sessions", key(s.list))
	s.handle("DELETE /v1/subjects/{subject}/sessions", key(s.revokeSubject))
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.m.Store().Ping(ctx); err != nil {
		s.log.WarnContext(r.Context(), "readiness check failed", "err", err.Error())
		WriteError(w, http.StatusServiceUnavailable, CodeStoreUnavailable, "the session store is unavailable")
		return
	}
	WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (s *Server) openapi(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.Write(s.doc)
}

// fail answers err, logging errors that are not the client's fault.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error, notFoundStatus int) {
	status, _, _ := classify(err, notFoundStatus)
	if status >= 500 {
		s.log.ErrorContext(r.Context(), "request failed", "method", r.Method, "route", r.Pattern, "err", err.Error())
	}
	WriteErr(w, err, notFoundStatus)
}

func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if err := DecodeJSON(w, r, s.cfg.MaxBodyBytes, v); err != nil {
		WriteErr(w, err, http.StatusNotFound)
		return false
	}
	return true
}

type sessionResponse struct {
	Session Session `json:"session"`
}

type tokenResponse struct {
	Token   string  `json:"token"`
	Session Session `json:"session"`
}

type createRequest struct {
	Subject    string                     `json:"subject"`
	AuthLevel  int                        `json:"auth_level"`
	Data       map[string]json.RawMessage `json:"data"`
	Client     sessionkit.Client          `json:"client"`
	Persistent bool                       `json:"persistent"`
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.AuthLevel < 0 {
		WriteError(w, http.StatusBadRequest, CodeInvalidRequest, "auth_level must not be negative")
		return
	}
	tok, rec, err := s.m.Create(r.Context(), sessionkit.CreateParams{
		Subject:    req.Subject,
		AuthLevel:  req.AuthLevel,
		Data:       dropNulls(req.Data),
		Client:     req.Client,
		Persistent: req.Persistent,
	})
	if err != nil {
		s.fail(w, r, err, http.StatusNotFound)
		return
	}
	WriteJSON(w, http.StatusCreated, tokenResponse{Token: tok, Session: SessionJSON(rec)})
}

// dropNulls removes keys set to null: in data, null means "no value".
func dropNulls(d map[string]json.RawMessage) map[string]json.RawMessage {
	for k, v := range d {
		if v == nil || string(v) == "null" {
			delete(d, k)
		}
	}
	if len(d) == 0 {
		return nil
	}
	return d
}

type verifyRequest struct {
	Token  string            `json:"token"`
	Client sessionkit.Client `json:"client"`
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	var req verifyRequest
	if !s.decode(w, r, &req) {
		return
	}
	rec, err := s.m.Validate(r.Context(), req.Token, req.Client)
	if err != nil {
		s.fail(w, r, err, http.StatusUnauthorized)
		return
	}
	WriteJSON(w, http.StatusOK, sessionResponse{SessionJSON(rec)})
}

type renewRequest struct {
	Token     string            `json:"token"`
	Subject   string            `json:"subject"`
	AuthLevel int               `json:"auth_level"`
	Client    sessionkit.Client `json:"client"`
}

func (s *Server) renew(w http.ResponseWriter, r *http.Request) {
	var req renewRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.AuthLevel < 0 {
		WriteError(w, http.StatusBadRequest, CodeInvalidRequest, "auth_level must not be negative")
		return
	}
	tok, rec, err := s.m.Renew(r.Context(), req.Token, sessionkit.RenewParams{
		Subject: req.Subject, AuthLevel: req.AuthLevel, Client: req.Client,
	})
	if err != nil {
		s.fail(w, r, err, http.StatusUnauthorized)
		return
	}
	WriteJSON(w, http.StatusOK, tokenResponse{Token: tok, Session: SessionJSON(rec)})
}

type logoutRequest struct {
	Token string `json:"token"`
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	var req logoutRequest
	if !s.decode(w, r, &req) {
		return
	}
	if err := s.m.Logout(r.Context(), req.Token); err != nil {
		s.fail(w, r, err, http.StatusUnauthorized)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request) {
	rec, err := s.m.Get(r.Context(), r.PathValue("handle"))
	if err != nil {
		s.fail(w, r, err, http.StatusNotFound)
		return
	}
	WriteJSON(w, http.StatusOK, sessionResponse{SessionJSON(rec)})
}

type patchRequest struct {
	// Data maps keys to new values; null removes a key.
	Data map[string]json.RawMessage `json:"data"`
	// Version, when given, makes the change conditional on the session
	// still being at that version.
	Version *uint64 `json:"version"`
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request) {
	var req patchRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.Data == nil {
		WriteError(w, http.StatusBadRequest, CodeInvalidRequest, "data is required: an object of keys to set, null to remove")
		return
	}
	var version uint64
	if req.Version != nil {
		if *req.Version == 0 {
			// Versions start at 1; the core reads 0 as "no check".
			WriteError(w, http.StatusConflict, CodeVersionConflict, "the session changed since the given version")
			return
		}
		version = *req.Version
	}
	rec, err := s.m.UpdateData(r.Context(), r.PathValue("handle"), version, req.Data)
	if err != nil {
		s.fail(w, r, err, http.StatusNotFound)
		return
	}
	WriteJSON(w, http.StatusOK, sessionResponse{SessionJSON(rec)})
}

func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
	_, err := s.m.Revoke(r.Context(), r.PathValue("handle"), sessionkit.ReasonOperator)
	if err != nil && !isEnded(err) {
		s.fail(w, r, err, http.StatusNotFound)
		return
	}
	// Revoking an ended session again is a success: the caller's intent
	// holds either way, and retries are safe.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

func isEnded(err error) bool {
	return !errors.Is(err, sessionkit.ErrStore) && (errors.Is(err, sessionkit.ErrRevoked) || errors.Is(err, sessionkit.ErrExpired))
}

type listResponse struct {
	Sessions []Session `json:"sessions"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	recs, err := s.m.List(r.Context(), r.PathValue("subject"))
	if err != nil {
		s.fail(w, r, err, http.StatusNotFound)
		return
	}
	out := listResponse{Sessions: make([]Session, 0, len(recs))}
	for _, rec := range recs {
		out.Sessions = append(out.Sessions, SessionJSON(rec))
	}
	WriteJSON(w, http.StatusOK, out)
}

func (s *Server) revokeSubject(w http.ResponseWriter, r *http.Request) {
	subject := r.PathValue("subject")
	if strings.TrimSpace(subject) == "" {
		WriteError(w, http.StatusBadRequest, CodeInvalidRequest, "subject is required")
		return
	}
	n, err := s.m.RevokeSubject(r.Context(), subject, r.URL.Query().Get("except"), sessionkit.ReasonRevokeAll)
	if err != nil {
		s.fail(w, r, err, http.StatusNotFound)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]int{"revoked": n})
}

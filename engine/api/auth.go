package api

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"

	"github.com/understudy-nvr/understudy/proto/understudy/v1/understudyv1connect"
)

// Role is what a caller may do.
type Role int

// The roles, in increasing power.
const (
	RoleNone Role = iota
	RoleRead
	// RolePeer is another node of the cluster (its cluster credential):
	// it reads, and passes on the node settings an operator changed
	// through it (peerProcedures).
	RolePeer
	RoleAdmin
)

// peerProcedures are the writes a node passes to the node they concern,
// with its cluster credential, after checking the caller's admin role.
var peerProcedures = map[string]bool{
	understudyv1connect.ClusterServiceUpdateNodeProcedure: true,
}

// readProcedures are the read-only calls. Every other procedure (the
// writes of StreamService, and any added later) needs the admin role.
var readProcedures = map[string]bool{
	understudyv1connect.StreamServiceGetStreamProcedure:       true,
	understudyv1connect.StreamServiceListStreamsProcedure:     true,
	understudyv1connect.RecordingServiceGetTimelineProcedure:  true,
	understudyv1connect.RecordingServiceListSegmentsProcedure: true,
	understudyv1connect.RecordingServiceExportClipProcedure:   true,
	understudyv1connect.RecordingServiceReadSegmentProcedure:  true,
	understudyv1connect.ClusterServiceListNodesProcedure:      true,
	understudyv1connect.ClusterServiceGetPlacementProcedure:   true,
	understudyv1connect.ClusterServiceWatchEventsProcedure:    true,
}

// Authenticator checks bearer tokens. Tokens are compared by their SHA-256
// digests in constant time, so neither content nor length leaks by timing.
type Authenticator struct {
	admin, read   [sha256.Size]byte
	hasRead       bool
	anonymousRead bool
	// peers are the digests of the cluster credentials (PeerToken of each
	// gossip key): other nodes' federated reads carry one, never a user's
	// token. They grant the read role.
	peers atomic.Pointer[[][sha256.Size]byte]
}

// PeerToken derives the cluster credential of a gossip key: nodes that
// share the key authenticate to each other with it, and rotating the key
// rotates the credential. It is a MAC of a fixed label, so it reveals
// nothing of the key.
func PeerToken(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("understudy peer credential v1"))
	return "peer." + hex.EncodeToString(m.Sum(nil))
}

// SetPeerTokens replaces the accepted cluster credentials.
func (a *Authenticator) SetPeerTokens(tokens []string) {
	ds := make([][sha256.Size]byte, len(tokens))
	for i, t := range tokens {
		ds[i] = sha256.Sum256([]byte(t))
	}
	a.peers.Store(&ds)
}

// NewAuthenticator returns an authenticator for the tokens; an empty read
// token disables the read-only role (admin can still read).
func NewAuthenticator(adminToken, readToken string, anonymousRead bool) *Authenticator {
	a := &Authenticator{admin: sha256.Sum256([]byte(adminToken)), anonymousRead: anonymousRead}
	if readToken != "" {
		a.read, a.hasRead = sha256.Sum256([]byte(readToken)), true
	}
	return a
}

var (
	errNoToken    = errors.New("missing bearer token (Authorization: Bearer <token>)")
	errNotBearer  = errors.New("the Authorization header must use the Bearer scheme (Authorization: Bearer <token>)")
	errBadToken   = errors.New("invalid bearer token")
	errPermission = errors.New("this call needs the admin role")
)

// Authenticate returns the role of the Authorization header value, or an
// error: no token (and no anonymous read) or a token that matches no role.
func (a *Authenticator) Authenticate(header string) (Role, error) {
	if header == "" {
		if a.anonymousRead {
			return RoleRead, nil
		}
		return RoleNone, errNoToken
	}
	// The scheme is case-insensitive (RFC 9110 §11.1).
	scheme, tok, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return RoleNone, errNotBearer
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" {
		return RoleNone, errNoToken
	}
	d := sha256.Sum256([]byte(tok))
	isAdmin := subtle.ConstantTimeCompare(d[:], a.admin[:]) == 1
	isRead := subtle.ConstantTimeCompare(d[:], a.read[:]) == 1 && a.hasRead
	isPeer := false
	if ps := a.peers.Load(); ps != nil {
		for _, p := range *ps {
			isPeer = subtle.ConstantTimeCompare(d[:], p[:]) == 1 || isPeer
		}
	}
	switch {
	case isAdmin:
		return RoleAdmin, nil
	case isPeer:
		return RolePeer, nil
	case isRead:
		return RoleRead, nil
	}
	return RoleNone, errBadToken
}

// required is the role a procedure needs.
func required(procedure string) Role {
	switch {
	case readProcedures[procedure]:
		return RoleRead
	case peerProcedures[procedure]:
		return RolePeer
	}
	return RoleAdmin
}

// authorize returns a connect error for a caller that may not call
// procedure.
func (a *Authenticator) authorize(header, procedure string) error {
	role, err := a.Authenticate(header)
	if err != nil {
		return connect.NewError(connect.CodeUnauthenticated, err)
	}
	if role < required(procedure) {
		return connect.NewError(connect.CodePermissionDenied, errPermission)
	}
	return nil
}

// Interceptor returns the connect interceptor enforcing the roles on
// unary and streaming calls.
func (a *Authenticator) Interceptor() connect.Interceptor { return authInterceptor{a} }

type authInterceptor struct{ a *Authenticator }

func (i authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		if err := i.a.authorize(req.Header().Get("Authorization"), req.Spec().Procedure); err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (i authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next // the server side does not dial
}

func (i authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := i.a.authorize(conn.RequestHeader().Get("Authorization"), conn.Spec().Procedure); err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// httpRequire wraps a plain HTTP handler with the same bearer-token check:
// 401 without a valid token, 403 for a role below need.
func (a *Authenticator) httpRequire(need Role, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role, err := a.Authenticate(r.Header.Get("Authorization"))
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="understudy"`)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if role < need {
			http.Error(w, "this endpoint needs the admin role", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// connectGate checks the token of a Connect, gRPC or gRPC-Web call before
// the request body is read, answering in the call's protocol: without it
// an unauthenticated client could make the node read, decompress and
// parse a request of any size before being refused. The interceptor still
// checks every call (the gate only stops the ones no token allows).
func (a *Authenticator) connectGate(h http.Handler) http.Handler {
	ew := connect.NewErrorWriter()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := a.authorize(r.Header.Get("Authorization"), r.URL.Path); err != nil && ew.IsSupported(r) {
			_ = ew.Write(w, r, err) // (a write error: the client is gone)
			return
		}
		h.ServeHTTP(w, r)
	})
}

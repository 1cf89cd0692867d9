package sessiond

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/store/boltstore"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/store/pgstore"
	"github.com/sessionkit/sessionkit/store/redisstore"
)

// BoltFileName is the embedded store's file in the data directory.
const BoltFileName = "sessions.db"

// ErrNotBuiltIn reports a store URL whose store is not part of this build.
var ErrNotBuiltIn = errors.New("sessiond: store not built in")

// StoreOptions tune OpenStore.
type StoreOptions struct {
	// DataDir holds the bolt file when the URL is empty.
	DataDir string
	// LockTimeout bounds the wait for the bolt file lock. A running server
	// holds it, so a second process fails after this long.
	LockTimeout time.Duration
	// Now is the manager's clock, for stores that age entries.
	Now func() time.Time
	// Migrate makes a PostgreSQL store create or update its schema.
	Migrate bool
	// Namespace separates deployments sharing a server: the Redis key
	// prefix or the PostgreSQL schema. Empty takes the store's default.
	Namespace string
	// NearCache turns on the Redis or PostgreSQL store's in-process cache
	// with instant invalidation; NearCacheTTL bounds an entry's life (0:
	// the store's default).
	NearCache    bool
	NearCacheTTL time.Duration
}

// StoreKind names the store a URL selects: "bolt", "memory", "redis" or
// "postgres".
func StoreKind(url string) (string, error) {
	scheme, _, _ := strings.Cut(url, ":")
	switch {
	case url == "" || scheme == "bolt":
		return "bolt", nil
	case scheme == "memory":
		return "memory", nil
	case scheme == "redis" || scheme == "rediss" || scheme == "redis+cluster" || scheme == "rediss+cluster":
		return "redis", nil
	case scheme == "postgres" || scheme == "postgresql":
		return "postgres", nil
	}
	return "", fmt.Errorf("sessiond: unknown store URL scheme %q (want bolt:, memory:, redis://, rediss://, redis+cluster://, postgres:// or postgresql://)", scheme)
}

// BoltPath returns the bolt file a store URL names: the one in dataDir for
// an empty URL, PATH for bolt:PATH.
func BoltPath(url, dataDir string) string {
	if p, ok := strings.CutPrefix(url, "bolt:"); ok && p != "" {
		return p
	}
	return filepath.Join(dataDir, BoltFileName)
}

// OpenStore opens the store url selects (see StoreKind). Errors never quote
// the URL, which may hold a password.
func OpenStore(ctx context.Context, url string, o StoreOptions) (sessionkit.Store, error) {
	kind, err := StoreKind(url)
	if err != nil {
		return nil, err
	}
	switch kind {
	case "bolt":
		return openBolt(BoltPath(url, o.DataDir), o)
	case "memory":
		return memstore.New(memstore.Options{Now: o.Now}), nil
	case "postgres":
		st, err := pgstore.New(ctx, pgstore.Options{URL: url, Now: o.Now, AutoMigrate: o.Migrate, Schema: o.Namespace,
			NearCache: pgstore.NearCacheOptions{Enabled: o.NearCache, TTL: o.NearCacheTTL}})
		if err != nil {
			return nil, err
		}
		return st, nil
	case "redis":
		prefix := ""
		if o.Namespace != "" {
			prefix = o.Namespace + ":"
		}
		st, err := redisstore.New(ctx, redisstore.Options{URL: url, Prefix: prefix, NearCache: o.NearCache, NearCacheTTL: o.NearCacheTTL})
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrNotBuiltIn, kind)
}

func openBolt(path string, o StoreOptions) (sessionkit.Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("%w: %v", sessionkit.ErrStore, err)
	}
	st, err := boltstore.Open(path, boltstore.Options{Timeout: o.LockTimeout})
	if err != nil {
		// The usual cause is a running server holding the file lock.
		return nil, fmt.Errorf("%w (one process at a time holds the bolt file: while sessiond runs, use its HTTP API)", err)
	}
	return st, nil
}

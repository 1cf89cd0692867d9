package pgstore_test

import (
	"context"
	"errors"
	"log"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/store/pgstore"
)

// The schema is created once by an explicit step (sessiond migrate calls
// Migrate); serving processes then open the store without AutoMigrate and
// learn from ErrNotMigrated if that step was forgotten.
func Example() {
	ctx := context.Background()
	store, err := pgstore.New(ctx, pgstore.Options{
		URL:       "postgres://sessions@db.internal:5432/app",
		NearCache: pgstore.NearCacheOptions{Enabled: true, TTL: 2 * time.Second},
	})
	if errors.Is(err, pgstore.ErrNotMigrated) {
		log.Fatal("the sessions schema is missing: run `sessiond migrate`")
	}
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	mgr, err := sessionkit.New(store, sessionkit.Config{})
	if err != nil {
		log.Fatal(err)
	}
	_ = mgr // mgr.LoadAndSave(handler) serves requests with sessions in PostgreSQL
}

// Migrate is idempotent and safe to run from several processes at once.
func ExampleStore_Migrate() {
	ctx := context.Background()
	store, err := pgstore.New(ctx, pgstore.Options{
		URL:         "postgres://admin@db.internal:5432/app",
		AutoMigrate: true, // or call store.Migrate(ctx) on an existing Store
	})
	if err != nil {
		log.Fatal(err)
	}
	store.Close()
}

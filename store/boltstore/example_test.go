package boltstore_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/store/boltstore"
	"github.com/sessionkit/sessionkit/storetest"
)

func Example() {
	dir, err := os.MkdirTemp("", "boltstore-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)

	s, err := boltstore.Open(filepath.Join(dir, "sessions.db"), boltstore.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	ctx := context.Background()
	rec := storetest.NewRecord("user:42", time.Now())
	if _, err := s.Create(ctx, rec, sessionkit.Limit{Max: 5, Policy: sessionkit.LimitEvictOldest}); err != nil {
		fmt.Println(err)
		return
	}
	list, err := s.ListSubject(ctx, "user:42")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(len(list), list[0].Handle == rec.Handle)
	// Output: 1 true
}

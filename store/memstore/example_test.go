package memstore_test

import (
	"context"
	"fmt"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/store/memstore"
	"github.com/sessionkit/sessionkit/storetest"
)

func Example() {
	ctx := context.Background()
	s := memstore.New(memstore.Options{MaxSessions: 10_000})
	defer s.Close()

	rec := storetest.NewRecord("user:42", time.Now())
	if _, err := s.Create(ctx, rec, sessionkit.Limit{}); err != nil {
		fmt.Println(err)
		return
	}
	got, err := s.Get(ctx, rec.TokenHash)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(got.Subject, got.Version)
	// Output: user:42 1
}

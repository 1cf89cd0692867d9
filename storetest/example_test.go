package storetest_test

import (
	"fmt"
	"time"

	"github.com/sessionkit/sessionkit/storetest"
)

func ExampleNewRecord() {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	rec := storetest.NewRecord("user:42", now)
	fmt.Println(rec.Subject, rec.Version, rec.Live(now), rec.IdleDeadline.Sub(now), rec.PurgeAt.Sub(now))
	// Output: user:42 0 true 30m0s 1h30m0s
}

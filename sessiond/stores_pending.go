package sessiond

import (
	"context"
	"fmt"

	"github.com/sessionkit/sessionkit"
)

func openBolt(path string, o StoreOptions) (sessionkit.Store, error) {
	return nil, fmt.Errorf("%w: bolt", ErrNotBuiltIn)
}

func openRedis(ctx context.Context, url string, o StoreOptions) (sessionkit.Store, error) {
	return nil, fmt.Errorf("%w: redis", ErrNotBuiltIn)
}

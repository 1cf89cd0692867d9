// Command sessiond is the session service: an HTTP API for server-side
// sessions, forward auth for reverse proxies, access tokens, monitoring, an
// admin console at /admin, and operator commands. Run `sessiond -h` for its
// commands and settings; see package sessiond.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sessionkit/sessionkit/admin"
	"github.com/sessionkit/sessionkit/sessiond"
	"github.com/sessionkit/sessionkit/store/memstore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	cli := sessiond.CLI{
		Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr,
		Extensions: []func(sessiond.ServeParts) (sessiond.Extension, error){console},
	}
	code := cli.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// console builds the admin console. Admin sessions live in memory, apart
// from users' sessions: a restart signs operators out, and no user-facing
// operation can reach them.
func console(p sessiond.ServeParts) (sessiond.Extension, error) {
	o := admin.Options{
		Store:       memstore.New(memstore.Options{MaxSessions: 10_000}),
		CheckAPIKey: p.Keys.Check,
		Users:       p.Manager,
		Logger:      p.Logger,
	}
	if mon := p.Monitoring; mon != nil {
		if mon.History != nil {
			o.History = mon.History
		}
		if mon.Stream != nil {
			o.Stream = mon.Stream
		}
		if mon.Metrics != nil {
			o.Series = mon.Metrics
		}
	}
	return admin.New(o)
}

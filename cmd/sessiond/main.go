// Command sessiond is the session service: an HTTP API for server-side
// sessions, forward auth for reverse proxies, and operator commands. Run
// `sessiond -h` for its commands and settings; see package sessiond.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/sessionkit/sessionkit/sessiond"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := sessiond.CLI{Getenv: os.Getenv, Stdout: os.Stdout, Stderr: os.Stderr}.Main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// Command webapp is a small login demo on sessionkit with the embedded store.
// It shows a session's whole life in a browser: anonymous visits, login
// (which renews the token), the user's other sessions with revoke buttons,
// and logout.
//
//	go run ./examples/webapp            # http://localhost:8081
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/store/boltstore"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8081", "listen address")
	dataDir := flag.String("data-dir", "webapp-data", "directory of the session database")
	flag.Parse()
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if err := run(*addr, *dataDir, logger); err != nil {
		logger.Error("webapp stopped", "err", err)
		os.Exit(1)
	}
}

func run(addr, dataDir string, logger *slog.Logger) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	store, err := boltstore.Open(filepath.Join(dataDir, "sessions.db"), boltstore.Options{})
	if err != nil {
		return err
	}
	defer store.Close()
	mgr, err := sessionkit.New(store, sessionkit.Config{
		Events:                sessionkit.SlogSink{Logger: logger},
		MaxSessionsPerSubject: 10,
		LimitPolicy:           sessionkit.LimitEvictOldest,
	})
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go mgr.RunSweeper(ctx, time.Minute)

	srv := &http.Server{
		Addr:              addr,
		Handler:           newApp(mgr).routes(),
		ReadHeaderTimeout: 5 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("webapp listening", "url", "http://"+addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

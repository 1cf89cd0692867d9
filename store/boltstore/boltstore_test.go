package boltstore

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sessionkit/sessionkit"
	"github.com/sessionkit/sessionkit/internal/benchcpu"
	"github.com/sessionkit/sessionkit/storetest"
)

func open(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	s, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func newStore(t *testing.T) sessionkit.Store {
	return open(t, filepath.Join(t.TempDir(), "sessions.db"), Options{})
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newStore)
}

func TestKV(t *testing.T) {
	storetest.RunKV(t, func(t *testing.T) sessionkit.KVStore {
		return open(t, filepath.Join(t.TempDir(), "sessions.db"), Options{})
	})
}

// check runs bbolt's consistency check and compares the indexes with the
// records.
func check(t *testing.T, s *Store) {
	t.Helper()
	err := s.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		tn := newTxn(tx)
		records, subjects := 0, 0
		err := tn.records.ForEach(func(k, v []byte) error {
			records++
			r, err := tn.load(k)
			if err != nil {
				return err
			}
			if h := tn.hashes.Get(r.TokenHash[:]); string(h) != r.Handle {
				return fmt.Errorf("hash of %s names %q", r.Handle, h)
			}
			if tn.expiry.Get(expiryKey(r)) == nil {
				return fmt.Errorf("%s missing from the expiry index", r.Handle)
			}
			if indexed(r) {
				subjects++
				if tn.subjects.Get(subjectKey(r)) == nil {
					return fmt.Errorf("%s missing from the subject index", r.Handle)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, c := range []struct {
			b    *bolt.Bucket
			want int
		}{{tn.hashes, records}, {tn.expiry, records}, {tn.subjects, subjects}} {
			if n := c.b.Stats().KeyN; n != c.want {
				return fmt.Errorf("index has %d keys, want %d", n, c.want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("database check: %v", err)
	}
}

func TestIndexesAfterConformance(t *testing.T) {
	var stores []*Store
	storetest.Run(t, func(t *testing.T) sessionkit.Store {
		s := open(t, filepath.Join(t.TempDir(), "sessions.db"), Options{NoSync: true})
		stores = append(stores, s)
		t.Cleanup(func() { check(t, s) })
		return s
	})
	if len(stores) == 0 {
		t.Fatal("no store was checked")
	}
}

func TestRestart(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "sessions.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rec := storetest.NewRecord("user:restart", now)
	if _, err := s.Create(ctx, rec, sessionkit.Limit{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutValue(ctx, "key", []byte("value"), 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Get(ctx, rec.TokenHash); !errors.Is(err, sessionkit.ErrStore) {
		t.Fatalf("Get after Close: error = %v, want ErrStore", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, sessionkit.ErrStore) {
		t.Fatalf("Ping after Close: error = %v, want ErrStore", err)
	}

	s = open(t, path, Options{})
	got, err := s.Get(ctx, rec.TokenHash)
	if err != nil {
		t.Fatalf("Get after reopening: %v", err)
	}
	if got.Handle != rec.Handle || got.Version != 1 || !got.IdleDeadline.Equal(rec.IdleDeadline) || string(got.Data["theme"]) != `"dark"` {
		t.Fatalf("record after reopening = %+v", got)
	}
	if l, err := s.ListSubject(ctx, "user:restart"); err != nil || len(l) != 1 {
		t.Fatalf("ListSubject after reopening = %d records, %v", len(l), err)
	}
	if v, ver, err := s.GetValue(ctx, "key"); err != nil || string(v) != "value" || ver != 1 {
		t.Fatalf("GetValue after reopening = %q, %d, %v", v, ver, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sessions.db")
	open(t, path, Options{})
	start := time.Now()
	s, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, sessionkit.ErrStore) || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second Open error = %v, want a lock error wrapping ErrStore", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}

func TestOpenError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "not-a-db")
	if err := os.WriteFile(path, []byte(strings.Repeat("garbage!", 1024)), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{}); !errors.Is(err, sessionkit.ErrStore) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open(garbage) error = %v, want ErrStore", err)
	}
}

func TestCorruptRecord(t *testing.T) {
	ctx := t.Context()
	s := open(t, filepath.Join(t.TempDir(), "sessions.db"), Options{NoSync: true})
	valid, err := storetest.NewRecord("user:x", time.Now()).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		value []byte
	}{
		{"empty", []byte{}},
		{"garbage", []byte("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")},
		{"wrong version", append([]byte{9}, valid[1:]...)},
		{"truncated", valid[:len(valid)/2]},
		{"trailing", append(valid[:len(valid):len(valid)], 0)},
		{"other handle", valid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := storetest.NewRecord("user:corrupt", time.Now())
			if _, err := s.Create(ctx, rec, sessionkit.Limit{}); err != nil {
				t.Fatal(err)
			}
			err := s.db.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(bucketRecords).Put([]byte(rec.Handle), tc.value)
			})
			if err != nil {
				t.Fatal(err)
			}
			calls := map[string]error{
				"Get":         func() error { _, err := s.Get(ctx, rec.TokenHash); return err }(),
				"GetByHandle": func() error { _, err := s.GetByHandle(ctx, rec.Handle); return err }(),
				"ListSubject": func() error { _, err := s.ListSubject(ctx, rec.Subject); return err }(),
				"Touch":       s.Touch(ctx, rec.Handle, rec.Activity),
				"Update":      func() error { _, err := s.Update(ctx, rec, sessionkit.Limit{}); return err }(),
				"Revoke":      func() error { _, err := s.Revoke(ctx, rec.Handle, sessionkit.Revocation{At: time.Now()}); return err }(),
			}
			for name, err := range calls {
				if !errors.Is(err, sessionkit.ErrStore) {
					t.Errorf("%s of a corrupt record: error = %v, want ErrStore", name, err)
				}
			}
			// Clean up so the next case starts from a consistent index.
			err = s.db.Update(func(tx *bolt.Tx) error {
				tn := newTxn(tx)
				rec.Version = 1
				return tn.del(rec)
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSubjectWithNUL(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "sessions.db"), Options{NoSync: true})
	rec := storetest.NewRecord("user\x00x", time.Now())
	if _, err := s.Create(t.Context(), rec, sessionkit.Limit{}); !errors.Is(err, sessionkit.ErrStore) {
		t.Fatalf("Create with a NUL in the subject: error = %v, want ErrStore", err)
	}
}

func TestTimeKeyOrder(t *testing.T) {
	times := []time.Time{
		{},
		time.Date(1, 1, 1, 0, 0, 1, 0, time.UTC), // before the int64 range: clamped
		time.Unix(-1e9, 0),
		time.Unix(-1, 0),
		time.Unix(0, 1),
		time.Unix(1e9, 0),
		time.Unix(1e9, 1),
		time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC), // clamped
	}
	for i := 1; i < len(times); i++ {
		a, b := timeKey(nil, times[i-1]), timeKey(nil, times[i])
		if string(a) > string(b) {
			t.Errorf("key of %v sorts after key of %v", times[i-1], times[i])
		}
	}
}

// crashEnv names the database file the crash child writes to.
const crashEnv = "BOLTSTORE_CRASH_DB"

// TestCrashChild is the child process of TestCrash. It writes sessions in a
// loop and prints the handle and token hash of each after its commit.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		// Only TestCrash runs it, as a child process; on its own it has
		// nothing to do (and does not count as skipped).
		return
	}
	s, err := Open(path, Options{})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	ctx := context.Background()
	lim := sessionkit.Limit{Max: 1000, Policy: sessionkit.LimitEvictOldest, Now: time.Now()}
	for i := 0; ; i++ {
		rec := storetest.NewRecord(fmt.Sprintf("user:%d", i%7), time.Now())
		if _, err := s.Create(ctx, rec, lim); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		rec.Data["i"] = []byte(fmt.Sprint(i))
		if _, err := s.Update(ctx, rec, lim); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Printf("ok %s %x\n", rec.Handle, rec.TokenHash)
	}
}

// TestCrash kills a process in the middle of a write loop and checks that
// the file opens and every session it reported committed is there.
func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	path := filepath.Join(t.TempDir(), "sessions.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() }) // if the test fails early
	type committed struct {
		handle string
		hash   sessionkit.TokenHash
	}
	var done []committed
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] == "=== RUN" {
			continue
		}
		if f[0] == "error" {
			t.Fatalf("child: %s", sc.Text())
		}
		if f[0] != "ok" || len(f) != 3 {
			continue
		}
		var c committed
		c.handle = f[1]
		if b, err := hex.DecodeString(f[2]); err != nil || len(b) != 32 {
			t.Fatalf("child printed %q", sc.Text())
		} else {
			copy(c.hash[:], b)
		}
		done = append(done, c)
		if len(done) == 150 && !killed {
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	cmd.Wait()
	if !killed {
		t.Fatalf("child stopped after %d sessions before it was killed", len(done))
	}

	s := open(t, path, Options{})
	check(t, s)
	for _, c := range done {
		r, err := s.Get(t.Context(), c.hash)
		if err != nil {
			t.Fatalf("committed session %s: %v", c.handle, err)
		}
		if r.Handle != c.handle || r.Version != 2 {
			t.Fatalf("committed session %s: got handle %s version %d", c.handle, r.Handle, r.Version)
		}
	}
	t.Logf("killed after %d committed sessions; all readable", len(done))
}

func benchStore(b *testing.B, opts Options) (*Store, []*sessionkit.Record) {
	s := open(b, filepath.Join(b.TempDir(), "sessions.db"), opts)
	ctx := context.Background()
	recs := make([]*sessionkit.Record, 1000)
	err := s.db.Update(func(tx *bolt.Tx) error {
		tn := newTxn(tx)
		for i := range recs {
			recs[i] = storetest.NewRecord(fmt.Sprintf("user:%d", i%100), time.Now())
			recs[i].Version = 1
			if err := tn.put(nil, recs[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := s.Get(ctx, recs[0].TokenHash); err != nil {
		b.Fatal(err)
	}
	return s, recs
}

func BenchmarkGet(b *testing.B) {
	s, recs := benchStore(b, Options{})
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	defer benchcpu.Report(b)()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Get(ctx, recs[i%len(recs)].TokenHash); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}

func benchmarkUpdate(b *testing.B, opts Options) {
	s, recs := benchStore(b, opts)
	ctx := context.Background()
	b.ReportAllocs()
	defer benchcpu.Report(b)()
	i := 0
	for b.Loop() {
		r := recs[i%len(recs)]
		if _, err := s.Update(ctx, r, sessionkit.Limit{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkUpdate includes an fsync per commit.
func BenchmarkUpdate(b *testing.B)       { benchmarkUpdate(b, Options{}) }
func BenchmarkUpdateNoSync(b *testing.B) { benchmarkUpdate(b, Options{NoSync: true}) }

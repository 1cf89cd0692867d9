package storetest

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/sessionkit/sessionkit"
)

// RunKV runs the KVStore conformance tests. newKV is called once per subtest
// and must return a fresh store with no keys the tests use; it registers its
// own cleanup with t.Cleanup.
func RunKV(t *testing.T, newKV func(t *testing.T) sessionkit.KVStore) {
	t.Run("MissingKey", func(t *testing.T) {
		kv := newKV(t)
		_, _, err := kv.GetValue(t.Context(), "storetest-missing")
		if !errors.Is(err, sessionkit.ErrNotFound) {
			t.Fatalf("GetValue(missing) error = %v, want ErrNotFound", err)
		}
	})

	t.Run("CompareAndSwap", func(t *testing.T) {
		kv := newKV(t)
		ctx := t.Context()
		const key = "storetest-cas"
		v1, err := kv.PutValue(ctx, key, []byte("one"), 0)
		if err != nil {
			t.Fatalf("PutValue(create): %v", err)
		}
		if v1 == 0 {
			t.Fatalf("PutValue(create) version = 0, want > 0")
		}
		steps := []struct {
			name   string
			value  string
			expect uint64
			err    error
		}{
			{"create again", "x", 0, sessionkit.ErrConflict},
			{"wrong version", "x", v1 + 1, sessionkit.ErrConflict},
			{"right version", "two", v1, nil},
			{"stale version", "x", v1, sessionkit.ErrConflict},
		}
		last := v1
		for _, st := range steps {
			v, err := kv.PutValue(ctx, key, []byte(st.value), st.expect)
			if st.err != nil {
				if !errors.Is(err, st.err) {
					t.Fatalf("%s: PutValue error = %v, want %v", st.name, err, st.err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: PutValue: %v", st.name, err)
			}
			if v <= last {
				t.Fatalf("%s: version %d, want more than %d", st.name, v, last)
			}
			last = v
		}
		got, v, err := kv.GetValue(ctx, key)
		if err != nil {
			t.Fatalf("GetValue: %v", err)
		}
		if string(got) != "two" || v != last {
			t.Fatalf("GetValue = %q, %d; want %q, %d", got, v, "two", last)
		}
		// The returned slice belongs to the caller.
		got[0] = 'X'
		again, _, err := kv.GetValue(ctx, key)
		if err != nil || string(again) != "two" {
			t.Fatalf("after changing the returned slice GetValue = %q, %v; want %q", again, err, "two")
		}
		if _, err := kv.PutValue(ctx, "storetest-absent", []byte("x"), 7); !errors.Is(err, sessionkit.ErrConflict) {
			t.Fatalf("PutValue(missing key, expect 7) error = %v, want ErrConflict", err)
		}
		if _, _, err := kv.GetValue(ctx, "storetest-absent"); !errors.Is(err, sessionkit.ErrNotFound) {
			t.Fatalf("a failed PutValue created the key: GetValue error = %v, want ErrNotFound", err)
		}
	})

	t.Run("Binary", func(t *testing.T) {
		kv := newKV(t)
		ctx := t.Context()
		val := []byte{0, 1, 2, 0xff, 0, '\n'}
		v, err := kv.PutValue(ctx, "storetest-bin", val, 0)
		if err != nil {
			t.Fatalf("PutValue: %v", err)
		}
		got, gv, err := kv.GetValue(ctx, "storetest-bin")
		if err != nil || string(got) != string(val) || gv != v {
			t.Fatalf("GetValue = %x, %d, %v; want %x, %d", got, gv, err, val, v)
		}
	})

	t.Run("ConcurrentIncrements", func(t *testing.T) {
		kv := newKV(t)
		ctx := t.Context()
		const key = "storetest-counter"
		if _, err := kv.PutValue(ctx, key, []byte("0"), 0); err != nil {
			t.Fatalf("PutValue: %v", err)
		}
		const workers, each = 8, 5
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Go(func() {
				for range each {
					for {
						b, v, err := kv.GetValue(ctx, key)
						if err != nil {
							errs <- err
							return
						}
						n, err := strconv.Atoi(string(b))
						if err != nil {
							errs <- fmt.Errorf("stored value %q: %v", b, err)
							return
						}
						_, err = kv.PutValue(ctx, key, []byte(strconv.Itoa(n+1)), v)
						if err == nil {
							break
						}
						if !errors.Is(err, sessionkit.ErrConflict) {
							errs <- err
							return
						}
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		b, _, err := kv.GetValue(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != strconv.Itoa(workers*each) {
			t.Fatalf("counter = %s, want %d (lost updates)", b, workers*each)
		}
	})
}

package sessiond

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadKeysGenerates(t *testing.T) {
	dir := t.TempDir()
	keys, path, err := LoadKeys(dir, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if path != filepath.Join(dir, FirstKeyFileName) || keys.Len() != 1 {
		t.Fatalf("generated %q, %d keys", path, keys.Len())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	b, _ := os.ReadFile(path)
	key := strings.TrimSpace(string(b))
	if !strings.HasPrefix(key, KeyPrefix) || len(key) != len(KeyPrefix)+43 {
		t.Fatalf("generated key %q", key)
	}
	id, ok := keys.Check(key)
	if !ok || id != HashKey(key).ID || len(id) != 8 {
		t.Fatalf("Check(generated) = %q, %v", id, ok)
	}
	hashes, _ := os.ReadFile(filepath.Join(dir, HashFileName))
	if strings.Contains(string(hashes), key) || !strings.HasPrefix(string(hashes), hashPrefix) {
		t.Fatalf("hash file %q", hashes)
	}
	// The next start reads the hash and generates nothing.
	again, path, err := LoadKeys(dir, "", "")
	if err != nil || path != "" || again.Len() != 1 {
		t.Fatalf("second start: %q %d %v", path, again.Len(), err)
	}
	if _, ok := again.Check(key); !ok {
		t.Fatal("key from the hash file not accepted")
	}
}

func TestLoadKeysConfigured(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	os.WriteFile(file, []byte("# comment\n\nsk_file\n"+hashPrefix+hexHash("sk_hashed")+" deploy key\n"), 0o600)
	keys, gen, err := LoadKeys(filepath.Join(dir, "data"), "sk_a, sk_b,,", file)
	if err != nil || gen != "" {
		t.Fatal(gen, err)
	}
	for _, k := range []string{"sk_a", "sk_b", "sk_file", "sk_hashed"} {
		if _, ok := keys.Check(k); !ok {
			t.Errorf("%s not accepted", k)
		}
	}
	for _, k := range []string{"", "sk_", "sk_c", "sk_a ", HashKey("sk_a").ID} {
		if _, ok := keys.Check(k); ok {
			t.Errorf("%q accepted", k)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", FirstKeyFileName)); err == nil {
		t.Error("a key was generated although keys were configured")
	}
	os.WriteFile(file, []byte(hashPrefix+"zz\n"), 0o600)
	if _, _, err := LoadKeys(dir, "", file); err == nil {
		t.Error("malformed hash line accepted")
	}
	if _, _, err := LoadKeys(dir, "", filepath.Join(dir, "missing")); err == nil {
		t.Error("missing key file accepted")
	}
}

func hexHash(key string) string {
	h := HashKey(key).Hash
	const digits = "0123456789abcdef"
	var b strings.Builder
	for _, c := range h {
		b.WriteByte(digits[c>>4])
		b.WriteByte(digits[c&15])
	}
	return b.String()
}

func TestNewKeyUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		k := NewKey()
		if seen[k] {
			t.Fatal("duplicate key")
		}
		seen[k] = true
	}
}

func FuzzLoadKeyFile(f *testing.F) {
	f.Add("sk_a\n# c\nsha256:" + strings.Repeat("ab", 32) + "\n")
	f.Add("sha256:\n")
	f.Fuzz(func(t *testing.T, content string) {
		path := filepath.Join(t.TempDir(), "k")
		os.WriteFile(path, []byte(content), 0o600)
		var k Keys
		if err := k.LoadKeyFile(path); err == nil {
			for _, key := range k.List() {
				if len(key.ID) != 8 {
					t.Fatalf("id %q", key.ID)
				}
			}
		}
	})
}

package sessiond

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyPrefix starts every generated API key, so a leaked key is easy to
// recognise in a scanner.
const KeyPrefix = "sk_"

// hashPrefix marks a line of a key file that holds a key's SHA-256 instead
// of the key.
const hashPrefix = "sha256:"

// APIKey is an accepted API key, known only by its SHA-256 hash.
type APIKey struct {
	// ID names the key in events and listings: the first 8 hex digits of
	// its hash. It reveals nothing usable about the key.
	ID   string
	Hash [32]byte
}

// Keys is a set of accepted API keys. Its zero value accepts nothing.
type Keys struct {
	keys []APIKey
}

// NewKey returns a fresh API key: KeyPrefix and 32 random bytes, base64url.
func NewKey() string {
	var b [32]byte
	rand.Read(b[:])
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// HashKey returns the APIKey entry for key.
func HashKey(key string) APIKey {
	h := sha256.Sum256([]byte(key))
	return APIKey{ID: hex.EncodeToString(h[:4]), Hash: h}
}

// Add accepts key.
func (k *Keys) Add(key APIKey) {
	for _, have := range k.keys {
		if have.Hash == key.Hash {
			return
		}
	}
	k.keys = append(k.keys, key)
}

// AddKeys accepts each of the comma-separated keys in list (as in
// SESSIOND_API_KEY). Empty entries are skipped.
func (k *Keys) AddKeys(list string) {
	for key := range strings.SplitSeq(list, ",") {
		if key = strings.TrimSpace(key); key != "" {
			k.Add(HashKey(key))
		}
	}
}

// Len returns the number of accepted keys.
func (k *Keys) Len() int { return len(k.keys) }

// List returns the accepted keys.
func (k *Keys) List() []APIKey { return append([]APIKey(nil), k.keys...) }

// Check returns the id of the key matching presented. It compares the
// hashes of every key in constant time, so timing reveals neither which key
// matched nor how much of one did.
func (k *Keys) Check(presented string) (id string, ok bool) {
	h := sha256.Sum256([]byte(presented))
	for _, key := range k.keys {
		if subtle.ConstantTimeCompare(h[:], key.Hash[:]) == 1 {
			id, ok = key.ID, true
		}
	}
	return id, ok
}

// LoadKeyFile adds the keys in the file at path: one per line, either the
// key itself or "sha256:" and the hex SHA-256 of the key. Blank lines and
// lines starting with # are skipped.
func (k *Keys) LoadKeyFile(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if hx, ok := strings.CutPrefix(line, hashPrefix); ok {
			// A hash line may carry a comment after the hash.
			hx, _, _ = strings.Cut(hx, " ")
			raw, err := hex.DecodeString(hx)
			if err != nil || len(raw) != sha256.Size {
				return fmt.Errorf("%s:%d: malformed sha256 line", path, n)
			}
			key := APIKey{ID: hx[:8]}
			copy(key.Hash[:], raw)
			k.Add(key)
			continue
		}
		k.Add(HashKey(line))
	}
	return sc.Err()
}

// Key file names in the data directory.
const (
	// HashFileName holds the hashes of the keys the service accepts.
	HashFileName = "api-keys"
	// FirstKeyFileName holds the key generated on first start, readable
	// only by its owner, so the operator can pick it up once.
	FirstKeyFileName = "api-key"
)

// AppendKeyHash records key's hash in the hash file of dataDir, creating it
// with mode 0600.
func AppendKeyHash(dataDir string, key APIKey) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(dataDir, HashFileName), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "%s%x\n", hashPrefix, key.Hash)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// LoadKeys collects the accepted keys: those in env (comma-separated), in
// keyFile (if not empty) and in the hash file of dataDir. When there are
// none, it generates a key, writes it to dataDir/api-key with mode 0600 and
// its hash to the hash file; generated then names the key's file, for the
// log. The key itself is never logged.
func LoadKeys(dataDir, env, keyFile string) (keys *Keys, generated string, err error) {
	keys = &Keys{}
	keys.AddKeys(env)
	if keyFile != "" {
		if err := keys.LoadKeyFile(keyFile); err != nil {
			return nil, "", fmt.Errorf("api key file: %w", err)
		}
	}
	hashFile := filepath.Join(dataDir, HashFileName)
	if err := keys.LoadKeyFile(hashFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("api key hashes: %w", err)
	}
	if keys.Len() > 0 {
		return keys, "", nil
	}
	key := NewKey()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, "", err
	}
	path := filepath.Join(dataDir, FirstKeyFileName)
	// O_EXCL: never overwrite a key an operator may already have copied.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, "", fmt.Errorf("writing the generated api key: %w", err)
	}
	_, err = f.WriteString(key + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, "", err
	}
	k := HashKey(key)
	if err := AppendKeyHash(dataDir, k); err != nil {
		return nil, "", err
	}
	keys.Add(k)
	return keys, path, nil
}

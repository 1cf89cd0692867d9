package sessiond

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// Bad settings are refused before the service writes anything (such as a
// generated API key) to its data dir.
func TestServeRefusesBadSettingsWithoutSideEffects(t *testing.T) {
	for _, args := range [][]string{
		{"-idle-timeout", "500ms"},
		{"-idle-timeout", "10h"},
		{"-token-lifetime", "10ms"},
		{"-bind-ip", "sometimes"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		var stderr bytes.Buffer
		cli := CLI{Getenv: func(string) string { return "" }, Stdout: &bytes.Buffer{}, Stderr: &stderr}
		if code := cli.Main(context.Background(), append(args, "-data-dir", dir, "-addr", "127.0.0.1:0")); code == 0 {
			t.Fatalf("%v: exit code 0", args)
		}
		if stderr.Len() == 0 {
			t.Errorf("%v: no message", args)
		}
		if _, err := os.Stat(dir); !os.IsNotExist(err) {
			t.Errorf("%v: the data dir was created", args)
		}
	}
}

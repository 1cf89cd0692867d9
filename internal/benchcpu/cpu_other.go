//go:build !unix

package benchcpu

import "testing"

// Report reports nothing where the process CPU time is not available.
func Report(b *testing.B) func() { return func() {} }

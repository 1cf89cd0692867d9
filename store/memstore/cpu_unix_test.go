//go:build unix

package memstore_test

import (
	"syscall"
	"testing"
	"time"
)

// reportCPU adds the process CPU time per operation to a benchmark's
// results. On a busy machine wall time per operation mostly measures the
// wait for a core; CPU time still measures the work.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

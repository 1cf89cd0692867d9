//go:build unix

package benchcpu

import (
	"syscall"
	"testing"
	"time"
)

// Report starts measuring; the function it returns reports "cpu-ns/op".
// Use it as `defer benchcpu.Report(b)()`.
func Report(b *testing.B) func() {
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

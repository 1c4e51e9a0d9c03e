package protocol

import (
	"syscall"
	"time"
)

// threadCPU returns the CPU time the calling OS thread has used. Callers
// lock their goroutine to the thread; unlike wall time it does not grow
// while other processes hold the CPU, which makes comparisons on a busy
// machine steadier.
func threadCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_THREAD, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

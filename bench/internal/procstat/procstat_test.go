package procstat

import (
	"os"
	"testing"
	"time"
)

func TestParseStat(t *testing.T) {
	cases := []struct {
		name string
		stat string
		want time.Duration
	}{
		{"a plain command name", "4242 (server) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 37 0 0 20 0 7 0 123 456 789",
			287 * ClockTick},
		{"a command name with spaces and parentheses", "7 (a (b) c) R 1 7 7 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 2 3",
			7 * ClockTick},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseStat([]byte(c.stat))
			if err != nil || got != c.want {
				t.Fatalf("ParseStat = %v, %v; want %v", got, err, c.want)
			}
		})
	}
	t.Run("a truncated line is an error", func(t *testing.T) {
		if _, err := ParseStat([]byte("1 (x) S 1 2 3")); err == nil {
			t.Fatal("no error")
		}
	})
}

func TestParseRSS(t *testing.T) {
	status := "Name:\tserver\nVmPeak:\t  9000 kB\nVmRSS:\t   1536 kB\nThreads:\t5\n"
	if got, err := ParseRSS([]byte(status)); err != nil || got != 1536<<10 {
		t.Fatalf("ParseRSS = %d, %v; want %d", got, err, 1536<<10)
	}
	if _, err := ParseRSS([]byte("Name:\tx\n")); err == nil {
		t.Fatal("ParseRSS without VmRSS: no error")
	}
}

func TestOwnProcess(t *testing.T) {
	// Spin until the process's CPU time has grown by two clock ticks: a
	// reader that parsed the wrong fields would not see it move.
	before, err := CPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		now, err := CPU(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if now >= before+2*ClockTick {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CPU stayed at %v after 10 s of spinning (started at %v)", now, before)
		}
	}
	if rss, err := RSS(os.Getpid()); err != nil || rss < 1<<20 {
		t.Fatalf("RSS = %d, %v; want at least 1 MiB for a Go test binary", rss, err)
	}
}

// Package procstat reads what the bench harness needs about a process from
// Linux's /proc: CPU time (utime + stime) and resident memory.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ClockTick is the unit of the CPU times in /proc/<pid>/stat. Linux reports
// them in USER_HZ, which is 100 on every architecture it supports for user
// space, whatever the kernel's internal HZ is.
const ClockTick = 10 * time.Millisecond

// CPU returns the CPU time the process pid has used so far, user plus
// system, summed over all its threads.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return ParseStat(b)
}

// ParseStat returns utime+stime from the contents of a /proc/<pid>/stat file.
// The command name (field 2) is parenthesised and may itself contain spaces
// and parentheses, so fields are counted from the last ')'.
func ParseStat(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("procstat: no command name in stat")
	}
	// After ") " come field 3 (state) onwards; utime and stime are fields
	// 14 and 15, so the 12th and 13th after the name.
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("procstat: %d fields after the command name, want at least 13", len(f))
	}
	ut, err1 := strconv.ParseUint(string(f[11]), 10, 64)
	st, err2 := strconv.ParseUint(string(f[12]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("procstat: utime/stime: %w", err)
	}
	return time.Duration(ut+st) * ClockTick, nil
}

// RSS returns the resident set size of the process pid in bytes (VmRSS).
func RSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return ParseRSS(b)
}

// ParseRSS returns VmRSS in bytes from the contents of /proc/<pid>/status.
func ParseRSS(b []byte) (uint64, error) {
	for line := range bytes.Lines(b) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("procstat: unexpected VmRSS line %q", bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseUint(string(f[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("procstat: VmRSS: %w", err)
		}
		return kb << 10, nil
	}
	return 0, errors.New("procstat: no VmRSS in status")
}

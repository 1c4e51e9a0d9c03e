// Package fdlimit raises the process's limit on open files, which the idle
// scenario's tens of thousands of sockets need on both ends.
package fdlimit

import "syscall"

// Raise lifts RLIMIT_NOFILE to at least want if it can: the hard limit too
// when the process may (root with CAP_SYS_RESOURCE), else the soft limit up
// to the hard one. It returns the soft limit in force afterwards. Child
// processes started after Raise inherit the raised limit.
func Raise(want uint64) (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Max < want {
		up := syscall.Rlimit{Cur: want, Max: want}
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
			return want, nil
		}
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return l.Cur, nil
}

//go:build race

package load

// sync.Pool drops items at random under the race detector.
const raceEnabled = true

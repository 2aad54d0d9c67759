//go:build race

package sealed

const raceEnabled = true

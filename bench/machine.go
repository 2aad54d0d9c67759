package bench

import (
	"bufio"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// Machine describes the computer a benchmark ran on, for the report (plain
// data; empty fields were not found).
type Machine struct {
	CPUModel    string `json:"cpu_model"`
	CPUs        int    `json:"cpus"`
	GOMAXPROCS  int    `json:"gomaxprocs"`
	MemoryBytes uint64 `json:"memory_bytes"`
	GoVersion   string `json:"go_version"`
	OS          string `json:"os"`
	Arch        string `json:"arch"`
	// LoadAvg is the 1, 5 and 15-minute load averages when the run started: on a shared machine,
	// a load above the CPU count means other work competed for the CPUs.
	LoadAvg string `json:"loadavg,omitempty"`
}

// thisMachine reads what it can; on systems without /proc the CPU model and
// memory stay empty.
func thisMachine() Machine {
	m := Machine{
		CPUs:       runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GoVersion:  runtime.Version(),
		OS:         runtime.GOOS,
		Arch:       runtime.GOARCH,
	}
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) >= 3 {
			m.LoadAvg = strings.Join(f[:3], " ") // 1, 5 and 15 minutes
		}
	}
	if kb := procField("/proc/meminfo", "MemTotal"); kb != "" {
		m.MemoryBytes = parseKB(kb)
	}
	return m
}

// procField returns the value of the first "name: value" line of a /proc
// file, or "".
func procField(path, name string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// parseKB parses "1234 kB" into bytes; 0 if it does not parse.
func parseKB(s string) uint64 {
	n, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(s, "kB")), 10, 64)
	if err != nil {
		return 0
	}
	return n * 1024
}

// residentBytes returns the process's resident set size (VmRSS), 0 where
// /proc/self/status does not exist.
func residentBytes() uint64 { return parseKB(procField("/proc/self/status", "VmRSS")) }

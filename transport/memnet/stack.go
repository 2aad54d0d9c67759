package memnet

import (
	"reflect"
	"runtime"
)

// deliverFunc is the name of the function that calls handlers, as it
// appears in stack traces.
var deliverFunc = runtime.FuncForPC(reflect.ValueOf((*Endpoint).deliver).Pointer()).Name()

// insideHandler reports whether the calling goroutine is running a handler
// call. Go has no goroutine identity, but the goroutine's own stack says
// whether a deliver frame is below us. It costs microseconds, so only Close
// uses it: waiting there for our own handler call would deadlock.
func insideHandler() bool {
	pcs := make([]uintptr, 64)
	for {
		n := runtime.Callers(2, pcs)
		if n < len(pcs) {
			pcs = pcs[:n]
			break
		}
		pcs = make([]uintptr, 2*len(pcs))
	}
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		if f.Function == deliverFunc {
			return true
		}
		if !more {
			return false
		}
	}
}

// Command librclone is File Orbit's shim: it builds rclone as a C shared library
// (librclone.so) exporting the librclone RPC API, RcloneIgnoreSignals and a log hook.
package main

/*
#include <stdlib.h>

struct RcloneRPCResult {
	char* Output;
	int	Status;
};

typedef void (*RcloneLogFn)(int level, const char* text);

static void call_log_fn(RcloneLogFn fn, int level, const char* text) { fn(level, text); }
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"unsafe"

	"github.com/rclone/rclone/fs"
	"github.com/rclone/rclone/fs/config/configstruct"
	"github.com/rclone/rclone/fs/filter"
	"github.com/rclone/rclone/fs/log"
	"github.com/rclone/rclone/fs/rc"
	"github.com/rclone/rclone/lib/atexit"
	"github.com/rclone/rclone/librclone/librclone"

	_ "github.com/rclone/rclone/backend/local"
	_ "github.com/rclone/rclone/backend/s3"
	_ "github.com/rclone/rclone/backend/sftp"
	_ "github.com/rclone/rclone/backend/smb"
	_ "github.com/rclone/rclone/fs/operations"
	_ "github.com/rclone/rclone/fs/sync"
)

func main() {}

// RcloneInitialize starts rclone. Log lines carry neither date nor level: the
// host adds both when it receives them through RcloneSetLogCallback.
//
//export RcloneInitialize
func RcloneInitialize() {
	_ = log.Opt.Format.Set("nolevel")
	librclone.Initialize()
}

//export RcloneFinalize
func RcloneFinalize() { librclone.Finalize() }

//export RcloneRPC
func RcloneRPC(method *C.char, input *C.char) (result C.struct_RcloneRPCResult) {
	output, status := rpc(C.GoString(method), C.GoString(input))
	result.Output = C.CString(output)
	result.Status = C.int(status)
	return result
}

// rpc runs plain calls (no "_" parameter, no flat config/filter option) directly. rclone's
// librclone.RPC registers every call as a job kept for a minute and reflects over all
// config and filter options on each call: ~45 µs and growing GC work per rc/noop.
// Everything else, and every malformed input, goes through librclone.RPC unchanged.
func rpc(method, input string) (output string, status int) {
	var in rc.Params
	if json.Unmarshal([]byte(input), &in) != nil || in == nil || needsJob(in) {
		return librclone.RPC(method, input)
	}
	call := rc.Calls.Get(method)
	if call == nil || call.NeedsRequest || call.NeedsResponse {
		return librclone.RPC(method, input)
	}
	out, err := runCall(call, in)
	if err != nil {
		return encode(rc.Error(method, in, err, http.StatusInternalServerError))
	}
	if out == nil {
		out = rc.Params{}
	}
	return encode(out, http.StatusOK)
}

func runCall(call *rc.Call, in rc.Params) (out rc.Params, err error) {
	defer func() {
		if r := recover(); r != nil {
			fs.Errorf(nil, "rc: %q: panic: %v", call.Path, r)
			out, err = nil, fmt.Errorf("panic: %v", r)
		}
	}()
	// Marked as an rc request, like librclone.RPC does: backends then never change
	// rclone's global config.
	return call.Fn(fs.WithRCRequest(context.Background()), in)
}

func encode(out rc.Params, status int) (string, int) {
	var w strings.Builder
	if err := rc.WriteJSON(&w, out); err != nil {
		return fmt.Sprintf(`{"error": %q, "status": 500}`, err.Error()), http.StatusInternalServerError
	}
	return w.String(), status
}

var (
	optionNamesOnce sync.Once
	optionNames     map[string]bool // config and filter options rclone accepts flat
)

// needsJob reports whether in has job parameters ("_async", "_config", ...) or options
// that librclone.RPC applies to the call's context.
func needsJob(in rc.Params) bool {
	optionNamesOnce.Do(func() {
		optionNames = map[string]bool{}
		for _, opt := range []any{&fs.ConfigInfo{}, &filter.Opt} {
			items, _ := configstruct.Items(opt)
			for _, item := range items {
				optionNames[item.Name] = true
			}
		}
	})
	for key := range in {
		if strings.HasPrefix(key, "_") || optionNames[key] {
			return true
		}
	}
	return false
}

//export RcloneFreeString
func RcloneFreeString(str *C.char) { C.free(unsafe.Pointer(str)) }

// RcloneIgnoreSignals stops rclone from catching SIGINT/SIGTERM, so the host
// program keeps its own signal handling.
//
//export RcloneIgnoreSignals
func RcloneIgnoreSignals() { atexit.IgnoreSignals() }

// RcloneSetLogCallback sends every rclone log line (slog level, text without
// date or level prefix) to fn instead of stderr. Call it after RcloneInitialize.
//
//export RcloneSetLogCallback
func RcloneSetLogCallback(fn C.RcloneLogFn) {
	log.Handler.SetOutput(func(level slog.Level, text string) {
		ctext := C.CString(text)
		C.call_log_fn(fn, C.int(level), ctext)
		C.free(unsafe.Pointer(ctext))
	})
}

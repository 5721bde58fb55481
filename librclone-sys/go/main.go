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
	"log/slog"
	"unsafe"

	"github.com/rclone/rclone/fs/log"
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
	output, status := librclone.RPC(C.GoString(method), C.GoString(input))
	result.Output = C.CString(output)
	result.Status = C.int(status)
	return result
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

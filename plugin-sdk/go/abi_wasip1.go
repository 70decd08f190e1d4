// The ABI's imports and exports, for GOOS=wasip1 (the file name's suffix
// builds it only there).

package switchyard

import "unsafe"

//go:wasmimport switchyard log
func importLog(level int32, ptr unsafe.Pointer, len int32)

//go:wasmimport switchyard emit
func importEmit(ptr unsafe.Pointer, len int32) int32

//go:wasmimport switchyard fail
func importFail(ptr unsafe.Pointer, len int32)

func hostLog(level Level, message string) {
	importLog(int32(level), unsafe.Pointer(unsafe.StringData(message)), int32(len(message)))
}

func hostEmit(event []byte) int32 {
	return importEmit(unsafe.Pointer(unsafe.SliceData(event)), int32(len(event)))
}

func hostFail(message string) {
	importFail(unsafe.Pointer(unsafe.StringData(message)), int32(len(message)))
}

// trap executes `unreachable` (trap_wasm.s): Go has no other way to trap.
func trap()

// pending holds every buffer switchyard_alloc handed to the host, by
// address, until the call it is passed to takes it back. The host writes
// a buffer after alloc has returned, so the buffer must stay referenced
// from Go meanwhile or the garbage collector could reuse its memory.
var pending = map[uint32][]byte{}

// noBytes is where an empty buffer points (the ABI wants a pointer that
// is not 0 only for len > 0, but a real address costs nothing).
var noBytes [1]byte

func address(p *byte) uint32 { return uint32(uintptr(unsafe.Pointer(p))) }

//go:wasmexport switchyard_alloc
func switchyardAlloc(size int32) int32 {
	if size <= 0 {
		return int32(address(&noBytes[0]))
	}
	buf := make([]byte, size)
	at := address(&buf[0])
	pending[at] = buf
	return int32(at)
}

// take returns the buffer alloc handed out at ptr, no longer pending;
// false when ptr and size do not name one.
func take(ptr, size int32) ([]byte, bool) {
	if size <= 0 {
		return nil, uint32(ptr) == address(&noBytes[0])
	}
	buf, ok := pending[uint32(ptr)]
	delete(pending, uint32(ptr))
	return buf, ok && len(buf) == int(size)
}

//go:wasmexport switchyard_init
func switchyardInit(ptr, size int32) int32 {
	input, ok := take(ptr, size)
	if !ok {
		hostFail("switchyard_init: the config is not in a buffer from switchyard_alloc")
		return 1
	}
	return runInit(input)
}

//go:wasmexport switchyard_handle
func switchyardHandle(ptr, size int32) int32 {
	input, ok := take(ptr, size)
	if !ok {
		hostFail("switchyard_handle: the event is not in a buffer from switchyard_alloc")
		return 1
	}
	return runHandle(input)
}

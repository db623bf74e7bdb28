// The one way tapegrad and its examples write a file a user keeps (checkpoints, metrics,
// pictures): all or nothing, and every failure reported. And the one way they open a file
// to read: regular files only, so that a FIFO or a device never blocks the program.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace tg {

// A file could not be written; the message names the file, the step that failed and errno's
// text ("'runs/a/metrics.csv': write failed: No space left on device").
class FileWriteError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Writes bytes to a temporary file beside path (PATH.tmp.XXXXXX), checks every write, the
// fsync and the close, renames it over path and syncs the folder (checked too): a crash or a
// full disk leaves the old file or the new one, never a torn one, and no temporary behind.
// Only a failed sync of the folder comes after the rename (the new file is in place, but not
// yet known to be durable). Temporaries of earlier writes to the same path that were killed
// before their rename are removed once this one has succeeded. Throws FileWriteError. A
// file-size limit (ulimit -f) is an error like a full disk ("File too large"), not the end of
// the process: SIGXFSZ is blocked in the calling thread while it writes.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Opens path read-only if it is a regular file. A FIFO, a device, a socket or a directory is
// refused without blocking (opened with O_NONBLOCK, then fstat). Returns the descriptor (the
// caller closes it), or -1 with `why` set: errno's text, or "Is a FIFO, not a regular file".
// size (if given) receives the file's size in bytes.
int open_regular_file(const std::string& path, std::string& why, std::size_t* size = nullptr);

namespace detail {

// For tests: the next write_file_atomic of this thread to a path ending in path_ending fails
// at `step` as if its system call had failed with `error` (ENOSPC for a full disk, EIO).
// Once, then cleared; WriteStep::none clears it.
enum class WriteStep { none, create, write, fsync, close, rename, sync_folder };
void fail_next_write_at(WriteStep step, int error, const std::string& path_ending = "");

}  // namespace detail

}  // namespace tg

// The one way tapegrad and its examples write a file a user keeps (checkpoints, metrics,
// pictures): all or nothing, and every failure reported.
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
// fsync and the close, renames it over path and syncs the folder: a crash or a full disk
// leaves the old file or the new one, never a torn one, and no temporary behind. Temporaries
// of earlier writes to the same path that were killed before their rename are removed once
// this one has succeeded. Throws FileWriteError.
void write_file_atomic(const std::string& path, std::string_view bytes);

}  // namespace tg

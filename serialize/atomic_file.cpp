#include "serialize/atomic_file.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tg {

namespace {

std::string errno_text() { return std::strerror(errno); }

// Temporary files of earlier saves to the same path that were killed before their rename
// (PATH.tmp.XXXXXX, mkstemp's pattern): never read, removed once a save has succeeded.
void remove_stale_temporaries(const std::string& dir, const std::string& file) {
    const std::string prefix = file + ".tmp.";
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.size() == prefix.size() + 6 && name.compare(0, prefix.size(), prefix) == 0) {
            std::error_code ignored;
            std::filesystem::remove(it->path(), ignored);
        }
    }
}

}  // namespace

// Temporary file in the target's directory, fsync, rename over the target, fsync the
// directory: a crash leaves either the old file or the new one, never a torn one.
void write_file_atomic(const std::string& path, std::string_view bytes) {
    const std::size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    std::string tmp = path + ".tmp.XXXXXX";
    const int fd = ::mkstemp(tmp.data());
    if (fd < 0) throw FileWriteError("'" + path + "': cannot create a temporary file: " + errno_text());
    const auto fail = [&](const std::string& what) {
        const std::string msg = "'" + path + "': " + what + ": " + errno_text();
        ::close(fd);
        ::unlink(tmp.c_str());
        throw FileWriteError(msg);
    };
    ::fchmod(fd, 0644);  // mkstemp's 0600 would be surprising for a data file
    for (std::size_t done = 0; done < bytes.size();) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("write failed");
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) fail("fsync failed");
    if (::close(fd) != 0) {
        const std::string msg = "'" + path + "': close failed: " + errno_text();
        ::unlink(tmp.c_str());
        throw FileWriteError(msg);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string msg = "'" + path + "': rename failed: " + errno_text();
        ::unlink(tmp.c_str());
        throw FileWriteError(msg);
    }
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {  // the rename itself is durable only once the directory is
        ::fsync(dfd);
        ::close(dfd);
    }
    remove_stale_temporaries(dir, path.substr(slash == std::string::npos ? 0 : slash + 1));
}

}  // namespace tg

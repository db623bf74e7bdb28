#include "serialize/atomic_file.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

namespace tg {

namespace detail {

namespace {
thread_local WriteStep injected_step = WriteStep::none;
thread_local int injected_error = 0;
thread_local std::string injected_path_ending;
}  // namespace

void fail_next_write_at(WriteStep step, int error, const std::string& path_ending) {
    injected_step = step;
    injected_error = error;
    injected_path_ending = path_ending;
}

}  // namespace detail

namespace {

std::string errno_text() { return std::strerror(errno); }

// call() (a system call at `step` of writing path), or -1 with errno set, without the call,
// when a test injected a failure there.
template <class Call>
long checked(const std::string& path, detail::WriteStep step, Call call) {
    const std::string& ending = detail::injected_path_ending;
    if (detail::injected_step != step || path.size() < ending.size() ||
        path.compare(path.size() - ending.size(), ending.size(), ending) != 0)
        return static_cast<long>(call());
    detail::injected_step = detail::WriteStep::none;
    errno = detail::injected_error;
    return -1;
}

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

// A write past the file-size limit (ulimit -f) raises SIGXFSZ, whose default action ends the
// process at once, leaving the temporary behind. Blocked in this thread while it writes, the
// write fails with EFBIG instead and is reported like a full disk; the pending signal is then
// taken off, so that unblocking does not deliver it. The process's handlers stay as they are.
class FileSizeSignalBlocked {
public:
    FileSizeSignalBlocked() {
        sigemptyset(&xfsz_);
        sigaddset(&xfsz_, SIGXFSZ);
        pthread_sigmask(SIG_BLOCK, &xfsz_, &old_);
    }
    ~FileSizeSignalBlocked() {
        if (!sigismember(&old_, SIGXFSZ)) {
            const timespec now{0, 0};
            while (sigtimedwait(&xfsz_, nullptr, &now) == SIGXFSZ) {
            }
        }
        pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    }
    FileSizeSignalBlocked(const FileSizeSignalBlocked&) = delete;
    FileSizeSignalBlocked& operator=(const FileSizeSignalBlocked&) = delete;

private:
    sigset_t xfsz_, old_;
};

}  // namespace

// Temporary file in the target's directory, fsync, rename over the target, fsync the
// directory: a crash leaves either the old file or the new one, never a torn one.
void write_file_atomic(const std::string& path, std::string_view bytes) {
    using detail::WriteStep;
    const std::size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
    std::string tmp = path + ".tmp.XXXXXX";
    const FileSizeSignalBlocked no_sigxfsz;
    const int fd = static_cast<int>(checked(path, WriteStep::create, [&] { return ::mkstemp(tmp.data()); }));
    if (fd < 0) throw FileWriteError("'" + path + "': cannot create a temporary file: " + errno_text());
    const auto fail = [&](const std::string& what, bool open) {
        const std::string msg = "'" + path + "': " + what + ": " + errno_text();
        if (open) ::close(fd);
        ::unlink(tmp.c_str());
        throw FileWriteError(msg);
    };
    ::fchmod(fd, 0644);  // mkstemp's 0600 would be surprising for a data file
    for (std::size_t done = 0; done < bytes.size();) {
        const long n = checked(path, WriteStep::write, [&] { return ::write(fd, bytes.data() + done, bytes.size() - done); });
        if (n < 0) {
            if (errno == EINTR) continue;
            fail("write failed", true);
        }
        done += static_cast<std::size_t>(n);
    }
    if (checked(path, WriteStep::fsync, [&] { return ::fsync(fd); }) != 0) fail("fsync failed", true);
    if (checked(path, WriteStep::close, [&] { return ::close(fd); }) != 0) fail("close failed", false);
    if (checked(path, WriteStep::rename, [&] { return ::rename(tmp.c_str(), path.c_str()); }) != 0) fail("rename failed", false);
    // The rename itself is durable only once the directory is.
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    // EINVAL: a file system that cannot sync folders (some network ones): nothing to wait for.
    if (dfd < 0 || (checked(path, WriteStep::sync_folder, [&] { return ::fsync(dfd); }) != 0 && errno != EINVAL)) {
        const std::string msg = "'" + path + "': written, but the sync of its folder failed: " + errno_text();
        if (dfd >= 0) ::close(dfd);
        throw FileWriteError(msg);
    }
    ::close(dfd);
    remove_stale_temporaries(dir, path.substr(slash == std::string::npos ? 0 : slash + 1));
}

int open_regular_file(const std::string& path, std::string& why, std::size_t* size) {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        why = errno_text();
        return -1;
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
        why = errno_text();
        ::close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        why = S_ISDIR(st.st_mode)    ? std::strerror(EISDIR)
              : S_ISFIFO(st.st_mode) ? "Is a FIFO, not a regular file"
              : S_ISSOCK(st.st_mode) ? "Is a socket, not a regular file"
                                     : "Is a device, not a regular file";
        ::close(fd);
        return -1;
    }
    // Back to blocking reads (no effect on a regular file, but nothing is left surprising).
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    if (size) *size = static_cast<std::size_t>(st.st_size);
    return fd;
}

}  // namespace tg

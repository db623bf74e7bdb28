#include "datasets/mnist.hpp"

#include "serialize/atomic_file.hpp"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <vector>

#include <unistd.h>

namespace tg::mnist {

namespace {

const char* const fetch_hint = "run scripts/fetch-mnist to download MNIST";

[[noreturn]] void fail(const std::string& file, const std::string& what) {
    throw std::runtime_error("mnist: " + file + ": " + what);
}

std::string hex32(std::uint32_t v) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08X", v);
    return buf;
}

std::string dims_str(const std::vector<std::size_t>& dims) {
    std::string s;
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
    return s;
}

// Where the IDX parser gets its bytes: a file through zlib (which passes non-gzip files
// through unchanged) or a buffer. read() returns fewer bytes than asked only at the end.
class Source {
public:
    virtual ~Source() = default;
    virtual std::size_t read(std::uint8_t* dst, std::size_t n) = 0;
    // Bytes left to read if known without reading them (a buffer, an uncompressed file), else
    // SIZE_MAX (a gzip stream).
    virtual std::size_t remaining() const = 0;
    // After the last byte: throws if the source ended badly (a gzip stream cut short).
    virtual void finish() {}
};

class MemorySource : public Source {
public:
    MemorySource(const std::uint8_t* bytes, std::size_t size) : bytes_(bytes), left_(size) {}
    std::size_t read(std::uint8_t* dst, std::size_t n) override {
        n = std::min(n, left_);
        if (n) std::memcpy(dst, bytes_, n);
        bytes_ += n;
        left_ -= n;
        return n;
    }
    std::size_t remaining() const override { return left_; }

private:
    const std::uint8_t* bytes_;
    std::size_t left_;
};

// A file read through zlib's inflate when it starts with the gzip magic bytes, else as it is.
// gzread would not do: it ignores whatever follows the last gzip member, so a file with garbage
// appended would load. Here members may follow one another (as gzip writes them), and anything
// else after the last one is refused; a stream cut before its trailer is refused too, even when
// every byte the header claimed has arrived, since its CRC was never checked.
class GzSource : public Source {
public:
    explicit GzSource(const std::string& path) : path_(path), in_(std::size_t{1} << 17) {
        std::error_code ec;
        const std::filesystem::file_status st = std::filesystem::status(path, ec);
        // ELOOP (a symlink loop), EACCES on a folder above it...: what it is, not "no such file"
        if (ec && ec != std::errc::no_such_file_or_directory) fail(path, "cannot open: " + ec.message());
        if (!std::filesystem::exists(st)) fail(path, std::string("no such file (") + fetch_hint + ")");
        if (std::filesystem::is_directory(st)) fail(path, "is a directory, expected an IDX file");
        std::string why;
        fd_ = open_regular_file(path, why, &size_);
        if (fd_ < 0) fail(path, "cannot open: " + why + ", expected an IDX file");
        try {
            fill();
        } catch (...) {
            ::close(fd_);
            throw;
        }
        gzip_ = avail_ >= 2 && in_[0] == 0x1f && in_[1] == 0x8b;
        if (gzip_ && inflateInit2(&zs_, 16 + MAX_WBITS) != Z_OK) {
            ::close(fd_);
            fail(path, "cannot open: out of memory for the zlib stream");
        }
    }
    ~GzSource() override {
        if (gzip_) inflateEnd(&zs_);
        ::close(fd_);
    }
    GzSource(const GzSource&) = delete;
    GzSource& operator=(const GzSource&) = delete;

    std::size_t read(std::uint8_t* dst, std::size_t n) override {
        std::size_t total = 0;
        while (total < n) {
            if (avail_ == 0 && !fill()) {
                if (gzip_ && !at_member_end_) cut_ = true;
                break;
            }
            if (!gzip_) {
                const std::size_t k = std::min(n - total, avail_);
                std::memcpy(dst + total, in_.data() + next_, k);
                next_ += k, avail_ -= k, total += k, consumed_ += k;
                continue;
            }
            if (at_member_end_) {  // another member, or the end of the file and nothing else
                if (avail_ < 2) fill_more();
                if (avail_ < 2 || !(in_[next_] == 0x1f && in_[next_ + 1] == 0x8b))
                    fail(path_, "trailing bytes after the gzip stream (" + std::to_string(size_ - consumed_) +
                                    " bytes that are not a gzip member)");
                inflateReset(&zs_);
                at_member_end_ = false;
            }
            zs_.next_in = in_.data() + next_;
            zs_.avail_in = static_cast<uInt>(avail_);
            zs_.next_out = dst + total;
            zs_.avail_out = static_cast<uInt>(std::min<std::size_t>(n - total, 1u << 30));
            const int rc = inflate(&zs_, Z_NO_FLUSH);
            const std::size_t used = avail_ - zs_.avail_in;
            next_ += used, avail_ -= used, consumed_ += used;
            total = static_cast<std::size_t>(zs_.next_out - dst);
            if (rc == Z_STREAM_END) at_member_end_ = true;
            else if (rc == Z_MEM_ERROR) fail(path_, "out of memory decompressing the gzip data");
            else if (rc != Z_OK && rc != Z_BUF_ERROR) fail(path_, std::string("corrupt gzip data: ") + (zs_.msg ? zs_.msg : "?"));
        }
        return total;
    }
    std::size_t remaining() const override { return gzip_ || consumed_ > size_ ? SIZE_MAX : size_ - consumed_; }
    void finish() override {
        if (cut_) fail(path_, "truncated gzip stream: the file ends before the stream's end (and its CRC)");
    }

private:
    // Refills the input buffer once it is empty; false at the end of the file.
    bool fill() {
        next_ = 0;
        avail_ = 0;
        return fill_more();
    }
    // Appends what the file has to the bytes left in the buffer; false if nothing came.
    bool fill_more() {
        if (next_ > 0) std::memmove(in_.data(), in_.data() + next_, avail_), next_ = 0;
        for (;;) {
            const ssize_t got = ::read(fd_, in_.data() + avail_, in_.size() - avail_);
            if (got < 0 && errno == EINTR) continue;
            if (got < 0) fail(path_, std::string("read error: ") + std::strerror(errno));
            avail_ += static_cast<std::size_t>(got);
            return got > 0;
        }
    }

    std::string path_;
    int fd_ = -1;
    std::size_t size_ = 0, consumed_ = 0;  // the file's bytes, those taken from the buffer
    std::vector<std::uint8_t> in_;
    std::size_t next_ = 0, avail_ = 0;  // the unread bytes of in_
    bool gzip_ = false, at_member_end_ = false, cut_ = false;
    z_stream zs_{};
};

// The magic number and the sizes; the data bytes they claim are bounded by max_idx_bytes and
// by what the source holds (when known) before anything else is read or allocated.
std::vector<std::size_t> read_header(Source& src, const std::string& name, int expected_ndim) {
    std::uint8_t magic[4];
    const std::size_t got_magic = src.read(magic, 4);
    if (got_magic < 4)
        fail(name, "truncated header: expected a 4-byte magic number, found " + std::to_string(got_magic) + " bytes");
    const std::uint32_t m = std::uint32_t(magic[0]) << 24 | std::uint32_t(magic[1]) << 16 |
                            std::uint32_t(magic[2]) << 8 | magic[3];
    if (expected_ndim > 0) {
        const std::uint32_t want = 0x800u + static_cast<std::uint32_t>(expected_ndim);
        if (m != want)
            fail(name, "expected magic " + hex32(want) + " (unsigned bytes, " + std::to_string(expected_ndim) +
                           (expected_ndim == 1 ? " dimension)" : " dimensions)") + ", found " + hex32(m));
    } else {
        if (magic[0] != 0 || magic[1] != 0) fail(name, "expected an IDX magic number 0x0000TTNN, found " + hex32(m));
        if (magic[2] != 0x08)
            fail(name, "expected unsigned bytes (magic 0x000008NN), found element type " + hex32(magic[2]) +
                           " in magic " + hex32(m));
        if (magic[3] == 0) fail(name, "expected at least one dimension, found magic " + hex32(m));
    }
    const std::size_t ndim = magic[3];

    std::vector<std::size_t> dims;
    std::uint8_t header[4 * 255];
    const std::size_t got_header = src.read(header, 4 * ndim);
    if (got_header < 4 * ndim)
        fail(name, "truncated header: expected " + std::to_string(4 + 4 * ndim) + " bytes (magic and " +
                       std::to_string(ndim) + " sizes), found " + std::to_string(4 + got_header));
    // Sizes are below 2^32 each; the product is checked step by step, so no overflow hides a claim.
    std::size_t total = 1;
    for (std::size_t i = 0; i < ndim; ++i) {
        const std::uint8_t* b = &header[4 * i];
        const std::size_t d = std::size_t(b[0]) << 24 | std::size_t(b[1]) << 16 | std::size_t(b[2]) << 8 | b[3];
        dims.push_back(d);
        total = d != 0 && total > max_idx_bytes / d ? max_idx_bytes + 1 : total * d;
    }
    if (total > max_idx_bytes)
        fail(name, "dimensions " + dims_str(dims) + " claim more than the " + std::to_string(max_idx_bytes) +
                       " data bytes an IDX file may hold here (60,000 images of 28x28, MNIST's training file)");
    const std::size_t left = src.remaining();
    if (left != SIZE_MAX && left < total)
        fail(name, "truncated data: expected " + std::to_string(total) + " bytes after the header (" +
                       dims_str(dims) + "), found " + std::to_string(left));
    return dims;
}

// The data bytes the header claimed, then the end of the source. A gzip stream's length is
// unknown until it is read, so its buffer grows with the bytes that arrive, not the claim.
std::vector<std::uint8_t> read_body(Source& src, const std::string& name, const std::vector<std::size_t>& dims) {
    const std::size_t total = std::accumulate(dims.begin(), dims.end(), std::size_t{1}, std::multiplies<>());
    const bool known = src.remaining() != SIZE_MAX;
    std::vector<std::uint8_t> data;
    try {
        data.reserve(known ? total : std::min<std::size_t>(total, std::size_t{1} << 16));
        while (data.size() < total) {
            const std::size_t have = data.size();
            // Doubling chunks: a short stream behind a large claim costs little, a long one few reads.
            const std::size_t chunk =
                std::min<std::size_t>(total - have, std::max<std::size_t>(have, std::size_t{1} << 16));
            if (data.capacity() < have + chunk) data.reserve(std::min(total, 2 * have + chunk));  // never past the claim
            data.resize(have + chunk);
            const std::size_t got = src.read(data.data() + have, chunk);
            if (got < chunk)
                fail(name, "truncated data: expected " + std::to_string(total) + " bytes after the header (" +
                               dims_str(dims) + "), found " + std::to_string(have + got));
        }
    } catch (const std::bad_alloc&) {
        fail(name, "out of memory allocating " + std::to_string(total) + " bytes for the data (" + dims_str(dims) + ")");
    }
    std::uint8_t extra;
    if (src.read(&extra, 1) != 0)
        fail(name, "expected the file to end after " + std::to_string(total) + " bytes of data (" + dims_str(dims) +
                       "), found more (trailing bytes)");
    src.finish();
    return data;
}

Idx parse(Source& src, const std::string& name, int expected_ndim) {
    Idx idx;
    idx.dims = read_header(src, name, expected_ndim);
    idx.data = read_body(src, name, idx.dims);
    return idx;
}

// bytes as a gzip file (what gzopen(path, "wb") writes), in memory, for write_file_atomic.
std::string gzip_bytes(const std::vector<std::uint8_t>& bytes, const std::string& path) {
    if (bytes.size() > std::numeric_limits<uInt>::max()) fail(path, "too large to compress in one call");
    z_stream zs{};
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        fail(path, "zlib cannot start compressing");
    std::string out(deflateBound(&zs, static_cast<uLong>(bytes.size())), '\0');
    zs.next_in = const_cast<Bytef*>(bytes.data());
    zs.avail_in = static_cast<uInt>(bytes.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    const int rc = deflate(&zs, Z_FINISH);
    out.resize(zs.total_out);
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) fail(path, "zlib failed to compress the data");
    return out;
}

void ensure_shape(Array& a, std::size_t rows, std::size_t cols) {
    if (a.dimension() != 2 || a.shape()[0] != rows || a.shape()[1] != cols) a.resize({rows, cols});
}

// The one conversion of a pixel byte, shared by every path to float (batches, evaluation
// chunks, binarization), so that all of them agree to the bit.
float intensity(std::uint8_t b) { return static_cast<float>(b) / 255.0f; }

void check_images(const Array& images, const char* op) {
    if (images.dimension() != 2 || images.shape()[1] != image_pixels)
        throw std::invalid_argument(std::string(op) + ": expected images of shape (n, 784), got " +
                                    shape_str(images.shape()));
}

}  // namespace

// ---- IDX --------------------------------------------------------------------------------

Idx read_idx(const std::string& path, int expected_ndim) {
    GzSource src(path);
    return parse(src, path, expected_ndim);
}

Idx parse_idx(const std::uint8_t* bytes, std::size_t size, const std::string& name, int expected_ndim) {
    MemorySource src(bytes, size);
    return parse(src, name, expected_ndim);
}

void write_idx(const std::string& path, const Idx& idx) {
    std::size_t total = 1;
    for (std::size_t d : idx.dims) {
        if (d > std::numeric_limits<std::uint32_t>::max())
            throw std::invalid_argument("mnist::write_idx: " + path + ": size " + std::to_string(d) +
                                        " does not fit in 32 bits");
        total *= d;
    }
    if (idx.dims.empty() || idx.dims.size() > 255 || total != idx.data.size())
        throw std::invalid_argument("mnist::write_idx: " + path + ": dimensions " + dims_str(idx.dims) + " hold " +
                                    std::to_string(total) + " bytes, but the data has " +
                                    std::to_string(idx.data.size()));
    std::vector<std::uint8_t> bytes = {0, 0, 0x08, static_cast<std::uint8_t>(idx.dims.size())};
    for (std::size_t d : idx.dims)
        for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<std::uint8_t>(d >> shift));
    bytes.insert(bytes.end(), idx.data.begin(), idx.data.end());

    const bool gzip = path.size() >= 3 && path.compare(path.size() - 3, 3, ".gz") == 0;
    try {
        write_file_atomic(path, gzip ? gzip_bytes(bytes, path)
                                     : std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    } catch (const FileWriteError& e) {
        throw std::runtime_error(std::string("mnist: ") + e.what());
    }
}

std::string find_idx(const std::string& dir, const std::string& name) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        throw std::runtime_error("mnist: data directory " + dir + " does not exist: run scripts/fetch-mnist " + dir +
                                 " to download MNIST");
    const fs::path raw = fs::path(dir) / name;
    const fs::path gz = fs::path(dir) / (name + ".gz");
    // A path that cannot be looked at (ELOOP: a symlink loop) is reported as what it is.
    auto present = [](const fs::path& p) {
        std::error_code e;
        const bool there = fs::exists(p, e);
        if (e && e != std::errc::no_such_file_or_directory) fail(p.string(), "cannot open: " + e.message());
        return there;
    };
    if (present(raw)) return raw.string();
    if (present(gz)) return gz.string();
    throw std::runtime_error("mnist: " + raw.string() + " not found (nor " + gz.filename().string() +
                             "): run scripts/fetch-mnist " + dir + " to download MNIST");
}

// ---- Data sets --------------------------------------------------------------------------

DataSet load_pair(const std::string& images_path, const std::string& labels_path) {
    // Both headers are checked before either body is read: a labels file that does not fit
    // the images is reported at once, not after 47 MB of images.
    GzSource images_src(images_path), labels_src(labels_path);
    const std::vector<std::size_t> image_dims = read_header(images_src, images_path, 3);
    if (image_dims[1] != image_rows || image_dims[2] != image_cols)
        fail(images_path, "expected 28x28 images, found " + std::to_string(image_dims[0]) + " images of " +
                              std::to_string(image_dims[1]) + "x" + std::to_string(image_dims[2]));
    const std::size_t n = image_dims[0];
    if (n == 0) fail(images_path, "expected at least one image, found none");
    const std::vector<std::size_t> label_dims = read_header(labels_src, labels_path, 1);
    if (label_dims[0] != n)
        fail(labels_path, "expected " + std::to_string(n) + " labels, one per image of " + images_path + ", found " +
                              std::to_string(label_dims[0]));
    DataSet set;
    set.labels = read_body(labels_src, labels_path, label_dims);
    for (std::size_t i = 0; i < n; ++i)
        if (set.labels[i] > 9)
            fail(labels_path, "expected digits 0-9, found label " + std::to_string(set.labels[i]) + " at index " +
                                  std::to_string(i));
    set.pixels = read_body(images_src, images_path, image_dims);
    return set;
}

DataSet slice(const DataSet& data, std::size_t begin, std::size_t end) {
    if (begin > end || end > data.size())
        throw std::out_of_range("mnist::slice: rows [" + std::to_string(begin) + ", " + std::to_string(end) +
                                ") are out of range for a data set of " + std::to_string(data.size()) + " images");
    DataSet out;
    out.pixels.assign(data.image(begin), data.image(end));
    out.labels.assign(data.labels.begin() + static_cast<std::ptrdiff_t>(begin),
                      data.labels.begin() + static_cast<std::ptrdiff_t>(end));
    return out;
}

void check_data_set(const DataSet& data, const char* op) {
    if (data.pixels.size() != data.size() * image_pixels)
        throw std::invalid_argument(std::string(op) + ": a data set of " + std::to_string(data.size()) +
                                    " labels has " + std::to_string(data.pixels.size()) + " pixel bytes, not " +
                                    std::to_string(data.size() * image_pixels));
}

void to_float(const std::uint8_t* bytes, std::size_t n, float* out) {
    for (std::size_t i = 0; i < n; ++i) out[i] = intensity(bytes[i]);  // vectorized: about 0.25 ns a pixel
}

// ---- Binarization -----------------------------------------------------------------------

Binarization parse_binarization(const std::string& name) {
    if (name == "fixed") return Binarization::fixed;
    if (name == "threshold") return Binarization::threshold;
    if (name == "dynamic") return Binarization::dynamic;
    if (name == "none") return Binarization::none;
    throw std::invalid_argument("unknown binarization '" + name + "' (expected fixed, threshold, dynamic or none)");
}

const char* binarization_name(Binarization mode) {
    switch (mode) {
    case Binarization::fixed: return "fixed";
    case Binarization::threshold: return "threshold";
    case Binarization::dynamic: return "dynamic";
    case Binarization::none: return "none";
    }
    return "?";
}

void binarize_sample(Array& images, Generator& gen) {
    for (float& v : images) v = gen.uniform() < v ? 1.0f : 0.0f;
}

void binarize_threshold(Array& images) {
    for (float& v : images) v = v > 0.5f ? 1.0f : 0.0f;
}

namespace {
// The byte versions compare the very floats that the float versions would see.
void sample_bytes(std::uint8_t* p, std::size_t n, Generator& gen) {
    for (std::size_t i = 0; i < n; ++i) p[i] = gen.uniform() < intensity(p[i]) ? 255 : 0;
}
}  // namespace

void binarize_sample(DataSet& data, Generator& gen) { sample_bytes(data.pixels.data(), data.pixels.size(), gen); }

void binarize_threshold(DataSet& data) {
    for (std::uint8_t& b : data.pixels) b = intensity(b) > 0.5f ? 255 : 0;
}

// ---- The paper's data -------------------------------------------------------------------

Mnist load(const std::string& dir, const LoadOptions& options) {
    // All four found before anything is read: a missing file is reported without delay.
    const std::string train_images = find_idx(dir, train_images_file), train_labels = find_idx(dir, train_labels_file),
                      test_images = find_idx(dir, test_images_file), test_labels = find_idx(dir, test_labels_file);
    DataSet full = load_pair(train_images, train_labels);
    if (options.validation >= full.size())
        throw std::invalid_argument("mnist::load: a validation set of " + std::to_string(options.validation) +
                                    " images leaves no training images out of " + std::to_string(full.size()));
    const std::size_t n_train = full.size() - options.validation;
    Mnist m;
    m.binarization = options.binarization;
    m.test = load_pair(test_images, test_labels);

    // The training file is sampled in file order, the training rows before the validation
    // rows. Dynamic keeps the training intensities: its generator passes over the training
    // rows without writing them, so that validation and test get the same samples as with
    // fixed and validation numbers compare across the two modes.
    switch (options.binarization) {
    case Binarization::fixed:
    case Binarization::dynamic: {
        Generator train_gen(options.seed), test_gen(options.seed + 1);
        const bool keep_train = options.binarization == Binarization::dynamic;
        if (keep_train)
            for (std::size_t i = 0; i < n_train * image_pixels; ++i) train_gen.uniform();
        else
            sample_bytes(full.pixels.data(), n_train * image_pixels, train_gen);
        sample_bytes(full.pixels.data() + n_train * image_pixels, options.validation * image_pixels, train_gen);
        binarize_sample(m.test, test_gen);
        break;
    }
    case Binarization::threshold:
        binarize_threshold(full);
        binarize_threshold(m.test);
        break;
    case Binarization::none: break;
    }
    // The training rows keep the file's buffer (no copy of them at any time); the validation
    // rows are copied out of its end.
    m.validation = slice(full, n_train, full.size());
    full.pixels.resize(n_train * image_pixels);
    full.labels.resize(n_train);
    m.train = std::move(full);
    return m;
}

// ---- Halves and batches -----------------------------------------------------------------

void halves(const Array& images, Array& upper, Array& lower) {
    check_images(images, "mnist::halves");
    const std::size_t n = images.shape()[0];
    ensure_shape(upper, n, half_pixels);
    ensure_shape(lower, n, half_pixels);
    const float* src = images.data();
    for (std::size_t i = 0; i < n; ++i, src += image_pixels) {
        std::copy(src, src + half_pixels, upper.data() + i * half_pixels);
        std::copy(src + half_pixels, src + image_pixels, lower.data() + i * half_pixels);
    }
}

namespace {

// The images of `rows`, all checked before any is read. Rows are scattered over tens of MB:
// the loads of the images a few rows ahead are started early so that they overlap this
// one's conversion (twice as fast as without, and as the copy of float rows was).
template <class F>
void for_each_image(const DataSet& data, const std::vector<std::size_t>& rows, const char* op, F f) {
    check_data_set(data, op);
    for (std::size_t r : rows)
        if (r >= data.size())
            throw std::out_of_range(std::string(op) + ": row " + std::to_string(r) +
                                    " is out of range for a data set of " + std::to_string(data.size()) + " images");
    constexpr std::size_t ahead = 4;
    for (std::size_t k = 0; k < rows.size(); ++k) {
        if (k + ahead < rows.size())
            for (std::size_t i = 0; i < image_pixels; i += 64) __builtin_prefetch(data.image(rows[k + ahead]) + i);
        f(k, data.image(rows[k]));
    }
}

}  // namespace

void gather(const DataSet& data, const std::vector<std::size_t>& rows, Array& images) {
    ensure_shape(images, rows.size(), image_pixels);
    float* dst = images.data();
    for_each_image(data, rows, "mnist::gather",
                   [&](std::size_t k, const std::uint8_t* src) { to_float(src, image_pixels, dst + k * image_pixels); });
}

void gather(const DataSet& data, const std::vector<std::size_t>& rows, Array& images, Indices& labels) {
    gather(data, rows, images);  // checks every row first
    if (labels.shape() != Indices::shape_type{rows.size()}) labels = Indices::from_shape({rows.size()});
    for (std::size_t k = 0; k < rows.size(); ++k) labels(k) = data.labels[rows[k]];
}

void gather_halves(const DataSet& data, const std::vector<std::size_t>& rows, Array& upper, Array& lower) {
    ensure_shape(upper, rows.size(), half_pixels);
    ensure_shape(lower, rows.size(), half_pixels);
    float* up = upper.data();
    float* low = lower.data();
    for_each_image(data, rows, "mnist::gather_halves", [&](std::size_t k, const std::uint8_t* src) {
        to_float(src, half_pixels, up + k * half_pixels);
        to_float(src + half_pixels, half_pixels, low + k * half_pixels);
    });
}

std::vector<std::uint64_t> BatchState::words() const {
    return {epoch, position, rows, generator[0], generator[1], generator[2], generator[3]};
}

BatchState BatchState::from_words(const std::vector<std::uint64_t>& w) {
    if (w.size() != 7)
        throw std::invalid_argument("mnist::BatchState::from_words: expected 7 words, got " + std::to_string(w.size()));
    return BatchState{w[0], w[1], w[2], {w[3], w[4], w[5], w[6]}};
}

BatchIterator::BatchIterator(std::size_t rows, BatchOptions options)
    : rows_(rows), options_(options), gen_(options.seed) {
    if (rows == 0) throw std::invalid_argument("mnist::BatchIterator: the data set is empty");
    if (options.batch_size == 0) throw std::invalid_argument("mnist::BatchIterator: the batch size must be positive");
    if (options.batch_size > rows)
        throw std::invalid_argument("mnist::BatchIterator: batch size " + std::to_string(options.batch_size) +
                                    " is larger than the data set (" + std::to_string(rows) + " rows)");
    order_.resize(rows);
    indices_.reserve(options.batch_size);
    start_epoch();
}

// Always from 0..rows-1, so the generator state at the epoch's start fixes its order.
void BatchIterator::start_epoch() {
    epoch_start_ = gen_.state();
    position_ = 0;
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    if (options_.shuffle)
        for (std::size_t i = rows_ - 1; i > 0; --i) std::swap(order_[i], order_[gen_.below(i + 1)]);
}

bool BatchIterator::next() {
    const std::size_t left = rows_ - position_;
    if (left == 0 || (options_.drop_last && left < options_.batch_size)) {
        ++epoch_;
        start_epoch();
        indices_.clear();
        return false;
    }
    const std::size_t b = std::min(options_.batch_size, left);
    const auto first = order_.begin() + static_cast<std::ptrdiff_t>(position_);
    indices_.assign(first, first + static_cast<std::ptrdiff_t>(b));
    position_ += b;
    return true;
}

std::size_t batches_per_epoch(std::size_t rows, const BatchOptions& options) {
    const std::size_t b = options.batch_size;
    return options.drop_last ? rows / b : (rows + b - 1) / b;
}

std::size_t BatchIterator::batches_per_epoch() const { return tg::mnist::batches_per_epoch(rows_, options_); }

BatchState BatchIterator::state() const { return BatchState{epoch_, position_, rows_, epoch_start_}; }

void BatchIterator::set_state(const BatchState& s) {
    if (s.rows != rows_)
        throw std::invalid_argument("mnist::BatchIterator::set_state: the state is for a data set of " +
                                    std::to_string(s.rows) + " rows, this iterator has " + std::to_string(rows_));
    if (s.position > rows_)
        throw std::invalid_argument("mnist::BatchIterator::set_state: position " + std::to_string(s.position) +
                                    " is past the end of " + std::to_string(rows_) + " rows");
    gen_.set_state(s.generator);  // throws on the invalid all-zero state
    epoch_ = s.epoch;
    start_epoch();
    position_ = static_cast<std::size_t>(s.position);
    indices_.clear();
}

}  // namespace tg::mnist

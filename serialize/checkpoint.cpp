#include "serialize/checkpoint.hpp"

#include "serialize/atomic_file.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <xtensor/xbuilder.hpp>

namespace tg {

// .npy stores little-endian data here ('<f4'), and entries are copied as raw bytes.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "checkpoint.cpp assumes a little-endian host");

namespace {

const char* dtype_descr(DType d) {
    switch (d) {
        case DType::float32: return "<f4";
        case DType::int64: return "<i8";
        case DType::uint64: return "<u8";
    }
    return "?";
}

std::string shape_tuple(const Shape& shape) {  // Python's spelling: (), (3,), (2, 3)
    std::string s = "(";
    for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + (shape.size() == 1 ? ",)" : ")");
}

// ---- .npy format, version 1.0: magic, version, header length (uint16 LE), a Python dict
// literal padded with spaces and ended by '\n' so the data starts at a multiple of 64.

const char npy_magic[] = "\x93NUMPY";

std::string npy_bytes(DType dtype, const Shape& shape, const void* data, std::size_t nbytes) {
    std::string header = std::string("{'descr': '") + dtype_descr(dtype) + "', 'fortran_order': False, 'shape': " +
                         shape_tuple(shape) + ", }";
    const std::size_t unpadded = 6 + 2 + 2 + header.size() + 1;
    header.append((64 - unpadded % 64) % 64, ' ');
    header += '\n';
    std::string out(npy_magic, 6);
    out += '\x01';
    out += '\x00';
    out += static_cast<char>(header.size() & 0xff);
    out += static_cast<char>(header.size() >> 8);
    out += header;
    if (nbytes) out.append(static_cast<const char*>(data), nbytes);
    return out;
}

struct NpyHeader {
    DType dtype = DType::float32;
    Shape shape;
    std::size_t data_offset = 0;
};

// A small parser for the one dict literal numpy writes: string keys; values a string, a
// bool or a tuple of integers.
class HeaderParser {
public:
    HeaderParser(const std::string& text, std::string where) : s_(text), where_(std::move(where)) {}

    NpyHeader parse() {
        NpyHeader h;
        bool got_descr = false, got_order = false, got_shape = false;
        expect('{');
        while (true) {
            skip_space();
            if (peek() == '}') break;
            const std::string key = string_literal();
            expect(':');
            if (key == "descr") {
                const std::string d = string_literal();
                if (d == "<f4") h.dtype = DType::float32;
                else if (d == "<i8") h.dtype = DType::int64;
                else if (d == "<u8") h.dtype = DType::uint64;
                else fail("dtype '" + d + "' is not supported (expected '<f4', '<i8' or '<u8')");
                got_descr = true;
            } else if (key == "fortran_order") {
                skip_space();
                if (s_.compare(i_, 5, "False") == 0) i_ += 5;
                else if (s_.compare(i_, 4, "True") == 0) fail("fortran_order True is not supported");
                else fail("fortran_order is not False or True");
                got_order = true;
            } else if (key == "shape") {
                h.shape = tuple();
                got_shape = true;
            } else {
                fail("unknown header key '" + key + "'");
            }
            skip_space();
            if (peek() == ',') ++i_;
        }
        if (!got_descr || !got_order || !got_shape) fail("the header lacks descr, fortran_order or shape");
        return h;
    }

private:
    [[noreturn]] void fail(const std::string& what) const { throw CheckpointError(where_ + ": bad .npy header: " + what); }
    void skip_space() {
        while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n')) ++i_;
    }
    char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
    void expect(char c) {
        skip_space();
        if (peek() != c) fail(std::string("expected '") + c + "' at offset " + std::to_string(i_));
        ++i_;
    }
    std::string string_literal() {
        skip_space();
        const char q = peek();
        if (q != '\'' && q != '"') fail("expected a quoted string at offset " + std::to_string(i_));
        const std::size_t end = s_.find(q, i_ + 1);
        if (end == std::string::npos) fail("unterminated string");
        std::string out = s_.substr(i_ + 1, end - i_ - 1);
        i_ = end + 1;
        return out;
    }
    Shape tuple() {
        Shape shape;
        expect('(');
        while (true) {
            skip_space();
            if (peek() == ')') { ++i_; break; }
            if (peek() < '0' || peek() > '9') fail("shape holds a non-integer at offset " + std::to_string(i_));
            std::size_t v = 0;
            while (peek() >= '0' && peek() <= '9') {
                if (v > (SIZE_MAX - 9) / 10) fail("shape dimension overflows");
                v = v * 10 + static_cast<std::size_t>(s_[i_++] - '0');
            }
            shape.push_back(v);
            skip_space();
            if (peek() == ',') ++i_;
            else if (peek() != ')') fail("expected ',' or ')' in shape at offset " + std::to_string(i_));
        }
        return shape;
    }

    const std::string& s_;
    std::string where_;
    std::size_t i_ = 0;
};

NpyHeader parse_npy_header(const std::string& bytes, const std::string& where) {
    if (bytes.size() < 10 || bytes.compare(0, 6, npy_magic, 6) != 0)
        throw CheckpointError(where + ": not a .npy file (bad magic string)");
    const auto byte = [&](std::size_t i) { return static_cast<std::size_t>(static_cast<unsigned char>(bytes[i])); };
    const std::size_t major = byte(6);
    std::size_t header_len, start;
    if (major == 1) {
        header_len = byte(8) | byte(9) << 8;
        start = 10;
    } else if (major == 2 || major == 3) {  // what numpy writes when the header outgrows 64 KiB
        if (bytes.size() < 12) throw CheckpointError(where + ": truncated .npy header");
        header_len = byte(8) | byte(9) << 8 | byte(10) << 16 | byte(11) << 24;
        start = 12;
    } else {
        throw CheckpointError(where + ": unsupported .npy version " + std::to_string(major));
    }
    if (bytes.size() < start + header_len) throw CheckpointError(where + ": truncated .npy header");
    NpyHeader h = HeaderParser(bytes.substr(start, header_len), where).parse();
    h.data_offset = start + header_len;
    return h;
}

// ---- zip through libzip

std::string zip_message(zip_error_t* err) { return zip_error_strerror(err); }

struct ZipCloser {
    void operator()(zip_t* za) const { zip_discard(za); }
};

// The whole file, if it is a regular file of at most max_checkpoint_bytes (a FIFO would block
// the open, a huge file would exhaust memory).
std::string read_file(const std::string& path) {
    const std::string where = "checkpoint '" + path + "'";
    std::string why;
    std::size_t size = 0;
    const int fd = open_regular_file(path, why, &size);
    if (fd < 0) throw CheckpointError(where + ": cannot open: " + why);
    std::FILE* f = ::fdopen(fd, "rb");
    if (!f) {
        ::close(fd);
        throw CheckpointError(where + ": cannot open: " + std::strerror(errno));
    }
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> closer(f, std::fclose);
    if (size > max_checkpoint_bytes)
        throw CheckpointError(where + ": " + std::to_string(size) + " bytes, more than the " +
                              std::to_string(max_checkpoint_bytes) + " a checkpoint may have");
    std::string data;
    try {
        data.reserve(size);
    } catch (const std::bad_alloc&) {
        throw CheckpointError(where + ": out of memory allocating " + std::to_string(size) + " bytes to read it");
    }
    char buf[1 << 16];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        if (data.size() + n > max_checkpoint_bytes)  // grew while being read
            throw CheckpointError(where + ": more than the " + std::to_string(max_checkpoint_bytes) +
                                  " bytes a checkpoint may have");
        data.append(buf, n);
    }
    if (std::ferror(f)) throw CheckpointError(where + ": cannot read: " + std::strerror(errno));
    return data;
}

// The zip archive of all entries, stored uncompressed (like numpy.savez), as bytes in memory.
std::string zip_entries(const std::vector<std::pair<std::string, std::string>>& files, const std::string& where) {
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t* mem = zip_source_buffer_create(nullptr, 0, 0, &err);
    if (!mem) throw CheckpointError(where + ": libzip: " + zip_message(&err));
    zip_t* za = zip_open_from_source(mem, ZIP_TRUNCATE, &err);
    if (!za) {
        zip_source_free(mem);
        throw CheckpointError(where + ": libzip: " + zip_message(&err));
    }
    zip_source_keep(mem);  // it must outlive zip_close, which writes the archive into it
    const auto fail = [&](const std::string& what) {
        const std::string msg = where + ": " + what + ": " + zip_strerror(za);
        zip_discard(za);
        zip_source_free(mem);
        throw CheckpointError(msg);
    };
    for (const auto& f : files) {
        zip_source_t* src = zip_source_buffer(za, f.second.data(), f.second.size(), 0);
        if (!src) fail("cannot add entry '" + f.first + "'");
        const zip_int64_t idx = zip_file_add(za, f.first.c_str(), src, ZIP_FL_ENC_UTF_8);
        if (idx < 0) {
            zip_source_free(src);
            fail("cannot add entry '" + f.first + "'");
        }
        if (zip_set_file_compression(za, static_cast<zip_uint64_t>(idx), ZIP_CM_STORE, 0) != 0)
            fail("cannot store entry '" + f.first + "'");
    }
    if (zip_close(za) != 0) fail("cannot write the archive");

    std::string out;
    if (zip_source_open(mem) != 0 || zip_source_seek(mem, 0, SEEK_END) != 0) {
        zip_source_free(mem);
        throw CheckpointError(where + ": cannot read back the archive from memory");
    }
    const zip_int64_t size = zip_source_tell(mem);
    zip_source_seek(mem, 0, SEEK_SET);
    out.resize(static_cast<std::size_t>(size));
    const zip_int64_t got = zip_source_read(mem, out.data(), out.size());
    zip_source_close(mem);
    zip_source_free(mem);
    if (got != size) throw CheckpointError(where + ": cannot read back the archive from memory");
    return out;
}

std::size_t item_size(DType d) { return d == DType::float32 ? 4 : 8; }

// Product of the dimensions, or SIZE_MAX (a corrupt header) when the product of the non-zero
// ones overflows: even for an empty array, xtensor's signed strides would.
std::size_t element_count(const Shape& shape) {
    std::size_t nonzero = 1;
    bool empty = false;
    for (std::size_t d : shape) {
        if (d == 0) {
            empty = true;
            continue;
        }
        if (nonzero > static_cast<std::size_t>(PTRDIFF_MAX) / 8 / d) return SIZE_MAX;
        nonzero *= d;
    }
    return empty ? 0 : nonzero;
}

}  // namespace

// ---- Checkpoint

Checkpoint::Entry& Checkpoint::slot(const std::string& name) {
    if (name.empty()) throw std::invalid_argument("Checkpoint: an entry name must not be empty");
    Entry fresh;
    fresh.name = name;
    for (auto& e : entries_)
        if (e.name == name) return e = std::move(fresh);
    entries_.push_back(std::move(fresh));
    return entries_.back();
}

void Checkpoint::put(const std::string& name, Array value) {
    Entry& e = slot(name);
    e.dtype = DType::float32;
    e.shape.assign(value.shape().begin(), value.shape().end());
    e.f32 = std::move(value);
}

void Checkpoint::put_int(const std::string& name, std::int64_t value) {
    Entry& e = slot(name);
    e.dtype = DType::int64;
    e.i64 = {value};
}

void Checkpoint::put_ints(const std::string& name, std::vector<std::int64_t> values) {
    Entry& e = slot(name);
    e.dtype = DType::int64;
    e.shape = {values.size()};
    e.i64 = std::move(values);
}

void Checkpoint::put_uints(const std::string& name, std::vector<std::uint64_t> values) {
    Entry& e = slot(name);
    e.dtype = DType::uint64;
    e.shape = {values.size()};
    e.u64 = std::move(values);
}

void Checkpoint::update(const Checkpoint& other) {
    for (const auto& e : other.entries_) slot(e.name) = e;
}

void Checkpoint::put_generator(const std::string& name, const Generator& g) {
    const auto s = g.state();
    put_uints(name, {s.begin(), s.end()});
}

bool Checkpoint::contains(const std::string& name) const {
    for (const auto& e : entries_)
        if (e.name == name) return true;
    return false;
}

std::vector<std::string> Checkpoint::names() const {
    std::vector<std::string> out;
    for (const auto& e : entries_) out.push_back(e.name);
    return out;
}

const Checkpoint::Entry& Checkpoint::find(const std::string& name, DType dtype) const {
    for (const auto& e : entries_) {
        if (e.name != name) continue;
        if (e.dtype != dtype)
            throw CheckpointError("Checkpoint: entry '" + name + "' has dtype " + dtype_descr(e.dtype) + ", not " +
                                  dtype_descr(dtype));
        return e;
    }
    throw CheckpointError("Checkpoint: no entry named '" + name + "'");
}

DType Checkpoint::dtype(const std::string& name) const {
    for (const auto& e : entries_)
        if (e.name == name) return e.dtype;
    throw CheckpointError("Checkpoint: no entry named '" + name + "'");
}

Shape Checkpoint::shape(const std::string& name) const { return find(name, dtype(name)).shape; }
const Array& Checkpoint::get(const std::string& name) const { return find(name, DType::float32).f32; }
const std::vector<std::int64_t>& Checkpoint::get_ints(const std::string& name) const {
    return find(name, DType::int64).i64;
}
const std::vector<std::uint64_t>& Checkpoint::get_uints(const std::string& name) const {
    return find(name, DType::uint64).u64;
}

std::int64_t Checkpoint::get_int(const std::string& name) const {
    const auto& v = get_ints(name);
    if (v.size() != 1)
        throw CheckpointError("Checkpoint: entry '" + name + "' has " + std::to_string(v.size()) +
                              " elements, not one");
    return v[0];
}

void Checkpoint::get_generator(const std::string& name, Generator& g) const {
    const auto& v = get_uints(name);
    if (v.size() != 4)
        throw CheckpointError("Checkpoint: entry '" + name + "' has " + std::to_string(v.size()) +
                              " elements, a generator state has 4");
    if (v[0] == 0 && v[1] == 0 && v[2] == 0 && v[3] == 0)
        throw CheckpointError("Checkpoint: entry '" + name + "' is the all-zero state, invalid for a generator");
    g.set_state({v[0], v[1], v[2], v[3]});
}

void Checkpoint::save(const std::string& path) const {
    std::vector<std::pair<std::string, std::string>> files;
    files.reserve(entries_.size());
    for (const auto& e : entries_) {
        const void* data = e.dtype == DType::float32 ? static_cast<const void*>(e.f32.data())
                           : e.dtype == DType::int64 ? static_cast<const void*>(e.i64.data())
                                                     : static_cast<const void*>(e.u64.data());
        files.emplace_back(e.name + ".npy", npy_bytes(e.dtype, e.shape, data, element_count(e.shape) * item_size(e.dtype)));
    }
    try {
        write_file_atomic(path, zip_entries(files, "checkpoint '" + path + "'"));
    } catch (const FileWriteError& e) {
        throw CheckpointError(std::string("checkpoint ") + e.what());
    }
}

Checkpoint Checkpoint::load(const std::string& path) { return load_bytes(read_file(path), path); }

Checkpoint Checkpoint::load_bytes(const std::string& bytes, const std::string& name) {
    const std::string where = "checkpoint '" + name + "'";
    // libzip would take zero bytes for a new, empty archive; a saved one is never empty.
    if (bytes.empty()) throw CheckpointError(where + ": not a readable zip archive: the file is empty");
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t* src = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &err);
    if (!src) throw CheckpointError(where + ": libzip: " + zip_message(&err));
    std::unique_ptr<zip_t, ZipCloser> za(zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &err));
    if (!za) {
        zip_source_free(src);
        throw CheckpointError(where + ": not a readable zip archive (truncated or corrupt?): " + zip_message(&err));
    }
    Checkpoint ck;
    const zip_int64_t count = zip_get_num_entries(za.get(), 0);
    for (zip_int64_t i = 0; i < count; ++i) {
        zip_stat_t st;
        if (zip_stat_index(za.get(), static_cast<zip_uint64_t>(i), 0, &st) != 0)
            throw CheckpointError(where + ": cannot stat entry " + std::to_string(i) + ": " + zip_strerror(za.get()));
        const std::string file = st.name;
        const std::string at = where + ", entry '" + file + "'";
        if (file.size() <= 4 || file.compare(file.size() - 4, 4, ".npy") != 0)
            throw CheckpointError(at + ": not a .npy file");
        const std::string name = file.substr(0, file.size() - 4);
        if (ck.contains(name)) throw CheckpointError(at + ": appears twice");

        zip_file_t* zf = zip_fopen_index(za.get(), static_cast<zip_uint64_t>(i), 0);
        if (!zf) throw CheckpointError(at + ": cannot open: " + zip_strerror(za.get()));
        // The recorded size is only a claim, which a damaged file can inflate to gigabytes: the
        // buffer grows as bytes arrive. Read to the end: libzip checks the CRC on reaching it.
        const zip_uint64_t claimed = st.size;
        std::string data;
        try {
            data.reserve(std::min<zip_uint64_t>(claimed, bytes.size()));  // exact for stored entries
        } catch (const std::bad_alloc&) {
            zip_fclose(zf);
            throw CheckpointError(at + ": out of memory allocating " + std::to_string(claimed) + " bytes to read it");
        }
        char chunk[1 << 16];
        while (true) {
            const zip_int64_t n = zip_fread(zf, chunk, sizeof chunk);
            if (n < 0) {
                const std::string msg = at + ": " + zip_error_strerror(zip_file_get_error(zf));
                zip_fclose(zf);
                throw CheckpointError(msg);
            }
            if (n == 0) break;
            data.append(chunk, static_cast<std::size_t>(n));
            if (data.size() > claimed) {
                zip_fclose(zf);
                throw CheckpointError(at + ": holds more data than its recorded size");
            }
        }
        zip_fclose(zf);
        if (data.size() != claimed)
            throw CheckpointError(at + ": " + std::to_string(data.size()) + " bytes read, " + std::to_string(claimed) +
                                  " expected");

        const NpyHeader h = parse_npy_header(data, at);
        const std::size_t n = element_count(h.shape);
        const std::size_t have = data.size() - h.data_offset;
        if (n == SIZE_MAX || n * item_size(h.dtype) != have)
            throw CheckpointError(at + ": shape " + shape_tuple(h.shape) + " of " + dtype_descr(h.dtype) +
                                  " does not fit the " + std::to_string(have) + " data bytes of the entry");
        const char* raw = data.data() + h.data_offset;
        Entry& e = ck.slot(name);
        e.dtype = h.dtype;
        e.shape = h.shape;
        void* dst;
        try {
            if (h.dtype == DType::float32) {
                e.f32 = Array::from_shape(h.shape);
                dst = e.f32.data();
            } else if (h.dtype == DType::int64) {
                e.i64.resize(n);
                dst = e.i64.data();
            } else {
                e.u64.resize(n);
                dst = e.u64.data();
            }
        } catch (const std::bad_alloc&) {
            throw CheckpointError(at + ": out of memory allocating " + std::to_string(have) + " bytes for shape " +
                                  shape_tuple(h.shape));
        }
        if (have) std::memcpy(dst, raw, have);  // an empty array may have a null data pointer
    }
    return ck;
}

// ---- model and optimizer

namespace {

const std::string model_prefix = "model.";
const std::string optim_prefix = "optim.";

bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

// The module's name for each of the optimizer's parameters.
std::vector<std::string> optimizer_param_names(const nn::Module& model, const optim::Optimizer& optimizer) {
    std::unordered_map<const TensorImpl*, std::string> by_impl;
    for (const auto& [name, t] : model.named_parameters()) by_impl.emplace(t.impl(), name);
    std::vector<std::string> out;
    for (std::size_t i = 0; i < optimizer.parameters().size(); ++i) {
        const auto it = by_impl.find(optimizer.parameters()[i].impl());
        if (it == by_impl.end())
            throw std::invalid_argument(std::string("checkpoint: parameter ") + std::to_string(i) + " of the " +
                                        optimizer.kind() + " optimizer is not a parameter of the model");
        out.push_back(it->second);
    }
    return out;
}

std::string optim_kind_prefix(const optim::Optimizer& o) { return optim_prefix + o.kind() + "."; }

// "NaN at index 3 of 12", or "" when every value is finite.
std::string non_finite_value(const Array& a) {
    const float* p = a.data();
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!std::isfinite(p[i]))
            return std::string(std::isnan(p[i]) ? "NaN" : p[i] > 0 ? "+inf" : "-inf") + " at index " +
                   std::to_string(i) + " of " + std::to_string(a.size());
    return "";
}

}  // namespace

Checkpoint state_dict(const nn::Module& model, const optim::Optimizer* optimizer) {
    Checkpoint ck;
    for (const auto& [name, t] : model.named_parameters()) ck.put(model_prefix + name, t.value());
    if (!optimizer) return ck;
    const std::vector<std::string> names = optimizer_param_names(model, *optimizer);
    const std::string prefix = optim_kind_prefix(*optimizer);
    ck.put(prefix + "lr", Array(optimizer->lr()));
    for (std::size_t i = 0; i < names.size(); ++i) ck.put_int(prefix + "step." + names[i], optimizer->steps()[i]);
    for (const std::string& buffer : optimizer->state_names()) {
        const std::vector<Array>& state = optimizer->state(buffer);
        for (std::size_t i = 0; i < names.size(); ++i) {
            const Tensor& p = optimizer->parameters()[i];
            // Not yet allocated (no update so far): saved as zeros, so every file has every name.
            Array value = optimizer->steps()[i] > 0 && state[i].shape() == p.shape() ? state[i]
                                                                                      : Array(xt::zeros<float>(p.shape()));
            ck.put(prefix + buffer + "." + names[i], std::move(value));
        }
    }
    return ck;
}

namespace {

// Finds name in ck with the dtype and shape wanted, or throws saying what was expected.
const Array* expect_entry(const Checkpoint& ck, const std::string& name, DType dtype, const Shape& shape,
                          const std::string& where) {
    if (!ck.contains(name)) throw CheckpointError(where + ": entry '" + name + "' is missing");
    if (ck.dtype(name) != dtype)
        throw CheckpointError(where + ", entry '" + name + "': dtype " + dtype_descr(dtype) + " expected, got " +
                              dtype_descr(ck.dtype(name)));
    if (ck.shape(name) != shape)
        throw CheckpointError(where + ", entry '" + name + "': shape " + shape_tuple(shape) + " expected, got " +
                              shape_tuple(ck.shape(name)));
    return dtype == DType::float32 ? &ck.get(name) : nullptr;
}

void load_state_dict(const Checkpoint& ck, nn::Module& model, optim::Optimizer* optimizer, const std::string& where) {
    // 1. Check everything and copy into temporaries; nothing of model or optimizer changes.
    const auto named = model.named_parameters();
    std::unordered_set<std::string> expected;
    std::vector<Array> values;
    for (const auto& [name, t] : named) {
        const std::string key = model_prefix + name;
        expected.insert(key);
        values.push_back(*expect_entry(ck, key, DType::float32, Shape(t.shape().begin(), t.shape().end()), where));
        if (const std::string bad = non_finite_value(values.back()); !bad.empty())
            throw CheckpointError(where + ", entry '" + key + "': holds " + bad +
                                  " (a non-finite parameter is never loaded)");
    }
    float lr = 0.0f;
    std::vector<std::int64_t> steps;
    std::vector<std::vector<Array>> buffers;
    if (optimizer) {
        const std::vector<std::string> names = optimizer_param_names(model, *optimizer);
        const std::string prefix = optim_kind_prefix(*optimizer);
        const auto names_in_ck = ck.names();
        if (std::none_of(names_in_ck.begin(), names_in_ck.end(), [&](const std::string& n) { return starts_with(n, prefix); })) {
            const auto other = std::find_if(names_in_ck.begin(), names_in_ck.end(),
                                            [](const std::string& n) { return starts_with(n, optim_prefix); });
            throw CheckpointError(where + ": holds no state of the " + optimizer->kind() + " optimizer (no entry starts with '" +
                                  prefix + "')" + (other == names_in_ck.end() ? "" : "; it has '" + *other + "'"));
        }
        expected.insert(prefix + "lr");
        lr = (*expect_entry(ck, prefix + "lr", DType::float32, {}, where))();
        if (!(lr >= 0.0f) || !std::isfinite(lr))
            throw CheckpointError(where + ", entry '" + prefix + "lr': " + std::to_string(lr) +
                                  " is not a valid learning rate");
        for (const std::string& name : names) {
            const std::string key = prefix + "step." + name;
            expected.insert(key);
            expect_entry(ck, key, DType::int64, {}, where);
            steps.push_back(ck.get_int(key));
            if (steps.back() < 0)
                throw CheckpointError(where + ", entry '" + key + "': a negative step count " +
                                      std::to_string(steps.back()));
        }
        for (const std::string& buffer : optimizer->state_names()) {
            buffers.emplace_back();
            for (std::size_t i = 0; i < names.size(); ++i) {
                const std::string key = prefix + buffer + "." + names[i];
                expected.insert(key);
                const auto& ps = optimizer->parameters()[i].shape();
                const Array& a = *expect_entry(ck, key, DType::float32, Shape(ps.begin(), ps.end()), where);
                if (const std::string bad = non_finite_value(a); !bad.empty())
                    throw CheckpointError(where + ", entry '" + key + "': holds " + bad +
                                          " (non-finite optimizer state is never loaded)");
                // No update yet: the buffer stays unallocated, as in an optimizer that never stepped.
                buffers.back().push_back(steps[i] == 0 ? optim::detail::unallocated() : a);
            }
        }
    }
    for (const std::string& name : ck.names()) {
        const bool ours = starts_with(name, model_prefix) || (optimizer && starts_with(name, optim_prefix));
        if (!ours || expected.count(name)) continue;
        if (starts_with(name, model_prefix))
            throw CheckpointError(where + ": entry '" + name + "' is not a parameter of the model");
        throw CheckpointError(where + ": entry '" + name + "' is not state of the " + optimizer->kind() +
                              " optimizer (its entries start with '" + optim_kind_prefix(*optimizer) + "')");
    }

    // 2. Commit: swaps only, which cannot fail halfway.
    for (std::size_t i = 0; i < named.size(); ++i) {
        Tensor t = named[i].second;
        std::swap(t.value(), values[i]);
    }
    if (optimizer) {
        optimizer->set_lr(lr);
        optimizer->set_steps(std::move(steps));
        const std::vector<std::string> state_names = optimizer->state_names();
        for (std::size_t b = 0; b < state_names.size(); ++b) optimizer->set_state(state_names[b], std::move(buffers[b]));
    }
}

}  // namespace

void load_state_dict(const Checkpoint& ck, nn::Module& model, optim::Optimizer* optimizer) {
    load_state_dict(ck, model, optimizer, "checkpoint");
}

void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer* optimizer,
                     const Checkpoint& extra) {
    Checkpoint ck = state_dict(model, optimizer);
    for (const std::string& name : extra.names()) {
        if (starts_with(name, model_prefix) || starts_with(name, optim_prefix))
            throw std::invalid_argument("save_checkpoint: the extra entry '" + name +
                                        "' uses a reserved prefix (model. or optim.)");
    }
    // A NaN or an infinity in the model or its optimizer would make "the last good checkpoint"
    // a bad one: such a state is refused, and the file keeps what it held.
    for (const std::string& name : ck.names()) {
        if (ck.dtype(name) != DType::float32) continue;
        if (const std::string bad = non_finite_value(ck.get(name)); !bad.empty()) {
            const bool param = starts_with(name, model_prefix);
            throw NonFiniteStateError("checkpoint '" + path + "': " +
                                      (param ? "parameter '" + name.substr(model_prefix.size()) + "'"
                                             : "optimizer state '" + name + "'") +
                                      " holds " + bad + "; a non-finite state is not saved (the file is unchanged)");
        }
    }
    ck.update(extra);
    ck.save(path);
}

Checkpoint load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer* optimizer) {
    Checkpoint ck = Checkpoint::load(path);
    load_state_dict(ck, model, optimizer, "checkpoint '" + path + "'");
    return ck;
}

}  // namespace tg

// Checkpoints: named arrays saved as a NumPy .npz (a zip of .npy files, which numpy.load
// opens), plus the naming that maps a model's parameters and an optimizer's state onto them.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "layers/module.hpp"
#include "optim/optimizer.hpp"

namespace tg {

// Every failure to write, read or apply a checkpoint; the message names the file and entry.
class CheckpointError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// save_checkpoint was given a model or optimizer state holding a NaN or an infinity.
class NonFiniteStateError : public CheckpointError {
public:
    using CheckpointError::CheckpointError;
};

// The largest checkpoint file Checkpoint::load reads (4 GiB); a larger one is refused unread.
constexpr std::size_t max_checkpoint_bytes = std::size_t{4} << 30;

enum class DType { float32, int64, uint64 };  // .npy '<f4', '<i8', '<u8'

// An ordered map from names to arrays: float32 tensors, and int64/uint64 arrays for counters
// and generator states. Putting a name that exists replaces its entry where it stands.
class Checkpoint {
public:
    void put(const std::string& name, Array value);
    void put_int(const std::string& name, std::int64_t value);  // a 0-d int64 array
    void put_ints(const std::string& name, std::vector<std::int64_t> values);
    void put_uints(const std::string& name, std::vector<std::uint64_t> values);
    void put_generator(const std::string& name, const Generator& g);  // its 4-word state
    void update(const Checkpoint& other);  // puts each of other's entries, in its order

    bool contains(const std::string& name) const;
    std::vector<std::string> names() const;  // in order
    std::size_t size() const { return entries_.size(); }
    DType dtype(const std::string& name) const;
    Shape shape(const std::string& name) const;
    // Readers throw CheckpointError for a missing name or another dtype.
    const Array& get(const std::string& name) const;
    std::int64_t get_int(const std::string& name) const;  // a one-element int64 entry
    const std::vector<std::int64_t>& get_ints(const std::string& name) const;
    const std::vector<std::uint64_t>& get_uints(const std::string& name) const;
    void get_generator(const std::string& name, Generator& g) const;

    // Atomic: written to a temporary file in the same directory, synced, renamed over path.
    // Temporary files left by saves killed midway (path.tmp.XXXXXX) are removed afterwards.
    void save(const std::string& path) const;
    // Reads every entry in full (zip CRCs checked) and parses its .npy header; throws
    // CheckpointError naming the file and entry on any defect, for a file that is not a regular
    // file (a FIFO), or one of more than max_checkpoint_bytes.
    static Checkpoint load(const std::string& path);
    // The same on the bytes of a file already in memory; `name` stands for the path in messages.
    static Checkpoint load_bytes(const std::string& bytes, const std::string& name);

private:
    struct Entry {
        std::string name;
        DType dtype = DType::float32;
        Shape shape;
        Array f32;
        std::vector<std::int64_t> i64;
        std::vector<std::uint64_t> u64;
    };
    Entry& slot(const std::string& name);
    const Entry& find(const std::string& name, DType dtype) const;
    std::vector<Entry> entries_;
};

// The names used for a model and its optimizer (p is a parameter's dotted name):
//   model.<p>                      each parameter, float32
//   optim.<kind>.lr                the learning rate, 0-d float32
//   optim.<kind>.step.<p>          updates parameter p has had, 0-d int64
//   optim.<kind>.<buffer>.<p>      per-parameter state ("momentum"; "m", "v"), float32
// <kind> is Optimizer::kind(). Names outside model. and optim. are free for the caller.
Checkpoint state_dict(const nn::Module& model, const optim::Optimizer* optimizer = nullptr);

// Checks every model (and, when given, optimizer) entry of ck first: none missing, none
// unexpected, dtypes and shapes equal, every value finite; then copies them in. On any error it throws
// CheckpointError and leaves model and optimizer unchanged. Other entries are ignored, and
// so are optim. entries when no optimizer is given.
void load_state_dict(const Checkpoint& ck, nn::Module& model, optim::Optimizer* optimizer = nullptr);

// state_dict(model, optimizer) plus the caller's extra entries (whose names must not start
// with model. or optim.), saved atomically to path. Throws NonFiniteStateError naming the
// parameter (or optimizer entry) when one holds a NaN or an infinity, leaving path unchanged.
void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer* optimizer = nullptr,
                     const Checkpoint& extra = {});
// Checkpoint::load then load_state_dict; returns the whole file, for the extra entries.
Checkpoint load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer* optimizer = nullptr);

}  // namespace tg

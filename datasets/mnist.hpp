// MNIST for the examples: the IDX file format (raw or gzip), the data sets (pixels kept as
// bytes, converted to float a batch at a time), binarization, the paper's splits and halves,
// and a shuffling batch iterator whose state goes into checkpoints. Data comes from
// scripts/fetch-mnist.
//
// Errors are exceptions: std::runtime_error for files (the message names the file, and what
// was expected and found), std::invalid_argument / std::out_of_range for bad arguments.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace tg::mnist {

constexpr std::size_t image_rows = 28, image_cols = 28;
constexpr std::size_t image_pixels = image_rows * image_cols;  // 784
constexpr std::size_t half_pixels = image_pixels / 2;          // 392: 14 rows
constexpr std::size_t validation_size = 10000;                 // the last 10,000 of the training file
// The largest IDX file accepted: 47,040,000 data bytes, MNIST's training images. A header that
// claims more is refused before anything is read or allocated, whether the file is raw or gzip
// (a 1.5 MB gzip file can hold gigabytes of zeros), so a file never costs more memory than that.
constexpr std::size_t max_images = 60000;
constexpr std::size_t max_idx_bytes = max_images * image_pixels;

// The four files, as scripts/fetch-mnist names them (each may also be stored as NAME.gz).
constexpr const char* train_images_file = "train-images-idx3-ubyte";
constexpr const char* train_labels_file = "train-labels-idx1-ubyte";
constexpr const char* test_images_file = "t10k-images-idx3-ubyte";
constexpr const char* test_labels_file = "t10k-labels-idx1-ubyte";

// ---- IDX files of unsigned bytes --------------------------------------------------------

// The magic number is 0x0000 0x08 (unsigned bytes) ndim; then ndim big-endian uint32 sizes;
// then the bytes in row-major order.
struct Idx {
    std::vector<std::size_t> dims;
    std::vector<std::uint8_t> data;  // product(dims) bytes
};

// Reads a raw or gzip-compressed IDX file of unsigned bytes. With expected_ndim > 0 the magic
// must be exactly 0x0000080N (N = expected_ndim). Throws std::runtime_error naming the file
// for a missing or unreadable file, one that is not a regular file (a FIFO would block), a
// wrong magic, a claim of more than max_idx_bytes, a truncated header or body, or trailing bytes.
Idx read_idx(const std::string& path, int expected_ndim = 0);

// The same checks on bytes in memory (already decompressed); `name` goes into the messages.
Idx parse_idx(const std::uint8_t* bytes, std::size_t size, const std::string& name, int expected_ndim = 0);

// Writes `idx` as an IDX file, gzip-compressed if the path ends in ".gz", atomically
// (tg::write_file_atomic); for tests and tools.
void write_idx(const std::string& path, const Idx& idx);

// DIR/NAME if it exists, else DIR/NAME.gz; else throws saying how to fetch the data.
std::string find_idx(const std::string& dir, const std::string& name);

// ---- Data sets --------------------------------------------------------------------------

// Pixels stay bytes, as in the files: a quarter of the memory of floats (the 60,000 training
// images take 47 MB, not 188). Byte b stands for the intensity b / 255; binarized sets hold
// 0 or 255, so that the same rule gives their floats 0 and 1 exactly. gather, gather_halves
// and to_float make the floats the model sees, a batch or a chunk at a time.
struct DataSet {
    std::vector<std::uint8_t> pixels;  // [n * 784], image after image, rows of 28
    std::vector<std::uint8_t> labels;  // [n], digits 0-9
    std::size_t size() const { return labels.size(); }
    const std::uint8_t* image(std::size_t i) const { return pixels.data() + i * image_pixels; }
};

// Throws std::invalid_argument naming `op` unless `pixels` holds 784 bytes per label: what
// every reader of a data set's images checks first.
void check_data_set(const DataSet& data, const char* op);

// An images file (magic 0x00000803, 28x28 images) and its labels file (magic 0x00000801,
// digits 0-9, as many as images). Both headers are checked before either file's data is read.
// Pixels are the file's bytes.
DataSet load_pair(const std::string& images_path, const std::string& labels_path);

// Rows [begin, end) as a new data set.
DataSet slice(const DataSet& data, std::size_t begin, std::size_t end);

// n pixel bytes to floats b / 255 (0 and 255 give exactly 0 and 1).
void to_float(const std::uint8_t* bytes, std::size_t n, float* out);

// ---- Binarization -----------------------------------------------------------------------

// fixed: every pixel is sampled once, 1 with probability its intensity, from a fixed seed
// (the paper's setting). threshold: 1 where the intensity is above 0.5. dynamic: the training
// images are sampled again for every batch (binarize_sample on the gathered batch); the
// validation and test images are fixed-binarized so that evaluation is deterministic.
// none: intensities as they are.
enum class Binarization { fixed, threshold, dynamic, none };

Binarization parse_binarization(const std::string& name);  // "fixed", "threshold", "dynamic", "none"
const char* binarization_name(Binarization mode);

// In place: each pixel becomes 1 with probability its intensity p (gen.uniform() < p), else
// 0; one draw per pixel in order. On float images (a gathered batch) or on a data set's bytes
// (which become 0 or 255; the same draws and comparisons, so the same samples as on floats).
void binarize_sample(Array& images, Generator& gen);
void binarize_sample(DataSet& data, Generator& gen);
// In place: 1 where the intensity is above 0.5, else 0 (255 for bytes: those above 127).
void binarize_threshold(Array& images);
void binarize_threshold(DataSet& data);

// ---- The paper's data: train 50,000 / validation 10,000 / test 10,000 ------------------

struct LoadOptions {
    Binarization binarization = Binarization::fixed;
    std::uint64_t seed = 0;  // of fixed binarization (the training file's samples; the test file's use seed + 1)
    std::size_t validation = validation_size;  // taken from the end of the training file
};

struct Mnist {
    DataSet train, validation, test;
    Binarization binarization = Binarization::fixed;  // dynamic: train holds intensities
};

// Loads dir/{train,t10k}-{images,labels} (raw or .gz), splits and binarizes them.
Mnist load(const std::string& dir, const LoadOptions& options = {});

// ---- Halves and batches -----------------------------------------------------------------

// The upper half (rows 0-13) of each image into `upper` [n, 392], the lower half (rows
// 14-27) into `lower` [n, 392]. Buffers of the right shape are reused, not reallocated.
void halves(const Array& images, Array& upper, Array& lower);

// The given rows of `data` as floats (to_float) into reused buffers: whole images [b, 784],
// or their halves [b, 392] each. Throws std::out_of_range for a row past the end.
void gather(const DataSet& data, const std::vector<std::size_t>& rows, Array& images);
// The images as above and their digits as class indices [b] (what cross_entropy, one_hot and
// Categorical::log_prob take).
void gather(const DataSet& data, const std::vector<std::size_t>& rows, Array& images, Indices& labels);
void gather_halves(const DataSet& data, const std::vector<std::size_t>& rows, Array& upper, Array& lower);

struct BatchOptions {
    std::size_t batch_size = 100;
    bool drop_last = false;  // drop an epoch's last batch when it is smaller than batch_size
    bool shuffle = true;     // a new random order every epoch; false keeps the file order
    std::uint64_t seed = 0;  // of the shuffling generator
};

// Batches in an epoch of a data set of `rows` (the last one smaller unless drop_last).
std::size_t batches_per_epoch(std::size_t rows, const BatchOptions& options);

// Everything a batch iterator needs to continue exactly where it was: for checkpoints.
struct BatchState {
    std::uint64_t epoch = 0;     // the current epoch, from 0
    std::uint64_t position = 0;  // rows of this epoch already handed out
    std::uint64_t rows = 0;      // size of the data set (checked on restore)
    std::array<std::uint64_t, 4> generator{};  // the shuffling generator at the start of the epoch

    // As 7 integers [epoch, position, rows, generator...] and back.
    std::vector<std::uint64_t> words() const;
    static BatchState from_words(const std::vector<std::uint64_t>& words);
};

// Hands out the row indices of each batch. Every epoch is a Fisher-Yates shuffle of
// 0..rows-1 (Generator::below), so the order depends only on the seed and the epoch.
//
//     BatchIterator batches(data.size(), {100});
//     for (int epoch = 0; epoch < epochs; ++epoch)
//         while (batches.next()) gather_halves(data, batches.indices(), x, y), ...;
class BatchIterator {
public:
    BatchIterator(std::size_t rows, BatchOptions options = {});

    // true: indices() holds the next batch of this epoch. false: the epoch is over, and the
    // iterator has moved to the next one (reshuffled), which the next call starts.
    bool next();
    const std::vector<std::size_t>& indices() const { return indices_; }

    std::uint64_t epoch() const { return epoch_; }
    std::size_t batches_per_epoch() const;
    const BatchOptions& options() const { return options_; }

    BatchState state() const;
    void set_state(const BatchState& state);  // throws if it belongs to a data set of another size

private:
    void start_epoch();

    std::size_t rows_;
    BatchOptions options_;
    Generator gen_;
    std::array<std::uint64_t, 4> epoch_start_{};
    std::uint64_t epoch_ = 0;
    std::size_t position_ = 0;
    std::vector<std::size_t> order_;
    std::vector<std::size_t> indices_;
};

}  // namespace tg::mnist

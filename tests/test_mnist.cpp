// The MNIST data library on small synthetic IDX files written here (never the real download).
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>

#include <unistd.h>

#include <xtensor/xbuilder.hpp>

#include "datasets/mnist.hpp"
#include "helpers.hpp"

using namespace tg;
using namespace tg::mnist;
namespace fs = std::filesystem;

using tgtest::TempDir;

namespace {

Idx image_idx(std::size_t n, std::size_t rows = 28, std::size_t cols = 28) {
    Idx idx{{n, rows, cols}, std::vector<std::uint8_t>(n * rows * cols)};
    for (std::size_t i = 0; i < idx.data.size(); ++i) idx.data[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
    return idx;
}

Idx label_idx(std::size_t n) {
    Idx idx{{n}, std::vector<std::uint8_t>(n)};
    for (std::size_t i = 0; i < n; ++i) idx.data[i] = static_cast<std::uint8_t>(i % 10);
    return idx;
}

// A data set's pixels as floats [n, 784], as the model sees them.
Array floats(const DataSet& set) {
    Array a = Array::from_shape({set.size(), image_pixels});
    to_float(set.pixels.data(), set.pixels.size(), a.data());
    return a;
}

// A data directory with all four files: n_train training and n_test test images.
void write_mnist_dir(const TempDir& dir, std::size_t n_train, std::size_t n_test, bool gz) {
    const std::string ext = gz ? ".gz" : "";
    write_idx(dir / (train_images_file + ext), image_idx(n_train));
    write_idx(dir / (train_labels_file + ext), label_idx(n_train));
    Idx test = image_idx(n_test);
    for (auto& b : test.data) b = static_cast<std::uint8_t>(255 - b);  // unlike the training images
    write_idx(dir / (test_images_file + ext), test);
    write_idx(dir / (test_labels_file + ext), label_idx(n_test));
}

std::vector<std::uint8_t> file_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::vector<std::uint8_t>& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// The message of the std::exception that f throws; fails the test if it throws none.
template <class F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const std::exception& e) {
        return e.what();
    }
    FAIL_CHECK("expected an exception");
    return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("IDX: raw files round-trip through write_idx and read_idx") {
    TempDir dir;
    const Idx images = image_idx(5, 3, 4);
    write_idx(dir / "images", images);
    CHECK(file_bytes(dir / "images").size() == 16 + 60);
    const Idx back = read_idx(dir / "images", 3);
    CHECK(back.dims == images.dims);
    CHECK(back.data == images.data);

    write_idx(dir / "labels", label_idx(7));
    const Idx labels = read_idx(dir / "labels");  // the generic reader: any unsigned-byte IDX
    CHECK(labels.dims == std::vector<std::size_t>{7});
    CHECK(labels.data == label_idx(7).data);
}

TEST_CASE("IDX: gzip files round-trip and find_idx finds NAME or NAME.gz") {
    TempDir dir;
    const Idx images = image_idx(20);
    write_idx(dir / "x-idx3-ubyte.gz", images);
    const std::vector<std::uint8_t> bytes = file_bytes(dir / "x-idx3-ubyte.gz");
    REQUIRE(bytes.size() > 2);
    CHECK(bytes[0] == 0x1f);  // really gzip, and smaller than the raw 15,696 bytes
    CHECK(bytes[1] == 0x8b);
    CHECK(bytes.size() < 16 + images.data.size());
    CHECK(read_idx(dir / "x-idx3-ubyte.gz", 3).data == images.data);

    CHECK(find_idx(dir.path.string(), "x-idx3-ubyte") == dir / "x-idx3-ubyte.gz");
    write_idx(dir / "x-idx3-ubyte", images);
    CHECK(find_idx(dir.path.string(), "x-idx3-ubyte") == dir / "x-idx3-ubyte");  // raw first
}

TEST_CASE("IDX: a wrong magic number is refused, naming the file and both numbers") {
    TempDir dir;
    write_idx(dir / "labels", label_idx(4));
    const std::string msg = error_of([&] { read_idx(dir / "labels", 3); });
    CHECK(contains(msg, dir / "labels"));
    CHECK(contains(msg, "expected magic 0x00000803"));
    CHECK(contains(msg, "found 0x00000801"));

    write_bytes(dir / "junk", {'h', 'e', 'l', 'l', 'o', '!', '!', '!'});
    CHECK(contains(error_of([&] { read_idx(dir / "junk"); }), "expected an IDX magic number"));
    write_bytes(dir / "floats", {0, 0, 0x0D, 1, 0, 0, 0, 0});
    CHECK(contains(error_of([&] { read_idx(dir / "floats"); }), "expected unsigned bytes"));
}

TEST_CASE("IDX: truncated headers are refused, raw and gzip") {
    TempDir dir;
    const std::vector<std::uint8_t> full = [&] {
        write_idx(dir / "full", image_idx(2));
        return file_bytes(dir / "full");
    }();
    for (std::size_t keep : {0, 3, 4, 10, 15}) {
        CAPTURE(keep);
        write_bytes(dir / "cut", std::vector<std::uint8_t>(full.begin(), full.begin() + keep));
        const std::string msg = error_of([&] { read_idx(dir / "cut", 3); });
        CHECK(contains(msg, dir / "cut"));
        CHECK(contains(msg, "truncated header"));
        CHECK(contains(msg, keep < 4 ? "expected a 4-byte magic number" : "expected 16 bytes"));
    }
    // The same cut inside a gzip stream.
    write_idx(dir / "cut.gz", Idx{{1, 2, 3}, std::vector<std::uint8_t>(6)});
    std::vector<std::uint8_t> gz = file_bytes(dir / "cut.gz");
    gz.resize(12);  // inside the deflate data: nothing decompresses
    write_bytes(dir / "cut.gz", gz);
    const std::string msg = error_of([&] { read_idx(dir / "cut.gz", 3); });
    CHECK(contains(msg, dir / "cut.gz"));
    CHECK(contains(msg, "truncated header"));
}

TEST_CASE("IDX: truncated bodies and trailing bytes are refused, raw and gzip") {
    TempDir dir;
    write_idx(dir / "full", image_idx(3));
    std::vector<std::uint8_t> bytes = file_bytes(dir / "full");
    bytes.resize(bytes.size() - 100);
    write_bytes(dir / "short", bytes);
    std::string msg = error_of([&] { read_idx(dir / "short", 3); });
    CHECK(contains(msg, dir / "short"));
    CHECK(contains(msg, "truncated data: expected 2352 bytes"));
    CHECK(contains(msg, "found 2252"));

    // gzip: a stream cut in the middle.
    write_idx(dir / "cutstream.gz", image_idx(3));
    std::vector<std::uint8_t> gz = file_bytes(dir / "cutstream.gz");
    gz.resize(gz.size() * 2 / 3);
    write_bytes(dir / "cutstream.gz", gz);
    msg = error_of([&] { read_idx(dir / "cutstream.gz", 3); });
    CHECK(contains(msg, dir / "cutstream.gz"));
    CHECK(contains(msg, "truncated data"));

    bytes = file_bytes(dir / "full");
    bytes.push_back(7);
    write_bytes(dir / "long", bytes);
    msg = error_of([&] { read_idx(dir / "long", 3); });
    CHECK(contains(msg, dir / "long"));
    CHECK(contains(msg, "trailing bytes"));

    // In memory too, for the fuzzer: every prefix of a valid file is refused, none crashes.
    const std::vector<std::uint8_t> good = file_bytes(dir / "full");
    for (std::size_t keep = 0; keep < good.size(); keep += 97)
        CHECK_THROWS_AS(parse_idx(good.data(), keep, "mem", 3), std::runtime_error);
    CHECK(parse_idx(good.data(), good.size(), "mem", 3).dims == std::vector<std::size_t>{3, 28, 28});
}

TEST_CASE("IDX: corrupt gzip data and bad writer arguments are refused") {
    TempDir dir;
    write_idx(dir / "x.gz", image_idx(3));
    std::vector<std::uint8_t> gz = file_bytes(dir / "x.gz");
    for (std::size_t i = 12; i < gz.size() - 8; ++i) gz[i] ^= 0x5A;
    write_bytes(dir / "x.gz", gz);
    const std::string msg = error_of([&] { read_idx(dir / "x.gz", 3); });
    CHECK(contains(msg, dir / "x.gz"));
    CHECK(contains(msg, "corrupt gzip data"));

    CHECK_THROWS_AS(write_idx(dir / "bad", Idx{{3, 28, 28}, std::vector<std::uint8_t>(10)}), std::invalid_argument);
    CHECK_THROWS_AS(write_idx(dir / "bad", Idx{{}, {}}), std::invalid_argument);
    CHECK(contains(error_of([&] { read_idx(dir.path.string()); }), "is a directory"));
}

TEST_CASE("IDX: gzip members may follow one another, and garbage after the stream or a missing trailer is refused") {
    TempDir dir;
    const Idx images = image_idx(3);
    write_idx(dir / "whole.gz", images);
    const std::vector<std::uint8_t> gz = file_bytes(dir / "whole.gz");

    CHECK(read_idx(dir / "whole.gz", 3).data == images.data);

    for (const std::vector<std::uint8_t>& junk :
         {std::vector<std::uint8_t>{0}, std::vector<std::uint8_t>{'g', 'a', 'r', 'b', 'a', 'g', 'e'},
          std::vector<std::uint8_t>{0x1f}, std::vector<std::uint8_t>(5000, 0x55)}) {
        CAPTURE(junk.size());
        std::vector<std::uint8_t> bytes = gz;
        bytes.insert(bytes.end(), junk.begin(), junk.end());
        write_bytes(dir / "junk.gz", bytes);
        const std::string msg = error_of([&] { read_idx(dir / "junk.gz", 3); });
        CHECK(contains(msg, dir / "junk.gz"));
        CHECK(contains(msg, "trailing bytes after the gzip stream"));
    }
    // a second member holding more data: the IDX's own trailing-bytes check
    std::vector<std::uint8_t> twice = gz;
    twice.insert(twice.end(), gz.begin(), gz.end());
    write_bytes(dir / "twice.gz", twice);
    CHECK(contains(error_of([&] { read_idx(dir / "twice.gz", 3); }), "trailing bytes"));

    // every data byte there, the CRC and length trailer cut off: never checked, so refused
    for (std::size_t cut : {1, 4, 8}) {
        CAPTURE(cut);
        write_bytes(dir / "notrailer.gz", std::vector<std::uint8_t>(gz.begin(), gz.end() - cut));
        const std::string msg = error_of([&] { read_idx(dir / "notrailer.gz", 3); });
        CHECK(contains(msg, dir / "notrailer.gz"));
        CHECK(contains(msg, "truncated gzip stream"));
    }
    // a corrupt CRC
    std::vector<std::uint8_t> bad_crc = gz;
    bad_crc[bad_crc.size() - 8] ^= 1;
    write_bytes(dir / "crc.gz", bad_crc);
    CHECK(contains(error_of([&] { read_idx(dir / "crc.gz", 3); }), "corrupt gzip data: incorrect data check"));
}

TEST_CASE("IDX: a symlink loop is reported as one (ELOOP), naming the path, not as a missing file") {
    TempDir dir;
    fs::create_symlink(dir / "b-idx3-ubyte", dir / "a-idx3-ubyte");
    fs::create_symlink(dir / "a-idx3-ubyte", dir / "b-idx3-ubyte");
    std::string msg = error_of([&] { read_idx(dir / "a-idx3-ubyte", 3); });
    CHECK(contains(msg, dir / "a-idx3-ubyte"));
    CHECK(contains(msg, "Too many levels of symbolic links"));
    CHECK_FALSE(contains(msg, "no such file"));
    msg = error_of([&] { find_idx(dir.path.string(), "a-idx3-ubyte"); });
    CHECK(contains(msg, dir / "a-idx3-ubyte"));
    CHECK(contains(msg, "Too many levels of symbolic links"));
}

TEST_CASE("MNIST: load_pair keeps the pixel bytes and labels, and to_float scales them to [0, 1]") {
    TempDir dir;
    write_idx(dir / "im", image_idx(4));
    write_idx(dir / "lb.gz", label_idx(4));
    const DataSet set = load_pair(dir / "im", dir / "lb.gz");
    REQUIRE(set.size() == 4);
    const Idx raw = image_idx(4);
    CHECK(set.pixels == raw.data);
    CHECK(set.image(1) == set.pixels.data() + 784);
    const Array x = floats(set);
    for (std::size_t i = 0; i < raw.data.size(); i += 13) CHECK(x.data()[i] == raw.data[i] / 255.0f);
    CHECK(xt::amin(x)() == 0.0f);
    CHECK(xt::amax(x)() == 1.0f);  // exactly: 255 / 255
    CHECK(set.labels == std::vector<std::uint8_t>{0, 1, 2, 3});
}

TEST_CASE("MNIST: image and label counts must agree, images must be 28x28, labels digits") {
    TempDir dir;
    write_idx(dir / "im", image_idx(5));
    write_idx(dir / "lb", label_idx(4));
    std::string msg = error_of([&] { load_pair(dir / "im", dir / "lb"); });
    CHECK(contains(msg, dir / "lb"));
    CHECK(contains(msg, "expected 5 labels"));
    CHECK(contains(msg, "found 4"));

    write_idx(dir / "wide", image_idx(4, 28, 29));
    msg = error_of([&] { load_pair(dir / "wide", dir / "lb"); });
    CHECK(contains(msg, dir / "wide"));
    CHECK(contains(msg, "expected 28x28 images, found 4 images of 28x29"));

    Idx labels = label_idx(5);
    labels.data[3] = 12;
    write_idx(dir / "lb12", labels);
    msg = error_of([&] { load_pair(dir / "im", dir / "lb12"); });
    CHECK(contains(msg, dir / "lb12"));
    CHECK(contains(msg, "label 12 at index 3"));
}

TEST_CASE("MNIST: a missing directory or file says to run scripts/fetch-mnist") {
    TempDir dir;
    const std::string missing_dir = dir / "nowhere";
    std::string msg = error_of([&] { load(missing_dir); });
    CHECK(contains(msg, missing_dir));
    CHECK(contains(msg, "run scripts/fetch-mnist"));

    write_mnist_dir(dir, 12, 5, false);
    fs::remove(dir / test_labels_file);
    msg = error_of([&] { load(dir.path.string()); });
    CHECK(contains(msg, test_labels_file));
    CHECK(contains(msg, "run scripts/fetch-mnist"));

    msg = error_of([&] { read_idx(dir / "absent"); });
    CHECK(contains(msg, dir / "absent"));
    CHECK(contains(msg, "scripts/fetch-mnist"));
}

TEST_CASE("MNIST: load splits the training file into train and validation, test from t10k") {
    for (bool gz : {false, true}) {
        CAPTURE(gz);
        TempDir dir;
        write_mnist_dir(dir, 12, 5, gz);
        const Mnist m = load(dir.path.string(), {Binarization::none, 0, 3});
        REQUIRE(m.train.size() == 9);
        REQUIRE(m.validation.size() == 3);
        REQUIRE(m.test.size() == 5);
        const DataSet all = load_pair(dir / (std::string(train_images_file) + (gz ? ".gz" : "")),
                                      dir / (std::string(train_labels_file) + (gz ? ".gz" : "")));
        // the first rows train, the last ones validate
        CHECK(m.train.pixels == std::vector<std::uint8_t>(all.image(0), all.image(9)));
        CHECK(m.validation.pixels == std::vector<std::uint8_t>(all.image(9), all.image(12)));
        CHECK(m.validation.labels == std::vector<std::uint8_t>{9, 0, 1});
        CHECK(m.test.pixels[0] == 255 - all.pixels[0]);
    }
    TempDir dir;
    write_mnist_dir(dir, 12, 5, false);
    CHECK_THROWS_AS(load(dir.path.string(), {Binarization::none, 0, 12}), std::invalid_argument);
    const DataSet all = load_pair(dir / train_images_file, dir / train_labels_file);
    CHECK(slice(all, 2, 5).labels == std::vector<std::uint8_t>{2, 3, 4});
    CHECK(slice(all, 2, 5).pixels == std::vector<std::uint8_t>(all.image(2), all.image(5)));
    CHECK_THROWS_AS(slice(all, 5, 13), std::out_of_range);
}

TEST_CASE("MNIST: fixed binarization is deterministic, seeded, and follows the intensities") {
    TempDir dir;
    write_mnist_dir(dir, 40, 10, true);
    const Mnist a = load(dir.path.string(), {Binarization::fixed, 7, 10});
    const Mnist b = load(dir.path.string(), {Binarization::fixed, 7, 10});
    const Mnist c = load(dir.path.string(), {Binarization::fixed, 8, 10});
    const Mnist raw = load(dir.path.string(), {Binarization::none, 0, 10});
    CHECK(a.train.pixels == b.train.pixels);
    CHECK(a.test.pixels == b.test.pixels);
    CHECK(a.train.pixels != c.train.pixels);
    CHECK(a.test.pixels != c.test.pixels);
    for (const DataSet* set : {&a.train, &a.validation, &a.test})
        CHECK(std::all_of(set->pixels.begin(), set->pixels.end(), [](std::uint8_t b) { return b == 0 || b == 255; }));
    // Sampled, not thresholded: the mean matches the mean intensity within a few standard errors.
    const double mean_bin = xt::mean(floats(a.train))(), mean_raw = xt::mean(floats(raw.train))();
    CHECK(std::abs(mean_bin - mean_raw) < 0.01);
    CHECK(floats(a.train) != xt::cast<float>(floats(raw.train) > 0.5f));
    // Intensity 0 always gives 0 and intensity 1 always 1.
    for (std::size_t i = 0; i < raw.train.pixels.size(); ++i) {
        const std::uint8_t p = raw.train.pixels[i];
        if (p == 0 || p == 255) CHECK(a.train.pixels[i] == p);
    }
    // The very samples of binarize_sample on the floats of the whole training file (train rows,
    // then validation rows) and of the test file (seed + 1): the draws and comparisons of
    // the float version, pixel for pixel.
    Array train_floats = xt::concatenate(xt::xtuple(floats(raw.train), floats(raw.validation)));
    Array test_floats = floats(raw.test);
    Generator train_gen(7), test_gen(8);
    binarize_sample(train_floats, train_gen);
    binarize_sample(test_floats, test_gen);
    CHECK(xt::concatenate(xt::xtuple(floats(a.train), floats(a.validation))) == train_floats);
    CHECK(floats(a.test) == test_floats);
}

TEST_CASE("MNIST: threshold binarization is exact") {
    Array x = {{0.0f, 0.5f, 127.0f / 255, 128.0f / 255, 0.5001f, 1.0f}};
    binarize_threshold(x);
    CHECK(x == Array{{0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f}});

    TempDir dir;
    write_mnist_dir(dir, 12, 5, false);
    const Mnist t = load(dir.path.string(), {Binarization::threshold, 0, 3});
    const Mnist raw = load(dir.path.string(), {Binarization::none, 0, 3});
    CHECK(floats(t.train) == xt::cast<float>(floats(raw.train) > 0.5f));
    CHECK(floats(t.test) == xt::cast<float>(floats(raw.test) > 0.5f));
    for (std::size_t i = 0; i < raw.train.pixels.size(); ++i)
        CHECK(t.train.pixels[i] == (raw.train.pixels[i] > 127 ? 255 : 0));
    CHECK(parse_binarization("threshold") == Binarization::threshold);
    CHECK(std::string(binarization_name(parse_binarization("dynamic"))) == "dynamic");
    CHECK(contains(error_of([] { parse_binarization("otsu"); }), "fixed, threshold, dynamic or none"));
}

TEST_CASE("MNIST: dynamic binarization keeps training intensities and resamples every epoch") {
    TempDir dir;
    write_mnist_dir(dir, 30, 10, false);
    const Mnist dyn = load(dir.path.string(), {Binarization::dynamic, 3, 10});
    const Mnist fixed = load(dir.path.string(), {Binarization::fixed, 3, 10});
    const Mnist raw = load(dir.path.string(), {Binarization::none, 0, 10});
    CHECK(dyn.binarization == Binarization::dynamic);
    CHECK(dyn.train.pixels == raw.train.pixels);
    CHECK(dyn.validation.pixels == fixed.validation.pixels);  // evaluation is the same in both modes
    CHECK(dyn.test.pixels == fixed.test.pixels);

    Generator gen(11);
    BatchIterator batches(dyn.train.size(), {20, false, true, 5});
    Array x, y, first_x;
    std::vector<std::size_t> first_rows;
    for (int epoch = 0; epoch < 2; ++epoch) {
        REQUIRE(batches.next());
        gather_halves(dyn.train, batches.indices(), x, y);
        binarize_sample(x, gen);
        CHECK(xt::all(xt::equal(x, 0.0f) || xt::equal(x, 1.0f)));
        if (epoch == 0) first_x = x, first_rows = batches.indices();
        while (batches.next()) {
        }
    }
    // Same rows twice (gathered again in the first epoch's order): different samples.
    gather_halves(dyn.train, first_rows, x, y);
    Array again = x;
    binarize_sample(x, gen);
    binarize_sample(again, gen);
    CHECK(x != again);
}

TEST_CASE("MNIST: halves split rows 0-13 from rows 14-27, for whole sets and gathered batches") {
    Array images = Array::from_shape({3, 784});
    for (std::size_t i = 0; i < images.size(); ++i) images.data()[i] = static_cast<float>(i);
    Array upper, lower;
    halves(images, upper, lower);
    REQUIRE(upper.shape() == Array::shape_type{3, 392});
    REQUIRE(lower.shape() == Array::shape_type{3, 392});
    CHECK(upper(1, 0) == 784.0f);           // image 1, row 0, column 0
    CHECK(upper(1, 391) == 784.0f + 391);   // row 13, column 27
    CHECK(lower(1, 0) == 784.0f + 14 * 28);  // row 14, column 0
    CHECK(lower(2, 391) == 3 * 784.0f - 1);
    CHECK_THROWS_AS(halves(Array::from_shape({3, 783}), upper, lower), std::invalid_argument);

    // gathered rows of a data set: its bytes as floats, split the same way
    DataSet set{std::vector<std::uint8_t>(3 * 784), {0, 1, 2}};
    for (std::size_t i = 0; i < set.pixels.size(); ++i) set.pixels[i] = static_cast<std::uint8_t>(i * 7 % 256);
    const Array x = floats(set);
    halves(x, upper, lower);
    Array up, low, whole;
    gather_halves(set, {2, 0}, up, low);
    gather(set, {2, 0}, whole);
    CHECK(up == xt::view(upper, xt::keep(2, 0), xt::all()));
    CHECK(low == xt::view(lower, xt::keep(2, 0), xt::all()));
    CHECK(whole == xt::view(x, xt::keep(2, 0), xt::all()));
    CHECK(whole(0, 1) == set.pixels[2 * 784 + 1] / 255.0f);
    CHECK_THROWS_AS(gather(set, {3}, whole), std::out_of_range);
    set.pixels.pop_back();  // pixels that do not fit the labels
    CHECK(contains(error_of([&] { gather_halves(set, {0}, up, low); }), "has 2351 pixel bytes, not 2352"));
}

TEST_CASE("MNIST: the batch iterator covers every row once per epoch, keeping or dropping the last batch") {
    for (bool drop_last : {false, true}) {
        CAPTURE(drop_last);
        BatchIterator batches(23, {5, drop_last, true, 1});
        CHECK(batches.batches_per_epoch() == (drop_last ? 4u : 5u));
        CHECK(tg::mnist::batches_per_epoch(25, {5, drop_last}) == 5u);
        for (std::uint64_t epoch = 0; epoch < 3; ++epoch) {
            CHECK(batches.epoch() == epoch);
            std::multiset<std::size_t> seen;
            std::vector<std::size_t> sizes;
            while (batches.next()) {
                sizes.push_back(batches.indices().size());
                seen.insert(batches.indices().begin(), batches.indices().end());
            }
            if (drop_last) {
                CHECK(sizes == std::vector<std::size_t>{5, 5, 5, 5});
                CHECK(std::set<std::size_t>(seen.begin(), seen.end()).size() == 20);  // no row twice
            } else {
                CHECK(sizes == std::vector<std::size_t>{5, 5, 5, 5, 3});
                std::multiset<std::size_t> all;
                for (std::size_t i = 0; i < 23; ++i) all.insert(i);
                CHECK(seen == all);
            }
        }
    }
    BatchIterator ordered(7, {3, false, false, 0});
    REQUIRE(ordered.next());
    CHECK(ordered.indices() == std::vector<std::size_t>{0, 1, 2});
}

TEST_CASE("MNIST: the batch order is deterministic by seed and changes across epochs") {
    auto epochs = [](std::uint64_t seed) {
        BatchIterator batches(50, {50, false, true, seed});
        std::vector<std::vector<std::size_t>> out;
        for (int e = 0; e < 3; ++e) {
            REQUIRE(batches.next());
            out.push_back(batches.indices());
            CHECK_FALSE(batches.next());
        }
        return out;
    };
    const auto a = epochs(1), b = epochs(1), c = epochs(2);
    CHECK(a == b);
    CHECK(a != c);
    CHECK(a[0] != a[1]);
    CHECK(a[1] != a[2]);
    std::vector<std::size_t> identity(50);
    std::iota(identity.begin(), identity.end(), std::size_t{0});
    CHECK(a[0] != identity);
}

TEST_CASE("MNIST: batch iterator state saved mid-epoch restores to continue identically") {
    const BatchOptions options{4, false, true, 9};
    auto run = [](BatchIterator& it, int calls) {
        std::vector<std::vector<std::size_t>> out;
        for (int i = 0; i < calls; ++i) out.push_back(it.next() ? it.indices() : std::vector<std::size_t>{});
        return out;
    };
    for (int before : {0, 2, 3, 4, 7}) {  // 10 rows of 4: an epoch is 3 batches and one false
        CAPTURE(before);
        BatchIterator original(10, options);
        run(original, before);
        const std::vector<std::uint64_t> words = original.state().words();
        const auto expected = run(original, 9);

        BatchIterator resumed(10, {4, false, true, 12345});  // another seed: the state overrides it
        run(resumed, 5);
        resumed.set_state(BatchState::from_words(words));
        CHECK(resumed.epoch() == words[0]);
        CHECK(run(resumed, 9) == expected);
    }
    BatchIterator other(11, options);
    CHECK(contains(error_of([&] { other.set_state(BatchIterator(10, options).state()); }), "10 rows"));
    BatchState bad = other.state();
    bad.position = 12;
    CHECK_THROWS_AS(other.set_state(bad), std::invalid_argument);
    CHECK_THROWS_AS(BatchState::from_words({1, 2, 3}), std::invalid_argument);
}

TEST_CASE("MNIST: gathering batches reuses the buffers and bad batch sizes are refused") {
    DataSet set{std::vector<std::uint8_t>(10 * 784), std::vector<std::uint8_t>(10)};
    BatchIterator batches(10, {4, false, true, 0});
    Array up, low;
    REQUIRE(batches.next());
    gather_halves(set, batches.indices(), up, low);
    const float* up_data = up.data();
    const float* low_data = low.data();
    REQUIRE(batches.next());
    gather_halves(set, batches.indices(), up, low);
    CHECK(up.data() == up_data);  // same shape, same storage
    CHECK(low.data() == low_data);
    REQUIRE(batches.next());
    gather_halves(set, batches.indices(), up, low);
    CHECK(up.shape() == Array::shape_type{2, 392});  // the kept partial batch

    CHECK_THROWS_AS(BatchIterator(10, {0}), std::invalid_argument);
    CHECK(contains(error_of([] { BatchIterator(10, {11}); }), "larger than the data set"));
    CHECK_THROWS_AS(BatchIterator(0, {1}), std::invalid_argument);
}

TEST_CASE("MNIST: gather with labels gives the batch's digits as class indices") {
    TempDir dir;
    write_idx(dir / "im", image_idx(4));
    write_idx(dir / "lb", label_idx(4));
    const DataSet set = load_pair(dir / "im", dir / "lb");
    Array images;
    Indices labels;
    gather(set, {3, 0, 3}, images, labels);
    CHECK(shape_str(images.shape()) == "(3, 784)");
    CHECK(labels == Indices{3, 0, 3});
    CHECK(images(0, 5) == set.image(3)[5] / 255.0f);
    CHECK(cross_entropy(Tensor::zeros({3, 10}), labels).item() == doctest::Approx(std::log(10.0)));
    CHECK_THROWS_WITH_AS(gather(set, {4}, images, labels), doctest::Contains("mnist::gather: row 4 is out of range"),
                         std::out_of_range);
}

// libtorch twin of bench/torch_reference.py's training steps, for bench/compare: the fairest
// peer of a C++ library is PyTorch's own C++ frontend, without Python's per-op cost.
// --model sbn: structured output 392 -> Linear -> 200 relaxed units -> Linear -> 200 -> Linear
// -> 392 Bernoulli logits, BCE with logits summed over the lower half, mean over the batch.
// --model vae: 784 -> Linear -> 200 relaxed units -> Linear -> 784 logits, BCE summed plus the
// analytic KL to the uniform prior, mean over the batch. Both: batch 100, Adam 1e-3, tau
// annealed as the examples do; units Binary Concrete (bernoulli) or Gumbel-Softmax over 20
// variables of 10 classes (categorical). Data: the training IDX file, binarized once at random.
//
// Built by bench/compare when Debian's libtorch-dev is installed:
//   g++ -O2 -std=c++17 bench/libtorch_reference.cpp -I/usr/include/torch/csrc/api/include \
//       -ltorch -ltorch_cpu -lc10 -o build/bench/libtorch_reference
// Usage: libtorch_reference DATA_DIR sbn|vae bernoulli|categorical THREADS STEPS
// Prints train_steps_per_s= and train_ms_per_step=.
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <string>
#include <vector>

namespace F = torch::nn::functional;

namespace {

constexpr int64_t hidden = 200, classes = 10, batch = 100;

// The images of an IDX file of unsigned bytes as a [n, 784] uint8 tensor.
torch::Tensor read_images(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::vector<unsigned char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (raw.size() < 16 || raw[2] != 8 || raw[3] != 3) throw std::runtime_error(path + ": not an IDX image file");
    auto dim = [&](int i) { return int64_t(raw[4 + 4 * i]) << 24 | raw[5 + 4 * i] << 16 | raw[6 + 4 * i] << 8 | raw[7 + 4 * i]; };
    const int64_t n = dim(0), pixels = dim(1) * dim(2);
    if (int64_t(raw.size()) != 16 + n * pixels) throw std::runtime_error(path + ": truncated");
    return torch::from_blob(raw.data() + 16, {n, pixels}, torch::kUInt8).clone();
}

torch::Tensor relaxed(const torch::Tensor& logits, double tau, bool bernoulli) {
    const torch::Tensor u = torch::rand_like(logits).clamp_(1e-7, 1 - 1e-7);
    if (bernoulli) return torch::sigmoid((logits + torch::log(u) - torch::log1p(-u)) / tau);
    const torch::Tensor g = -torch::log(-torch::log(u));
    return F::softmax((logits + g).view({-1, hidden / classes, classes}) / tau, F::SoftmaxFuncOptions(-1)).view({-1, hidden});
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: libtorch_reference DATA_DIR sbn|vae bernoulli|categorical THREADS STEPS\n");
        return 2;
    }
    const std::string data = argv[1], model = argv[2];
    const bool bernoulli = std::string(argv[3]) == "bernoulli", vae = model == "vae";
    const int threads = std::atoi(argv[4]), steps = std::atoi(argv[5]);
    torch::set_num_threads(threads);
    torch::manual_seed(0);
    const torch::Tensor images = read_images(data + "/train-images-idx3-ubyte").slice(0, 0, 50000);
    const torch::Tensor train = (torch::rand(images.sizes()) * 255 < images.to(torch::kFloat)).to(torch::kFloat);

    const int64_t in = vae ? 784 : 392, out = vae ? 784 : 392;
    torch::nn::Linear fc1(in, hidden), fc2(hidden, hidden), fc3(hidden, out);
    std::vector<torch::Tensor> params;
    for (auto* m : {&fc1, &fc3}) for (auto& p : (*m)->parameters()) params.push_back(p);
    if (!vae) for (auto& p : fc2->parameters()) params.push_back(p);
    torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-3));
    const double rate = vae ? 1e-4 : 1e-5;

    auto step = [&](int64_t s, const torch::Tensor& perm) {
        const double tau = std::max(0.5, std::exp(-rate * double(s / 1000 * 1000)));
        const torch::Tensor rows = train.index_select(0, perm.slice(0, (s * batch) % 50000, (s * batch) % 50000 + batch));
        torch::Tensor loss;
        if (vae) {
            const torch::Tensor logits = fc1(rows);
            const torch::Tensor recon = F::binary_cross_entropy_with_logits(
                fc3(relaxed(logits, tau, bernoulli)), rows, F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kSum));
            torch::Tensor kl;
            if (bernoulli) {
                const torch::Tensor q = torch::sigmoid(logits);
                kl = (q * F::logsigmoid(logits) + (1 - q) * F::logsigmoid(-logits)).sum() + double(logits.numel()) * std::log(2.0);
            } else {
                const torch::Tensor log_q = F::log_softmax(logits.view({-1, classes}), F::LogSoftmaxFuncOptions(-1));
                kl = (log_q.exp() * log_q).sum() + double(log_q.size(0)) * std::log(double(classes));
            }
            loss = (recon + kl) / double(batch);
        } else {
            const torch::Tensor upper = rows.slice(1, 0, 392), lower = rows.slice(1, 392, 784);
            const torch::Tensor h1 = relaxed(fc1(upper), tau, bernoulli), h2 = relaxed(fc2(h1), tau, bernoulli);
            loss = F::binary_cross_entropy_with_logits(fc3(h2), lower,
                                                       F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kSum)) /
                   double(batch);
        }
        opt.zero_grad();
        loss.backward();
        opt.step();
        return loss.item<double>();
    };
    const torch::Tensor perm = torch::randperm(50000);
    const int warmup = 50;
    for (int s = 0; s < warmup; ++s) step(s, perm);
    const auto t0 = std::chrono::steady_clock::now();
    double last = 0;
    for (int s = warmup; s < warmup + steps; ++s) last = step(s, perm);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("libtorch %s %s, threads %d, last loss %.3f\n", model.c_str(), argv[3], threads, last);
    std::printf("train_steps_per_s=%.2f\ntrain_ms_per_step=%.4f\n", steps / seconds, seconds / steps * 1e3);
    return 0;
}

// libtorch twin of bench/torch_reference.py's training steps, for bench/compare: the fairest
// peer of a C++ library is PyTorch's own C++ frontend, without Python's per-op cost.
// sbn: structured output 392 -> Linear -> H relaxed units -> Linear -> H -> Linear -> 392
// Bernoulli logits, BCE with logits summed over the lower half, mean over the batch.
// vae: discrete_vae's default model, 784 -> Linear -> H relaxed units -> Linear -> 784 logits;
// vae-nonlinear (its --arch nonlinear): 784-200-200-H and H-200-200-784 with tanh between the
// layers. Loss: BCE summed plus the analytic KL of q(z | x) to the prior, mean over the batch;
// the prior's logits are parameters, zero at the start (--prior learned, discrete_vae's
// default) or fixed at zero (--prior uniform). All: H = 200 and batch 100 unless --hidden and
// --batch say otherwise, Adam 1e-3, tau annealed as the examples do; units Binary Concrete
// (bernoulli) or Gumbel-Softmax over H/10 variables of 10 classes (categorical). Data: the
// training IDX file, binarized once at random.
//
// Built by bench/compare when Debian's libtorch-dev is installed:
//   g++ -O2 -std=c++17 bench/libtorch_reference.cpp -I/usr/include/torch/csrc/api/include \
//       -ltorch -ltorch_cpu -lc10 -o build/bench/libtorch_reference
// Usage: libtorch_reference DATA_DIR sbn|vae|vae-nonlinear bernoulli|categorical THREADS STEPS
//            [--hidden H] [--batch B] [--prior learned|uniform] [--warmup W]
// Prints train_steps_per_s=, train_ms_per_step= and train_loss= (the mean loss of the timed steps).
#include <torch/torch.h>

#include <algorithm>
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

constexpr int64_t classes = 10, train_images = 50000;

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
    return F::softmax((logits + g).view({-1, classes}) / tau, F::SoftmaxFuncOptions(-1)).view(logits.sizes());
}

// in -> out, or in -> 200 -> 200 -> out with tanh between (discrete_vae's Arch::nonlinear).
torch::nn::Sequential layers(int64_t in, int64_t out, bool nonlinear) {
    if (!nonlinear) return torch::nn::Sequential(torch::nn::Linear(in, out));
    return torch::nn::Sequential(torch::nn::Linear(in, 200), torch::nn::Tanh(), torch::nn::Linear(200, 200),
                                 torch::nn::Tanh(), torch::nn::Linear(200, out));
}

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr,
                 "libtorch_reference: %s\nusage: libtorch_reference DATA_DIR sbn|vae|vae-nonlinear bernoulli|categorical "
                 "THREADS STEPS [--hidden H] [--batch B] [--prior learned|uniform] [--warmup W]\n",
                 why.c_str());
    std::exit(2);
}

int64_t positive(const std::string& flag, const char* text, int64_t low, int64_t high) {
    char* end = nullptr;
    const long long v = std::strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < low || v > high)
        usage(flag + " takes an integer in [" + std::to_string(low) + ", " + std::to_string(high) + "], got '" + text + "'");
    return v;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 6 || argc % 2 != 0) usage("wrong number of arguments");
    const std::string data = argv[1], model = argv[2], latent = argv[3];
    if (model != "sbn" && model != "vae" && model != "vae-nonlinear") usage("unknown model '" + model + "'");
    if (latent != "bernoulli" && latent != "categorical") usage("unknown latent '" + latent + "'");
    const bool bernoulli = latent == "bernoulli", vae = model != "sbn";
    const int threads = int(positive("THREADS", argv[4], 1, 256));
    const int64_t steps = positive("STEPS", argv[5], 1, 1000000000);
    int64_t hidden = 200, batch = 100, warmup = 50;
    bool learned_prior = true;
    for (int i = 6; i < argc; i += 2) {
        const std::string flag = argv[i];
        if (flag == "--hidden") hidden = positive(flag, argv[i + 1], 1, 100000);
        else if (flag == "--batch") batch = positive(flag, argv[i + 1], 1, train_images);
        else if (flag == "--warmup") warmup = positive(flag, argv[i + 1], 0, 1000000000);
        else if (flag == "--prior" && (argv[i + 1] == std::string("learned") || argv[i + 1] == std::string("uniform")))
            learned_prior = argv[i + 1] == std::string("learned");
        else usage("unknown flag or value '" + flag + " " + argv[i + 1] + "'");
    }
    if (!bernoulli && hidden % classes != 0) usage("--hidden " + std::to_string(hidden) + " is not a multiple of 10");
    torch::set_num_threads(threads);
    torch::manual_seed(0);
    const torch::Tensor images = read_images(data + "/train-images-idx3-ubyte").slice(0, 0, train_images);
    const torch::Tensor train = (torch::rand(images.sizes()) * 255 < images.to(torch::kFloat)).to(torch::kFloat);

    std::vector<torch::Tensor> params;
    auto add = [&](const torch::nn::Module& m) {
        for (const auto& p : m.parameters()) params.push_back(p);
    };
    torch::nn::Linear fc1(392, hidden), fc2(hidden, hidden), fc3(hidden, 392);  // sbn
    torch::nn::Sequential encoder = layers(784, hidden, model == "vae-nonlinear"),
                          decoder = layers(hidden, 784, model == "vae-nonlinear");
    torch::Tensor prior = torch::zeros({hidden}, torch::TensorOptions().requires_grad(vae && learned_prior));
    if (vae) {
        add(*encoder);
        add(*decoder);
        if (learned_prior) params.push_back(prior);
    } else {
        for (const torch::nn::Module* m : {fc1.get(), fc2.get(), fc3.get()}) add(*m);
    }
    torch::optim::Adam opt(params, torch::optim::AdamOptions(1e-3));
    const double rate = vae ? 1e-4 : 1e-5;
    const auto sum = F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kSum);

    // a fresh permutation each epoch, as the tapegrad programs draw their batches (a last partial batch is dropped)
    const int64_t per_epoch = train_images / batch;
    torch::Tensor perm;
    auto step = [&](int64_t s) {
        const double tau = std::max(0.5, std::exp(-rate * double(s / 1000 * 1000)));
        if (s % per_epoch == 0) perm = torch::randperm(train_images);
        const int64_t first = s % per_epoch * batch;
        const torch::Tensor rows = train.index_select(0, perm.slice(0, first, first + batch));
        torch::Tensor loss;
        if (vae) {
            const torch::Tensor logits = encoder->forward(rows);
            const torch::Tensor recon = F::binary_cross_entropy_with_logits(
                decoder->forward(relaxed(logits, tau, bernoulli)), rows, sum);
            torch::Tensor kl;
            if (bernoulli) {  // q (log q - log p) + (1 - q) (log(1 - q) - log(1 - p))
                const torch::Tensor q = torch::sigmoid(logits);
                kl = (q * (F::logsigmoid(logits) - F::logsigmoid(prior)) +
                      (1 - q) * (F::logsigmoid(-logits) - F::logsigmoid(-prior))).sum();
            } else {  // sum q (log q - log p) over the 10 classes of each variable
                const auto last = F::LogSoftmaxFuncOptions(-1);
                const torch::Tensor log_q = F::log_softmax(logits.view({batch, -1, classes}), last);
                kl = (log_q.exp() * (log_q - F::log_softmax(prior.view({-1, classes}), last))).sum();
            }
            loss = (recon + kl) / double(batch);
        } else {
            const torch::Tensor upper = rows.slice(1, 0, 392), lower = rows.slice(1, 392, 784);
            const torch::Tensor h1 = relaxed(fc1(upper), tau, bernoulli), h2 = relaxed(fc2(h1), tau, bernoulli);
            loss = F::binary_cross_entropy_with_logits(fc3(h2), lower, sum) / double(batch);
        }
        opt.zero_grad();
        loss.backward();
        opt.step();
        return loss.item<double>();
    };
    for (int64_t s = 0; s < warmup; ++s) step(s);
    const auto t0 = std::chrono::steady_clock::now();
    double total = 0;
    for (int64_t s = warmup; s < warmup + steps; ++s) total += step(s);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("libtorch %s %s, hidden %lld, batch %lld%s, threads %d\n", model.c_str(), latent.c_str(),
                (long long)hidden, (long long)batch, vae ? (learned_prior ? ", learned prior" : ", uniform prior") : "",
                threads);
    std::printf("train_loss=%.4f\n", total / double(steps));
    std::printf("train_steps_per_s=%.2f\ntrain_ms_per_step=%.4f\n", double(steps) / seconds, seconds / double(steps) * 1e3);
    return 0;
}

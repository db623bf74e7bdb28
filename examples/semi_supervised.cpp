// Semi-supervised classification of MNIST with 100 labels and the class as a latent variable
// (Jang et al. 2017, 4.3; model M2 of Kingma et al. 2014): the flags, the labeled and unlabeled
// batches of a step handed to the shared training loop (examples/harness), the evaluation.
//
//     scripts/fetch-mnist && build/examples/semi_supervised --method gs --epochs 10
//     build/examples/semi_supervised --help
#include <cmath>
#include <iostream>
#include <numeric>

#include "examples/harness/annealing.hpp"
#include "examples/semi_supervised.hpp"

using namespace m2;

namespace {

// Seeds of the run's generators, derived from --seed (2 is the harness's batch order).
enum Purpose : std::uint64_t { init_seed = 1, noise_seed = 3, binarize_seed = 4, eval_seed = 5, label_seed = 7 };

struct Options {
    harness::Flags run;
    harness::OptimizerFlags optimizer;
    harness::Annealing annealing;
    std::string method = "marginal";
    float alpha = 0.1f;
    std::size_t classes = 10, per_class = 10, hidden = 500, latent = 50;
    std::size_t validation = mnist::validation_size, val_images = 10000, test_images = 10000;
};

const std::vector<std::string> methods = {"marginal", "gs", "st-gs"};

// Every image's label replaced by a uniform draw from `classes` (the paper's speed test: random
// labels of k classes, so that only the cost of y's k values is measured).
void random_labels(mnist::DataSet& data, std::size_t classes, Generator& gen) {
    for (std::uint8_t& l : data.labels) l = std::uint8_t(gen.below(classes));
}

int run(int argc, char** argv) {
    Options o;
    o.annealing.rate = 3e-5f;  // the paper's: tau = max(0.5, exp(-3e-5 t)), updated every 2000 steps
    o.annealing.every = 2000;
    CLI::App app{
        "Semi-supervised classification of binarized MNIST with 100 labels (Jang, Gu and Poole 2017, section 4.3):\n"
        "model M2 of Kingma et al. (2014), classifier q(y|x), Gaussian q(z|x,y), decoder p(x|y,z), MLPs of one hidden\n"
        "layer. The 10 labels per class are drawn with --seed from the 50,000 training images; the others are\n"
        "unlabeled, binarized again for every batch. Each step: a batch of unlabeled images and --batch-size labeled\n"
        "ones (cycling through the labeled set). Loss: mean L(x,y) + mean U(x) + alpha (N / N_labeled) mean\n"
        "-log q(y|x), with U(x) = E_q(y|x)[L(x,y)] - H(q(y|x)) taken by --method.",
        "semi_supervised"};
    harness::add_common_flags(app, o.run);
    harness::add_choice(app, "--method", o.method, "How U(x) takes its expectation over the unlabeled class: marginal (sum "
                                                   "over the k classes: k encoder and decoder passes), gs (one relaxed "
                                                   "Gumbel-Softmax sample), st-gs (its one-hot, straight-through)", methods);
    harness::add_real(app, "--alpha", o.alpha, "Weight of the labeled cross-entropy, times N / N_labeled (500 with 100 "
                                               "labels: alpha 0.1 weights it by 50)", 0.0f, INFINITY);
    harness::add_count(app, "--classes", o.classes, "k, the values of y: 10 are the digits; any other k gives every "
                                                    "image a random label of k classes (for the speed comparison)", 2, 100);
    harness::add_count(app, "--labels-per-class", o.per_class, "Labeled training images of each class", 1, 5000);
    harness::add_count(app, "--hidden", o.hidden, "Hidden units of each MLP", 1, 100000);
    harness::add_count(app, "--latent", o.latent, "Dimensions of z", 1, 10000);
    harness::add_optimizer_flags(app, o.optimizer);
    harness::add_annealing_flags(app, o.annealing);
    harness::add_count(app, "--validation", o.validation, "Images from the end of the training file held out", 1, 59999);
    harness::add_count(app, "--val-images", o.val_images, "Validation images evaluated after each epoch (0: skip)", 0, 60000);
    harness::add_count(app, "--test-images", o.test_images, "Test images evaluated after training (0: skip)", 0, 10000);
    app.footer(harness::footer("runs/semi-<method>", "and no pictures", "test_accuracy=<float> then test_elbo=<float>"));
    if (const auto status = harness::parse(app, argc, argv)) return *status;

    const Method method = Method(harness::index_of(o.method, methods));
    const optim::ExponentialTemperature temperature = harness::temperature_schedule(o.annealing);
    const std::string dir = o.run.out.empty() ? "runs/semi-" + o.method : o.run.out;
    harness::require_memory(4.0 * double(o.run.batch_size) * double(o.classes) *
                                (3.0 * double(o.hidden) + 4.0 * mnist::image_pixels + 4.0 * double(o.latent)) * 2.0,
                            "--batch-size " + std::to_string(o.run.batch_size) + " with --classes " +
                                std::to_string(o.classes) + " and --hidden " + std::to_string(o.hidden));

    mnist::Mnist data = harness::load_mnist(o.run, mnist::Binarization::dynamic, o.validation);
    if (o.classes != 10) {
        Generator relabel(harness::derive_seed(o.run.seed, label_seed) + 1);
        for (mnist::DataSet* set : {&data.train, &data.validation, &data.test}) random_labels(*set, o.classes, relabel);
    }
    Generator choose(harness::derive_seed(o.run.seed, label_seed));
    std::vector<std::size_t> labeled;
    try {
        labeled = choose_labeled(data.train.labels, o.classes, o.per_class, choose);
    } catch (const std::invalid_argument& e) {
        throw harness::UsageError(std::string("--labels-per-class: ") + e.what());
    }
    std::vector<bool> is_labeled(data.train.size(), false);
    for (std::size_t r : labeled) is_labeled[r] = true;
    std::vector<std::size_t> unlabeled;  // the harness's rows index this list
    for (std::size_t r = 0; r < data.train.size(); ++r)
        if (!is_labeled[r]) unlabeled.push_back(r);
    harness::require(!unlabeled.empty(), "--labels-per-class " + std::to_string(o.per_class) + " leaves no unlabeled image");
    const float weight = o.alpha * float(data.train.size()) / float(labeled.size());

    Generator init(harness::derive_seed(o.run.seed, init_seed)), noise(harness::derive_seed(o.run.seed, noise_seed)),
        binarize(harness::derive_seed(o.run.seed, binarize_seed));
    Model model(o.classes, o.hidden, o.latent, init);
    const std::unique_ptr<optim::Optimizer> optimizer = harness::make_optimizer(o.optimizer, model.parameters());
    const std::unique_ptr<optim::LRSchedule> schedule = harness::make_schedule(o.optimizer, *optimizer);

    Array labeled_x, unlabeled_x;
    Batch batch;
    std::vector<std::size_t> rows_l(std::min(o.run.batch_size, labeled.size())), rows_u;
    harness::Experiment ex("semi_supervised", model, *optimizer, unlabeled.size());
    ex.loss = [&](const std::vector<std::size_t>& rows, std::size_t step) {
        rows_u.clear();
        for (std::size_t r : rows) rows_u.push_back(unlabeled[r]);
        for (std::size_t j = 0; j < rows_l.size(); ++j) rows_l[j] = labeled[(step * rows_l.size() + j) % labeled.size()];
        mnist::gather(data.train, rows_l, labeled_x, batch.labels);
        mnist::gather(data.train, rows_u, unlabeled_x);
        mnist::binarize_sample(labeled_x, binarize);  // dynamic binarization, every batch
        mnist::binarize_sample(unlabeled_x, binarize);
        batch.labeled_x = Tensor(labeled_x);
        batch.unlabeled_x = Tensor(unlabeled_x);
        const Loss loss = training_loss(model, batch, method, temperature.at(std::int64_t(step)), weight, noise);
        return harness::Loss{loss.objective, loss.labeled + loss.unlabeled};
    };
    ex.columns = {{"val_accuracy", "%.4f"}, {"val_elbo", "%9.3f"}, {"tau", "%.4f"}};
    ex.after_epoch = [&](std::size_t epoch, std::size_t step) {
        Scores val{NAN, NAN};
        if (o.val_images > 0)
            val = evaluate(model, data.validation, o.val_images, harness::derive_seed(o.run.seed, eval_seed) + epoch);
        return std::vector<double>{val.accuracy, val.elbo, temperature.at(std::int64_t(step) - 1)};
    };
    ex.monitor = "val_elbo";
    ex.maximize = true;
    ex.schedule = schedule.get();
    ex.generators = {{"noise", &noise}, {"binarize", &binarize}};
    ex.identity = {{"--method", o.method}, {"--classes", std::to_string(o.classes)},
                   {"--labels-per-class", std::to_string(o.per_class)}, {"--hidden", std::to_string(o.hidden)},
                   {"--latent", std::to_string(o.latent)}, {"--batch-size", std::to_string(o.run.batch_size)},
                   {"--seed", std::to_string(o.run.seed)}};
    const auto optimizer_identity = harness::identity(o.optimizer);  // --optimizer, --lr, the schedule's
    ex.identity.insert(ex.identity.end(), optimizer_identity.begin(), optimizer_identity.end());
    const harness::Trained trained = harness::train(o.run, dir, ex);
    if (trained.status != 0) return trained.status;
    harness::use_best(o.run, trained, model);

    std::vector<std::pair<std::string, std::string>> results;
    if (o.test_images > 0) {
        harness::now_doing("evaluating the test set");
        const Scores test = evaluate(model, data.test, o.test_images, harness::derive_seed(o.run.seed, eval_seed));
        std::cout << "test accuracy " << harness::format("%.2f", 100.0 * test.accuracy) << "%, ELBO "
                  << harness::format("%.3f", test.elbo) << " nats (" << std::min(o.test_images, data.test.size())
                  << " images)\n";
        results = {{"test_accuracy", harness::format("%.4f", test.accuracy)},
                   {"test_elbo", harness::format("%.4f", test.elbo)}};
    }
    harness::report(dir, trained, {}, results);
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return harness::main("semi_supervised", argc, argv, run); }

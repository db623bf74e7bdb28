#include <cmath>

#include "helpers.hpp"

using namespace tg;
using tgtest::check_gradients;
using tgtest::random_tensor;

namespace {

// A user's model: a plain struct that registers its parameters and children.
struct Block : nn::Module {
    Tensor scale;
    std::shared_ptr<nn::Linear> fc;
    explicit Block(Generator& g) {
        scale = register_parameter("scale", Tensor::ones({3}));
        fc = register_module("fc", std::make_shared<nn::Linear>(3, 2, nn::LinearOptions{true, &g}));
    }
};

struct Net : nn::Module {
    Tensor offset;
    std::shared_ptr<Block> enc, dec;
    explicit Net(Generator& g) {
        enc = register_module("enc", std::make_shared<Block>(g));
        offset = register_parameter("offset", Tensor::zeros({1}));
        dec = register_module("dec", std::make_shared<Block>(g));
    }
};

std::vector<std::string> names_of(const nn::Module& m) {
    std::vector<std::string> out;
    for (const auto& p : m.named_parameters()) out.push_back(p.first);
    return out;
}

}  // namespace

TEST_CASE("Module: named_parameters lists own parameters first, then children in order, with dotted names") {
    Generator g(1);
    Net net(g);
    const std::vector<std::string> expected = {"offset",     "enc.scale",  "enc.fc.weight", "enc.fc.bias",
                                               "dec.scale",  "dec.fc.weight", "dec.fc.bias"};
    CHECK(names_of(net) == expected);
    const auto params = net.parameters();
    REQUIRE(params.size() == 7);
    CHECK(params[0].same(net.offset));
    CHECK(params[3].same(net.enc->fc->bias));
    for (const auto& p : params) CHECK(p.requires_grad());
    // The same again: the order is stable.
    CHECK(names_of(net) == expected);
}

TEST_CASE("Module: registration rejects duplicate, empty and dotted names") {
    struct Bad : nn::Module {
        void twice() {
            register_parameter("w", Tensor::ones({1}));
            register_parameter("w", Tensor::ones({1}));
        }
        void dotted() { register_parameter("a.b", Tensor::ones({1})); }
        void clash() { register_module("w", std::make_shared<nn::Sequential>()); }
    };
    Bad b;
    CHECK_THROWS_WITH_AS(b.twice(), doctest::Contains("already registered"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(b.dotted(), doctest::Contains("'a.b'"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(b.clash(), doctest::Contains("already registered"), std::invalid_argument);
}

TEST_CASE("Module: train and eval reach every child") {
    Generator g(1);
    Net net(g);
    CHECK(net.is_training());
    net.eval();
    CHECK_FALSE(net.is_training());
    CHECK_FALSE(net.enc->is_training());
    CHECK_FALSE(net.dec->fc->is_training());
    net.train();
    CHECK(net.dec->fc->is_training());
}

TEST_CASE("Module: a parameter shared by two children is listed once") {
    Generator g(2);
    auto a = std::make_shared<nn::Linear>(4, 4, nn::LinearOptions{true, &g});
    nn::Sequential tied{a, a};  // the same layer twice: tied weights
    CHECK(names_of(tied) == std::vector<std::string>{"0.weight", "0.bias"});
    optim::SGD sgd(tied.parameters());  // would throw on a duplicate
    CHECK(sgd.parameters().size() == 2);
}

TEST_CASE("Module: zero_grad forgets every gradient") {
    Generator g(3);
    Net net(g);
    Tensor x = random_tensor({5, 3}, 4, -1.0f, 1.0f, false);
    sum(net.dec->fc->forward(mul(x, net.enc->scale))).backward();
    CHECK(net.enc->scale.has_grad());
    CHECK(net.dec->fc->weight.has_grad());
    for (auto& p : net.parameters())
        if (!p.has_grad()) p.accumulate_grad(Array(xt::ones<float>(p.shape())), "test");
    net.zero_grad();
    for (auto& p : net.parameters()) CHECK_FALSE(p.has_grad());
}

TEST_CASE("Module: predict runs in eval mode, records nothing and restores the mode") {
    struct ModeProbe : nn::Layer {
        bool saw_training = true;
        Tensor w = register_parameter("w", Tensor::full({2}, 2.0f));
        Tensor forward(const Tensor& x) override {
            saw_training = is_training();
            return mul(x, w);
        }
    };
    ModeProbe m;
    current_tape().clear();
    Tensor y = m.predict(Tensor::ones({2}));
    CHECK_FALSE(m.saw_training);
    CHECK_FALSE(y.requires_grad());
    CHECK(current_tape().size() == 0);
    CHECK(m.is_training());
    CHECK(y.value()(1) == 2.0f);
    m.eval();
    m.predict(Tensor::ones({2}));
    CHECK_FALSE(m.is_training());
}

TEST_CASE("Linear: shapes and PyTorch's default init U(-1/sqrt(in), 1/sqrt(in))") {
    Generator g(5);
    nn::Linear fc(16, 200, {true, &g});  // bound 1/4
    CHECK(fc.weight.shape() == Array::shape_type{200, 16});
    CHECK(fc.bias.shape() == Array::shape_type{200});
    CHECK(names_of(fc) == std::vector<std::string>{"weight", "bias"});
    for (const Tensor* t : {&fc.weight, &fc.bias}) {
        float lo = 1.0f, hi = -1.0f;
        double sum = 0.0;
        for (float v : t->value()) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
            sum += v;
        }
        CHECK(lo >= -0.25f);
        CHECK(hi <= 0.25f);
        CHECK(lo < -0.2f);  // spread over the whole interval, not a narrower one
        CHECK(hi > 0.2f);
        CHECK(std::abs(sum / t->size()) < 0.03);  // centred: sd of the mean ~0.144/sqrt(n)
    }
    double sq = 0.0;
    for (float v : fc.weight.value()) sq += double(v) * v;
    CHECK(sq / fc.weight.size() == doctest::Approx(1.0 / 48).epsilon(0.05));  // variance of U(-b, b) = b^2/3
}

TEST_CASE("Linear: the same seed gives the same weights, the default generator is used without one") {
    Generator g1(11), g2(11);
    nn::Linear a(3, 4, {true, &g1}), b(3, 4, {true, &g2});
    CHECK(a.weight.value() == b.weight.value());
    CHECK(a.bias.value() == b.bias.value());
    manual_seed(7);
    nn::Linear c(3, 4);
    manual_seed(7);
    nn::Linear d(3, 4);
    CHECK(c.weight.value() == d.weight.value());
    Generator g3(7);  // the default generator seeded with 7 draws what Generator(7) draws
    nn::Linear e(3, 4, {true, &g3});
    CHECK(c.weight.value() == e.weight.value());
}

TEST_CASE("Linear: forward is x W^T + b, and gradients pass the finite-difference check") {
    Generator g(8);
    nn::Linear fc(4, 3, {true, &g});
    Tensor x = random_tensor({5, 4}, 9);
    Tensor y = fc(x);
    REQUIRE(y.shape() == Array::shape_type{5, 3});
    for (std::size_t i = 0; i < 5; ++i)
        for (std::size_t o = 0; o < 3; ++o) {
            double s = fc.bias.value()(o);
            for (std::size_t k = 0; k < 4; ++k) s += double(x.value()(i, k)) * fc.weight.value()(o, k);
            CHECK(y.value()(i, o) == doctest::Approx(s).epsilon(1e-5));
        }
    current_tape().clear();
    // gradcheck perturbs its inputs in place, and these are the layer's own parameters.
    check_gradients([&](const std::vector<Tensor>& in) { return fc.forward(in[0]); }, {x, fc.weight, fc.bias});
}

TEST_CASE("Linear: without bias there is one parameter, zero sizes are refused") {
    Generator g(1);
    nn::Linear fc(3, 2, {false, &g});
    CHECK_FALSE(fc.bias.defined());
    CHECK(names_of(fc) == std::vector<std::string>{"weight"});
    Tensor y = fc(Tensor::ones({1, 3}));
    CHECK(y.value()(0, 1) == doctest::Approx(fc.weight.value()(1, 0) + fc.weight.value()(1, 1) + fc.weight.value()(1, 2)));
    CHECK_THROWS_WITH_AS(nn::Linear(0, 2), "Linear: in_features and out_features must be positive, got (0, 2)",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(fc(Tensor::ones({2, 4})), doctest::Contains("linear"), std::invalid_argument);
}

TEST_CASE("Sequential: children are named 0, 1, ... and forward chains them") {
    Generator g(12);
    auto l1 = std::make_shared<nn::Linear>(4, 8, nn::LinearOptions{true, &g});
    auto l2 = std::make_shared<nn::Linear>(8, 2, nn::LinearOptions{false, &g});
    nn::Sequential seq{l1};
    seq.push_back(l2);
    CHECK(seq.size() == 2);
    CHECK(&seq[1] == l2.get());
    CHECK(names_of(seq) == std::vector<std::string>{"0.weight", "0.bias", "1.weight"});
    Tensor x = random_tensor({3, 4}, 13, -1.0f, 1.0f, false);
    Tensor y = seq(x);
    Tensor expected = l2->forward(l1->forward(x));
    CHECK(y.value() == expected.value());
    seq.eval();
    CHECK_FALSE(l2->is_training());
}

TEST_CASE("Sequential: an empty one passes the input through, a null layer is refused") {
    nn::Sequential seq;
    Tensor x = Tensor::ones({2});
    CHECK(seq(x).same(x));
    CHECK_THROWS_WITH_AS(seq.push_back(nullptr), "Sequential: layer 0 is a null pointer", std::invalid_argument);
}

TEST_CASE("Sequential: activation layers compute their functions, and an MLP of them passes gradcheck") {
    const Tensor x(Array{-30.0f, -1.0f, 0.0f, 0.5f, 2.0f, 40.0f});
    nn::Sigmoid sig;
    nn::Tanh th;
    nn::ReLU re;
    nn::Softplus sp;
    nn::Softplus sp2({2.0f});
    for (std::size_t i = 0; i < x.size(); ++i) {
        const double v = x.value()(i);
        CAPTURE(v);
        CHECK(sig(x).value()(i) == doctest::Approx(1.0 / (1.0 + std::exp(-v))));
        CHECK(th(x).value()(i) == doctest::Approx(std::tanh(v)));
        CHECK(re(x).value()(i) == doctest::Approx(v > 0 ? v : 0.0));
        CHECK(sp(x).value()(i) == doctest::Approx(std::log1p(std::exp(v))));
        CHECK(sp2(x).value()(i) == doctest::Approx(std::log1p(std::exp(2.0 * v)) / 2.0));
    }
    CHECK_THROWS_WITH_AS(nn::Softplus({0.0f}), doctest::Contains("Softplus: beta must be positive"),
                         std::invalid_argument);

    Generator g(14);
    nn::Sequential mlp{std::make_shared<nn::Linear>(3, 6, nn::LinearOptions{true, &g}), std::make_shared<nn::Tanh>(),
                       std::make_shared<nn::Linear>(6, 5, nn::LinearOptions{true, &g}), std::make_shared<nn::Softplus>(
                                                                                            nn::SoftplusOptions{1.5f}),
                       std::make_shared<nn::Linear>(5, 4, nn::LinearOptions{true, &g}), std::make_shared<nn::Sigmoid>(),
                       std::make_shared<nn::Linear>(4, 2, nn::LinearOptions{true, &g}), std::make_shared<nn::ReLU>()};
    CHECK(mlp.parameters().size() == 8);
    CHECK(mlp.named_parameters()[6].first == "6.weight");
    Tensor in = random_tensor({4, 3}, 15);
    std::vector<Tensor> inputs{in};
    for (const auto& p : mlp.parameters()) inputs.push_back(p);
    check_gradients([&](const std::vector<Tensor>& v) { return mlp(v[0]); }, inputs);
}

TEST_CASE("Layers: a shared Sequential from a list or a vector, and nn::MLP") {
    Generator g1(5), g2(5);
    auto shared = nn::sequential({std::make_shared<nn::Linear>(2, 3, nn::LinearOptions{true, &g1}),
                                  std::make_shared<nn::Tanh>(),
                                  std::make_shared<nn::Linear>(3, 1, nn::LinearOptions{true, &g1})});
    auto from_vector = std::make_shared<nn::Sequential>(std::vector<std::shared_ptr<nn::Layer>>{
        std::make_shared<nn::ReLU>()});
    CHECK(from_vector->size() == 1);
    nn::MLP mlp({2, 3, 1}, [] { return std::make_shared<nn::Tanh>(); }, nn::LinearOptions{true, &g2});
    REQUIRE(mlp.size() == 3);
    const auto a = shared->named_parameters(), b = mlp.named_parameters();
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {  // the same layers from the same seed
        CHECK(a[i].first == b[i].first);
        CHECK(a[i].second.value() == b[i].second.value());
    }
    Tensor x = tgtest::random_tensor({4, 2}, 3, -1.0f, 1.0f, false);
    CHECK(mlp(x).value() == (*shared)(x).value());
    CHECK_THROWS_WITH_AS(nn::MLP({3}, [] { return std::make_shared<nn::ReLU>(); }), doctest::Contains("MLP"),
                         std::invalid_argument);
}

TEST_CASE("MLP: nn::mlp makes a shared MLP from a braced list of sizes, as nn::sequential does") {
    Generator gen(3);
    const std::shared_ptr<nn::MLP> net = nn::mlp({4, 8, 2}, [] { return std::make_shared<nn::ReLU>(); }, {true, &gen});
    REQUIRE(net->size() == 3);  // Linear, ReLU, Linear
    CHECK(net->parameters().size() == 4);
    CHECK(shape_str((*net)(Tensor::ones({5, 4})).shape()) == "(5, 2)");
    Generator same(3);
    const nn::MLP direct({4, 8, 2}, [] { return std::make_shared<nn::ReLU>(); }, {true, &same});
    CHECK(tgtest::bitwise_equal(direct.parameters()[0].value(), net->parameters()[0].value()));
    CHECK_THROWS_WITH_AS(nn::mlp({4}, nullptr), "MLP: needs at least an input and an output size, got 1 sizes",
                         std::invalid_argument);
}

// A model with a discrete latent variable: 4 symbols pass through a 4-way categorical
// bottleneck, trained end to end through Gumbel-Softmax samples.
#include <cstdio>

#include <tapegrad.hpp>

using namespace tg;

struct DiscreteAutoencoder : nn::Module {
    std::shared_ptr<nn::Linear> encoder, decoder;
    std::shared_ptr<nn::GumbelSoftmax> latent;
    explicit DiscreteAutoencoder(Generator* gen) {
        encoder = register_module("encoder", std::make_shared<nn::Linear>(4, 4, nn::LinearOptions{true, gen}));
        latent = register_module("latent",
                                 std::make_shared<nn::GumbelSoftmax>(nn::GumbelSoftmaxOptions().tau(1.0f).generator(gen)));
        decoder = register_module("decoder", std::make_shared<nn::Linear>(4, 4, nn::LinearOptions{true, gen}));
    }
    // logits of the symbol -> relaxed one-hot code (one-hot in eval mode) -> logits again
    Tensor forward(const Tensor& x) { return decoder->forward(latent->forward(encoder->forward(x))); }
};

int main() {
    Generator gen(2017);
    DiscreteAutoencoder model(&gen);
    optim::Adam adam(model.parameters(), {/*lr=*/0.05f});
    optim::ExponentialTemperature tau(/*tau0=*/1.0f, /*rate=*/2e-3f, /*tau_min=*/0.5f, /*every=*/50);

    Indices labels = Indices::from_shape({64});  // class labels: tg::Indices, like argmax's result
    for (int step = 0; step < 400; ++step) {
        for (auto& c : labels) c = gen.below(4);
        model.latent->set_tau(tau.at(step));
        adam.zero_grad();
        Tensor loss = cross_entropy(model.forward(one_hot(labels, 4)), labels);
        loss.backward();
        adam.step();
        if (step % 100 == 0) std::printf("step %3d  tau %.3f  loss %.4f\n", step, model.latent->tau(), loss.item());
    }

    model.eval();  // exact one-hot codes (Gumbel-Max) from here on
    NoGradGuard no_grad;
    labels = Indices::from_shape({1000});
    for (auto& c : labels) c = gen.below(4);
    const Indices predicted = argmax(model.forward(one_hot(labels, 4)));
    std::size_t correct = 0;
    for (std::size_t i = 0; i < labels.size(); ++i) correct += predicted(i) == labels(i);
    std::printf("reconstructed %zu of 1000 symbols through discrete codes\n", correct);
    return correct > 950 ? 0 : 1;
}

#!/usr/bin/python3
"""PyTorch reference for bench/compare: the training step and the evaluation of
examples/structured_output (--model sbn) and the training step of examples/discrete_vae
(--model vae, --model vae-nonlinear), written the way a PyTorch user would.

--model sbn: 392 -> Linear -> H stochastic units -> Linear -> H units -> Linear -> 392
Bernoulli logits (H = --hidden, 200 by default, as structured_output's --hidden); units are
Binary Concrete (--latent bernoulli) or Gumbel-Softmax over H/10 variables of 10 classes
(--latent categorical). Loss: BCE with logits summed over the lower half's pixels, mean over
the batch (--batch, 100 by default, as --batch-size); Adam 1e-3; tau annealed as the example
(tau0 1, r 1e-5 every 1000 steps, floor 0.5). Data: the IDX files read with numpy, each
pixel binarized once from its intensity with a fixed seed (numpy's RNG, not tapegrad's),
50,000 training images, the 10,000 test images.

--model vae: discrete_vae's default, 784 -> Linear -> H Binary Concrete units (H/10 Gumbel-Softmax
variables of 10 classes: discrete_vae has H = 200) -> Linear -> 784 Bernoulli logits; --model
vae-nonlinear (its --arch nonlinear): 784-200-200-H and H-200-200-784 with tanh between the
layers. Loss: BCE with logits summed over the pixels plus the analytic KL of q(z | x) to the
prior, mean over the batch; the prior's logits are parameters, zero at the start (--prior
learned, discrete_vae's default) or fixed at zero (--prior uniform). Adam 1e-3; tau annealed as
discrete_vae does (tau0 1, r 1e-4 every 1000 steps, floor 0.5).

Prints machine-readable lines: train_steps_per_s=, train_ms_per_step=, train_loss= (the mean loss
of the timed steps: with --warmup 0 --steps 500, comparable to the epoch-1 train_loss of the
tapegrad program), eval_seconds= (scaled to all 10,000 test images when --eval-images is
smaller), test_nll=, peak_rss_kb=.

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/torch_reference.py --data data/mnist --threads 1
    bench/torch_reference.py --model sbn --hidden 1000 --batch 1000 --steps 50
    bench/torch_reference.py --model vae-nonlinear --latent categorical
"""
import argparse
import math
import os
import resource
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data/mnist", help="directory of the four MNIST IDX files")
    p.add_argument("--model", choices=["sbn", "vae", "vae-nonlinear"], default="sbn")
    p.add_argument("--latent", choices=["bernoulli", "categorical"], default="bernoulli")
    p.add_argument("--hidden", type=int, default=200,
                   help="stochastic units per layer (sbn) or latent units (vae); a multiple of 10 for categorical")
    p.add_argument("--batch", type=int, default=100, help="images per training step")
    p.add_argument("--prior", choices=["learned", "uniform"], default="learned", help="the VAE's prior")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (intra-op pool)")
    p.add_argument("--blas-threads", type=int, default=0,
                   help="OpenBLAS threads (0: the same as --threads); set before torch loads")
    p.add_argument("--steps", type=int, default=1000, help="timed training steps (at least 1)")
    p.add_argument("--warmup", type=int, default=50, help="untimed training steps first")
    p.add_argument("--eval-samples", type=int, default=0, help="m of the test NLL (0: skip evaluation)")
    p.add_argument("--eval-images", type=int, default=10000,
                   help="test images evaluated; the time is scaled to 10,000 (linear in the images)")
    p.add_argument("--eval-chunk", type=int, default=10, help="images per evaluation batch (x m rows)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    if a.hidden < 1 or (a.latent == "categorical" and a.hidden % 10):
        p.error(f"--hidden {a.hidden} must be positive, and a multiple of 10 for categorical units")
    if a.steps < 1 or a.warmup < 0:
        p.error(f"--steps {a.steps} must be at least 1 and --warmup {a.warmup} not negative")
    if not 1 <= a.batch <= 50000:
        p.error(f"--batch {a.batch} must be in [1, 50000]")
    return a


args = parse_args()
# OpenBLAS reads its thread count when it loads: before importing torch.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.blas_threads or args.threads))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)

HALF = 392
CLASSES = 10


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        sys.exit(f"{path}: not an IDX file of unsigned bytes")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def binarized(path, seed):
    images = read_idx(path).reshape(-1, 784)
    rng = np.random.default_rng(seed)
    out = np.empty(images.shape, dtype=np.uint8)
    for i in range(0, images.shape[0], 10000):  # 1 with probability intensity/255, once; in chunks to stay small
        part = images[i:i + 10000]
        out[i:i + 10000] = rng.random(part.shape, dtype=np.float32) * 255.0 < part
    return out


train = torch.from_numpy(binarized(os.path.join(args.data, "train-images-idx3-ubyte"), args.seed)[:50000])
test = torch.from_numpy(binarized(os.path.join(args.data, "t10k-images-idx3-ubyte"), args.seed + 1))


class Model(torch.nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.fc1 = torch.nn.Linear(HALF, hidden)
        self.fc2 = torch.nn.Linear(hidden, hidden)
        self.fc3 = torch.nn.Linear(hidden, HALF)


def relaxed(logits, tau, bernoulli):
    u = torch.rand_like(logits).clamp_(1e-7, 1 - 1e-7)
    if bernoulli:  # Binary Concrete: sigmoid((logits + log u - log(1 - u)) / tau)
        return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / tau)
    g = -torch.log(-torch.log(u))  # Gumbel-Softmax over groups of 10 classes
    y = F.softmax((logits.view(-1, CLASSES) + g.view(-1, CLASSES)) / tau, -1)
    return y.view(logits.shape)


class VAE(torch.nn.Module):
    """discrete_vae's model: linear (784-H-784) or nonlinear (784-200-200-H, H-200-200-784, tanh)."""

    def __init__(self, width, nonlinear, learned_prior):
        super().__init__()

        def layers(n_in, n_out):
            if not nonlinear:
                return torch.nn.Linear(n_in, n_out)
            return torch.nn.Sequential(torch.nn.Linear(n_in, 200), torch.nn.Tanh(), torch.nn.Linear(200, 200),
                                       torch.nn.Tanh(), torch.nn.Linear(200, n_out))

        self.enc = layers(784, width)
        self.dec = layers(width, 784)
        prior = torch.zeros(width)  # uniform at the start; a uniform prior stays a constant
        if learned_prior:
            self.prior = torch.nn.Parameter(prior)
        else:
            self.register_buffer("prior", prior)


def vae_loss(model, x, tau, bernoulli):
    logits = model.enc(x)
    recon = F.binary_cross_entropy_with_logits(model.dec(relaxed(logits, tau, bernoulli)), x, reduction="sum")
    p = model.prior
    if bernoulli:  # KL(Bernoulli(q) || Bernoulli(p)) = q (log q - log p) + (1 - q) (log(1 - q) - log(1 - p))
        q = torch.sigmoid(logits)
        kl = (q * (F.logsigmoid(logits) - F.logsigmoid(p)) + (1 - q) * (F.logsigmoid(-logits) - F.logsigmoid(-p))).sum()
    else:  # KL(Cat(q) || Cat(p)) = sum q (log q - log p) over the 10 classes of each variable
        log_q = F.log_softmax(logits.view(x.shape[0], -1, CLASSES), -1)
        kl = (log_q.exp() * (log_q - F.log_softmax(p.view(-1, CLASSES), -1))).sum()
    return (recon + kl) / x.shape[0]


def loss_fn(model, upper, lower, tau, bernoulli):
    h1 = relaxed(model.fc1(upper), tau, bernoulli)
    h2 = relaxed(model.fc2(h1), tau, bernoulli)
    logits = model.fc3(h2)
    return F.binary_cross_entropy_with_logits(logits, lower, reduction="sum") / upper.shape[0]


def train_steps(model, opt, perm, start, steps, bernoulli):
    """Trains `steps` steps from step `start`; returns the sum of their losses."""
    vae = isinstance(model, VAE)
    rate = 1e-4 if vae else 1e-5
    total = 0.0
    for s in range(start, start + steps):
        tau = max(0.5, math.exp(-rate * (s // 1000 * 1000)))
        i = s * args.batch
        rows = train[perm[i:i + args.batch]].float()  # the batch gathered from the shuffled indices
        if vae:
            loss = vae_loss(model, rows, tau, bernoulli)
        else:
            loss = loss_fn(model, rows[:, :HALF], rows[:, HALF:], tau, bernoulli)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item()  # as the tapegrad programs, which report each step's loss
    return total


def sample_units(logits, bernoulli):
    if bernoulli:
        return torch.bernoulli(torch.sigmoid(logits))
    probs = F.softmax(logits.view(-1, CLASSES), -1)
    idx = torch.multinomial(probs, 1)
    return torch.zeros_like(probs).scatter_(1, idx, 1.0).view(logits.shape)


@torch.no_grad()
def evaluate(model, images, m, bernoulli, chunk):
    total = 0.0
    for i0 in range(0, images.shape[0], chunk):
        x = images[i0:i0 + chunk].float()
        upper, lower = x[:, :HALF], x[:, HALF:]
        c = x.shape[0]
        a1 = model.fc1(upper).repeat_interleave(m, 0)          # [c*m, hidden]
        h1 = sample_units(a1, bernoulli)
        h2 = sample_units(model.fc2(h1), bernoulli)
        logits = model.fc3(h2)
        target = lower.repeat_interleave(m, 0)
        ll = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1).view(c, m)
        total += -(torch.logsumexp(ll, 1) - math.log(m)).sum().item()
    return total / images.shape[0]


def main():
    bernoulli = args.latent == "bernoulli"
    if args.model == "sbn":
        model = Model(args.hidden)
    else:
        model = VAE(args.hidden, args.model == "vae-nonlinear", args.prior == "learned")
        if args.eval_samples > 0:
            sys.exit("torch_reference: --eval-samples is for --model sbn")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(args.seed)
    n_steps = args.warmup + args.steps
    # shuffled row indices, one permutation per epoch, enough for every step
    epochs = (n_steps * args.batch + train.shape[0] - 1) // train.shape[0]
    perm = torch.cat([torch.randperm(train.shape[0], generator=g) for _ in range(epochs)])
    train_steps(model, opt, perm, 0, args.warmup, bernoulli)
    t0 = time.perf_counter()
    loss_sum = train_steps(model, opt, perm, args.warmup, args.steps, bernoulli)
    seconds = time.perf_counter() - t0
    del perm
    print(f"torch {torch.__version__}, {args.model} {args.latent}, hidden {args.hidden}, batch {args.batch}"
          + (f", {args.prior} prior" if args.model != "sbn" else "")
          + f", threads {args.threads}, OpenBLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"OPENBLAS_CORETYPE {os.environ.get('OPENBLAS_CORETYPE', '(default)')}")
    print(f"train_loss={loss_sum / args.steps:.4f}")
    print(f"train_steps_per_s={args.steps / seconds:.2f}")
    print(f"train_ms_per_step={seconds / args.steps * 1e3:.4f}")
    if args.eval_samples > 0:
        n = min(args.eval_images, test.shape[0])
        t0 = time.perf_counter()
        nll = evaluate(model, test[:n], args.eval_samples, bernoulli, args.eval_chunk)
        seconds = time.perf_counter() - t0
        print(f"eval_images={n}")
        print(f"eval_seconds={seconds * test.shape[0] / n:.2f}")
        print(f"test_nll={nll:.4f}")
    print(f"peak_rss_kb={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")


main()

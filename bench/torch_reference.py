#!/usr/bin/python3
"""PyTorch reference for bench/compare: the training step and the evaluation of
examples/structured_output (--model sbn) and the training step of examples/discrete_vae
(--model vae), written the way a PyTorch user would.

--model sbn: 392 -> Linear -> 200 stochastic units -> Linear -> 200 units -> Linear -> 392
Bernoulli logits; units are Binary Concrete (--latent bernoulli) or Gumbel-Softmax over
20 variables of 10 classes (--latent categorical). Loss: BCE with logits summed over the
lower half's pixels, mean over the batch of 100; Adam 1e-3; tau annealed as the example
(tau0 1, r 1e-5 every 1000 steps, floor 0.5). Data: the IDX files read with numpy, each
pixel binarized once from its intensity with a fixed seed (numpy's RNG, not tapegrad's),
50,000 training images, the 10,000 test images.

--model vae: 784 -> Linear -> 200 Binary Concrete units, or 20 Gumbel-Softmax variables of 10
classes -> Linear -> 784 Bernoulli logits; loss: BCE with logits summed over the pixels plus the
analytic KL of q(z | x) to the uniform prior, mean over the batch of 100; Adam 1e-3; tau annealed
as discrete_vae does (tau0 1, r 1e-4 every 1000 steps, floor 0.5).

Prints machine-readable lines: train_steps_per_s=, train_ms_per_step=, eval_seconds=
(scaled to all 10,000 test images when --eval-images is smaller), test_nll=, peak_rss_kb=.

    OPENBLAS_CORETYPE=SkylakeX /usr/bin/python3 bench/torch_reference.py --data data/mnist --threads 1
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
    p.add_argument("--model", choices=["sbn", "vae"], default="sbn")
    p.add_argument("--latent", choices=["bernoulli", "categorical"], default="bernoulli")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (intra-op pool)")
    p.add_argument("--blas-threads", type=int, default=0,
                   help="OpenBLAS threads (0: the same as --threads); set before torch loads")
    p.add_argument("--steps", type=int, default=1000, help="timed training steps")
    p.add_argument("--warmup", type=int, default=50, help="untimed training steps first")
    p.add_argument("--eval-samples", type=int, default=0, help="m of the test NLL (0: skip evaluation)")
    p.add_argument("--eval-images", type=int, default=10000,
                   help="test images evaluated; the time is scaled to 10,000 (linear in the images)")
    p.add_argument("--eval-chunk", type=int, default=10, help="images per evaluation batch (x m rows)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


args = parse_args()
# OpenBLAS reads its thread count when it loads: before importing torch.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(args.blas_threads or args.threads))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)

HALF = 392
HIDDEN = 200
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
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(HALF, HIDDEN)
        self.fc2 = torch.nn.Linear(HIDDEN, HIDDEN)
        self.fc3 = torch.nn.Linear(HIDDEN, HALF)


def relaxed(logits, tau, bernoulli):
    u = torch.rand_like(logits).clamp_(1e-7, 1 - 1e-7)
    if bernoulli:  # Binary Concrete: sigmoid((logits + log u - log(1 - u)) / tau)
        return torch.sigmoid((logits + torch.log(u) - torch.log1p(-u)) / tau)
    g = -torch.log(-torch.log(u))  # Gumbel-Softmax over groups of 10 classes
    y = F.softmax((logits.view(-1, HIDDEN // CLASSES, CLASSES) + g.view(-1, HIDDEN // CLASSES, CLASSES)) / tau, -1)
    return y.view(-1, HIDDEN)


class VAE(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = torch.nn.Linear(784, HIDDEN)
        self.dec = torch.nn.Linear(HIDDEN, 784)


def vae_loss(model, x, tau, bernoulli):
    logits = model.enc(x)
    recon = F.binary_cross_entropy_with_logits(model.dec(relaxed(logits, tau, bernoulli)), x, reduction="sum")
    if bernoulli:  # KL(Bernoulli(q) || Bernoulli(1/2)) = sum q log q + (1 - q) log(1 - q) + log 2
        q = torch.sigmoid(logits)
        kl = (q * F.logsigmoid(logits) + (1 - q) * F.logsigmoid(-logits)).sum() + logits.numel() * math.log(2)
    else:  # KL(Cat(q) || uniform over 10) = sum q log q + log 10 per variable
        log_q = F.log_softmax(logits.view(-1, CLASSES), -1)
        kl = (log_q.exp() * log_q).sum() + log_q.shape[0] * math.log(CLASSES)
    return (recon + kl) / x.shape[0]


def loss_fn(model, upper, lower, tau, bernoulli):
    h1 = relaxed(model.fc1(upper), tau, bernoulli)
    h2 = relaxed(model.fc2(h1), tau, bernoulli)
    logits = model.fc3(h2)
    return F.binary_cross_entropy_with_logits(logits, lower, reduction="sum") / upper.shape[0]


def train_steps(model, opt, perm, start, steps, bernoulli, batch=100):
    vae = isinstance(model, VAE)
    rate = 1e-4 if vae else 1e-5
    for s in range(start, start + steps):
        tau = max(0.5, math.exp(-rate * (s // 1000 * 1000)))
        i = s * batch
        rows = train[perm[i:i + batch]].float()  # the batch gathered from the shuffled indices
        if vae:
            loss = vae_loss(model, rows, tau, bernoulli)
        else:
            loss = loss_fn(model, rows[:, :HALF], rows[:, HALF:], tau, bernoulli)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return loss.item()


def sample_units(logits, bernoulli):
    if bernoulli:
        return torch.bernoulli(torch.sigmoid(logits))
    probs = F.softmax(logits.view(-1, CLASSES), -1)
    idx = torch.multinomial(probs, 1)
    return torch.zeros_like(probs).scatter_(1, idx, 1.0).view(-1, HIDDEN)


@torch.no_grad()
def evaluate(model, images, m, bernoulli, chunk):
    total = 0.0
    for i0 in range(0, images.shape[0], chunk):
        x = images[i0:i0 + chunk].float()
        upper, lower = x[:, :HALF], x[:, HALF:]
        c = x.shape[0]
        a1 = model.fc1(upper).repeat_interleave(m, 0)          # [c*m, 200]
        h1 = sample_units(a1, bernoulli)
        h2 = sample_units(model.fc2(h1), bernoulli)
        logits = model.fc3(h2)
        target = lower.repeat_interleave(m, 0)
        ll = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(1).view(c, m)
        total += -(torch.logsumexp(ll, 1) - math.log(m)).sum().item()
    return total / images.shape[0]


def main():
    bernoulli = args.latent == "bernoulli"
    model = VAE() if args.model == "vae" else Model()
    if args.model == "vae" and args.eval_samples > 0:
        sys.exit("torch_reference: --eval-samples is for --model sbn")
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(args.seed)
    n_steps = args.warmup + args.steps
    # shuffled row indices, one permutation per epoch, enough for every step
    epochs = (n_steps * 100 + train.shape[0] - 1) // train.shape[0]
    perm = torch.cat([torch.randperm(train.shape[0], generator=g) for _ in range(epochs)])
    train_steps(model, opt, perm, 0, args.warmup, bernoulli)
    t0 = time.perf_counter()
    last = train_steps(model, opt, perm, args.warmup, args.steps, bernoulli)
    seconds = time.perf_counter() - t0
    del perm
    print(f"torch {torch.__version__}, {args.model} {args.latent}, threads {args.threads}, "
          f"OpenBLAS threads {os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"OPENBLAS_CORETYPE {os.environ.get('OPENBLAS_CORETYPE', '(default)')}, last loss {last:.3f}")
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

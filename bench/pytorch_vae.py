#!/usr/bin/env python3
"""PyTorch's canonical example VAE (pytorch/examples, vae/main.py) on tinyvae's data split.

784-400-20, ReLU, sigmoid output, loss = BCE summed over pixels + KL, Adam 1e-3,
batch 128, 10 epochs. Reads the IDX files itself (gzipped or not), so the split is
exactly the one `tinyvae train --data data/mnist-10k` uses.

Differences from tinyvae, on purpose or unavoidable:
* Initialisation: nn.Linear's default, weight and bias uniform in +-1/sqrt(fan_in);
  tinyvae's `--init torch` draws from the same distribution with its own RNG
  (same distribution, different numbers).
* The example sums the loss over the batch; tinyvae averages it. Adam is invariant
  to that constant scale (up to its epsilon).
* Test loss: like the example, sum over the test set of BCE + KL with one sampled z
  per image, divided by the number of test images.

Outside CI. Usage: python3 bench/pytorch_vae.py --data data/mnist-10k --epochs 10 --threads 2

Options beyond the example, all defaulting to it (scripts/gpu-bench uses them):
* --device cuda[:N]: train and test on a GPU (data moved there once; each epoch's time
  is taken after torch.cuda.synchronize()). The shuffle permutation is still drawn on
  the CPU, so a run's numbers do not depend on the device's RNG. Default cpu: unchanged.
* --mode graphed (needs --device cuda): the fastest PyTorch idiom for a model this small,
  whose steps are bound by kernel launches: each batch size's whole training step
  (forward, loss, backward, fused capturable Adam, loss accumulation) captured once as a
  CUDA graph and replayed, the data on the GPU, no host sync inside the epoch. The
  capture's warm-up steps are undone (weights and optimizer state restored) so the run
  trains the same number of steps as the eager one. Default: eager, the example's loop.
* --hidden/--latent/--likelihood gaussian/--normal-class/--lr: tinyvae's one-class setup
  (784-1000-16, Gaussian = summed squared error of sigmoid(logits), trained on one
  digit, tested on the whole test split like `tinyvae train --normal-class`).
"""
import argparse
import gzip
import json
import os
import struct
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F


def read_idx(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    magic = struct.unpack(">I", raw[:4])[0]
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise ValueError(f"{path}: bad IDX magic 0x{magic:08x}")
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {data.size} bytes, header says {dims}")
    return data.reshape(dims)


def find(d, prefixes, kind, rank):
    for p in prefixes:
        for sep in ("-", "."):
            for ext in ("", ".gz"):
                f = os.path.join(d, f"{p}-{kind}{sep}idx{rank}-ubyte{ext}")
                if os.path.exists(f):
                    return f
    raise FileNotFoundError(f"{d}: no {prefixes} {kind} file")


class VAE(nn.Module):
    def __init__(self, hidden=400, latent=20):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc21 = nn.Linear(hidden, latent)
        self.fc22 = nn.Linear(hidden, latent)
        self.fc3 = nn.Linear(latent, hidden)
        self.fc4 = nn.Linear(hidden, 784)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(recon_x, x, mu, logvar, likelihood="bernoulli"):
    if likelihood == "gaussian":
        # tinyvae's Gaussian likelihood: summed squared error (variance 1/2, constant left out).
        sse = torch.sum((recon_x - x.view(-1, 784)) ** 2)
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        return sse + kld
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data/mnist-10k")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    ap.add_argument("--hidden", type=int, default=400)
    ap.add_argument("--latent", type=int, default=20)
    ap.add_argument("--likelihood", choices=["bernoulli", "gaussian"], default="bernoulli")
    ap.add_argument("--normal-class", type=int, default=None,
                    help="train on this digit only (test on the whole test split)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--mode", choices=["eager", "graphed"], default="eager",
                    help="eager (the example's loop) or graphed (CUDA graphs; needs --device cuda)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device")
    if args.mode == "graphed" and not cuda:
        raise SystemExit("--mode graphed needs --device cuda")
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    train = read_idx(find(args.data, ["train"], "images", 3)).reshape(-1, 784)
    test = read_idx(find(args.data, ["t10k", "test"], "images", 3)).reshape(-1, 784)
    if args.normal_class is not None:
        labels = read_idx(find(args.data, ["train"], "labels", 1))
        train = train[labels == args.normal_class]
    train = torch.from_numpy(train.astype(np.float32) / 255.0).to(dev)
    test = torch.from_numpy(test.astype(np.float32) / 255.0).to(dev)
    model = VAE(args.hidden, args.latent).to(dev)
    graphed = args.mode == "graphed"
    # The graphed steps need an optimizer whose state (and step count) lives on the GPU.
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, **({"fused": True, "capturable": True} if graphed else {}))

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    def loss_of(recon, x, mu, logvar):
        return loss_function(recon, x, mu, logvar, args.likelihood)

    n = train.shape[0]
    total_dev = torch.zeros((), device=dev)
    graphs = {}
    if graphed:
        sizes = sorted({min(args.batch_size, n), n % args.batch_size} - {0})
        saved_model = {k: v.detach().clone() for k, v in model.state_dict().items()}
        pool = None
        for size in sizes:
            static_x = train[:size].clone()
            side = torch.cuda.Stream(dev)
            side.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up on a side stream, as capture requires
                    opt.zero_grad(set_to_none=True)
                    recon, mu, logvar = model(static_x)
                    loss_of(recon, static_x, mu, logvar).backward()
                    opt.step()
            torch.cuda.current_stream(dev).wait_stream(side)
            g = torch.cuda.CUDAGraph()
            opt.zero_grad(set_to_none=True)
            with torch.cuda.graph(g, pool=pool):
                recon, mu, logvar = model(static_x)
                static_loss = loss_of(recon, static_x, mu, logvar)
                static_loss.backward()
                opt.step()
                total_dev.add_(static_loss.detach())
            pool = g.pool()
            graphs[size] = (g, static_x)
        # Undo the warm-up and capture steps: the run starts from the initial weights
        # with a fresh optimizer state, like the eager run.
        with torch.no_grad():
            for k, v in model.state_dict().items():
                v.copy_(saved_model[k])
            for state in opt.state.values():
                for t in state.values():
                    if torch.is_tensor(t):
                        t.zero_()
        sync()

    epochs = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        sync()
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        if cuda:
            perm = perm.to(dev)
        total = 0.0
        if graphed:
            total_dev.zero_()
            for i in range(0, n, args.batch_size):
                rows = perm[i : i + args.batch_size]
                g, static_x = graphs[rows.shape[0]]
                torch.index_select(train, 0, rows, out=static_x)
                g.replay()
            total = total_dev.item()
        else:
            for i in range(0, n, args.batch_size):
                x = train[perm[i : i + args.batch_size]]
                opt.zero_grad()
                recon, mu, logvar = model(x)
                loss = loss_of(recon, x, mu, logvar)
                loss.backward()
                total += loss.item()
                opt.step()
        sync()
        secs = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            tl = 0.0
            for i in range(0, test.shape[0], args.batch_size):
                x = test[i : i + args.batch_size]
                recon, mu, logvar = model(x)
                tl += loss_of(recon, x, mu, logvar).item()
        rec = {"epoch": epoch, "seconds": secs, "train_loss": total / train.shape[0], "test_loss": tl / test.shape[0]}
        epochs.append(rec)
        print(json.dumps(rec), flush=True)
    done = {
        "event": "done", "torch": torch.__version__, "threads": args.threads, "mode": args.mode,
        "mean_epoch_seconds": sum(e["seconds"] for e in epochs) / len(epochs),
        "test_loss": epochs[-1]["test_loss"],
    }
    if cuda:
        done["device"] = torch.cuda.get_device_name(dev)
        done["cuda"] = torch.version.cuda
    print(json.dumps(done), flush=True)


if __name__ == "__main__":
    main()

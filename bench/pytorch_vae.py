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
    args = ap.parse_args()
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit(f"--device {args.device}: this torch ({torch.__version__}) sees no CUDA device")
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
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    def sync():
        if cuda:
            torch.cuda.synchronize(dev)

    def loss_of(recon, x, mu, logvar):
        return loss_function(recon, x, mu, logvar, args.likelihood)
    epochs = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        sync()
        t0 = time.perf_counter()
        perm = torch.randperm(train.shape[0])
        if cuda:
            perm = perm.to(dev)
        total = 0.0
        for i in range(0, train.shape[0], args.batch_size):
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
        "event": "done", "torch": torch.__version__, "threads": args.threads,
        "mean_epoch_seconds": sum(e["seconds"] for e in epochs) / len(epochs),
        "test_loss": epochs[-1]["test_loss"],
    }
    if cuda:
        done["device"] = torch.cuda.get_device_name(dev)
        done["cuda"] = torch.version.cuda
    print(json.dumps(done), flush=True)


if __name__ == "__main__":
    main()

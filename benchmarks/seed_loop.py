"""The baseline: an honest re-implementation of the blog's training loop, as the blog wrote it.

torchvision's FashionMNIST/MNIST dataset with ``transforms.ToTensor()`` (a PIL image per item), a
``DataLoader`` (batch 512, shuffle, main-process loading), the blog's MLPs with the batch size baked
into ``forward`` (``view(batch_size, ...)``), BatchNorm1d(1) + Sigmoid at D's output, ``nn.MSELoss``
summed against ones/zeros labels, z ~ N(0, 0.1), Adam 2e-4 (0.5, 0.999), and the fake batch not
detached in D's step. Step order as ganlab reads the blog: D update, then G update.

    python benchmarks/seed_loop.py --root /usr/share/datasets/fashion-mnist --epochs 1
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.init as init
import torchvision.datasets as dset
import torchvision.transforms as transforms
from torch.utils.data import DataLoader

_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def torchvision_root(idx_root: Path, name: str = "FashionMNIST") -> Path:
    """A temp dir in torchvision's layout (<root>/<name>/raw/, uncompressed) built from IDX .gz files."""
    root = Path(tempfile.mkdtemp(prefix="seed_loop_"))
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    for stem in _FILES:
        src = idx_root / stem if (idx_root / stem).is_file() else idx_root / f"{stem}.gz"
        opener = gzip.open if src.suffix == ".gz" else open
        with opener(src, "rb") as f_in, open(raw / stem, "wb") as f_out:
            shutil.copyfileobj(f_in, f_out)
    return root


def blog_models(batch_size: int, z_size: int = 50, middle_size: int = 200) -> tuple[nn.Module, nn.Module]:
    """The blog's G and D (28x28 images; batch size captured in forward, as the blog did)."""

    class Generator(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1 = nn.Sequential(nn.Linear(z_size, middle_size), nn.BatchNorm1d(middle_size), nn.ReLU())
            self.layer2 = nn.Sequential(nn.Linear(middle_size, 784), nn.Tanh())

        def forward(self, z):
            out = self.layer2(self.layer1(z))
            return out.view(batch_size, 1, 28, 28)

    class Discriminator(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer1 = nn.Sequential(nn.Linear(784, middle_size), nn.LeakyReLU(0.2))
            self.layer2 = nn.Sequential(nn.Linear(middle_size, 1), nn.BatchNorm1d(1), nn.Sigmoid())

        def forward(self, x):
            out = x.view(batch_size, -1)
            return self.layer2(self.layer1(out))

    return Generator(), Discriminator()


def run_blog_loop(tv_root: Path, epochs: int = 1, batch_size: int = 512, device: str = "cpu",
                  dataset: str = "FashionMNIST") -> dict[str, float]:
    """Train the blog's GAN for ``epochs`` and return seconds per epoch, images/s and peak memory."""
    t0 = time.perf_counter()
    cls = dset.FashionMNIST if dataset == "FashionMNIST" else dset.MNIST
    train_data = cls(str(tv_root), train=True, transform=transforms.ToTensor(), download=False)
    train_loader = DataLoader(train_data, batch_size=batch_size, shuffle=True, drop_last=True)
    generator, discriminator = blog_models(batch_size)
    generator, discriminator = generator.to(device), discriminator.to(device)
    loss_func = nn.MSELoss()
    gen_optim = torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    dis_optim = torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones_label = torch.ones(batch_size, 1, device=device)
    zeros_label = torch.zeros(batch_size, 1, device=device)
    setup_s = time.perf_counter() - t0
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    epoch_times, images = [], 0
    for _ in range(epochs):
        start = time.perf_counter()
        for image, _label in train_loader:
            image = image.to(device)
            # discriminator
            dis_optim.zero_grad()
            z = init.normal_(torch.Tensor(batch_size, 50), mean=0, std=0.1).to(device)
            gen_fake = generator.forward(z)
            dis_fake = discriminator.forward(gen_fake)  # not detached: backward runs through G too
            dis_real = discriminator.forward(image)
            dis_loss = torch.sum(loss_func(dis_fake, zeros_label)) + torch.sum(loss_func(dis_real, ones_label))
            dis_loss.backward(retain_graph=True)
            dis_optim.step()
            # generator
            gen_optim.zero_grad()
            z = init.normal_(torch.Tensor(batch_size, 50), mean=0, std=0.1).to(device)
            gen_fake = generator.forward(z)
            dis_fake = discriminator.forward(gen_fake)
            gen_loss = torch.sum(loss_func(dis_fake, ones_label))
            gen_loss.backward()
            gen_optim.step()
            images += batch_size
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        epoch_times.append(time.perf_counter() - start)
    result = {"setup_s": setup_s, "s_per_epoch": sum(epoch_times) / epochs,
              "images_per_s": images / sum(epoch_times), "last_d_loss": dis_loss.item(), "last_g_loss": gen_loss.item()}
    if device.startswith("cuda"):
        result["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="/usr/share/datasets/fashion-mnist", help="folder of the IDX(.gz) files")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    tv_root = torchvision_root(Path(args.root))
    try:
        print(json.dumps(run_blog_loop(tv_root, args.epochs, device=args.device), indent=2))
    finally:
        shutil.rmtree(tv_root)


if __name__ == "__main__":
    main()

"""Per member-step time of K GANs trained as one program vs one at a time, at the digits config's size.

Contenders, each doing per step one D update and one G update with the bce loss and Adam
(2e-4, betas 0.5/0.999), each member drawing its own real batch and its own z:

- ``single``:    ganlab's GANStep on one member's real models (time per step = per member-step)
- ``stacked``:   StackedModule (the folded MLP path) + StackedAdam, the population core
- ``vmap``:      the same with ``path="vmap"``, the generic path DCGAN takes
- ``prototype``: hand-batched baddbmm MLPs + torch.optim.Adam on the stacked tensors (one lr for all:
                 the floor the others are measured against, as /work/shared/population's prototype)

    python benchmarks/population_core.py --ks 1,9,27 --threads 2

Seen on the 2-core dev machine (torch 2.14.1, MKL, AVX2), CPUs >= 96% idle before and after the run,
ms per member-step at K = 1 / 9 / 27: single 3.84 (2 threads; 3.09 with 1); stacked 4.49 / 1.18 /
0.90 (4.3x the 2-thread single, 3.4x the 1-thread one); vmap 6.01 / 1.43 / 0.99; prototype
3.80 / 1.34 / 1.06. With 1 thread (a neighbour busy towards the end): stacked at K=27 1.38 vs 3.36.
A busy neighbour core wrecks 2-thread timings (OpenMP waits on it): check the idle CPUs first.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ganlab.launch.population.optim import from_torch
from ganlab.launch.population.stacked import StackedModule, pad_latent
from ganlab.losses import NonSaturatingLoss
from ganlab.models.mlp import MLPDiscriminator, MLPGenerator
from ganlab.step import GANStep

ADAM = dict(lr=2e-4, betas=(0.5, 0.999))


def single(args: argparse.Namespace, members: int, data: torch.Tensor):
    """One member trained alone: the loop a single run's train() runs (batch + z, then GANStep)."""
    G, D = MLPGenerator(args.z, args.middle, args.img), MLPDiscriminator(args.middle, args.img)
    step = GANStep(G, D, NonSaturatingLoss(), torch.optim.Adam(G.parameters(), **ADAM),
                   torch.optim.Adam(D.parameters(), **ADAM))
    latent = torch.Generator().manual_seed(0)

    def run() -> None:
        real = data[torch.randint(len(data), (args.batch,), generator=latent)]
        z_d, z_g = torch.randn(args.batch, args.z, generator=latent), torch.randn(args.batch, args.z, generator=latent)
        step([real], [z_d], z_g)
    return run


def stacked(args: argparse.Namespace, members: int, data: torch.Tensor, path: str = "auto"):
    """K members as one program: stacked G and D, per-member z streams, StackedAdam."""
    gens = [MLPGenerator(args.z, args.middle, args.img) for _ in range(members)]
    discs = [MLPDiscriminator(args.middle, args.img) for _ in range(members)]
    G, D = StackedModule(gens, path=path), StackedModule(discs, path=path)
    g_opt = from_torch([torch.optim.Adam(g.parameters(), **ADAM) for g in gens], G)
    d_opt = from_torch([torch.optim.Adam(d.parameters(), **ADAM) for d in discs], D)
    latents = [torch.Generator().manual_seed(k) for k in range(members)]  # each member's own random stream

    def z() -> torch.Tensor:
        return torch.stack([pad_latent(torch.randn(args.batch, args.z, generator=g), G.z_max) for g in latents])

    def run() -> None:
        real = data[torch.randint(len(data), (members, args.batch), generator=latents[0])]
        fake = G(z())
        d_loss = (F.softplus(-D(real)).mean(1) + F.softplus(D(fake.detach())).mean(1)).sum()
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        for p in D.parameters():  # as GANStep: no D weight grads in G's update
            p.requires_grad_(False)
        g_loss = F.softplus(-D(G(z()))).mean(1).sum()
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
        for p in D.parameters():
            p.requires_grad_(True)
    return run


def prototype(args: argparse.Namespace, members: int, data: torch.Tensor):
    """The hand-batched floor: baddbmm layers, BatchNorm by hand, one torch Adam over stacked tensors."""
    width = math.prod(args.img)

    def linear(n_in: int, n_out: int) -> list[torch.Tensor]:
        bound = n_in ** -0.5
        return [torch.empty(members, n_in, n_out).uniform_(-bound, bound).requires_grad_(),
                torch.zeros(members, 1, n_out, requires_grad=True)]
    g1, g2 = linear(args.z, args.middle), linear(args.middle, width)
    d1, d2 = linear(width, args.middle), linear(args.middle, 1)
    bn = [torch.ones(members, 1, args.middle, requires_grad=True),
          torch.zeros(members, 1, args.middle, requires_grad=True)]
    g_opt, d_opt = torch.optim.Adam(g1 + g2 + bn, **ADAM), torch.optim.Adam(d1 + d2, **ADAM)

    def G(z: torch.Tensor) -> torch.Tensor:
        h = torch.baddbmm(g1[1], z, g1[0])
        h = (h - h.mean(1, keepdim=True)) / torch.sqrt(h.var(1, unbiased=False, keepdim=True) + 1e-5) * bn[0] + bn[1]
        return torch.tanh(torch.baddbmm(g2[1], F.relu(h), g2[0]))

    def D(x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(d2[1], F.leaky_relu(torch.baddbmm(d1[1], x, d1[0]), 0.2), d2[0])

    latent = torch.Generator().manual_seed(0)

    def run() -> None:
        real = data[torch.randint(len(data), (members, args.batch), generator=latent)].flatten(2)
        fake = G(torch.randn(members, args.batch, args.z, generator=latent))
        d_loss = (F.softplus(-D(real)) + F.softplus(D(fake.detach()))).mean((1, 2)).sum()
        d_opt.zero_grad()
        d_loss.backward()
        d_opt.step()
        g_loss = F.softplus(-D(G(torch.randn(members, args.batch, args.z, generator=latent)))).mean((1, 2)).sum()
        g_opt.zero_grad()
        g_loss.backward()
        g_opt.step()
    return run


CONTENDERS = {"single": single, "stacked": stacked, "vmap": lambda a, k, d: stacked(a, k, d, path="vmap"),
              "prototype": prototype}


def seconds_per_step(run, steps: int, repeats: int) -> float:
    """Best of ``repeats`` timings of ``steps`` steps, after a warm-up (allocator, lazy optimizer state)."""
    for _ in range(10):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(steps):
            run()
        times.append((time.perf_counter() - start) / steps)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", default="1,9,27", help="population sizes")
    parser.add_argument("--contenders", default="single,stacked,vmap,prototype")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30, help="steps per timing")
    parser.add_argument("--repeats", type=int, default=10, help="timings per row; the best is kept (a busy machine "
                        "slows some of them)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--middle", type=int, default=200)
    parser.add_argument("--z", type=int, default=50)
    parser.add_argument("--img", default="1,8,8", help="image shape (digits: 1,8,8)")
    args = parser.parse_args()
    args.img = tuple(int(s) for s in args.img.split(","))
    torch.manual_seed(0)
    data = torch.rand(1797, *args.img) * 2 - 1  # digits' size: 1,797 images
    print(f"# torch {torch.__version__}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
          f"batch {args.batch}, z {args.z}, middle {args.middle}, image {args.img}")
    print(f"{'contender':<10} {'threads':>7} {'K':>3} {'ms/step':>9} {'ms/member-step':>15} {'speedup vs single':>18}")
    names = args.contenders.split(",")
    singles: dict[int, float] = {}
    if "single" in names:  # K singles one after another take K times one; at 1 thread two could run side by side
        for threads in sorted({1, args.threads}):
            torch.set_num_threads(threads)
            singles[threads] = seconds_per_step(single(args, 1, data), args.steps, args.repeats)
        for threads, per_step in singles.items():
            print(f"{'single':<10} {threads:>7} {1:>3} {per_step * 1e3:>9.2f} {per_step * 1e3:>15.3f} "
                  f"{singles[args.threads] / per_step:>18.2f}", flush=True)
    torch.set_num_threads(args.threads)
    for members in (int(k) for k in args.ks.split(",")):
        for name in (n for n in names if n != "single"):
            per_step = seconds_per_step(CONTENDERS[name](args, members, data), args.steps, args.repeats)
            per_member = per_step / members
            speedup = f"{singles[args.threads] / per_member:.2f}" if singles else "-"
            print(f"{name:<10} {args.threads:>7} {members:>3} {per_step * 1e3:>9.2f} {per_member * 1e3:>15.3f} "
                  f"{speedup:>18}", flush=True)
    print(f"# load average {os.getloadavg()[0]:.2f} at the end; speedup: vs single at the same thread count")


if __name__ == "__main__":
    main()

"""Shared fixtures: compose the real config, run the real entry point, write tiny IDX files."""

from __future__ import annotations

import gzip
import io
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    # several workers share the cores: one torch thread each (and in every subprocess a test starts);
    # oversubscribed torch threads spin against each other and run many times slower
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parent.parent
CONF_DIR = REPO / "conf"
FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")
# fast settings for every test run: no progress bar, no W&B unless a test asks for it
FAST = ["trainer.progress=false", "logger=none"]


def cpu_kernels() -> str:
    """The CPU's kernel family for bit-equality oracles: torch's capability and the CPU vendor.

    Runs are bit for bit equal only on the same kernels: torch picks its vectorised ones by capability
    (AVX512 takes 32-float steps where AVX2 takes 16), MKL its GEMMs by vendor too (on an Intel AVX512
    CPU a small-matrix or matrix-vector kernel where an AMD one runs its Zen GEMM): 1 ulp apart.
    """
    vendor = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{torch.backends.cpu.get_cpu_capability()}_{vendor}"


def oracle(folder: Path, stem: str, suffix: str) -> Path:
    """``folder/stem_<cpu_kernels()>suffix`` where one was recorded for this CPU's kernels, else ``stem+suffix``."""
    own = folder / f"{stem}_{cpu_kernels()}{suffix}"
    return own if own.is_file() else folder / f"{stem}{suffix}"


class Terminal(io.StringIO):
    """A text stream that says it is a terminal: what a tqdm bar draws, kept to read back."""

    def isatty(self) -> bool:
        return True


def compose_cfg(overrides: list[str] = (), hydra_config: bool = False, run_dir: Path | None = None) -> DictConfig:
    """The real composed config, as `python -m ganlab <overrides>` would see it.

    Outside a Hydra run nothing fills ``run.*``: ``run_dir`` sets it (as the Python API requires).
    """
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra_config)
    if run_dir is not None:
        cfg.run = {"dir": str(run_dir), "name": "default", "group": "single", "choices": {}, "overrides": []}
    return cfg


def run_ganlab(args: list[str], cwd: Path, env: dict | None = None, check: bool = True,
               module: str = "ganlab") -> subprocess.CompletedProcess:
    """Run `python -m <module> <args>` in a subprocess (the real entry point) and return the result."""
    full_env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    full_env.pop("WANDB_API_KEY", None)
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def signal_once_logging(args: list[str], run_dirs: str, cwd: Path, runs: int, signum: int,
                        to_group: bool = False, module: str = "ganlab") -> subprocess.CompletedProcess:
    """Start ``python -m <module> <args>``; once ``runs`` metrics.jsonl files (``cwd.glob(run_dirs)``) hold two rows
    each, send ``signum`` to the launching process, or to its whole process group as a terminal's Ctrl-C does
    (``to_group``); its exit status and output once it ended."""
    import time

    env = {**os.environ, "WANDB_SILENT": "true"}
    env.pop("WANDB_API_KEY", None)
    out, err = cwd / "signalled.out", cwd / "signalled.err"  # files, not pipes: nothing read while it runs
    with out.open("w") as stdout, err.open("w") as stderr:
        child = subprocess.Popen([sys.executable, "-m", module, *args], cwd=cwd, env=env, stdout=stdout,
                                 stderr=stderr, start_new_session=True)
        deadline = time.time() + 120
        while time.time() < deadline and child.poll() is None:
            logged = [len(p.read_text().splitlines()) for p in cwd.glob(run_dirs)]
            if len(logged) == runs and min(logged) >= 2:
                break
            time.sleep(0.2)
        (os.killpg if to_group else os.kill)(child.pid, signum)
        code = child.wait(timeout=120)
    return subprocess.CompletedProcess(child.args, code, out.read_text(), err.read_text())


def jsonl_rows(path: Path) -> list[dict]:
    """The rows of a run's metrics.jsonl or eval.jsonl."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def logged_steps(path: Path) -> list[int]:
    """The steps of a metrics.jsonl's or eval.jsonl's rows, in the file's order."""
    return [row["step"] for row in jsonl_rows(path)]


def sweep_index(sweep: Path) -> dict:
    """A sweep's index: each job's record by its id."""
    return json.loads((sweep / "sweep_index.json").read_text())["jobs"]


def checkpoint_at(job: Path, step: int) -> dict:
    """A run's checkpoint of ``step``, loaded as ganlab loads it."""
    return torch.load(job / "checkpoints" / f"step_{step:08d}.pt", weights_only=True)


def grid_cells(grid: np.ndarray, rows: int, per_row: int, size: int, pad: int = 2) -> np.ndarray:
    """The (rows, per_row, size, size) cells of one channel of a make_grid picture."""
    return np.stack([np.stack([grid[pad + r * (size + pad):pad + r * (size + pad) + size,
                                    pad + c * (size + pad):pad + c * (size + pad) + size] for c in range(per_row)])
                     for r in range(rows)])


def block_download(monkeypatch: pytest.MonkeyPatch, dataset: str, message: str = "no network") -> None:
    """Make ``torchvision.datasets.<dataset>`` fail as a download without network does."""
    import torchvision

    def offline(*args, **kwargs):
        raise RuntimeError(message)

    monkeypatch.setattr(torchvision.datasets, dataset, offline)


def write_idx_images(path: Path, images: np.ndarray, gz: bool) -> None:
    """Write uint8 images (N, H, W) as an IDX3 file, optionally gzipped."""
    payload = struct.pack(">IIII", 0x00000803, *images.shape) + images.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if gz else open
    with opener(path, "wb") as f:
        f.write(payload)


@pytest.hookimpl(trylast=True)  # after xdist's own hook, which tags the groups where pytest < 9 reads them
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The Slurm group first (one xdist worker runs it, test after test, mostly waiting on Slurm), the rest
    in pytest's order. In collection order it came last (test_slurm.py sorts late) and ran alone for its last minutes
    with the other worker idle; first, its waits overlap the other worker's tests. (Also putting the slow
    tests first was slower, 20.5 min against 19: two heavy multi-process tests at once oversubscribe 2 cores.)"""
    if getattr(config.option, "loadgroup", False):  # set on xdist's workers under --dist loadgroup
        for item in items:
            tag_xdist_group(item)
    items.sort(key=lambda item: item.get_closest_marker("xdist_group") is None)  # stable


def tag_xdist_group(item: pytest.Item) -> None:
    """Give a grouped test the ``@group`` node-id suffix by which xdist's loadgroup keeps a group on one worker.

    pytest-xdist (3.8) writes it into ``item._nodeid``, where pytest < 9 keeps the node id; pytest 9 keeps it in
    ``item._id`` (a NodeId) and never reads ``_nodeid``, so the suffix was lost and the Slurm tests spread over the
    workers, two jobs at once on the one-node cluster's 2 CPUs. Where xdist's tag took, this does nothing.
    """
    names = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                    for mark in item.iter_markers("xdist_group")})
    nodeid = item.nodeid
    if not names or nodeid.rfind("@") > nodeid.rfind("]"):
        return
    node_id = getattr(item, "_id", None)
    if node_id is None or isinstance(node_id, str):
        raise RuntimeError(f"pytest {pytest.__version__}: no NodeId in item._id to tag {nodeid} with its xdist group")
    item._id = type(node_id).parse(f"{nodeid}@{'_'.join(names)}")


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> Path:
    """A root holding tiny MNIST-format IDX files (64 train, 16 test images of bright squares)."""
    rng = np.random.default_rng(0)
    root = tmp_path / "mnist"
    for stem, n in (("train-images-idx3-ubyte", 64), ("t10k-images-idx3-ubyte", 16)):
        images = np.zeros((n, 28, 28), np.uint8)
        for i in range(n):
            r, c = rng.integers(0, 20, size=2)
            images[i, r : r + 8, c : c + 8] = 255
        write_idx_images(root / stem, images, gz=False)
    return root


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """Write uint8 labels (N,) as an IDX1 file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_labelled_mnist(tiny_mnist: Path) -> Path:
    """``tiny_mnist`` with label files beside the images: class = the square's row band (0..9)."""
    from ganlab.data.idx import read_idx_images

    for images, labels in (("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                           ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        squares = read_idx_images(tiny_mnist / images).numpy()
        top_rows = (squares > 0).argmax(axis=1).max(axis=1)  # the first lit row of each image
        write_idx_labels(tiny_mnist / labels, top_rows // 2)
    return tiny_mnist


@pytest.fixture
def fashion_root() -> Path:
    """Debian's real Fashion-MNIST; CI installs it, so missing there is a failure, not a skip."""
    if not (FASHION_ROOT / "train-images-idx3-ubyte.gz").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{FASHION_ROOT} missing: .ci/run must apt-get install dataset-fashion-mnist")
        pytest.skip(f"{FASHION_ROOT} not installed (apt-get install dataset-fashion-mnist)")
    return FASHION_ROOT


@pytest.fixture(autouse=True, scope="session")
def classifier_cache(tmp_path_factory) -> Path:
    """Evaluation classifiers of every test live in a per-session folder, never in ~/.cache/ganlab.

    Runs evaluate after their last step (eval.every), which needs the data set's classifier: cheap
    digits and Fashion-MNIST ones are trained here once, so runs neither train them nor read the
    user's cache (the Fashion-MNIST one also serves the tests' tiny IDX sets named fashion_mnist).
    """
    from ganlab.data.idx import idx
    from ganlab.data.images import digits
    from ganlab.metrics.classifier import save_classifier, train_classifier

    cache = tmp_path_factory.mktemp("ganlab_cache")
    saved = os.environ.get("GANLAB_CACHE")
    os.environ["GANLAB_CACHE"] = str(cache)  # read by conf/config.yaml's eval.classifier.dir, also in subprocesses
    save_classifier(train_classifier(digits(), steps=150), cache / "classifiers")
    if (FASHION_ROOT / "train-images-idx3-ubyte.gz").is_file():  # else each worker's first Fashion-MNIST run trains one
        fashion = idx("fashion_mnist", str(FASHION_ROOT))
        save_classifier(train_classifier(fashion, steps=100, max_train=5000), cache / "classifiers")
    yield cache / "classifiers"
    if saved is None:
        os.environ.pop("GANLAB_CACHE", None)
    else:
        os.environ["GANLAB_CACHE"] = saved


def assert_same_weights(state: dict, old: dict) -> None:
    """G's and D's state dicts of two checkpoints: the same keys, every tensor bit for bit."""
    for net in ("generator", "discriminator"):
        assert state[net].keys() == old[net].keys(), net
        for key, value in old[net].items():
            assert torch.equal(state[net][key], value), f"{net}.{key}"


def train_straight_and_resumed(args: list[str], root: Path) -> tuple[dict, dict, Path]:
    """Train ``args`` 6 steps straight (root/straight) and 3 + a resume to 6 (root/split); return both
    final checkpoints and the half-way one's path."""
    from ganlab.train import train

    train(compose_cfg([*args, "trainer.max_steps=6"], run_dir=root / "straight"))
    train(compose_cfg([*args, "trainer.max_steps=3"], run_dir=root / "split"))
    half = root / "split" / "checkpoints" / "step_00000003.pt"
    train(compose_cfg([*args, "trainer.max_steps=6", f"resume={half}"], run_dir=root / "split"))
    straight, split = [torch.load(root / d / "checkpoints" / "step_00000006.pt", weights_only=True)
                       for d in ("straight", "split")]
    return straight, split, half


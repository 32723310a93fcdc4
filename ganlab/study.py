"""A study of losses in one command, "Are GANs Created Equal?" (Lucic et al. 2018) at lab scale.

    python -m ganlab.study [--losses L1,L2] [--trials 50] [--seeds 5] [--launcher population] [overrides]

Phase 1, the search: for each loss, a seeded random search of --trials trials (``sweep=loss_study``:
Optuna's random sampler over the learning rate, Adam's beta1, n_disc and the loss's own keys),
through --launcher. Then ``ganlab.compare`` draws the study over all losses: the best metric within
a budget of k trials (with its band over random orderings) and the metric's distribution per loss.
Phase 2, the rerun: each loss's best configuration over --seeds seeds, reported as mean ± std.
Everything goes to --out: search/<loss>/, search/compare/ (figures, tables), rerun/<loss>/, study.md.
Running the same command again resumes it (finished trials and reruns are skipped), also after Ctrl-C,
which lets the running trials checkpoint and stops the study.

Examples:
    python -m ganlab.study --trials 50 --seeds 5                              # digits, the 7 losses
    python -m ganlab.study --trials 50 data=fashion_mnist data.root=/usr/share/datasets/fashion-mnist
    python -m ganlab.study --losses bce,hinge --trials 4 --seeds 2 trainer.max_steps=50   # a smoke study
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import signal
import statistics
import subprocess
import sys
from pathlib import Path

from ganlab.errors import INTERRUPTED_EXIT, interruptible

LOSSES = ("bce", "minimax", "mse", "hinge", "wgan", "wgan_gp", "bce_r1")
PARAM_KEYS = ("optimizer.lr=", "optimizer.betas.0=", "trainer.n_critic=", "loss.")  # what the search chose




class Interrupted(Exception):
    """A search or rerun stopped on Ctrl-C (its jobs checkpointed): the study stops; the same command resumes it."""


def ganlab(args: list[str]) -> int:
    """``python -m ganlab args`` in a child process (each search is a Hydra multirun of its own).

    A terminal's Ctrl-C reaches the child, which checkpoints its jobs and exits 130: this process waits
    for that (subprocess.run would kill the child 0.25 s after a KeyboardInterrupt, mid-checkpoint) and
    raises Interrupted."""
    child = subprocess.Popen([sys.executable, "-m", "ganlab", *args])
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # after the start: the child keeps Python's handler
    try:
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    if code == INTERRUPTED_EXIT:
        raise Interrupted
    return code


def loss_spaces(losses: list[str], overrides: list[str], launcher: str) -> dict[str, dict[str, str]]:
    """Each loss's own search keys, from sweeps/loss_study.yaml (``study.spaces``).

    The study's config is composed with each loss (~0.3 s each), so that an override one of them does
    not take (``loss.gp_weight`` is wgan_gp's) or an unknown ``--launcher`` is a one-line error before any
    search, not after hours.
    """
    from omegaconf import OmegaConf

    from ganlab.config import compose_config
    from ganlab.errors import ConfigError

    spaces: dict[str, dict[str, str]] = {}
    errors: dict[str, str] = {}
    for loss in losses:
        try:
            cfg = compose_config(["sweep=loss_study", f"loss={loss}", f"launcher={launcher}", *overrides])
            spaces = OmegaConf.to_container(cfg.study.spaces)
        except ConfigError as err:
            errors[loss] = str(err)
    if errors and len(errors) == len(losses) and len(set(errors.values())) == 1:
        raise ConfigError(next(iter(errors.values())))  # the same with every loss: not a loss's problem
    if errors:
        loss, error = next(iter(errors.items()))
        raise ConfigError(f"loss={loss}: {error}")
    return spaces


def check_losses(losses: list[str]) -> None:
    """Every asked-for loss is an option of the loss group (a typo would otherwise cost a whole search)."""
    from ganlab.config import config_groups
    from ganlab.errors import ConfigError

    known = config_groups()["loss"]
    unknown = [loss for loss in losses if loss not in known]
    if unknown or not losses:
        raise ConfigError(f"--losses: {'unknown loss ' + ', '.join(unknown) if unknown else 'no loss given'} "
                          f"(available: {', '.join(known)})")
    twice = sorted({loss for loss in losses if losses.count(loss) > 1})
    if twice:  # its search would run twice into one folder, its row appear twice in the study
        raise ConfigError(f"--losses: {', '.join(twice)} given more than once")


def search(loss: str, args: argparse.Namespace, spaces: dict, overrides: list[str]) -> int:
    """Phase 1 for one loss: its random search into <out>/search/<loss>."""
    space = [f"{key}={value}" for key, value in spaces.get(loss, {}).items()]
    return ganlab(["-m", "sweep=loss_study", f"loss={loss}", *space, f"hydra.sweeper.n_trials={args.trials}",
                   f"hydra.sweeper.n_jobs={args.batch or args.trials}", f"launcher={args.launcher}",
                   f"hydra.sweep.dir={args.out / 'search' / loss}", *overrides])


def best_trial(sweep_dir: Path) -> dict | None:
    """The finished trial with the lowest objective in a search's sweep index, or None."""
    index = sweep_dir / "sweep_index.json"
    if not index.is_file():
        return None
    jobs = [j for j in json.loads(index.read_text())["jobs"].values()
            if j.get("status") == "finished" and isinstance(j.get("objective"), (int, float))]
    return min(jobs, key=lambda j: j["objective"]) if jobs else None


def rerun(loss: str, trial: dict, args: argparse.Namespace, overrides: list[str]) -> int:
    """Phase 2 for one loss: its best configuration over --seeds seeds into <out>/rerun/<loss>."""
    chosen = [o for o in trial["overrides"] if o.startswith(PARAM_KEYS)]
    return ganlab(["-m", "experiment=loss_study", f"loss={loss}", *chosen, f"seed=range(0,{args.seeds})",
                   f"launcher={args.launcher}", f"hydra.sweep.dir={args.out / 'rerun' / loss}", *overrides])


def rerun_row(loss: str, trial: dict | None, sweep_dir: Path) -> str:
    """One row of the final table: the search's best, and the rerun's mean ± std over seeds."""
    if trial is None:
        return f"| {loss} | no finished trial | | | |"
    index = sweep_dir / "sweep_index.json"
    values = [j["objective"] for j in json.loads(index.read_text())["jobs"].values()
              if j.get("status") == "finished" and isinstance(j.get("objective"), (int, float))] \
        if index.is_file() else []
    values = [v for v in values if math.isfinite(v)]
    spread = (f"{statistics.fmean(values):.4g} ± {statistics.stdev(values) if len(values) > 1 else 0:.2g}"
              if values else "n/a")
    chosen = ", ".join(f"`{o}`" for o in trial["overrides"] if o.startswith(PARAM_KEYS))
    return f"| {loss} | {trial['objective']:.4g} | {spread} | {len(values)} | {chosen} |"


def parser() -> argparse.ArgumentParser:
    """The command's options; every other argument is an override for every run (read by the README test)."""
    p = argparse.ArgumentParser(prog="python -m ganlab.study", description=__doc__.splitlines()[0],
                                epilog="Other arguments are overrides for every run, as for python -m ganlab.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--losses", default=",".join(LOSSES), help=f"comma list (default: {','.join(LOSSES)})")
    p.add_argument("--trials", type=int, default=50, help="trials per loss in phase 1 (default 50)")
    p.add_argument("--batch", type=int, default=0, help="trials per Optuna batch (default: all at once)")
    p.add_argument("--seeds", type=int, default=5, help="seeds per best configuration in phase 2 (0: skip)")
    p.add_argument("--launcher", default="population", help="launcher of every multirun (default population)")
    p.add_argument("--out", type=Path, default=None, help="study folder (default multirun/loss_study-<hash>)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run both phases (skipping what is done), draw the study, print and write study.md."""
    p = parser()
    args, overrides = p.parse_known_args(argv)
    if args.trials < 1 or args.seeds < 0 or args.batch < 0:
        p.error("--trials must be >= 1, --seeds and --batch >= 0")
    from ganlab.errors import GanlabError, make_folder

    losses = [loss for loss in args.losses.split(",") if loss]
    tag = hashlib.sha1("\n".join(sorted(overrides) + [args.losses, str(args.trials)]).encode()).hexdigest()[:10]
    args.out = args.out or Path("multirun") / f"loss_study-{tag}"
    try:
        check_losses(losses)
        spaces = loss_spaces(losses, overrides, args.launcher)
        make_folder(args.out)  # study.md is written even if every search failed
    except GanlabError as err:
        print(f"ganlab.study: error: {err}", file=sys.stderr)
        return 2
    try:
        return run_study(losses, args, spaces, overrides)
    except Interrupted:
        print("ganlab.study: interrupted (Ctrl-C); the same command resumes the study", file=sys.stderr)
        return INTERRUPTED_EXIT


def run_study(losses: list[str], args: argparse.Namespace, spaces: dict, overrides: list[str]) -> int:
    """Both phases and the figures, into ``args.out``; 1 when a loss failed."""
    failed = [loss for loss in losses if search(loss, args, spaces, overrides) not in (0, 2)]
    from ganlab.compare import main as compare

    if (args.out / "search").is_dir():  # no search started at all (each failed at once): nothing to draw
        compare([str(args.out / "search"), "--budget-curve"])
    rows = []
    for loss in losses:
        trial = best_trial(args.out / "search" / loss)
        if trial is None and loss not in failed:  # its search ran no trial to the end (a bad override, say)
            failed.append(loss)
        if args.seeds and trial is not None and rerun(loss, trial, args, overrides) not in (0, 2):
            failed.append(loss)
        rows.append(rerun_row(loss, trial, args.out / "rerun" / loss))
    table = ("| loss | best of the search | rerun over seeds (mean ± std) | seeds | configuration |\n"
             "|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    (args.out / "study.md").write_text(f"# Study of losses: {' '.join(overrides) or 'defaults'}\n\n" + table)
    print(table + f"\nstudy: {args.out} (figures in {args.out / 'search' / 'compare'})")
    return 1 if failed else 0


if __name__ == "__main__":
    from ganlab.quick_exit import run_and_leave

    run_and_leave(lambda: interruptible("ganlab.study", main))

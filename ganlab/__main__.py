"""Entry point: ``python -m ganlab [overrides]`` or the ``ganlab`` console script."""

from __future__ import annotations

import os
import sys

import hydra
from hydra.errors import CompactHydraException
from omegaconf import DictConfig

from ganlab.config import CONFIG_PATH, hydra_error_line
from ganlab.errors import INTERRUPTED_EXIT, user_error_line


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
def _hydra_main(cfg: DictConfig) -> float | None:
    from hydra.core.hydra_config import HydraConfig

    from ganlab.launch.job import objective_value, run_single_job, run_sweep_job
    from ganlab.train import train

    hc = HydraConfig.get()
    multirun = str(hc.mode).endswith("MULTIRUN")
    try:
        if multirun:
            return run_sweep_job(cfg, hc, train)
        return objective_value(run_single_job(cfg, train), cfg.objective)
    except Exception as err:
        line = user_error_line(err)
        if line is None:  # a bug: its traceback
            raise
        # one line, no traceback (and not Hydra's "Error executing job" above it)
        print(f"ganlab: error: {line}", file=sys.stderr)
        if multirun:
            # the sweep index holds the failure and the others run on. None is what the sweeper sees (Optuna
            # records the trial as failed); the sweep's end-of-run summary (ganlab.launch.sweep.SweepCallback)
            # lists it and makes the command exit 2
            return None
        raise SystemExit(2) from None


def fast_help() -> str:
    """``--help`` without composing the config: the same template Hydra renders (conf/hydra/help/ganlab.yaml)."""
    from string import Template

    from omegaconf import OmegaConf

    from ganlab.config import config_dirs

    conf, _ = config_dirs()
    template = OmegaConf.load(conf / "hydra" / "help" / "ganlab.yaml").template  # resolves ${ganlab_help_groups:}
    return Template(template).substitute(FLAGS_HELP="", HYDRA_CONFIG_GROUPS="", APP_CONFIG_GROUPS="", CONFIG="")


def error_line(err: Exception) -> str | None:
    """The one line for an error that reached ``main`` about what the user asked for; None for a bug."""
    if isinstance(err, CompactHydraException):  # an unknown option or key, a bad override
        return hydra_error_line(err)
    line = user_error_line(err)  # here raised outside a job: by a sweeper or a launcher checking its options,
    if line is not None:        # or a run or sweep dir that cannot be made (hydra.run.dir under a file)
        return f"{line} (HYDRA_FULL_ERROR=1 shows where)" if isinstance(err, OSError) else line
    if type(err).__name__ == "FailedJobError" and type(err).__module__.startswith("submitit"):
        # sbatch refused the array (an unknown partition, too much memory): its first words (sbatch has printed
        # them above, submitit does not capture its stderr)
        reason = next((line.strip() for line in str(err).splitlines() if line.strip()), "sbatch failed")
        return f"Slurm refused the jobs: {reason}"
    return None


MULTIRUN_FLAGS = ("-m", "--multirun")


def multirun_flag_first(argv: list[str]) -> list[str]:
    """``argv`` with ``-m``/``--multirun`` moved before the overrides.

    Hydra's argparse takes one run of overrides: ``ganlab loss=bce -m seed=0,1`` stops at "unrecognized
    arguments: seed=0,1" under a screen of usage. The flag takes no value and no override is ``-m``, so
    its place carries no meaning and it can move.
    """
    flags = [a for a in argv if a in MULTIRUN_FLAGS]
    return [*flags, *(a for a in argv if a not in MULTIRUN_FLAGS)]


def main() -> None:
    """Console-script entry."""
    sys.argv[1:] = multirun_flag_first(sys.argv[1:])
    if sys.argv[1:] in (["--help"], ["-h"]):  # Hydra would compose every group first (~1 s) to print it
        print(fast_help())
        return

    from hydra_plugins.ganlab_plugins import register_plugins

    register_plugins()  # launcher=population, sweep=optuna: where an editable install hides them from Hydra's scan
    if os.environ.get("HYDRA_FULL_ERROR"):  # the user asked for Hydra's full reports
        _hydra_main()
        return
    # Hydra prints its own errors (an unknown option or key, a bad override) over several lines and exits 1;
    # HYDRA_FULL_ERROR lets them reach this frame, where they become one line like every other bad input.
    # Anything else (a bug) then shows its whole traceback rather than Hydra's trimmed one.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        _hydra_main()
    except Exception as err:
        line = error_line(err)
        if line is None:
            raise
        print(f"ganlab: error: {line}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:  # outside training (which checkpoints on the first Ctrl-C), or a second Ctrl-C
        from ganlab.launch.sweep import interrupted_line

        print(interrupted_line(), file=sys.stderr)
        raise SystemExit(INTERRUPTED_EXIT) from None
    finally:
        os.environ.pop("HYDRA_FULL_ERROR", None)


def cli() -> None:
    """The ``ganlab`` console script and ``python -m ganlab``: ``main()``, then out without torch's teardown."""
    from ganlab.quick_exit import run_and_leave

    run_and_leave(main)


if __name__ == "__main__":
    cli()

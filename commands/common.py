"""Options shared by several commands, parameter types, and the translation of user errors into one-line
CLI errors (exit code 2, no traceback)."""
from __future__ import annotations

import contextlib
import functools
from fractions import Fraction

import click

from .choices import DATASETS, SEARCHES

DEVICE = click.Choice(["auto", "cpu", "cuda"])


class UserError(click.ClickException):
    """A one-line error about the user's input; exit code 2 like click's usage errors."""
    exit_code = 2


@contextlib.contextmanager
def user_errors():
    """Turn the library's user-facing errors into ``UserError`` (one line, exit 2, no traceback)."""
    from classifier import NonFiniteLoss
    from data import DataError
    from pipeline import ConfigError, ReportError
    from runs import CheckpointError, RunDirError
    from runtime import DeviceError, Interrupted
    try:
        yield
    except (DataError, CheckpointError, RunDirError, NonFiniteLoss, DeviceError, ReportError) as e:
        raise UserError(str(e)) from None
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    except Interrupted as e:
        click.echo(str(e), err=True)
        raise click.exceptions.Exit(130) from None


def reports_user_errors(fn):
    """Decorator form of ``user_errors`` for command bodies."""
    @functools.wraps(fn)
    def wrapper(*a, **k):
        with user_errors():
            return fn(*a, **k)
    return wrapper


def given(ctx: click.Context, *names: str) -> list[str]:
    """The options among ``names`` (parameter names) that the user typed on the command line, as flags."""
    out = []
    for p in ctx.command.params:
        if p.name in names and ctx.get_parameter_source(p.name) == click.core.ParameterSource.COMMANDLINE:
            out.append(p.opts[0])
    return out


class PixelFraction(click.ParamType):
    """A size in [0, 1] pixel units: ``0.1``, ``8/255`` or ``0.03137``. ``8`` (grey levels) is refused with
    a hint to write ``8/255``."""
    name = "EPS"

    def __init__(self, allow_zero: bool = False):
        self.allow_zero = allow_zero

    def convert(self, value, param, ctx):
        if isinstance(value, float):
            return value
        try:
            v = float(Fraction(str(value).strip()))
        except (ValueError, ZeroDivisionError):
            self.fail(f"{value!r} is not a number or a fraction like 8/255", param, ctx)
        if v > 1:
            self.fail(f"{value} is out of range: sizes are in [0, 1] pixel units (images are in [0, 1]); "
                      f"for {value} grey levels write {value}/255", param, ctx)
        if v < 0 or (v == 0 and not self.allow_zero):
            self.fail(f"{value} is out of range: it must be {'>= 0' if self.allow_zero else '> 0'} and <= 1",
                      param, ctx)
        return v


EPS = PixelFraction()


def _target(ctx, param, value):
    """--target: a class number or "all"."""
    if value is None or value == "all":
        return value
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a class number nor 'all'") from None


target_option = click.option("--target", default=None, callback=_target, metavar="CLASS|all",
                             help="Targeted unrestricted search: toward this class number, or toward every other "
                                  "class (all).  [default: untargeted]")
judge_option = click.option("--judge", type=click.Path(exists=True), default=None, metavar="RUN",
                            help="A classifier of the same data set that the search never sees: re-classifies "
                                 "every unrestricted example; valid success = success the judge agrees with.")
search_option = click.option("--search", type=click.Choice(SEARCHES), default="fast", show_default=True,
                             help="Latent search setting: song2018 (Song et al.'s code: 1000 fp32 steps, judged "
                                  "once), fast (early stop, margin term, bf16 view) or confident (fast with Adam on z, "
                                  "and success needs the AC head's probability >= 0.985: fewer, more often valid "
                                  "examples).")
eps_pix_option = click.option("--eps-pix", type=PixelFraction(allow_zero=True), default=0.0, show_default=True,
                              help="Pixel noise eps_pix*tanh(tau) searched with z (0: pure latent; equal to "
                                   "the L-inf threat model it makes the search an L-inf attack on G(z)).")


def dataset_option(default: str | None = "cifar100", **kw):
    return click.option("--dataset", type=click.Choice(DATASETS, case_sensitive=False), default=default,
                        show_default=True, help="Data set name.", **kw)


data_dir_option = click.option("--data-dir", default="datasets", show_default=True, metavar="DIR",
                               type=click.Path(file_okay=False),
                               help="Where data sets are found or downloaded to (created only when a "
                                    "download succeeds).")
device_option = click.option("--device", type=DEVICE, default="auto", show_default=True,
                             help="auto picks CUDA when available, else CPU.")
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seeds everything.")
resume_option = click.option("--resume", is_flag=True,
                             help="Continue the run in --out from its last checkpoint (its settings win).")


def out_option(default: str | None = None, help: str = "Run directory (config, checkpoints, TensorBoard, metrics)."):
    return click.option("--out", type=click.Path(), default=default, required=default is None,
                        show_default=default is not None, metavar="DIR", help=help)

"""Options shared by several commands, and the translation of user errors into one-line CLI errors."""
from __future__ import annotations

import contextlib
import functools

import click

from data import dataset_names

DEVICE = click.Choice(["auto", "cpu", "cuda"])


class UserError(click.ClickException):
    """A one-line error about the user's input; exit code 2 like click's usage errors."""
    exit_code = 2


@contextlib.contextmanager
def user_errors():
    """Turn the library's user-facing errors into ``UserError`` (one line, exit 2, no traceback)."""
    from classifier import NonFiniteLoss
    from data import DataError
    from pipeline import ConfigError
    from runs import CheckpointError, RunDirError
    from runtime import DeviceError, Interrupted
    try:
        yield
    except (DataError, CheckpointError, RunDirError, NonFiniteLoss, DeviceError) as e:
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


def dataset_option(default: str | None = "cifar100", **kw):
    return click.option("--dataset", type=click.Choice(dataset_names()), default=default, show_default=True,
                        help="Data set name.", **kw)


data_dir_option = click.option("--data-dir", default="datasets", show_default=True, metavar="DIR",
                               type=click.Path(file_okay=False),
                               help="Where data sets are found or downloaded to.")
device_option = click.option("--device", type=DEVICE, default="auto", show_default=True,
                             help="auto picks CUDA when available, else CPU.")
seed_option = click.option("--seed", type=int, default=0, show_default=True, help="Seeds everything.")
resume_option = click.option("--resume", is_flag=True,
                             help="Continue the run in --out from its last checkpoint (its settings win).")


def out_option(default: str | None = None, help: str = "Run directory (config, checkpoints, TensorBoard, metrics)."):
    return click.option("--out", type=click.Path(), default=default, required=default is None,
                        show_default=default is not None, metavar="DIR", help=help)

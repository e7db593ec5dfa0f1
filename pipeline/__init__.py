"""The application layer: what each command does, as functions over settings (no option parsing).

- ``train``: a classifier run and an AC-GAN run;  ``evaluate``: a trained classifier, recorded in metrics.json;
- ``unrestricted``: class-balanced latent searches and the held-out set of unrestricted examples;
- ``pictures``: every kind of labelled grid;  ``report``: tables and charts across runs;
- ``claims``: the research claims judged from the numbers;  ``suites``: the demo and reproduce suites.
"""
from .claims import Verdict, claims_json, claims_markdown, judge_claims, published_markdown
from .common import ConfigError, check_compatible, load_compatible_gan
from .evaluate import EvalSettings, evaluate_classifier
from .pictures import GRID_KINDS, GridOptions, draw_grid
from .report import ReportError, collect, markdown_table, row, write_report
from .suites import SUITES, Anchor, Setting, Suite, autoattack_check, run_suite
from .train import ClassifierRun, make_augmenter, train_classifier, train_gan_run
from .unrestricted import (balanced_search, find_unrestricted_set, heldout_accuracy, load_judge, reference_search,
                           search_figures, search_labels)

__all__ = ["Verdict", "claims_json", "claims_markdown", "judge_claims", "published_markdown", "ConfigError",
           "check_compatible", "load_compatible_gan", "EvalSettings", "evaluate_classifier", "GRID_KINDS",
           "GridOptions", "draw_grid", "ReportError", "collect", "markdown_table", "write_report", "SUITES",
           "Anchor", "Setting", "Suite", "autoattack_check", "run_suite", "ClassifierRun", "make_augmenter", "train_classifier",
           "train_gan_run", "balanced_search", "find_unrestricted_set", "heldout_accuracy", "load_judge",
           "reference_search", "search_figures", "search_labels", "row"]

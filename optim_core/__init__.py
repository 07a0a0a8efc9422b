"""optim_core: optimizer settings, schedules, the LR range test and short trials.

The front door, for library users::

    from optim_core import lr_range_test, run_trials, advise, suggest

Every name below is imported on first use (PEP 562), so ``import optim_core`` stays torch-free:
the API process imports the declarations (``optim_core.specs``), the numerics
(``optim_core.numerics``) and the advice (``optim_core.advice``) without ever loading torch;
``optim_core.training`` is the one subpackage that trains (and imports torch).
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:  # the one version string: the installed distribution's
    __version__ = version("optim-advisor")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

# name -> "module:attribute"; torch is loaded only by the names from optim_core.training.
_EXPORTS: dict[str, str] = {
    # measuring (torch)
    "lr_range_test": "optim_core.training.range_test:lr_range_test",
    "RangeTestResult": "optim_core.training.range_test:RangeTestResult",
    "run_trials": "optim_core.training.trials:run_trials_on",
    "TrialsResult": "optim_core.training.trials:TrialsResult",
    "TrialResult": "optim_core.training.trials:TrialResult",
    "build_optimizer": "optim_core.training.optimizers:build_optimizer",
    "build_param_groups": "optim_core.training.param_groups:build_param_groups",
    "ScheduleLR": "optim_core.training.lr_scheduler:ScheduleLR",
    # deciding (torch-free)
    "suggest": "optim_core.numerics.suggest:suggest",
    "Suggestions": "optim_core.numerics.suggest:Suggestions",
    "advise": "optim_core.advice.engine:advise",
    "AdviceRequest": "optim_core.advice.models:AdviceRequest",
    "AdviceResponse": "optim_core.advice.models:AdviceResponse",
    # declarations (torch-free)
    "OptimizerSpec": "optim_core.specs.optimizer:OptimizerSpec",
    "ScheduleSpec": "optim_core.specs.schedule:ScheduleSpec",
    "RangeTestConfig": "optim_core.specs.range_test:RangeTestConfig",
    "TrialsConfig": "optim_core.specs.jobs:TrialsConfig",
    "ExperimentSpec": "optim_core.specs.experiment:ExperimentSpec",
}

__all__ = [  # noqa: RUF022 (the version first, then the exports in order)
    "__version__",
    "AdviceRequest",
    "AdviceResponse",
    "ExperimentSpec",
    "OptimizerSpec",
    "RangeTestConfig",
    "RangeTestResult",
    "ScheduleLR",
    "ScheduleSpec",
    "Suggestions",
    "TrialResult",
    "TrialsConfig",
    "TrialsResult",
    "advise",
    "build_optimizer",
    "build_param_groups",
    "lr_range_test",
    "run_trials",
    "suggest",
]


assert set(__all__[1:]) == set(_EXPORTS)  # one list for the linter, checked against the table


def __getattr__(name: str) -> Any:
    target = _EXPORTS.get(name)
    if target is None:
        raise AttributeError(f"module 'optim_core' has no attribute {name!r}")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported at run time
    from optim_core.advice.engine import advise
    from optim_core.advice.models import AdviceRequest, AdviceResponse
    from optim_core.numerics.suggest import Suggestions, suggest
    from optim_core.specs.experiment import ExperimentSpec
    from optim_core.specs.jobs import TrialsConfig
    from optim_core.specs.optimizer import OptimizerSpec
    from optim_core.specs.range_test import RangeTestConfig
    from optim_core.specs.schedule import ScheduleSpec
    from optim_core.training.lr_scheduler import ScheduleLR
    from optim_core.training.optimizers import build_optimizer
    from optim_core.training.param_groups import build_param_groups
    from optim_core.training.range_test import RangeTestResult, lr_range_test
    from optim_core.training.trials import TrialResult, TrialsResult
    from optim_core.training.trials import run_trials_on as run_trials

"""optim_core: optimizer settings, schedules, the LR range test and short trials.

Importing this package (and its torch-free modules: ``schedules``, ``optimizer_spec``,
``specs``, ``suggest``, ``advice``, ``canonical``, ``errors``) never imports torch, so the API
process can use them. Modules that train (``param_groups``, ``optimizers``, ``lr_scheduler``,
``range_test``, ``models``, ``data``, ``registry``, ``trials``, ``experiment``) import torch and are
meant for worker processes and library users.
"""

__version__ = "0.1.0"

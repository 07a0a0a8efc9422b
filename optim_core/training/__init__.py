"""Everything that trains: the only part of optim_core that imports torch (and numpy).

Param groups, the optimizer factory, the LR scheduler adapter, built-in models and data, the
plug-in registry, the LR range test, trials (sequential and batched) and the service entry points
the workers call. Only worker processes and library users import this package.
"""

"""Torch-free numerics: schedules as pure functions of the step, the LR suggestion rules and the
divergence rule. Plain Python floats and lists, so the API process can run them too.
"""

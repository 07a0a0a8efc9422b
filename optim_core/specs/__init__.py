"""Declarations: what a user asks for, as frozen pydantic models. Torch-free and numpy-free.

The API validates requests with these and the workers rebuild them from JSON, so a spec here is
the one description of an optimizer, a schedule, an experiment, a range test or a trials run.
"""

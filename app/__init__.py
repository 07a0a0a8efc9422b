"""optim-advisor HTTP API. This process never imports torch (see tests/test_layering.py)."""

"""Request and response models of the HTTP API that are not optim_core declarations, and the
examples shown in the docs."""

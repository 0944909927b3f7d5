"""Training one network: the loop (``fit``), the device, mixed precision, optimizers, losses
and validation metrics by name."""

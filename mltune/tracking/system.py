"""MLflow's system metrics (GPU utilisation and memory, host memory) for trials on a GPU."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

import torch

GPU_METRICS_NOTICE = ("GPU utilisation and memory are not logged per trial: "
                      "pip install nvidia-ml-py psutil")


def gpu_metrics_available() -> bool:
    """MLflow's system metrics read GPUs through NVML (nvidia-ml-py) and the host via psutil."""
    return find_spec("pynvml") is not None and find_spec("psutil") is not None


def start_monitor(run_id: str, device: torch.device) -> Any:
    """MLflow's system metrics monitor for a run on CUDA, sampled every second while it trains;
    None on the CPU or without NVML. Call ``.finish()`` on it when the trial ends."""
    if device.type != "cuda" or not gpu_metrics_available():
        return None
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(run_id, sampling_interval=1.0)
    monitor.start()
    return monitor

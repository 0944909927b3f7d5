"""The code of every model mltune logs (MLflow's "models from code"): MLflow copies this file
into the model and runs it when the model loads; ``ServedModel.load_context`` then rebuilds the
network from the model's own files (settings JSON, safetensors weights, skops objects). Nothing
is unpickled. Not imported by mltune itself."""

from mlflow.models import set_model

from mltune.tracking.model import ServedModel

set_model(ServedModel())

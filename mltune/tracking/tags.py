"""Every ``mltune.*`` key a tracking store holds, once (tags on runs and model versions).

Records outlive code: a search logged today is resumed, reported and promoted by later
versions, so these names are a contract. Add keys; never rename one.
"""

from __future__ import annotations

# -- on every run mltune opens --------------------------------------------------------------
ROLE = "mltune.role"  # search | trial | train | refit | ensemble
SEARCH_ID = "mltune.search_id"
TASK = "mltune.task"
VERSION = "mltune.version"  # the mltune that wrote it

# -- on the search's parent run ---------------------------------------------------------------
DATA_FINGERPRINT = "mltune.data_fingerprint"
SPEC_HASH = "mltune.spec_hash"
STARTED_WITH = "mltune.started_with"  # JSON {config, overrides}: the resume command repeats them
BEST_RUN_ID = "mltune.best_run_id"
BEST_TRIAL = "mltune.best_trial"
STOP_REASON = "mltune.stop_reason"
REGISTERED_MODEL = "mltune.registered_model"  # name/version
GATE = "mltune.gate"  # the gate's decision (also on versions), or why it did not run
REPORT = "mltune.report"
REPORT_ERROR = "mltune.report_error"
RESUMED = "mltune.resumed"  # how many times the search was resumed
RESUMES = "mltune.resumes"  # on a launcher run of `mlflow run -P resume=...`: the search it resumed
REFIT_RUN_ID = "mltune.refit_run_id"  # the refit run whose model was registered (refit: true)
REFIT_ERROR = "mltune.refit_error"  # why the refit failed (the best trial's model registered)
ENSEMBLE_RUN_ID = "mltune.ensemble_run_id"  # the ensemble run whose model was registered
ENSEMBLE_ERROR = "mltune.ensemble_error"  # why no ensemble was made (the single one registered)
DEVICES = "mltune.devices"  # JSON {device: trials}: where the search's trials trained
ENSEMBLE_MEMBERS = "mltune.ensemble.members"  # JSON [{trial, run_id, weight}] (run and version)
# a warm start's sources: JSON [{run_id, name, data: same|changed, trials, used, dropped,
# starts}] ([]: it looked and found none; absent: warm_start off, or an older mltune)
WARM_START = "mltune.warm_start"  # JSON: the earlier searches a warm start learnt from
WARM_STARTS = "mltune.warm_start.points"  # JSON [point]: earlier best configurations trained first
DATA_COLUMNS = "mltune.data_columns"  # what the data's columns are (a hash): changed data's test

# -- on each trial's run ----------------------------------------------------------------------
TRIAL = "mltune.trial"  # the trial number
PACK = "mltune.pack"  # the pack it trained in (packed searches)
DEVICE = "mltune.device"
PRECISION = "mltune.precision"
OBJECTIVE = "mltune.objective"  # the value the search scored the trial by
MODEL_URI = "mltune.model_uri"
EPOCHS_RUN = "mltune.epochs_run"
BEST_EPOCH = "mltune.best_epoch"  # which epoch's weights were logged
ERROR = "mltune.error"  # why a FAILED trial failed
PBT_PARENT = "mltune.pbt.parent"  # the trial whose weights it last continued from (PBT)
PBT_EPOCH = "mltune.pbt.epoch"  # the epoch it did so
STOPPED = "mltune.stopped"  # "time_budget": a FINISHED trial the search's time budget cut short
PRUNED = "mltune.pruned"  # "true" on a KILLED run a pruning rule stopped
INTERRUPTED = "mltune.interrupted"  # "true" on a KILLED run a resume must run again
CURVE = "mltune.curve"  # JSON list: the search's metric by epoch (what a scheduler is rebuilt from)

# -- on a refit run (role refit: the best configuration trained again on train + validation) --
REFIT_OF = "mltune.refit_of"  # the best trial's run id (also on the version registered from it)
VAL_IS_TRAIN = "mltune.val_is_train"  # "true": its val_* metrics are measured on rows it trained on
TRAIN_ROWS = "mltune.train_rows"  # the rows it trained on (training + validation splits)

# -- on registered model versions -------------------------------------------------------------
PARENT_RUN_ID = "mltune.parent_run_id"
RUN_ID = "mltune.run_id"
METRIC = "mltune.metric"
METRIC_VALUE = "mltune.metric_value"
MODE = "mltune.mode"
HOLDOUT_METRIC = "mltune.holdout_metric"
HOLDOUT_SCORE = "mltune.holdout_score"
GATE_REASON = "mltune.gate_reason"
COMPARED_WITH = "mltune.compared_with"
CHAMPION_HOLDOUT_SCORE = "mltune.champion_holdout_score"
ROLLED_BACK = "mltune.rolled_back"

# -- MLflow's own keys that mltune sets (MLflow reads them; the UI shows them) ------------------
EXPERIMENT_KIND = "mlflow.experimentKind"  # on experiments: which UI an experiment opens on
CUSTOM_MODEL_DEVELOPMENT = "custom_model_development"  # its value: Model training -> Runs
NOTE = "mlflow.note.content"  # a run's description (markdown), shown on its page
DATASET_CONTEXT = "mlflow.data.context"  # on a run's dataset input: training | validation | test

# -- never set ----------------------------------------------------------------------------------
WRITE_CHECK = "mltune.write_check"  # the server write probe deletes it (it is never there)

MAX_PARAM_LENGTH = 6000  # MLflow refuses longer param values
MAX_TAG_LENGTH = 5000

"""The tracking server as a remote party: a check before a search, and telling an outage apart.

Against an ``http(s)`` tracking URI, a search first proves, with short retries, that the server
answers, accepts the credentials (``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` or
``MLFLOW_TRACKING_TOKEN``) and lets this user write to the experiment — so a typo in a password
costs seconds, not a data load and a trial. MLflow's own retries (minutes, by design: they ride
out restarts and rate limits) apply to everything after that. Local stores need no check.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlparse

import mlflow
import requests
import urllib3
from mlflow.exceptions import MlflowException
from mlflow.utils.credentials import get_default_host_creds
from mlflow.utils.rest_utils import http_request

from mltune.core.environ import temporarily
from mltune.core.errors import TrackingServerError
from mltune.tracking.tags import WRITE_CHECK

API = "/api/2.0/mlflow"
CHECK_RETRIES, CHECK_TIMEOUT_S = 1, 10  # the check answers in seconds, whatever the failure
_RETRY_VARS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def is_remote(uri: str | None = None) -> bool:
    """Whether the tracking URI is a server (``http``/``https``)."""
    return urlparse(uri or mlflow.get_tracking_uri()).scheme in ("http", "https")


def _who() -> str:
    creds = get_default_host_creds(mlflow.get_tracking_uri())
    if creds.username:
        return f"user {creds.username!r}"
    return "the token in MLFLOW_TRACKING_TOKEN" if creds.token else "no credentials"


def _request(endpoint: str, method: str, **kwargs: object) -> requests.Response:
    """One call with short retries; an unreachable server is a TrackingServerError."""
    uri = mlflow.get_tracking_uri()
    try:
        return http_request(get_default_host_creds(uri), f"{API}/{endpoint}", method,
                            max_retries=CHECK_RETRIES, backoff_factor=1, backoff_jitter=0.0,
                            timeout=CHECK_TIMEOUT_S, raise_on_status=False, **kwargs)
    except MlflowException as exc:
        cause = _network_cause(exc)
        reason = type(cause).__name__ if cause is not None else exc.message.splitlines()[0]
        raise TrackingServerError(
            f"tracking server {uri} cannot be reached ({reason}); is it running, and is "
            "MLFLOW_TRACKING_URI right?") from None


def _refused(response: requests.Response, doing: str) -> None:
    """Raise the one line a 401 or 403 deserves; other errors are the caller's."""
    uri = mlflow.get_tracking_uri()
    if response.status_code == 401:
        raise TrackingServerError(
            f"tracking server {uri} refused the credentials of {_who()} (401 Unauthorized); set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN)")
    if response.status_code == 403:
        raise TrackingServerError(
            f"tracking server {uri}: {_who()} may not {doing} (403 Permission denied); ask "
            "the experiment's owner for EDIT permission, or set MLFLOW_EXPERIMENT_NAME to an "
            "experiment of your own")


def check_tracking_server(resume: str | None = None) -> str | None:
    """Before any data is loaded or run opened: prove the server answers and this user may
    write to the search's experiment (the resumed run's, or the one MLflow resolves). Returns
    the experiment id, or None for a local store. Leaves nothing behind: the write probe
    deletes a tag that is never set, which the server authorises as a write and then answers
    "no such tag"."""
    if not is_remote():
        return None
    response = _request("experiments/search", "GET", params={"max_results": 1})
    _refused(response, "use this server")
    if response.status_code != 200:
        raise TrackingServerError(
            f"tracking server {mlflow.get_tracking_uri()} answered HTTP {response.status_code} "
            "to a search of experiments; is MLFLOW_TRACKING_URI the address of an MLflow "
            "tracking server?")
    if resume:
        response = _request("runs/get", "GET", params={"run_id": resume})
        _refused(response, f"read run {resume}")
        if response.status_code != 200:
            return None  # an unknown run: resuming says so, with the spec in hand
        experiment_id = response.json()["run"]["info"]["experiment_id"]
    else:
        try:  # get-or-create of MLFLOW_EXPERIMENT_NAME (the server answered: normal retries)
            experiment_id = mlflow.tracking.fluent._get_experiment_id()
        except MlflowException as exc:
            if exc.get_http_status_code() in (401, 403):
                raise TrackingServerError(
                    f"tracking server {mlflow.get_tracking_uri()}: {_who()} may not read or "
                    f"create the experiment ({exc.message.splitlines()[0]})") from None
            raise
    response = _request("experiments/delete-experiment-tag", "POST",
                        json={"experiment_id": experiment_id, "key": WRITE_CHECK})
    _refused(response, f"write to experiment {experiment_id}")
    if response.status_code not in (200, 404):  # 404: "no such tag", after the write check
        raise TrackingServerError(
            f"tracking server {mlflow.get_tracking_uri()}: writing to experiment "
            f"{experiment_id} failed (HTTP {response.status_code}: "
            f"{response.text.strip()[:200]})")
    return experiment_id


def _network_cause(exc: BaseException) -> BaseException | None:
    """The connection error, timeout or exhausted retries behind ``exc``, if any."""
    kinds = (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
             requests.exceptions.RetryError, urllib3.exceptions.MaxRetryError,
             ConnectionError, TimeoutError)
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` means the tracking server stopped answering (after MLflow's retries)."""
    return is_remote() and _network_cause(exc) is not None


@contextmanager
def short_retries() -> Iterator[None]:
    """MLflow calls within fail at once: for best-effort writes once the server is gone."""
    with temporarily(_RETRY_VARS):
        yield


def best_effort(call: object, *args: object) -> None:
    """Try one MLflow write with short retries; a server still gone is no news."""
    with short_retries():
        try:
            call(*args)  # type: ignore[operator]
        except Exception:  # noqa: BLE001 - the outage is being reported already
            pass


def outage_reason(exc: BaseException) -> str:
    """A short name for the failure behind an outage (``ConnectionError``, ``RetryError``...)."""
    cause = _network_cause(exc)
    return type(cause).__name__ if cause is not None else type(exc).__name__

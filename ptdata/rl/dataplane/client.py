"""`ptdata.dataplane.Client`: the dataplane's calls from Python, retried where a retry is harmless.

A 429 is retried after its Retry-After; a lost connection, a timeout or a 5xx is retried with backoff. A resend of
rollouts is harmless because each has an id (the client's `rollout_id`, else the hash of its group and token ids
that the server computes too), so the server counts it once. Other errors raise `DataplaneError` with the status
and the server's message (the bad field's name for a 400).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import requests

from ptdata.rl.dataplane.server import TOKEN_ENV


class DataplaneError(RuntimeError):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body.get('error', body)}")
        self.status, self.body = status, body


class Client:
    def __init__(
        self, url: str, token: str | None = None, retries: int = 10, timeout_s: float = 60.0, backoff_s: float = 0.05
    ) -> None:
        self.url = url.rstrip("/")
        self.session = requests.Session()
        token = token if token is not None else os.environ.get(TOKEN_ENV)
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"
        self.retries, self.timeout_s, self.backoff_s = retries, timeout_s, backoff_s

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self.session.request(method, self.url + path, timeout=self.timeout_s, **kwargs)
            except (requests.ConnectionError, requests.Timeout):
                if last:
                    raise
                time.sleep(self.backoff_s * 2 ** min(attempt, 6))
                continue
            if resp.status_code == 429 and not last:
                time.sleep(float(resp.headers.get("Retry-After", "1")))
                continue
            if resp.status_code >= 500 and not last:
                time.sleep(self.backoff_s * 2 ** min(attempt, 6))
                continue
            if resp.status_code >= 400:
                try:
                    body = resp.json()
                except ValueError:
                    body = {"error": resp.text}
                raise DataplaneError(resp.status_code, body)
            return resp
        raise AssertionError("unreachable")

    def prompts(self, n: int) -> list[dict[str, Any]]:
        return self._call("GET", "/v1/prompts", params={"n": n}).json()["prompts"]

    def post_rollouts(self, rollouts: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return self._call("POST", "/v1/rollouts", json={"rollouts": list(rollouts)}).json()

    def set_policy(self, version: int) -> dict[str, Any]:
        return self._call("POST", "/v1/policy", json={"version": version}).json()

    def batch(self, size: int) -> dict[str, Any] | None:
        """A lease of whole groups, or None when nothing is ready."""
        resp = self._call("GET", "/v1/batch", params={"size": size})
        return None if resp.status_code == 204 else resp.json()

    def ack(self, lease: str) -> dict[str, Any]:
        return self._call("POST", "/v1/ack", json={"lease": lease}).json()

    def stats(self) -> dict[str, Any]:
        return self._call("GET", "/v1/stats").json()

"""Alertmanager API v2: silences and alerts, nothing more.

Plain urllib with an explicit timeout: the bot needs four endpoints, and every failure (refused,
timed out, HTTP error, unreadable answer) becomes an ``IntegrationError`` naming the Alertmanager, so
a button press that cannot reach it tells the user so and can simply be pressed again.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from bot.errors import IntegrationError

SYSTEM = "alertmanager"


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def as_api(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}


def exact_matchers(labels: dict[str, str]) -> list[Matcher]:
    """Equality matchers on every label: the silence matches that label set and nothing broader."""
    return [Matcher(name, str(value)) for name, value in sorted(labels.items())]


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AlertmanagerClient:
    def __init__(self, base_url: str, *, timeout: float = 5.0, opener: urllib.request.OpenerDirector | None = None):
        if not base_url.lower().startswith(("http://", "https://")):
            raise ValueError(f"alertmanager_url must be http(s), not {base_url.split(':', 1)[0]!r}")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._opener = opener or urllib.request.build_opener()

    @property
    def display_url(self) -> str:
        """The URL without any user:password, for messages and logs."""
        parts = urllib.parse.urlsplit(self.base_url)
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))

    # -- silences ------------------------------------------------------------------------------

    def create_silence(
        self,
        matchers: list[Matcher],
        *,
        ends_at: dt.datetime,
        created_by: str,
        comment: str,
        starts_at: dt.datetime | None = None,
    ) -> str:
        if not matchers:
            raise ValueError("a silence without matchers would silence everything")
        body = {
            "matchers": [m.as_api() for m in matchers],
            "startsAt": _iso(starts_at or dt.datetime.now(dt.UTC)),
            "endsAt": _iso(ends_at),
            "createdBy": created_by,
            "comment": comment or "silenced from Slack",
        }
        answer = self._request("POST", "/api/v2/silences", body, what="create a silence")
        silence_id = answer.get("silenceID") if isinstance(answer, dict) else None
        if not silence_id:
            raise IntegrationError(
                f"Alertmanager at {self.display_url} did not return a silence id.", system=SYSTEM
            )
        return str(silence_id)

    def get_silence(self, silence_id: str) -> dict[str, Any] | None:
        try:
            answer = self._request("GET", f"/api/v2/silence/{urllib.parse.quote(silence_id)}", what="read a silence")
        except _NotFound:
            return None
        return answer if isinstance(answer, dict) else None

    def expire_silence(self, silence_id: str) -> bool:
        """Expire a silence. Expiring an expired one is fine; returns False only for an unknown id."""
        try:
            self._request("DELETE", f"/api/v2/silence/{urllib.parse.quote(silence_id)}", what="expire a silence")
            return True
        except _NotFound:
            return False
        except IntegrationError:
            # Alertmanager 0.25 answers 500 (not 404) for an unknown id: ask before calling it a failure.
            current = self.get_silence(silence_id)
            if current is None:
                return False
            if current.get("status", {}).get("state") == "expired":
                return True
            raise

    def list_silences(self) -> list[dict[str, Any]]:
        answer = self._request("GET", "/api/v2/silences", what="list silences")
        return answer if isinstance(answer, list) else []

    # -- alerts --------------------------------------------------------------------------------

    def list_alerts(self, *, filters: list[str] | None = None, silenced: bool = True) -> list[dict[str, Any]]:
        """Alerts Alertmanager currently holds as firing (resolved ones are not listed by the API)."""
        query: list[tuple[str, str]] = [("silenced", str(silenced).lower())]
        query += [("filter", f) for f in filters or []]
        answer = self._request("GET", "/api/v2/alerts?" + urllib.parse.urlencode(query), what="list alerts")
        return answer if isinstance(answer, list) else []

    def ready(self) -> bool:
        try:
            self._request("GET", "/-/ready", what="check readiness", raw=True)
            return True
        except IntegrationError:
            return False

    # -- plumbing ------------------------------------------------------------------------------

    def _request(
        self, method: str, path: str, body: Any = None, *, what: str, raw: bool = False
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        # The scheme was checked to be http(s) in __init__.
        request = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                content = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise _NotFound() from exc
            detail = _error_text(exc)
            raise IntegrationError(
                f"Alertmanager at {self.display_url} refused to {what}: HTTP {exc.code} {detail}".rstrip(),
                system=SYSTEM,
            ) from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise IntegrationError(
                f"Alertmanager at {self.display_url} is unreachable ({reason}); could not {what}.",
                hint="Nothing was changed. Try again once Alertmanager is back.",
                system=SYSTEM,
            ) from exc
        if raw or not content:
            return None
        try:
            return json.loads(content)
        except ValueError as exc:
            raise IntegrationError(
                f"Alertmanager at {self.display_url} sent an unreadable answer when asked to {what}.", system=SYSTEM
            ) from exc


class _NotFound(Exception):
    pass


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read().decode("utf-8", "replace").strip()
    except Exception:  # the body is a courtesy; the status code already says what failed
        return ""
    return text[:200]

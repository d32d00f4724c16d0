"""Who may read /metrics when `server.metrics.secure` is on: controller-runtime's
`filters.WithAuthenticationAndAuthorization`, so a Prometheus set up for a kubebuilder operator scrapes this
one the same way.

Each request's bearer token is sent to the apiserver in a TokenReview (authentication.k8s.io/v1); the user it
names (with its uid, groups and extra) is then checked with a SubjectAccessReview (authorization.k8s.io/v1)
for the non-resource URL: `verb` = the HTTP method in lower case, `path` = the request path, i.e.
`{path: /metrics, verb: get}` for a scrape, which RBAC grants with `nonResourceURLs: ["/metrics"], verbs:
[get]`. No or a malformed Authorization header, or a token the apiserver does not accept: 401. A user not
allowed: 403. The apiserver not answering: 500 (not cached, the next scrape asks again).

Decisions are cached for a few seconds, keyed by the token's SHA-256 (the token itself is never kept), so a
scrape every 15 s costs two API calls only now and then, and a revoked token or a granted role takes effect
within `CachePolicy`'s TTLs. The cache is bounded (least recently used entries go first): a caller spraying
made-up tokens cannot grow it.

Everything here except `Gate.check` (which calls the injected `Reviews`) is pure.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

JSON = dict[str, Any]
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
# POST path, body -> the review as the apiserver answered it (status filled in); raises when it does not.
Reviews = Callable[[str, JSON], Awaitable[JSON]]


@dataclass(frozen=True)
class User:
    """The caller as the TokenReview named it: what the SubjectAccessReview must ask about."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The HTTP answer for one request: 200 lets it through to the metrics."""

    status: int
    message: str = ""

    @property
    def allowed(self) -> bool:
        return self.status == 200


ALLOWED = Verdict(200)
UNAUTHORIZED = Verdict(401, "Unauthorized")
AUTHENTICATION_FAILED = Verdict(500, "Authentication failed")


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case), else None; parsed as
    the apiserver's bearer-token authenticator does."""
    parts = (header or "").strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


def token_review(token: str) -> JSON:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}


def reviewed_user(review: JSON) -> User | None:
    """The user a TokenReview answer authenticated, or None when it did not."""
    status = review.get("status") or {}
    user = status.get("user") or {}
    if status.get("authenticated") is not True or not user.get("username"):
        return None
    return User(
        name=str(user["username"]),
        uid=str(user.get("uid") or ""),
        groups=tuple(user.get("groups") or ()),
        extra={k: tuple(v or ()) for k, v in (user.get("extra") or {}).items()},
    )


def access_review(user: User, verb: str, path: str) -> JSON:
    spec: JSON = {"nonResourceAttributes": {"path": path, "verb": verb}, "user": user.name}
    if user.uid:
        spec["uid"] = user.uid
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def access_verdict(user: User, review: JSON) -> Verdict:
    """200 when the SubjectAccessReview allowed it; anything else (denied, no opinion) is 403, as with
    controller-runtime."""
    if (review.get("status") or {}).get("allowed") is True:
        return ALLOWED
    return Verdict(403, f"Authorization denied for user {user.name}")


def token_key(token: str, verb: str, path: str) -> tuple[str, str, str]:
    """What a decision is cached under: the token only as its hash."""
    return (hashlib.sha256(token.encode()).hexdigest(), verb, path)


@dataclass(frozen=True)
class CachePolicy:
    """How long decisions are reused, and how many are kept. Errors (500) are never cached."""

    allowed_seconds: float = 10.0
    denied_seconds: float = 10.0  # 401 and 403: a role granted a moment ago works after this long
    max_entries: int = 1024

    def ttl(self, verdict: Verdict) -> float | None:
        """Seconds to keep `verdict`, or None for not at all."""
        if verdict.allowed:
            return self.allowed_seconds
        if verdict.status in (401, 403):
            return self.denied_seconds
        return None


class DecisionCache:
    """Verdicts by `token_key`, each until its TTL runs out; the least recently used go first when full."""

    def __init__(self, policy: CachePolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self._entries: OrderedDict[tuple[str, str, str], tuple[float, Verdict]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: tuple[str, str, str]) -> Verdict | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, verdict = entry
        if self.clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return verdict

    def put(self, key: tuple[str, str, str], verdict: Verdict) -> None:
        ttl = self.policy.ttl(verdict)
        if ttl is None:
            return
        self._entries[key] = (self.clock() + ttl, verdict)
        self._entries.move_to_end(key)
        while len(self._entries) > self.policy.max_entries:
            self._entries.popitem(last=False)


class Gate:
    """Decides whether one HTTP request may read the metrics (see the module docstring)."""

    def __init__(self, reviews: Reviews, cache: DecisionCache) -> None:
        self.reviews = reviews
        self.cache = cache

    async def check(self, authorization: str | None, method: str, path: str) -> Verdict:
        token = bearer_token(authorization)
        if token is None:
            return UNAUTHORIZED
        verb = method.lower()
        key = token_key(token, verb, path)
        verdict = self.cache.get(key)
        if verdict is None:
            verdict = await self._review(token, verb, path)
            self.cache.put(key, verdict)
        return verdict

    async def _review(self, token: str, verb: str, path: str) -> Verdict:
        try:
            user = reviewed_user(await self.reviews(TOKEN_REVIEWS, token_review(token)))
        except Exception as err:
            log.error("metrics: TokenReview failed", extra={"error": f"{type(err).__name__}: {err}"})
            return AUTHENTICATION_FAILED
        if user is None:
            log.debug("metrics: token not authenticated", extra={"path": path})
            return UNAUTHORIZED
        try:
            review = await self.reviews(SUBJECT_ACCESS_REVIEWS, access_review(user, verb, path))
        except Exception as err:
            log.error(
                "metrics: SubjectAccessReview failed",
                extra={"user": user.name, "error": f"{type(err).__name__}: {err}"},
            )
            return Verdict(500, f"Authorization for user {user.name} failed")
        verdict = access_verdict(user, review)
        if not verdict.allowed:
            reason = (review.get("status") or {}).get("reason") or ""
            log.info("metrics: access denied", extra={"user": user.name, "path": path, "reason": reason})
        return verdict

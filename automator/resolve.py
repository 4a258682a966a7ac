"""Turn a policy and a repository into a new image value: tags, build times, digests.

Shared by every command that chooses tags (``once``/``plan``/``images`` through the
engine, and ``check`` for one image), so they cannot disagree. Registry lookups are
batched and deduplicated across all fields of a cycle, then run ``max_concurrency`` at a
time: one ``tags/list`` per repository, one creation-time lookup per (repository, tag,
platform) the policy still considers, and one digest per (repository, tag, platform)
that must be written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import structlog

from automator.config import Settings
from automator.errors import AutomatorError, RegistryUnavailable, TransientError
from automator.images import ImageRef
from automator.policy import Policy, Selection
from automator.registry import RegistryClient

__all__ = ["CheckResult", "Lookup", "Resolver", "Target", "check"]

log = structlog.get_logger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def _host_of_key(key: tuple[str, str, str | None]) -> str:
    return key[0].split("/", 1)[0]


@dataclass(frozen=True)
class Lookup:
    """One metadata question about one tag: (repository, tag, platform)."""

    repo: ImageRef
    tag: str
    platform: str | None

    @property
    def key(self) -> tuple[str, str, str | None]:
        return (self.repo.canonical, self.tag, self.platform)


@dataclass(frozen=True)
class Target:
    """What one field asks of the registry: the repository and how to choose in it."""

    repo: ImageRef
    policy: Policy
    current: str | None
    platform: str | None = None


class Resolver:
    """Batched, concurrent registry lookups for many targets at once.

    Work is partitioned by registry and each registry gets its own small pool
    (``concurrency_for(host)`` workers), so a registry that hangs or throttles occupies
    only its own workers and never delays the others. ``budget`` (seconds, for the whole
    life of the resolver, i.e. one cycle) bounds how long a cycle waits: lookups still
    running then fail with RegistryUnavailable, which leaves their workloads unchanged.
    """

    def __init__(
        self,
        registry: RegistryClient,
        *,
        max_concurrency: int,
        concurrency_for: Callable[[str], int] | None = None,
        budget: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.max_concurrency = max_concurrency
        self._concurrency_for = concurrency_for or (lambda _host: max_concurrency)
        self._budget = budget
        self._clock = clock
        self._deadline = None if budget is None else clock() + budget

    @classmethod
    def from_settings(cls, registry: RegistryClient, settings: Settings) -> Resolver:
        """Per-registry concurrency and the scan budget, as configured."""
        return cls(
            registry,
            max_concurrency=settings.max_concurrency,
            concurrency_for=settings.concurrency_for,
            budget=settings.scan_budget,
        )

    def _parallel(
        self,
        keys: Iterable[K],
        fn: Callable[[K], V],
        event: str,
        host_of: Callable[[K], str],
    ) -> dict[K, V | AutomatorError]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}

        def one(key: K) -> V | AutomatorError:
            try:
                return fn(key)
            except AutomatorError as exc:
                log.warning(
                    event,
                    subject=str(key),
                    error=str(exc),
                    transient=isinstance(exc, TransientError),
                )
                return exc

        groups: dict[str, list[K]] = {}
        for key in keys:
            groups.setdefault(host_of(key), []).append(key)
        pools: list[ThreadPoolExecutor] = []
        futures: dict[Future[V | AutomatorError], tuple[K, str]] = {}
        for host, members in groups.items():
            workers = max(1, min(self._concurrency_for(host), len(members)))
            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"reg-{host}")
            pools.append(pool)
            for key in members:
                futures[pool.submit(one, key)] = (key, host)
        timeout = None if self._deadline is None else max(0.0, self._deadline - self._clock())
        done, not_done = wait(futures, timeout=timeout)
        out: dict[K, V | AutomatorError] = {}
        for future in done:
            out[futures[future][0]] = future.result()
        for future in not_done:
            key, host = futures[future]
            out[key] = RegistryUnavailable(
                f"registry {host}: scan budget of {self._budget:g}s exceeded before "
                f"{key} was resolved; its workloads stay unchanged this cycle (raise "
                "scan_budget, or check why the registry is slow)"
            )
            log.warning(event, subject=str(key), error="scan budget exceeded", transient=True)
        for pool in pools:
            # Do not wait for stragglers: their own request timeouts end them.
            pool.shutdown(wait=not not_done, cancel_futures=True)
        return out

    def tags(self, repos: Iterable[ImageRef]) -> dict[str, list[str] | AutomatorError]:
        """``tags/list`` once per distinct repository (by canonical name)."""
        by_name = {r.canonical: r for r in repos}
        return self._parallel(
            by_name,
            lambda n: self.registry.list_tags(by_name[n]),
            "registry_scan_failed",
            lambda n: by_name[n].registry,
        )

    def _per_tag(
        self,
        lookups: Iterable[Lookup],
        fetch: Callable[[Lookup], V],
        event: str,
    ) -> dict[tuple[str, str, str | None], V | AutomatorError]:
        by_key = {q.key: q for q in lookups}
        return self._parallel(by_key, lambda k: fetch(by_key[k]), event, _host_of_key)

    def created(
        self, lookups: Iterable[Lookup]
    ) -> dict[tuple[str, str, str | None], datetime | AutomatorError]:
        """Image creation time per (repository, tag, platform)."""
        return self._per_tag(
            lookups,
            lambda q: self.registry.created(q.repo, q.tag, platform=q.platform),
            "registry_created_failed",
        )

    def digests(
        self, lookups: Iterable[Lookup]
    ) -> dict[tuple[str, str, str | None], str | AutomatorError]:
        """Manifest digest per (repository, tag, platform)."""
        return self._per_tag(
            lookups,
            lambda q: self.registry.digest(q.repo, q.tag, platform=q.platform),
            "registry_digest_failed",
        )

    def select(
        self,
        targets: Mapping[K, Target],
        tags: Mapping[str, list[str] | AutomatorError],
    ) -> dict[K, Selection | AutomatorError]:
        """Apply each target's policy, fetching build times where the policy needs them."""
        # Tags each time-ordered policy still considers: computed once, used twice below.
        eligible: dict[K, list[str]] = {}
        for key, t in targets.items():
            listed = tags.get(t.repo.canonical)
            if t.policy.needs_created and isinstance(listed, list):
                eligible[key] = t.policy.eligible(listed)
        created = self.created(
            Lookup(targets[key].repo, tag, targets[key].platform)
            for key, names in eligible.items()
            for tag in names
        )
        out: dict[K, Selection | AutomatorError] = {}
        for key, t in targets.items():
            listed = tags.get(t.repo.canonical)
            if listed is None:
                raise KeyError(t.repo.canonical)  # a programming error: tags not fetched
            if isinstance(listed, AutomatorError):
                out[key] = listed
                continue
            times: dict[str, datetime] | None = None
            if t.policy.needs_created:
                times = {}
                failed: AutomatorError | None = None
                for tag in eligible[key]:
                    value = created.get((t.repo.canonical, tag, t.platform))
                    if isinstance(value, datetime):
                        times[tag] = value
                    elif isinstance(value, AutomatorError):
                        failed = value
                if failed is not None:
                    # Choosing among the tags whose build time we happen to know could pick
                    # an image older than the current one: skip the field this cycle.
                    out[key] = failed
                    continue
            out[key] = t.policy.select(listed, t.current, created=times)
        return out


@dataclass(frozen=True)
class CheckResult:
    """``automator check``: one policy applied to one image or one tag list."""

    selection: Selection
    new: str | None
    """The whole new image reference, when an image was given and a tag was selected."""


def check(
    policy: Policy,
    *,
    image: ImageRef | None,
    tags: list[str] | None,
    resolver: Resolver | None,
    platform: str | None = None,
    pin_digest: bool = False,
) -> CheckResult:
    """Resolve one image against one policy; offline when ``tags`` is given.

    Offline there are no build times and no digests: time-ordered policies select nothing
    and say why, and the digest is not written.
    """
    current = image.tag if image is not None else None
    if tags is not None or resolver is None or image is None:
        selection = policy.select(tags or [], current)
    else:
        listed = resolver.tags([image])
        target = Target(repo=image, policy=policy, current=current, platform=platform)
        result = resolver.select({0: target}, listed)[0]
        if isinstance(result, AutomatorError):
            raise result
        selection = result
    if image is None or selection.selected is None:
        return CheckResult(selection, None)
    digest: str | None = None
    wants_digest = pin_digest or policy.follows_digest or image.digest is not None
    if tags is None and resolver is not None and wants_digest:
        got = resolver.digests([Lookup(image, selection.selected, platform)])
        value = next(iter(got.values()))
        if isinstance(value, AutomatorError):
            raise value
        digest = value
    return CheckResult(selection, str(image.with_tag(selection.selected, digest)))

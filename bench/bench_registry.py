"""Benchmark: list every tag of every repository, ours against the protocol's minimum.

    .venv/bin/python bench/bench_registry.py [--repos 1000] [--tags 100] [--big 100000]
                                             [--workers 8] [--push-workers 8]

Starts a real docker-registry (Debian's CNCF Distribution 2.8.2) on loopback and pushes
two scenarios into it: (a) ``--repos`` repositories of ``--tags`` tags each and (b) one
repository of ``--big`` tags (``--big 0`` skips it; 2.8.2 takes ~300-450 tag pushes a
second on 2 cores, so the default 100,000 tags take a few minutes: progress is printed).
Then, for each scenario, it measures two ways of listing every tag of every repository
through ``--workers`` threads, as the engine does:

``minimum``  a bare httpx loop (one ``httpx.Client``) making only the requests the protocol
             requires: one ``GET /v2/<repo>/tags/list?n=1000`` per page, following
             ``Link: <...>; rel="next"`` when the registry sends one (2.8.2 never does);
``ours``     ``RegistryClient.list_tags`` for every repository.

Each variant runs in a fresh subprocess (so memory peaks do not mix) and makes two passes
in that process: ``cold`` (new client, new connections) and ``warm`` (the same client
again; where ETag or caching pays off, it shows here). Requests are counted by a wrapping
httpx transport (``handle_request`` calls, by method and response status). Each variant
runs twice: once for wall time and resident memory, and once under ``tracemalloc`` for the
peak of the Python heap during each pass (tracing slows Python down, so its wall time is
not reported). Resident memory is the process's peak RSS during the pass and its growth
over the RSS before the pass. The peak is the kernel's high-water mark, reset before each
pass (``/proc/self/status`` ``VmHWM`` after writing ``5`` to ``/proc/self/clear_refs``):
``getrusage(RUSAGE_SELF).ru_maxrss`` is useless here because Linux carries the parent's
peak over fork and exec into the child, so every child would report this (large) process's
peak. Without ``/proc`` it falls back to ``ru_maxrss`` (only growth past the carried-over
peak shows). The table gives the ratios ours/minimum for time and requests, cold against
cold and warm against warm.

It also checks correctness: every pass of every variant must see exactly the pushed tags
of every repository (per-repository count and a digest of the sorted tag set, plus a
random sample of repositories compared as sets), else it exits 1. No figure is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import hashlib
import json
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

if TYPE_CHECKING:  # imported for real only in the child that measures ours
    from automator.registry import RegistryClient

PAGE_SIZE = 1000  # the ``n`` the bare loop asks for (2.8.2 ignores it anyway)
SAMPLE = 10  # repositories per scenario whose tag lists are compared as whole sets
BIG_REPO = "bench/big"
PUSH_BATCH = 100  # repositories per push_many call (progress is printed between calls)
BIG_CHUNK = 1000  # tags per push_image call for the big repository
MIB = 1024 * 1024

Summary = dict[str, Any]


# -- measurement (child process) ---------------------------------------------------------


class CountingTransport(httpx.BaseTransport):
    """Counts ``handle_request`` calls by method, and responses by status, then delegates."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self.methods: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.methods[request.method] += 1
        response = self._inner.handle_request(request)
        with self._lock:
            self.statuses[response.status_code] += 1
        return response

    def reset(self) -> None:
        with self._lock:
            self.methods.clear()
            self.statuses.clear()

    def close(self) -> None:
        self._inner.close()


def _transport(connections: int) -> CountingTransport:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return CountingTransport(httpx.HTTPTransport(limits=limits))


def _in_threads(
    repos: Sequence[str], workers: int, fn: Callable[[str], list[str]]
) -> dict[str, list[str]]:
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(repos)))) as pool:
        return dict(zip(repos, pool.map(fn, repos), strict=True))


class Minimum:
    """The bare loop: only the ``tags/list`` pages, through one shared ``httpx.Client``."""

    def __init__(self, url: str, workers: int) -> None:
        self.base = url.rstrip("/")
        self.workers = workers
        self.transport = _transport(workers)
        self.client: httpx.Client | None = None

    def run(self, repos: Sequence[str]) -> dict[str, list[str]]:
        if self.client is None:
            self.client = httpx.Client(transport=self.transport, timeout=60.0)
        client = self.client

        def one(repo: str) -> list[str]:
            url = httpx.URL(f"{self.base}/v2/{repo}/tags/list", params={"n": PAGE_SIZE})
            tags: list[str] = []
            while True:
                resp = client.get(url)
                resp.raise_for_status()
                tags.extend(resp.json().get("tags") or ())
                link = resp.links.get("next", {}).get("url")
                if not link:
                    return tags
                url = resp.url.join(link)

        return _in_threads(repos, self.workers, one)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


class Ours:
    """``RegistryClient.list_tags`` for every repository, through a thread pool."""

    def __init__(self, url: str, host: str, workers: int) -> None:
        from automator.config import settings_from_mapping
        from automator.images import ImageRef
        from automator.log import configure_logging
        from automator.registry import RegistryClient

        configure_logging(level="warning", stream=sys.stderr)
        self._factory = RegistryClient
        self._parse = ImageRef.parse
        self.host = host
        self.workers = workers
        self.settings = settings_from_mapping(
            {
                "git": {"url": "file:///dev/null"},
                "registries": [{"host": host, "url": url}],
                "max_concurrency": workers,
            }
        )
        # The client's own pool size (it ignores ``limits`` when given a transport).
        self.transport = _transport(max(16, workers))
        self.client: RegistryClient | None = None

    def run(self, repos: Sequence[str]) -> dict[str, list[str]]:
        refs = {repo: self._parse(f"{self.host}/{repo}") for repo in repos}
        if self.client is None:
            self.client = self._factory(self.settings, transport=self.transport)
        client = self.client

        def one(repo: str) -> list[str]:
            return client.list_tags(refs[repo])

        return _in_threads(repos, self.workers, one)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()


def tag_digest(tags: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(set(tags))).encode()).hexdigest()


def _rss_mib() -> tuple[float, float]:
    """(current RSS, peak RSS since the last reset) of this process, in MiB."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        return peak, peak
    kib = {
        key: int(value.split()[0])
        for key, _, value in (line.partition(":") for line in status.splitlines())
        if key in ("VmRSS", "VmHWM")
    }
    return kib["VmRSS"] / 1024, kib["VmHWM"] / 1024


def _reset_peak_rss() -> None:
    """Reset the kernel's RSS high-water mark (Linux >= 4.0); harmless where unsupported."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def child(args: argparse.Namespace) -> int:
    """Two passes of one variant; write their figures and tag summaries to ``--out``."""
    plan = json.loads(Path(args.plan).read_text())
    repos: list[str] = plan["repos"]
    sample: list[str] = plan["sample"]
    runner: Minimum | Ours = (
        Minimum(args.url, args.workers)
        if args.child == "minimum"
        else Ours(args.url, args.host, args.workers)
    )
    if args.trace:
        tracemalloc.start()
    passes: list[Summary] = []
    try:
        for name in ("cold", "warm"):
            gc.collect()
            runner.transport.reset()
            heap_before = 0
            if args.trace:
                tracemalloc.reset_peak()
                heap_before = tracemalloc.get_traced_memory()[0]
            _reset_peak_rss()
            rss_before, _ = _rss_mib()
            start = time.perf_counter()
            result = runner.run(repos)
            wall = time.perf_counter() - start
            heap_peak = tracemalloc.get_traced_memory()[1] - heap_before if args.trace else 0
            _, rss_peak = _rss_mib()
            passes.append(
                {
                    "pass": name,
                    "wall_s": wall,
                    "methods": dict(runner.transport.methods),
                    "statuses": {str(k): v for k, v in runner.transport.statuses.items()},
                    "heap_peak_mib": heap_peak / MIB,
                    "rss_delta_mib": rss_peak - rss_before,
                    "rss_peak_mib": rss_peak,
                    "counts": {repo: len(tags) for repo, tags in result.items()},
                    "digests": {repo: tag_digest(tags) for repo, tags in result.items()},
                    "sample": {repo: result[repo] for repo in sample if repo in result},
                }
            )
            del result
    finally:
        runner.close()
    Path(args.out).write_text(json.dumps({"variant": args.child, "passes": passes}))
    return 0


# -- orchestration (parent process) -------------------------------------------------------


def push_all(url: str, small: dict[str, list[str]], big: list[str], workers: int) -> None:
    """Push the scenarios with the shared default manifest (one request per tag)."""
    from tests.support.push import push_image, push_many

    start = time.perf_counter()
    names = list(small)
    total = sum(len(tags) for tags in small.values())
    done = 0
    for i in range(0, len(names), PUSH_BATCH):
        batch = {name: small[name] for name in names[i : i + PUSH_BATCH]}
        push_many(url, batch, workers=workers)
        done += sum(len(tags) for tags in batch.values())
        elapsed = time.perf_counter() - start
        print(
            f"  pushed {min(i + PUSH_BATCH, len(names))}/{len(names)} repositories "
            f"({done}/{total} tags, {done / elapsed:.0f} tags/s)",
            flush=True,
        )
    if not big:
        return
    start = time.perf_counter()
    chunks = [big[i : i + BIG_CHUNK] for i in range(0, len(big), BIG_CHUNK)]
    push_image(url, BIG_REPO, chunks[0])  # uploads the shared blobs once, before the rush
    done = len(chunks[0])
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(push_image, url, BIG_REPO, chunk) for chunk in chunks[1:]]
        for n, future in enumerate(as_completed(futures), start=2):
            future.result()
            done += BIG_CHUNK
            if n % 10 == 0 or n == len(chunks):
                elapsed = time.perf_counter() - start
                print(
                    f"  pushed {min(done, len(big))}/{len(big)} tags of {BIG_REPO} "
                    f"({done / elapsed:.0f} tags/s)",
                    flush=True,
                )


def measure(
    tmp: Path, variant: str, plan: Path, url: str, host: str, workers: int, *, trace: bool
) -> list[Summary]:
    out = tmp / f"{plan.stem}-{variant}-{'trace' if trace else 'time'}.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        variant,
        "--plan",
        str(plan),
        "--out",
        str(out),
        "--url",
        url,
        "--host",
        host,
        "--workers",
        str(workers),
    ]
    if trace:
        cmd.append("--trace")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(
            f"{variant} run failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
        )
    if proc.stderr.strip():
        print(f"  [{variant} stderr] {proc.stderr.strip()[-2000:]}", file=sys.stderr)
    passes: list[Summary] = json.loads(out.read_text())["passes"]
    return passes


def check(
    label: str, expected: dict[str, list[str]], got: Summary, digests: dict[str, str]
) -> list[str]:
    """Problems with one pass's tag lists (empty when it saw exactly the pushed tags)."""
    problems: list[str] = []
    if set(got["counts"]) != set(expected):
        problems.append(f"{label}: listed {len(got['counts'])} of {len(expected)} repositories")
    for repo, tags in expected.items():
        count = got["counts"].get(repo)
        if count != len(tags):
            problems.append(f"{label}: {repo} has {count} tags, expected {len(tags)}")
        elif got["digests"].get(repo) != digests[repo]:
            problems.append(f"{label}: {repo} has the right count but different tags")
    for repo, tags in got["sample"].items():
        if set(tags) != set(expected[repo]):
            missing = len(set(expected[repo]) - set(tags))
            extra = len(set(tags) - set(expected[repo]))
            problems.append(f"{label}: sample {repo}: {missing} tags missing, {extra} extra")
    return problems[:20]


def _requests(p: Summary) -> int:
    return sum(p["methods"].values())


def _breakdown(p: Summary) -> str:
    methods = " ".join(f"{m}:{n}" for m, n in sorted(p["methods"].items()))
    statuses = " ".join(f"{s}:{n}" for s, n in sorted(p["statuses"].items()))
    return f"{methods} / {statuses}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--repos", type=int, default=1000, help="repositories of scenario (a)")
    parser.add_argument("--tags", type=int, default=100, help="tags per repository of (a)")
    parser.add_argument("--big", type=int, default=100_000, help="tags of scenario (b); 0 skips")
    parser.add_argument("--workers", type=int, default=8, help="listing threads (both variants)")
    parser.add_argument("--push-workers", type=int, default=8, help="threads used for pushing")
    parser.add_argument("--child", choices=("minimum", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--plan", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--host", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    from tests.support.registry import RegistryServer

    small_tags = [f"1.{i}.0" for i in range(args.tags)]
    small = {f"bench/r{j:04d}": small_tags for j in range(args.repos)} if args.tags > 0 else {}
    big = [f"2.0.{i}" for i in range(args.big)]
    scenarios: list[tuple[str, dict[str, list[str]]]] = []
    if small:
        scenarios.append((f"{len(small)} x {args.tags}", small))
    if big:
        scenarios.append((f"1 x {args.big}", {BIG_REPO: big}))
    if not scenarios:
        parser.error("nothing to measure: give --repos and --tags, or --big")

    rng = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmpdir, RegistryServer() as reg:
        tmp = Path(tmpdir)
        print(
            f"setup: registry at {reg.url}; pushing {len(small)} x {args.tags} tags"
            f" and 1 x {args.big} tags",
            flush=True,
        )
        start = time.perf_counter()
        push_all(reg.url, small, big, args.push_workers)
        print(f"setup: pushed in {time.perf_counter() - start:.1f}s", flush=True)

        rows: list[Row] = []
        problems: list[str] = []
        for label, expected in scenarios:
            digests = {repo: tag_digest(tags) for repo, tags in expected.items()}
            repos = list(expected)
            sample = sorted(rng.sample(repos, min(SAMPLE, len(repos))))
            plan = tmp / f"scenario{len(rows) // 4}.json"
            plan.write_text(json.dumps({"repos": repos, "sample": sample}))
            results: dict[str, tuple[list[Summary], list[Summary]]] = {}
            for variant in ("minimum", "ours"):
                print(f"measure: {label}, {variant} ...", flush=True)
                timed = measure(tmp, variant, plan, reg.url, reg.host, args.workers, trace=False)
                traced = measure(tmp, variant, plan, reg.url, reg.host, args.workers, trace=True)
                results[variant] = (timed, traced)
                for kind, passes in (("timed", timed), ("traced", traced)):
                    for p in passes:
                        name = f"{label} {variant} {p['pass']} ({kind})"
                        problems += check(name, expected, p, digests)
            for i in range(2):
                base = results["minimum"][0][i]
                rows.append((label, "minimum", base, results["minimum"][1][i], None))
                rows.append((label, "ours", results["ours"][0][i], results["ours"][1][i], base))
        code = report(rows, problems, args.workers)
        print("teardown: deleting the registry's storage (one unlink per file: slow)", flush=True)
    return code


Row = tuple[str, str, Summary, Summary, Summary | None]


def report(rows: list[Row], problems: list[str], workers: int) -> int:
    """Print the table and the check; 1 when a pass saw other tags than were pushed."""
    print()
    print(
        f"workers: {workers}; heap = tracemalloc peak growth during the pass, "
        "RSS+ = peak RSS growth during the pass, RSS = peak RSS of the process during it"
    )
    header = (
        f"{'scenario':<13}{'variant':<15}{'wall s':>9}{'requests':>10}{'tags':>10}"
        f"{'heap MiB':>10}{'RSS+ MiB':>10}{'RSS MiB':>9}{'time x':>8}{'req x':>7}  "
        "methods / statuses"
    )
    print(header)
    print("-" * len(header))
    for label, variant, p, heap, ref in rows:
        tags = sum(p["counts"].values())
        ratio_t = f"{p['wall_s'] / ref['wall_s']:.2f}" if ref else ""
        ratio_r = f"{_requests(p) / _requests(ref):.2f}" if ref and _requests(ref) else ""
        print(
            f"{label:<13}{variant + ' ' + p['pass']:<15}{p['wall_s']:>9.3f}{_requests(p):>10}"
            f"{tags:>10}{heap['heap_peak_mib']:>10.1f}{p['rss_delta_mib']:>10.1f}"
            f"{p['rss_peak_mib']:>9.1f}{ratio_t:>8}{ratio_r:>7}  {_breakdown(p)}"
        )
    print()
    if problems:
        print("check: WRONG")
        for problem in problems[:40]:
            print(f"  {problem}")
        return 1
    print(
        "check: every pass of both variants saw exactly the pushed tags of every repository "
        f"(counts and sorted-set digests; {SAMPLE} sampled repositories per scenario compared "
        "as sets) -> OK",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

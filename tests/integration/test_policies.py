"""Every strategy, filter and policy source, driven through once, plan, images and check.

One config repo holds a workload per strategy plus Helm values and a Kustomize file with
``$imagepolicy`` markers; one registry holds tags with chosen build times, a re-pushed
mutable tag and a multi-platform index. Everything goes through the real CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.git import git, make_bare_repo
from tests.support.push import push_image, push_index
from tests.support.registry import RegistryServer

pytestmark = pytest.mark.integration

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(hours: int) -> datetime:
    return T0 + timedelta(hours=hours)


def workload(name: str, image: str, annotations: dict[str, str], container: str = "app") -> str:
    notes = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in annotations.items())
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
        f"  name: {name}\n  annotations:\n{notes}"
        "spec:\n  template:\n    spec:\n      containers:\n"
        f"        - name: {container}\n          image: {image}\n"
    )


AUTO = "automator.gitops.io/automated"


def policy_for(container: str, spec: str) -> dict[str, str]:
    return {AUTO: "true", f"automator.gitops.io/policy.{container}": spec}


def run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "automator", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env=dict(os.environ),
    )


@dataclass(frozen=True)
class World:
    """What the fixture built: image prefix, bare repo, config, files and digests."""

    r: str
    bare: Path
    config: Path
    files: dict[str, str]
    old: str
    new: str
    pinned: dict[str, str]
    index: str
    arm64: str


@pytest.fixture
def world(tmp_path: Path, registry: RegistryServer) -> World:
    """Registry content and a config repo with one workload per strategy."""
    ns = f"t{uuid.uuid4().hex[:8]}"
    r = f"{registry.host}/{ns}"
    url = registry.url
    # newest-build: creation order differs from name order and from version order.
    push_image(url, f"{ns}/nb", ["b1", "b2", "b3"], created={"b1": at(1), "b2": at(3), "b3": at(2)})
    # Flux v1 glob: and regex: (filter, then newest build).
    push_image(
        url,
        f"{ns}/gl",
        ["main-aaa", "main-bbb", "dev-ccc"],
        created={"main-aaa": at(1), "main-bbb": at(2), "dev-ccc": at(9)},
    )
    push_image(
        url,
        f"{ns}/rx",
        ["rel-1", "rel-2", "feat-9"],
        created={"rel-1": at(2), "rel-2": at(1), "feat-9": at(9)},
    )
    # numerical with filter + extract: the timestamp group orders, the whole tag is written.
    push_image(url, f"{ns}/num", ["main-1a2b-100", "main-3c4d-90", "pr-5e6f-999"])
    push_image(url, f"{ns}/alpha", ["2026-01-05", "2026-02-01", "2025-12-31"])
    # ignore-tags and pin-digest with semver.
    pinned = push_image(url, f"{ns}/sem", ["1.0.0", "1.8.0", "1.9.0-rc.1", "1.9.1"], distinct=True)
    # digest: a mutable tag re-pushed after the manifest was written.
    old = push_image(url, f"{ns}/mut", ["latest"], created=at(1))["latest"]
    new = push_image(url, f"{ns}/mut", ["latest"], created=at(5))["latest"]
    # platform: a multi-arch index.
    index_digest, per_platform = push_index(
        url, f"{ns}/multi", "stable", {"linux/amd64": at(1), "linux/arm64": at(2)}
    )
    # Helm values and Kustomize via markers.
    push_image(url, f"{ns}/chart", ["1.2.0", "1.4.0", "2.0.0"])

    files = {
        "apps/nb.yaml": workload("nb", f"{r}/nb:b1", policy_for("app", "newest-build")),
        "apps/gl.yaml": workload(
            "gl", f"{r}/gl:main-aaa", {"fluxcd.io/automated": "true", "fluxcd.io/tag.app": "main-*"}
        ),
        "apps/rx.yaml": workload("rx", f"{r}/rx:rel-2", policy_for("app", "regex:^rel-")),
        "apps/num.yaml": workload(
            "num",
            f"{r}/num:main-3c4d-90",
            {
                **policy_for("app", "numerical:asc"),
                "automator.gitops.io/filter.app": "^main-[a-f0-9]+-(?P<ts>[0-9]+)$",
                "automator.gitops.io/extract.app": "$ts",
            },
        ),
        "apps/alpha.yaml": workload(
            "alpha", f"{r}/alpha:2025-12-31", policy_for("app", "alphabetical")
        ),
        "apps/sem.yaml": workload(
            "sem",
            f"{r}/sem:1.0.0",
            {
                **policy_for("app", "semver:^1.0"),
                "automator.gitops.io/ignore-tags.app": "1.9.*",
                "automator.gitops.io/pin-digest.app": "true",
            },
        ),
        "apps/mut.yaml": workload("mut", f"{r}/mut:latest@{old}", policy_for("app", "digest")),
        "apps/multi.yaml": workload(
            "multi",
            f"{r}/multi:stable",
            {
                **policy_for("app", "digest"),
                "automator.gitops.io/platform.app": "linux/arm64",
            },
        ),
        "apps/policies.yaml": (
            "apiVersion: automator.gitops.io/v1\nkind: ImagePolicy\nmetadata:\n  name: chart\n"
            f"spec:\n  image: {r}/chart\n  policy: semver:^1.0\n"
        ),
        "apps/values.yaml": (
            "# Helm values: repository and tag are separate fields\n"
            "image:\n"
            f'  repository: {r}/chart  # {{"$imagepolicy": "chart:name"}}\n'
            '  tag: "1.2.0"  # {"$imagepolicy": "chart:tag"}\n'
            "replicaCount: 2\n"
        ),
        "apps/kustomization.yaml": (
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n"
            f"  - name: chart\n    newName: {r}/chart\n"
            '    newTag: 1.2.0 # {"$imagepolicy": "chart:tag"}\n'
        ),
    }
    bare = make_bare_repo(
        tmp_path / "srv", "config.git", {path: text.encode() for path, text in files.items()}
    )
    config = tmp_path / "automator.yaml"
    config.write_text(
        f"git: {{url: '{bare.as_uri()}', paths: [apps]}}\n"
        f"registries: [{{host: '{registry.host}', url: '{registry.url}'}}]\n"
        f"workdir: {tmp_path / 'work'}\n"
    )
    return World(
        r, bare, config, files, old, new, pinned, index_digest, per_platform["linux/arm64"]
    )


def remote(world: World, path: str) -> str:
    return git("show", f"main:{path}", cwd=world.bare)


def test_every_strategy_updates_through_once_and_plan_agrees(world: World) -> None:
    config = world.config
    r = world.r
    plan = run(config, "plan", "--output", "json")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    planned = {(p["file"], p["container"]): p["new"] for p in json.loads(plan.stdout)}

    result = run(config, "once")
    assert result.returncode == 0, result.stdout + result.stderr

    expected = {
        ("apps/nb.yaml", "app"): f"{r}/nb:b2",  # newest build, not b3
        ("apps/gl.yaml", "app"): f"{r}/gl:main-bbb",  # Flux v1 glob, dev-* ignored
        ("apps/num.yaml", "app"): f"{r}/num:main-1a2b-100",  # 100 > 90, pr-* filtered
        ("apps/rx.yaml", "app"): f"{r}/rx:rel-1",  # rel-1 was built after the current rel-2
        ("apps/alpha.yaml", "app"): f"{r}/alpha:2026-02-01",
        ("apps/sem.yaml", "app"): f"{r}/sem:1.8.0@{world.pinned['1.8.0']}",
        ("apps/mut.yaml", "app"): f"{r}/mut:latest@{world.new}",
        ("apps/multi.yaml", "app"): f"{r}/multi:stable@{world.arm64}",
        ("apps/values.yaml", "image.tag"): "1.4.0",
        ("apps/kustomization.yaml", "images[0].newTag"): "1.4.0",
    }
    assert planned == expected
    for (path, _), value in expected.items():
        assert value in remote(world, path), path
    values = remote(world, "apps/values.yaml")
    assert values == world.files["apps/values.yaml"].replace('"1.2.0"', '"1.4.0"')
    again = run(config, "once")
    assert "0 updated" in again.stdout, again.stdout


def test_images_lists_policy_current_newest_and_candidates(world: World) -> None:
    config = world.config
    result = run(config, "images", "--output", "json")
    assert result.returncode == 0, result.stderr
    rows = {(row["file"], row["container"]): row for row in json.loads(result.stdout)}
    nb = rows[("apps/nb.yaml", "app")]
    assert nb["policy"] == "newest-build"
    assert nb["newest"] == "b2"
    assert nb["recent"] == ["b2", "b3", "b1"]
    tag = rows[("apps/values.yaml", "image.tag")]
    assert tag["current"] == "1.2.0"
    assert tag["newest"] == "1.4.0"


def test_a_malformed_policy_is_exit_2_quoting_the_annotation_while_others_update(
    world: World,
) -> None:
    config, bare = world.config, world.bare
    work = config.parent / "edit"
    git("clone", "-q", str(bare), str(work))
    (work / "apps" / "bad.yaml").write_text(
        workload("bad", f"{world.r}/sem:1.0.0", policy_for("app", "semver:>=1 <<2"))
    )
    git("add", "-A", cwd=work)
    git("commit", "-qm", "add a bad policy", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)

    result = run(config, "once")

    assert result.returncode == 2
    assert "annotation automator.gitops.io/policy.app" in result.stdout
    assert "'<<2'" in result.stdout
    assert "apps/bad.yaml" in result.stdout
    assert f"{world.r}/nb:b2" in remote(world, "apps/nb.yaml")


def test_check_against_the_registry_resolves_digest_pins_and_platforms(
    world: World,
) -> None:
    config, r = world.config, world.r
    out = run(
        config,
        "check",
        f"{r}/sem:1.0.0",
        "--policy",
        "semver:^1",
        "--ignore",
        "1.9.*",
        "--pin-digest",
        "--output",
        "json",
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["selected"] == "1.8.0"
    assert doc["new"] == f"{r}/sem:1.8.0@{world.pinned['1.8.0']}"

    multi = run(
        config,
        "check",
        f"{r}/multi:stable",
        "--policy",
        "digest",
        "--platform",
        "linux/arm64",
        "--output",
        "json",
    )
    assert json.loads(multi.stdout)["new"] == f"{r}/multi:stable@{world.arm64}"
    index = run(config, "check", f"{r}/multi:stable", "--policy", "digest", "--output", "json")
    assert json.loads(index.stdout)["new"] == f"{r}/multi:stable@{world.index}"

    newest = run(config, "check", f"{r}/nb", "--policy", "newest-build", "--explain")
    assert "selected:   b2" in newest.stdout
    assert any(line.split()[:2] == ["b3", "lower"] for line in newest.stdout.splitlines()), (
        newest.stdout
    )


def test_check_offline_explains_every_tag_and_rejects_bad_input_with_exit_2(
    tmp_path: Path,
) -> None:
    tags = "1.0.0,1.2.0,1.3.0-rc.1,2.0.0,latest,1.2.0.sig"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "automator",
            "check",
            "--tags",
            tags,
            "--policy",
            "semver:~1.2",
            "--explain",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["selected"] == "1.2.0"
    reasons = {v["tag"]: v["reason"] for v in doc["explain"]}
    assert reasons == {
        "1.2.0": "selected",
        "1.0.0": "out-of-range",
        "1.3.0-rc.1": "out-of-range",
        "2.0.0": "out-of-range",
        "latest": "not-a-version",
        "1.2.0.sig": "excluded",
    }
    empty = subprocess.run(
        [
            sys.executable,
            "-m",
            "automator",
            "check",
            "--tags",
            "latest",
            "--policy",
            "semver:*",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert empty.returncode == 0
    assert json.loads(empty.stdout)["selected"] is None
    for bad, fragment in [
        (["--policy", "semver:>=1 <<2"], "'<<2'"),
        (["--policy", "bogus:1"], "bogus"),
        (["--policy", "numerical", "--filter", "^(?P<x>\\d+)$", "--extract", "$ts"], "'ts'"),
        (["--policy", "regex:([unclosed"], "regex"),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "automator", "check", "--tags", "1", *bad],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            check=False,
        )
        assert proc.returncode == 2, (bad, proc.stderr)
        assert fragment in proc.stderr, (bad, proc.stderr)


def test_plan_never_promises_a_change_that_once_cannot_write(
    tmp_path: Path, registry: RegistryServer
) -> None:
    ns = f"t{uuid.uuid4().hex[:8]}"
    push_image(registry.url, f"{ns}/num", ["100", "200"])
    push_image(registry.url, f"{ns}/word", ["m", "n"])
    policies = "".join(
        "---\napiVersion: automator.gitops.io/v1\nkind: ImagePolicy\n"
        f"metadata: {{name: {name}}}\nspec: {{image: '{registry.host}/{ns}/{name}', "
        f"policy: '{spec}'}}\n"
        for name, spec in (("num", "numerical"), ("word", "alphabetical"))
    )
    values = (
        'a: latest # {"$imagepolicy": "num:tag"}\n'  # 200 would be written as an int
        'b: m # {"$imagepolicy": "word:tag"}\n'
    )
    bare = make_bare_repo(
        tmp_path / "srv",
        "config.git",
        {"p.yaml": policies.encode(), "values.yaml": values.encode()},
    )
    config = tmp_path / "automator.yaml"
    config.write_text(
        f"git: {{url: '{bare.as_uri()}'}}\n"
        f"registries: [{{host: '{registry.host}', url: '{registry.url}'}}]\n"
        f"workdir: {tmp_path / 'work'}\n"
    )
    plan = run(config, "plan", "--output", "json")
    once = run(config, "once")

    assert plan.returncode == once.returncode == 1
    assert json.loads(plan.stdout) == []
    assert "values.yaml" in once.stdout
    assert once.stdout.count("was not updated") == 2  # both changes of the file, listed
    assert git("show", "main:values.yaml", cwd=bare) == values

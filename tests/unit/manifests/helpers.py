"""Small builders shared by the manifests tests."""

from __future__ import annotations

from pathlib import Path


def write(root: Path, rel: str, text: str | bytes) -> Path:
    """Write a file under ``root`` (bytes verbatim, text as UTF-8 without newline changes)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def deployment(
    name: str = "web",
    annotations: dict[str, str] | None = None,
    containers: tuple[tuple[str, str], ...] = (("app", "nginx:1.0.0"),),
    namespace: str | None = None,
) -> str:
    """A minimal Deployment; annotations default to automated with one default policy."""
    if annotations is None:
        annotations = {
            "automator.gitops.io/automated": "true",
            "automator.gitops.io/policy": "semver:^1",
        }
    lines = ["apiVersion: apps/v1", "kind: Deployment", "metadata:", f"  name: {name}"]
    if namespace is not None:
        lines.append(f"  namespace: {namespace}")
    if annotations:
        lines.append("  annotations:")
        lines.extend(f'    {key}: "{value}"' for key, value in annotations.items())
    lines += ["spec:", "  template:", "    spec:", "      containers:"]
    for container, image in containers:
        lines += [f"        - name: {container}", f"          image: {image}"]
    return "\n".join(lines) + "\n"

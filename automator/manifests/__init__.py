"""Find automated container images in Kubernetes YAML, and rewrite them surgically.

``scan`` walks a repository's YAML files and returns every image value under a policy
(DESIGN §4), with enough position information to find it again: container images that a
workload's annotations automate, and any scalar followed by a Flux v2 style marker comment
``# {"$imagepolicy": "[NAMESPACE:]NAME[:tag|:name|:digest]"}`` (Helm values, Kustomize
``images:``, custom resources, ...), whose policy comes from the ``ImagePolicy`` document of
that name under the scanned paths, validated against ``automator/schemas/
imagepolicy.schema.json``. See :class:`ImageField` for what a marker field holds, and
``_scan`` for the precedence between a marker and annotations on a container image.

``render`` computes the new bytes of the files a list of changes touches,
and ``apply`` writes them atomically. Only the characters of each image value change
(DESIGN §5): comments, quoting, indentation, CRLF, BOM and everything else are copied, and
the result is re-parsed and compared with the original before anything is written.

YAML anchors and aliases: an image value that is an alias (``image: *img``, or reached
through an aliased or ``<<``-merged mapping) is never edited through the alias. If the
anchor it refers to is itself an automated image field, the alias simply follows it when
that field is edited (that is what the user said by writing an alias); otherwise the scan
reports a ManifestError naming the anchor. An anchored value (``image: &img nginx:1``) is
edited in place, after the anchor token, and every alias of it follows.
"""

from __future__ import annotations

from automator.manifests._model import ApplyResult, Change, ImageField, ScanResult
from automator.manifests._rewrite import apply, render
from automator.manifests._scan import scan

__all__ = ["ApplyResult", "Change", "ImageField", "ScanResult", "apply", "render", "scan"]
